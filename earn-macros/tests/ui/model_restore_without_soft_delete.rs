use earn::prelude::*;

#[derive(Debug, Clone, Model)]
#[model(table = "documents")]
pub struct Document {
    #[model(primary_key, auto)]
    pub id: Option<i64>,
}

async fn undo(db: &Db, mut doc: Document) -> Result<(), earn::Error> {
    doc.restore(db).await
}

fn main() {}
