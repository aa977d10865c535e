use earn::prelude::*;

#[behaviour]
trait Tracked: Model {
    #[after_update(when_changed = "status")]
    fn changed(&self) {}
}

fn main() {}
