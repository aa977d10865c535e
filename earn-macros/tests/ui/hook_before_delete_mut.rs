use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "users")]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub email: String,
}

#[hooks]
impl User {
    #[before_delete]
    fn scrub(&mut self) {
        self.email.clear();
    }
}

fn main() {}
