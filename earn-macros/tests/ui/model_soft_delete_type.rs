use earn::prelude::*;

// A soft-delete mark must be able to say "live": an `Option` of a date-time.
#[derive(Debug, Clone, Model)]
#[model(table = "documents")]
pub struct Document {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    #[model(soft_delete)]
    pub deleted_at: i64,
}

fn main() {}
