use earn::prelude::*;

struct Mailer;

#[service]
impl Default for Mailer {
    fn default() -> Self {
        Mailer
    }
}

fn main() {}
