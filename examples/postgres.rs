//! A caller transaction, a savepoint and after_commit on PostgreSQL.
//!
//! ```text
//! EARN_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example postgres --features postgres
//! ```

use earn::prelude::*;

/// A bank transfer leg.
#[derive(Debug, Clone, Model)]
#[model(table = "example_ledger")]
pub struct Entry {
    /// Assigned by PostgreSQL.
    #[model(primary_key, auto)]
    pub id: Option<i64>,
    /// The account moved from or to.
    pub account: String,
    /// Cents; negative for a debit.
    pub amount: i64,
}

#[hooks]
impl Entry {
    #[before_save]
    fn no_zero_amounts(&self) -> Result<(), HookError> {
        if self.amount == 0 {
            return Err(HookError::invalid("amount", "must not be zero"));
        }
        Ok(())
    }

    #[after_save]
    async fn check_balance(&self, ctx: &mut HookContext<'_>) -> Result<(), HookError> {
        // The hook's own SQL runs in the write's transaction and sees it.
        let conn = ctx
            .tx()
            .as_postgres()
            .ok_or_else(|| HookError::msg("PostgreSQL only"))?;
        let balance: i64 = earn::sqlx::query_scalar(
            "SELECT COALESCE(SUM(amount), 0)::BIGINT FROM example_ledger WHERE account = $1",
        )
        .bind(&self.account)
        .fetch_one(conn)
        .await?;
        if balance < 0 && self.account != "bank" {
            return Err(HookError::abort(format!(
                "{} would be overdrawn ({balance})",
                self.account
            )));
        }
        Ok(())
    }

    #[after_commit]
    async fn notify(&self) {
        println!("after_commit: {} {:+} committed", self.account, self.amount);
    }

    #[after_rollback]
    fn undone(&self) {
        println!("after_rollback: {} {:+} undone", self.account, self.amount);
    }
}

fn entry(account: &str, amount: i64) -> Entry {
    Entry {
        id: None,
        account: account.into(),
        amount,
    }
}

#[tokio::main]
async fn main() -> Result<(), earn::Error> {
    let Ok(url) = std::env::var("EARN_POSTGRES_URL") else {
        eprintln!("set EARN_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test");
        std::process::exit(2);
    };
    let db = Db::connect(&url).await?;
    db.drop_table::<Entry>().await?;
    db.create_table::<Entry>().await?;

    let mut tx = db.begin().await?;
    entry("bank", -100).save_in(&mut tx).await?;
    entry("ada", 100).save_in(&mut tx).await?;
    println!("two entries written; after_commit waits for the commit");

    // A transfer that would overdraw ada is tried in a savepoint, so its
    // failure undoes only itself.
    {
        let mut sp = tx.begin().await?;
        entry("bob", 500).save_in(&mut sp).await?;
        match entry("ada", -500).save_in(&mut sp).await {
            Ok(()) => sp.commit().await?,
            Err(error) => {
                println!("refused: {error}");
                sp.rollback().await?; // bob's +500 is undone too
            }
        }
    }

    tx.commit().await?;
    for e in Entry::all(&db).await? {
        println!("stored: {} {:+}", e.account, e.amount);
    }
    Ok(())
}
