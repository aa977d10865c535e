use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "members")]
pub struct Member {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    #[model(default = String::new())]
    pub status: String,
}

fn main() {}
