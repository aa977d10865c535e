use earn::prelude::*;

pub struct Audited;

#[derive(Debug, Clone, Model)]
#[model(table = "projects", behaviours(Audited))]
pub struct Project {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
}

fn main() {}
