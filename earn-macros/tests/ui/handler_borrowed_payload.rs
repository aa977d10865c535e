use earn::prelude::*;

#[derive(serde::Deserialize)]
struct Signup {
    email: String,
}

#[event_handler("user.created")]
fn welcome(signup: &Signup) {
    println!("{}", signup.email);
}

fn main() {}
