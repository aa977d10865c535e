use earn::prelude::*;

struct Mailer;

#[service]
impl Mailer {
    #[event_handler("user.created", priority = 1, timeout_ms = 50)]
    fn welcome(&self, _event: &Event) {}

    // An async method may have a timeout.
    #[event_handler("user.deleted", timeout_ms = 50)]
    async fn farewell(&self, _event: &Event) {}
}

fn main() {}
