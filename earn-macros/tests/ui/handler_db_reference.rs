use earn::prelude::*;

#[event_handler("user.created")]
async fn welcome(event: &Event, db: &Db) -> Result<(), HandlerError> {
    let _ = (event, db);
    Ok(())
}

fn main() {}
