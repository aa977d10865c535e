use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "users")]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub name: String,
}

async fn audit() {}

#[hooks]
impl User {
    #[after_create]
    async fn created(&self) {
        let shared = std::rc::Rc::new(self.name.clone());
        audit().await;
        println!("{shared}");
    }
}

fn main() {}
