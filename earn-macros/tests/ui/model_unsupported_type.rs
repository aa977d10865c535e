use earn::prelude::*;
use std::collections::HashMap;

#[derive(Debug, Clone, Model)]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub settings: HashMap<String, String>,
}

fn main() {}
