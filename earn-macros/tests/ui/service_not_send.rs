use earn::prelude::*;

struct Mailer;

async fn send_mail() {}

#[service]
impl Mailer {
    #[event_handler("user.created")]
    async fn welcome(&self, event: &Event) {
        let name = std::rc::Rc::new(event.name().to_owned());
        send_mail().await;
        println!("{name}");
    }
}

fn main() {}
