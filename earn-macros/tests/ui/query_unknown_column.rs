use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "users")]
pub struct User {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub email: String,
}

fn main() {
    let _ = User::query().filter(User::EMIAL.eq("ada@example.com"));
    let _ = User::query().order_by(User::EMIAL.asc());
}
