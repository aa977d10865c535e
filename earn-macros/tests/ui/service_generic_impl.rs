use earn::prelude::*;

struct Mailer<T> {
    sender: T,
}

#[service]
impl<T: Send + Sync + 'static> Mailer<T> {
    #[event_handler("user.created")]
    fn welcome(&self, _event: &Event) {
        let _ = &self.sender;
    }
}

fn main() {}
