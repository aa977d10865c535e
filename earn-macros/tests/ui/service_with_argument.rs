use earn::prelude::*;

struct Mailer;

#[service(x)]
impl Mailer {
    #[event_handler("user.created")]
    fn welcome(&self, _event: &Event) {}
}

fn main() {}
