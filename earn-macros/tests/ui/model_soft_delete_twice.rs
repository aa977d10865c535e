use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "documents")]
pub struct Document {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    #[model(soft_delete)]
    pub deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    #[model(updated_at, soft_delete)]
    pub removed_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn main() {}
