use earn::prelude::*;

async fn send_mail() {}

#[event_handler("user.created")]
async fn welcome(event: &Event) {
    let name = std::rc::Rc::new(event.name().to_owned());
    send_mail().await;
    println!("{name}");
}

fn main() {}
