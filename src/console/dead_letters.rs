//! The dead letters: a list filtered by GET parameters (so a view can be
//! bookmarked), one letter in detail, and the actions on them (retry,
//! delete, and both for every letter a filter matches, after a typed
//! confirmation).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Form;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::error::ConsoleError;
use super::layout::{self, Ctx};
use crate::{DeadLetter, DeadLetterFilter, DeadLetters, Error, PageRequest};

/// The filters of the list, as the query string carries them; empty
/// values mean "any".
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct Filters {
    #[serde(default)]
    source: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    handler: String,
    /// `90s`, `15m`, `2h`, `3d`, or seconds.
    #[serde(default)]
    older_than: String,
}

impl Filters {
    /// The filter the stores take; `400` for an event pattern or an age
    /// they cannot use.
    fn filter(&self) -> Result<DeadLetterFilter, ConsoleError> {
        let mut filter = DeadLetterFilter::default();
        if !self.event.trim().is_empty() {
            filter = filter.event(self.event.trim());
        }
        if !self.handler.trim().is_empty() {
            filter = filter.handler(self.handler.trim());
        }
        if !self.older_than.trim().is_empty() {
            let age = parse_age(self.older_than.trim()).map_err(ConsoleError::BadRequest)?;
            let before = SystemTime::now()
                .checked_sub(age)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            filter = filter.failed_before(before);
        }
        filter.validate()?;
        Ok(filter)
    }

    /// The source asked for, or the first one.
    fn source<'a>(&self, ctx: &'a Ctx) -> Result<&'a Arc<dyn DeadLetters>, ConsoleError> {
        if self.source.is_empty() {
            return ctx.console.admin.sources().first().ok_or_else(|| {
                ConsoleError::NotFound("the console was given no dead-letter source".to_owned())
            });
        }
        Ok(ctx.console.admin.source_named(&self.source)?)
    }

    fn pairs<'a>(&'a self, source: &'a str) -> [(&'static str, &'a str); 4] {
        [
            ("source", source),
            ("event", &self.event),
            ("handler", &self.handler),
            ("older_than", &self.older_than),
        ]
    }

    /// The filters as hidden form fields, for the actions to carry back.
    fn hidden(&self, source: &str) -> Markup {
        html! {
            @for (name, value) in self.pairs(source) {
                @if !value.is_empty() { input type="hidden" name=(name) value=(value); }
            }
        }
    }
}

