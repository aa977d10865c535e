use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "posts")]
pub struct Post {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    #[model(created_at)]
    pub created_at: Option<i64>,
    #[model(created_at, updated_at)]
    pub touched_at: Option<i64>,
}

fn main() {}
