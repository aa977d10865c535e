use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "users")]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub name: String,
}

fn is_named(user: &User) -> bool {
    !user.name.is_empty()
}

#[hooks]
impl User {
    #[before_save(if = "is_named")]
    fn normalize(&mut self) {}
}

fn main() {}
