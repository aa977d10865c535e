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
    #[before_save]
    fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("a name is required".into());
        }
        Ok(())
    }
}

fn main() {}
