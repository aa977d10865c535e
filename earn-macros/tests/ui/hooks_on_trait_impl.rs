use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "users")]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub name: String,
}

trait Audited {
    fn audit(&self);
}

#[hooks]
impl Audited for User {
    #[after_save]
    fn audit(&self) {}
}

fn main() {}
