//! The dead letters: a list filtered by GET parameters (so a view can be
//! bookmarked) and one letter in detail; the actions on them are in
//! `actions`.

mod actions;
mod filters;

use axum::extract::Query;
use maud::{Markup, html};
use serde::Deserialize;

pub(super) use actions::{confirm, delete, delete_all, retry, retry_all};
use filters::Filters;

use super::error::ConsoleError;
use super::layout::{self, Ctx};
use crate::{DeadLetter, DeadLetterFilter, PageRequest};

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(flatten)]
    filters: Filters,
    #[serde(default)]
    page: String,
    /// What the last action did (`retried`, `deleted`) and to how many.
    #[serde(default)]
    done: String,
    #[serde(default)]
    n: String,
}

pub(super) async fn list(ctx: Ctx, Query(query): Query<ListQuery>) -> Result<Markup, ConsoleError> {
    let filters = &query.filters;
    let page = layout::page_number(&query.page)?;
    let filter = filters.filter()?;
    let source = filters.source(&ctx)?;
    let name = source.source();
    let per_page = ctx.console.options.per_page;
    let total = source.count(&filter).await?;
    let letters = source
        .list(&filter, PageRequest::page(page, per_page))
        .await?;
    let mut counts = Vec::new();
    for other in ctx.console.admin.sources() {
        counts.push((
            other.source(),
            other.count(&DeadLetterFilter::default()).await?,
        ));
    }
    let link = |page: u64| {
        let page = page.to_string();
        let mut pairs = filters.pairs(&name).to_vec();
        pairs.push(("page", &page));
        ctx.url(&format!("/dead-letters{}", layout::query(&pairs)))
    };
    let confirm = |action: &str| {
        let mut pairs = filters.pairs(&name).to_vec();
        pairs.insert(0, ("action", action));
        ctx.url(&format!("/dead-letters/confirm{}", layout::query(&pairs)))
    };
    let pages = total.div_ceil(per_page).max(1);
    let body = html! {
        h1 { "Dead letters" }
        @if let Some(notice) = notice(&query.done, &query.n) { p.notice #notice { (notice) } }
        form.filters method="get" action=(ctx.url("/dead-letters")) {
            label { "Source"
                select name="source" {
                    @for (source, count) in &counts {
                        option value=(source) selected[*source == name] { (source) " (" (count) ")" }
                    }
                }
            }
            label { "Event (name or prefix.**)" input name="event" value=(filters.event) placeholder="payment.**"; }
            label { "Handler" input name="handler" value=(filters.handler); }
            label { "Older than" input name="older_than" value=(filters.older_than) placeholder="15m" size="6"; }
            button.primary type="submit" { "Filter" }
            a href=(ctx.url(&format!("/dead-letters{}", layout::query(&[("source", &name)])))) { "Clear" }
        }
        p #matching { strong { (total) } " dead letter(s) in " code { (name) } " match." }
        @if total > 0 && !ctx.read_only() {
            div.actions {
                a href=(confirm("retry")) { button type="button" { "Retry all matching…" } }
                a href=(confirm("delete")) { button.danger type="button" { "Delete all matching…" } }
            }
        }
        table #dead-letters {
            thead { tr {
                th { "Dead-lettered" } th { "Event" } th { "Handler" } th.num { "Attempts" } th { "Reason" }
                @if !ctx.read_only() { th { "" } }
            } }
            tbody {
                @for letter in &letters {
                    tr data-id=(letter.id) {
                        td title=(layout::utc(letter.last_failed_at)) { (layout::ago(letter.last_failed_at)) }
                        td { a.detail href=(detail_url(&ctx, letter)) { code { (letter.name) } } }
                        td { @if let Some(handler) = &letter.handler { code { (handler) } } @else { span.muted { "none" } } }
                        td.num { (letter.attempts) }
                        td { (letter.reason) }
                        @if !ctx.read_only() {
                            td { (actions::buttons(&ctx, filters, letter)) }
                        }
                    }
                }
            }
        }
        @if letters.is_empty() { p.muted { "None." } }
        div.pager {
            @if page > 1 { a rel="prev" href=(link(page - 1)) { "← Previous page" } }
            span.muted { "Page " (page) " of " (pages) ", oldest first" }
            @if page < pages { a rel="next" href=(link(page + 1)) { "Next page →" } }
        }
    };
    Ok(layout::page(&ctx, "Dead letters", "/dead-letters", body))
}

