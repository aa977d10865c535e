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
    #[after_commit]
    async fn announce(&self) -> Option<String> {
        Some(self.name.clone())
    }
}

fn main() {}
