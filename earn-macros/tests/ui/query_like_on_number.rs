use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "users")]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub age: i64,
}

fn main() {
    let _ = User::query().filter(User::AGE.like("1%"));
}
