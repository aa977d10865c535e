use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "users")]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub name: String,
}

#[hooks]
impl User {
    #[before_delete(on = "delete")]
    fn guard(&self) {}
}

fn main() {}
