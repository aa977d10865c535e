use earn::prelude::*;

struct Mailer;

#[service]
impl Mailer {
    #[event_handler("User.created")]
    fn welcome(&self, _event: &Event) {}
}

fn main() {}