fn notice(done: &str, n: &str) -> Option<String> {
    let n: u64 = n.parse().unwrap_or(1);
    let verb = match done {
        "retried" => "Sent back for delivery",
        "deleted" => "Deleted",
        _ => return None,
    };
    Some(format!("{verb}: {n} dead letter(s)."))
}

fn detail_url(ctx: &Ctx, letter: &DeadLetter) -> String {
    ctx.url(&format!(
        "/dead-letter{}",
        layout::query(&[("source", &letter.source), ("id", &letter.id)])
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct DetailQuery {
    #[serde(default)]
    source: String,
    #[serde(default)]
    id: String,
}

pub(super) async fn detail(
    ctx: Ctx,
    Query(query): Query<DetailQuery>,
) -> Result<Markup, ConsoleError> {
    if query.source.is_empty() || query.id.is_empty() {
        return Err(ConsoleError::BadRequest(
            "a dead letter is named by `source` and `id`".to_owned(),
        ));
    }
    let letter = ctx
        .console
        .admin
        .dead_letter(&query.source, &query.id)
        .await?;
    let payload = letter
        .event
        .as_ref()
        .map(|event| serde_json::to_string_pretty(event.payload_json()).unwrap_or_default());
    let stored = match (&letter.event, &letter.raw) {
        (Some(event), _) => serde_json::to_string_pretty(event).unwrap_or_default(),
        (None, Some(raw)) => raw.clone(),
        (None, None) => String::new(),
    };
    let filters = Filters {
        source: letter.source.clone(),
        ..Filters::default()
    };
    let body = html! {
        p { a href=(ctx.url(&format!("/dead-letters{}", layout::query(&[("source", &letter.source)])))) { "← " (letter.source) } }
        h1 { "Dead letter " code { (letter.id) } }
        dl {
            dt { "Source" } dd { code { (letter.source) } }
            dt { "Event" } dd { code { (letter.name) } }
            dt { "Handler" } dd { @if let Some(h) = &letter.handler { code { (h) } } @else { span.muted { "none ran" } } }
            dt { "Reason" } dd #reason { (letter.reason) }
            dt { "Attempts" } dd { (letter.attempts) }
            dt { "First failed" } dd { (layout::utc(letter.first_failed_at)) " (" (layout::ago(letter.first_failed_at)) ")" }
            dt { "Dead-lettered" } dd { (layout::utc(letter.last_failed_at)) " (" (layout::ago(letter.last_failed_at)) ")" }
            @if let Some(event) = &letter.event {
                dt { "Event id" } dd { code { (event.id()) } }
                dt { "Emitted" } dd { (layout::utc(event.timestamp())) }
                dt { "Correlation" } dd { code { (event.correlation_id()) } }
                @if let Some(cause) = event.causation_id() { dt { "Caused by" } dd { code { (cause) } } }
                @if let Some(from) = event.source() { dt { "Emitted by" } dd { (from) } }
                @for (key, value) in event.metadata() { dt { "meta " (key) } dd { (value) } }
            }
        }
        @if !ctx.read_only() { div.actions { (actions::buttons(&ctx, &filters, &letter)) } }
        h2 { "Payload" }
        @if let Some(payload) = &payload { pre #payload { (payload) } }
        @else { p.error { "The stored form is not a valid event: no payload to show." } }
        h2 { "Stored form" }
        pre #stored { (stored) }
    };
    Ok(layout::page(
        &ctx,
        &format!("Dead letter {}", letter.id),
        "/dead-letters",
        body,
    ))
}
