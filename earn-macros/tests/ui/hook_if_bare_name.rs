use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "users")]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub email: String,
}

#[hooks]
impl User {
    // A bare name is a method of the model (`if = is_new` works); this one
    // is misspelt.
    #[before_save(if = is_nw)]
    fn welcome(&self) {}

    fn is_new(&self) -> bool {
        self.id.is_none()
    }
}

fn main() {}
