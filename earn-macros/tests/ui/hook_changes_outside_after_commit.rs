use earn::prelude::*;
use earn::TransactionChanges;

#[derive(Debug, Clone, Model)]
#[model(table = "accounts")]
pub struct Account {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    pub email: String,
}

#[hooks]
impl Account {
    #[after_save]
    fn changed(&self, changes: &TransactionChanges<Account>) {
        let _ = changes;
    }
}

fn main() {}
