use earn::prelude::*;

struct Mailer {
    sent: u32,
}

#[service]
impl Mailer {
    #[event_handler("user.created")]
    fn welcome(&mut self, _event: &Event) {
        self.sent += 1;
    }
}

fn main() {}