/// `90s`, `15m`, `2h`, `3d`, or a number of seconds.
fn parse_age(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad =
        || format!("`older_than` takes an age such as `90s`, `15m`, `2h` or `3d`, not `{text}`");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    number
        .checked_mul(unit)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

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
    let page = match query.page.trim() {
        "" => 1,
        text => text
            .parse::<u64>()
            .ok()
            .filter(|&p| p >= 1)
            .ok_or_else(|| {
                ConsoleError::BadRequest(format!("`page` is a number from 1, not `{text}`"))
            })?,
    };
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
                            td { (actions(&ctx, filters, letter)) }
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

/// Retry and delete buttons for one letter, carrying the list's filters
/// back.
fn actions(ctx: &Ctx, filters: &Filters, letter: &DeadLetter) -> Markup {
    html! {
        form.inline method="post" action=(ctx.url("/dead-letter/retry")) {
            (ctx.csrf_field())
            (filters.hidden(&letter.source))
            input type="hidden" name="id" value=(letter.id);
            button.retry type="submit" { "Retry" }
        }
        " "
        form.inline method="post" action=(ctx.url("/dead-letter/delete")) {
            (ctx.csrf_field())
            (filters.hidden(&letter.source))
            input type="hidden" name="id" value=(letter.id);
            button.danger.delete type="submit" { "Delete" }
        }
    }
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
        @if !ctx.read_only() { div.actions { (actions(&ctx, &filters, &letter)) } }
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

/// The form of a per-letter action.
#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    csrf: Option<String>,
    #[serde(flatten)]
    filters: Filters,
    #[serde(default)]
    id: String,
}

/// `403` unless the console may act and the form carries its token.
fn allowed(ctx: &Ctx, headers: &HeaderMap, token: Option<&str>) -> Result<(), ConsoleError> {
    if ctx.read_only() {
        return Err(ConsoleError::Forbidden(
            "this console is read-only".to_owned(),
        ));
    }
    ctx.console.csrf.check(headers, token)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Retry,
    Delete,
}

impl Action {
    fn parse(text: &str) -> Result<Action, ConsoleError> {
        match text {
            "retry" => Ok(Action::Retry),
            "delete" => Ok(Action::Delete),
            other => Err(ConsoleError::BadRequest(format!(
                "`action` is `retry` or `delete`, not `{other}`"
            ))),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Delete => "delete",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Action::Retry => "retried",
            Action::Delete => "deleted",
        }
    }

    async fn apply(self, source: &dyn DeadLetters, id: &str) -> Result<(), Error> {
        match self {
            Action::Retry => source.requeue(id).await,
            Action::Delete => source.delete(id).await,
        }
    }
}

pub(super) async fn retry(
    ctx: Ctx,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Response, ConsoleError> {
    one(ctx, headers, form, Action::Retry).await
}

pub(super) async fn delete(
    ctx: Ctx,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Response, ConsoleError> {
    one(ctx, headers, form, Action::Delete).await
}

async fn one(
    ctx: Ctx,
    headers: HeaderMap,
    form: ActionForm,
    action: Action,
) -> Result<Response, ConsoleError> {
    allowed(&ctx, &headers, form.csrf.as_deref())?;
    if form.filters.source.is_empty() || form.id.is_empty() {
        return Err(ConsoleError::BadRequest(
            "a dead letter is named by `source` and `id`".to_owned(),
        ));
    }
    let source = form.filters.source(&ctx)?;
    action.apply(source.as_ref(), &form.id).await?;
    Ok(back_to_list(&ctx, &form.filters, action, 1))
}

/// `303` to the list the action came from, saying what was done.
fn back_to_list(ctx: &Ctx, filters: &Filters, action: Action, n: u64) -> Response {
    let n = n.to_string();
    let mut pairs = filters.pairs(&filters.source).to_vec();
    pairs.extend([("done", action.done()), ("n", &n)]);
    Redirect::to(&ctx.url(&format!("/dead-letters{}", layout::query(&pairs)))).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct ConfirmQuery {
    #[serde(default)]
    action: String,
    #[serde(flatten)]
    filters: Filters,
}

/// The confirmation of "retry all" or "delete all": how many match, and a
/// form where the operator types that number.
pub(super) async fn confirm(
    ctx: Ctx,
    Query(query): Query<ConfirmQuery>,
) -> Result<Response, ConsoleError> {
    if ctx.read_only() {
        return Err(ConsoleError::Forbidden(
            "this console is read-only".to_owned(),
        ));
    }
    let action = Action::parse(&query.action)?;
    confirm_page(&ctx, &query.filters, action, None).await
}

async fn confirm_page(
    ctx: &Ctx,
    filters: &Filters,
    action: Action,
    problem: Option<String>,
) -> Result<Response, ConsoleError> {
    let filter = filters.filter()?;
    let source = filters.source(ctx)?;
    let name = source.source();
    let count = source.count(&filter).await?;
    let verb = match action {
        Action::Retry => "Retry",
        Action::Delete => "Delete",
    };
    let body = html! {
        h1 { (verb) " all matching dead letters" }
        @if let Some(problem) = &problem { p.error #problem { (problem) } }
        dl {
            dt { "Source" } dd { code { (name) } }
            dt { "Event" } dd { @if filters.event.is_empty() { "any" } @else { code { (filters.event) } } }
            dt { "Handler" } dd { @if filters.handler.is_empty() { "any" } @else { code { (filters.handler) } } }
            dt { "Older than" } dd { @if filters.older_than.is_empty() { "any age" } @else { (filters.older_than) } }
        }
        p #confirm-count { strong { (count) } " dead letter(s) match. "
            @match action {
                Action::Retry => "Each is sent back for delivery and removed from the dead letters.",
                Action::Delete => "They are deleted for good.",
            }
        }
        @if count > 0 {
            form method="post" action=(ctx.url(&format!("/dead-letters/{}", action.as_str()))) {
                (ctx.csrf_field())
                (filters.hidden(&name))
                label { "Type " strong { (count) } " to confirm: "
                    input name="confirm" autocomplete="off" required inputmode="numeric"; }
                " "
                button.danger type="submit" { (verb) " " (count) }
            }
        }
        p { a href=(ctx.url(&format!("/dead-letters{}", layout::query(&filters.pairs(&name))))) { "Cancel" } }
    };
    let status = if problem.is_some() {
        axum::http::StatusCode::CONFLICT
    } else {
        axum::http::StatusCode::OK
    };
    Ok((
        status,
        layout::page(ctx, &format!("{verb} all"), "/dead-letters", body),
    )
        .into_response())
}

/// The form of "retry all" and "delete all".
#[derive(Debug, Deserialize)]
pub(super) struct BulkForm {
    csrf: Option<String>,
    #[serde(flatten)]
    filters: Filters,
    #[serde(default)]
    confirm: String,
}

pub(super) async fn retry_all(
    ctx: Ctx,
    headers: HeaderMap,
    Form(form): Form<BulkForm>,
) -> Result<Response, ConsoleError> {
    all(ctx, headers, form, Action::Retry).await
}

pub(super) async fn delete_all(
    ctx: Ctx,
    headers: HeaderMap,
    Form(form): Form<BulkForm>,
) -> Result<Response, ConsoleError> {
    all(ctx, headers, form, Action::Delete).await
}

/// Acts on the letters the filter matches, at most as many as the operator
/// confirmed: letters dead-lettered since the confirmation page are left
/// alone, and a retried letter that fails again is not retried twice.
async fn all(
    ctx: Ctx,
    headers: HeaderMap,
    form: BulkForm,
    action: Action,
) -> Result<Response, ConsoleError> {
    allowed(&ctx, &headers, form.csrf.as_deref())?;
    let filter = form.filters.filter()?;
    let source = form.filters.source(&ctx)?;
    let count = source.count(&filter).await?;
    let Ok(confirmed) = form.confirm.trim().parse::<u64>() else {
        return confirm_page(
            &ctx,
            &form.filters,
            action,
            Some(format!(
                "Type the number of dead letters ({count}) to confirm."
            )),
        )
        .await;
    };
    if confirmed != count {
        return confirm_page(&ctx, &form.filters, action, Some(format!(
            "You typed {confirmed}, but {count} dead letter(s) match now: check and confirm again."
        ))).await;
    }
    let letters = source.list(&filter, PageRequest::first(confirmed)).await?;
    let mut done = 0;
    for letter in &letters {
        match action.apply(source.as_ref(), &letter.id).await {
            Ok(()) => done += 1,
            // Another operator (or the relay) got there first.
            Err(Error::NoDeadLetter { .. }) => {}
            Err(error) => {
                return Err(ConsoleError::Interrupted {
                    done,
                    of: letters.len(),
                    source: error,
                });
            }
        }
    }
    Ok(back_to_list(&ctx, &form.filters, action, done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_age("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_age("3d"), Ok(Duration::from_secs(3 * 86_400)));
        for bad in ["", "m", "2w", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
