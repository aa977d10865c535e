use earn::prelude::*;

#[derive(Debug, Clone, PartialEq, Field)]
enum Payment {
    Cash,
    Card(String),
    Transfer { iban: String },
}

// The model compiles: the derive's error is the only one.
#[derive(Debug, Clone, Model)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key, auto)]
    id: Option<i64>,
    payment: Payment,
}

fn main() {}
