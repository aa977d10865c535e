use earn::prelude::*;

struct Mailer;

#[service]
impl Mailer {
    #[event_handler("user.created")]
    fn welcome(_event: &Event) {}
}

fn main() {}
