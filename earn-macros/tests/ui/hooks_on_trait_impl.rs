use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "users")]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub name: String,
}

#[hooks]
impl Default for User {
    #[before_save]
    fn default() -> Self {
        User { id: None, name: String::new() }
    }
}

fn main() {}
