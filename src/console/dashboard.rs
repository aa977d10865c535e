//! The dashboard: what waits and what failed, now and over the last
//! minutes, refreshed in place.

use maud::{Markup, html};

use super::error::ConsoleError;
use super::layout::{self, Ctx};
use super::sampler::{self, Sample};
use crate::admin::Status;

/// How often the page asks for a fresh [`live`] fragment.
const REFRESH_MS: u64 = 3000;

/// The page keeps refreshing when a store fails: it shows the error where
/// the counts go until the store answers again.
pub(super) async fn page(ctx: Ctx) -> Markup {
    let body = match live_body(&ctx).await {
        Ok(body) => body,
        Err(error) => html! { p.error { "The status could not be read: " (error.to_string()) } },
    };
    layout::page(
        &ctx,
        "Dashboard",
        "/",
        html! {
            h1 { "Dashboard" }
            div #live data-live=(ctx.url("/live")) data-every=(REFRESH_MS) { (body) }
        },
    )
}

/// The part of the dashboard the page refreshes.
pub(super) async fn live(ctx: Ctx) -> Result<Markup, ConsoleError> {
    live_body(&ctx).await
}

async fn live_body(ctx: &Ctx) -> Result<Markup, ConsoleError> {
    sampler::start(&ctx.console);
    let status = ctx.console.admin.status().await?;
    if ctx.console.samples.snapshot().is_empty() {
        ctx.console.samples.push(Sample::of(&status));
    }
    let samples = ctx.console.samples.snapshot();
    Ok(html! {
        (cards(&status))
        h2 { "Dead letters per source" }
        @if status.dead_letters.is_empty() {
            p.muted { "The console was given no dead-letter source." }
        } @else {
            table #dead-letter-counts {
                thead { tr { th { "Source" } th.num { "Dead letters" } } }
                tbody {
                    @for source in &status.dead_letters {
                        tr data-source=(source.source) {
                            td { a href=(ctx.url(&format!("/dead-letters{}", layout::query(&[("source", &source.source)])))) { (source.source) } }
                            td.num { (source.dead_letters) }
                        }
                    }
                }
            }
        }
        (streams_table(&status))
        (subscriptions_table(&status))
        h2 { "The last minutes" }
        p.muted {
            "Sampled from the status every " (layout::span(ctx.console.options.sample_every))
            " while the console runs: dead letters in every source, the outbox backlog, and the streams' pending and unread entries."
        }
        (sampler::graph(&samples))
        @if let Some(rates) = sampler::rate_graph(&samples) {
            h2 { "Events handled" }
            p.muted { "The bus's handler calls that succeeded and failed, per minute, between samples." }
            (rates)
        }
        p.muted { "Updated " (layout::utc(std::time::SystemTime::now())) "." }
    })
}

fn cards(status: &Status) -> Markup {
    let total = status.dead_letter_total();
    html! {
        div.cards {
            div.card.bad[total > 0] #dead-letter-total {
                div.value { (total) }
                div.label { "dead letters" }
            }
            @if let Some(outbox) = status.outbox {
                div.card #outbox-backlog {
                    div.value { (outbox.backlog) }
                    div.label {
                        "outbox backlog"
                        @if let Some(oldest) = outbox.oldest { ", oldest " (layout::span(oldest)) }
                    }
                }
            }
            @if let Some(in_flight) = status.bus_in_flight {
                div.card #bus-in-flight {
                    div.value { (in_flight) }
                    div.label { "in flight on the bus" }
                }
            }
        }
    }
}

/// The event store's head and how far behind it each subscription is.
fn subscriptions_table(status: &Status) -> Markup {
    let Some(store) = &status.store else {
        return html! {};
    };
    html! {
        h2 { "Event store" }
        p.muted { "Head at position " (store.head) "." }
        @if !store.subscriptions.is_empty() {
            table #subscriptions {
                thead { tr {
                    th { "Subscription" } th.num { "Position" } th.num { "Behind" } th { "Last moved" }
                } }
                tbody {
                    @for subscription in &store.subscriptions {
                        tr data-subscription=(subscription.name) {
                            td { (subscription.name) }
                            td.num { (subscription.position) }
                            td.num { (store.head.saturating_sub(subscription.position)) }
                            td { (layout::utc(std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(subscription.updated_at).unwrap_or(0)))) }
                        }
                    }
                }
            }
        }
    }
}

/// The lag of each stream and group, as the status reports it.
fn streams_table(status: &Status) -> Markup {
    let rows = status.broker_lags();
    if rows.is_empty() {
        return html! {};
    }
    html! {
        h2 { "Streams" }
        table #stream-lag {
            thead { tr {
                th { "Broker" } th { "Stream" } th { "Group" } th.num { "Messages" }
                th.num { "Pending" } th.num { "Unread" } th.num { "Delayed" }
            } }
            tbody {
                @for row in &rows {
                    tr {
                        td { (row.broker) }
                        td { (row.stream) }
                        td { (row.group) }
                        td.num { (row.length) }
                        td.num { (row.pending) }
                        td.num { @if let Some(unread) = row.unread { (unread) } @else { span.muted title="the broker cannot tell (Redis: entries deleted after the group's position; NATS: no process of the group has consumed yet)" { "unknown" } } }
                        td.num { (row.delayed) }
                    }
                }
            }
        }
    }
}
