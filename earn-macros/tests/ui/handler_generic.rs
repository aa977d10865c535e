use earn::prelude::*;

#[event_handler("user.created")]
fn welcome<T: serde::de::DeserializeOwned>(_payload: T) {}

fn main() {}
