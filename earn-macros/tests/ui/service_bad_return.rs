use earn::prelude::*;

struct Mailer;

#[service]
impl Mailer {
    #[event_handler("user.created")]
    fn welcome(&self, _event: &Event) -> i32 {
        0
    }
}

fn main() {}
