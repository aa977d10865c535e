//! The delayed events, as far as [`Admin::status`] knows them.
//!
//! [`Admin::status`]: crate::admin::Admin::status

use maud::{Markup, html};

use super::error::ConsoleError;
use super::layout::{self, Ctx};

/// What the status knows of delayed events: how many wait per stream.
/// Redis offers no listing of them through earn yet.
pub(super) async fn page(ctx: Ctx) -> Result<Markup, ConsoleError> {
    let status = ctx.console.admin.status().await?;
    #[cfg(feature = "redis")]
    let rows: Vec<(String, u64)> = status
        .streams
        .iter()
        .map(|s| (s.stream.clone(), s.lag.delayed))
        .collect();
    #[cfg(not(feature = "redis"))]
    let rows: Vec<(String, u64)> = {
        let _ = status;
        Vec::new()
    };
    Ok(layout::page(
        &ctx,
        "Delayed events",
        "/delayed",
        html! {
            h1 { "Delayed events" }
            p.muted {
                "How many events wait for their time in each stream's "
                code { "{stream}:delayed" } ". Listing them one by one needs an API earn does not have yet."
            }
            @if rows.is_empty() {
                p.muted { "The console was given no Redis stream." }
            } @else {
                table #delayed {
                    thead { tr { th { "Stream" } th.num { "Delayed" } } }
                    tbody {
                        @for (stream, delayed) in &rows {
                            tr { td { (stream) } td.num { (delayed) } }
                        }
                    }
                }
            }
        },
    ))
}
