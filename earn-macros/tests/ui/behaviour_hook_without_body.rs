use earn::prelude::*;

#[behaviour]
trait Audited: Model {
    #[after_save]
    fn audit(&self);
}

fn main() {}
