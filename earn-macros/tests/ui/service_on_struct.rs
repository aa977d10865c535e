use earn::prelude::*;

#[service]
struct Mailer;

fn main() {}
