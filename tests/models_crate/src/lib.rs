//! Models whose hooks live in a crate other than the one that saves them.

use std::sync::Mutex;

use earn::prelude::*;

/// What the hooks of this crate did, in order.
pub static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record(event: String) {
    EVENTS.lock().unwrap_or_else(|e| e.into_inner()).push(event);
}

/// A model defined, with its hooks, in a library crate.
#[derive(Debug, Clone, Model)]
#[model(table = "crate_tickets")]
pub struct Ticket {
    /// Assigned by the database.
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    /// Upper-cased before every save.
    pub title: String,
}

#[hooks]
impl Ticket {
    #[before_save]
    fn shout(&mut self) {
        self.title = self.title.to_uppercase();
        record(format!("before_save {}", self.title));
    }

    #[after_commit]
    fn committed(&self) {
        record(format!("after_commit {:?}", self.id));
    }
}
