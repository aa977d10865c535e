//! The delayed events: each stream's `{stream}:delayed`, listed by due
//! time and paged (`?stream=…&page=…`); one of them run now or deleted by
//! a `POST` carrying the console's CSRF token, refused by a read-only
//! console.

use maud::{Markup, html};

#[cfg(feature = "redis")]
pub(super) use with_redis::{delete, page, run};

#[cfg(not(feature = "redis"))]
pub(super) async fn page(ctx: super::layout::Ctx) -> Result<Markup, super::error::ConsoleError> {
    use super::layout;
    Ok(layout::page(
        &ctx,
        "Delayed events",
        "/delayed",
        body(no_stream()),
    ))
}

fn body(inner: Markup) -> Markup {
    html! {
        h1 { "Delayed events" }
        p.muted {
            "Events published with " code { "RedisStreams::publish_delayed" }
            " wait in each stream's " code { "{stream}:delayed" } " until they fall due, soonest first."
        }
        (inner)
    }
}

fn no_stream() -> Markup {
    html! { p.muted { "The console was given no Redis stream (" code { "Admin::stream" } ")." } }
}

#[cfg(feature = "redis")]
mod with_redis {
    use std::time::SystemTime;

    use axum::Form;
    use axum::extract::Query;
    use axum::http::HeaderMap;
    use axum::response::{IntoResponse, Redirect, Response};
    use maud::{Markup, html};
    use serde::Deserialize;

    use super::{body, no_stream};
    use crate::PageRequest;
    use crate::console::error::ConsoleError;
    use crate::console::guard::allowed;
    use crate::console::layout::{self, Ctx};
    use crate::redis::{DelayedEvent, RedisStreams};

    #[derive(Debug, Default, Deserialize)]
    pub(in crate::console) struct ListQuery {
        /// The stream; empty for the first one.
        #[serde(default)]
        stream: String,
        #[serde(default)]
        page: String,
        /// What the last action did (`ran`, `deleted`), and the entry a run
        /// event became.
        #[serde(default)]
        done: String,
        #[serde(default)]
        entry: String,
    }

    pub(in crate::console) async fn page(
        ctx: Ctx,
        Query(query): Query<ListQuery>,
    ) -> Result<Markup, ConsoleError> {
        let all = ctx.console.admin.streams();
        if all.is_empty() {
            return Ok(layout::page(
                &ctx,
                "Delayed events",
                "/delayed",
                body(no_stream()),
            ));
        }
        let streams = stream(&ctx, &query.stream)?;
        let name = streams.settings().get_stream();
        let page = layout::page_number(&query.page)?;
        let per_page = ctx.console.options.per_page;
        let mut counts = Vec::with_capacity(all.len());
        for other in all {
            counts.push((other.settings().get_stream(), other.lag().await?.delayed));
        }
        let total = counts
            .iter()
            .find(|(other, _)| *other == name)
            .map_or(0, |(_, n)| *n);
        let events = streams.delayed(PageRequest::page(page, per_page)).await?;
        let pages = total.div_ceil(per_page).max(1);
        let link = |page: u64| {
            let page = page.to_string();
            ctx.url(&format!(
                "/delayed{}",
                layout::query(&[("stream", name), ("page", &page)])
            ))
        };
        let page_text = page.to_string();
        let now = SystemTime::now();
        let inner = html! {
            @if let Some(notice) = notice(&query.done, &query.entry) { p.notice #notice { (notice) } }
            @if counts.len() > 1 {
                form.filters method="get" action=(ctx.url("/delayed")) {
                    label { "Stream"
                        select name="stream" {
                            @for (other, count) in &counts {
                                option value=(other) selected[*other == name] { (other) " (" (count) ")" }
                            }
                        }
                    }
                    button.primary type="submit" { "Show" }
                }
            }
            p #waiting { strong { (total) } " delayed event(s) in " code { (name) } "." }
            table #delayed {
                thead { tr {
                    th { "Due" } th { "Event" } th { "Id" }
                    @if !ctx.read_only() { th { "" } }
                } }
                tbody {
                    @for event in &events {
                        tr data-id=[event.id.map(|id| id.to_string())] {
                            td title=(layout::utc(event.due)) { (layout::utc(event.due)) " (" (due_in(event.due, now)) ")" }
                            td { code { (event.name) } }
                            td {
                                @if let Some(id) = event.id { code { (id) } }
                                @else { span.muted { "not a valid event" } }
                            }
                            @if !ctx.read_only() {
                                td { (buttons(&ctx, name, &page_text, event)) }
                            }
                        }
                    }
                }
            }
            @if events.is_empty() { p.muted { "None." } }
            div.pager {
                @if page > 1 { a rel="prev" href=(link(page - 1)) { "← Previous page" } }
                span.muted { "Page " (page) " of " (pages) ", soonest due first" }
                @if page < pages { a rel="next" href=(link(page + 1)) { "Next page →" } }
            }
        };
        Ok(layout::page(
            &ctx,
            "Delayed events",
            "/delayed",
            body(inner),
        ))
    }

    /// `in 59 min`, or how long ago it fell due (a consumer moves it on
    /// its next pass).
    fn due_in(due: SystemTime, now: SystemTime) -> String {
        match due.duration_since(now) {
            Ok(wait) => format!("in {}", layout::span(wait)),
            Err(_) => format!("due {}", layout::ago(due)),
        }
    }

    fn notice(done: &str, entry: &str) -> Option<String> {
        match done {
            "ran" if entry.is_empty() => Some("Moved into the stream.".to_owned()),
            "ran" => Some(format!("Moved into the stream as entry {entry}.")),
            "deleted" => Some("Deleted the delayed event.".to_owned()),
            _ => None,
        }
    }

    /// The stream named `name`, or the first one; `404` naming those there
    /// are.
    fn stream<'a>(ctx: &'a Ctx, name: &str) -> Result<&'a RedisStreams, ConsoleError> {
        let all = ctx.console.admin.streams();
        let found = if name.is_empty() {
            all.first()
        } else {
            all.iter().find(|s| s.settings().get_stream() == name)
        };
        found.ok_or_else(|| {
            let known: Vec<&str> = all.iter().map(|s| s.settings().get_stream()).collect();
            ConsoleError::NotFound(format!(
                "no stream `{name}` in the console; it has: {}",
                known.join(", ")
            ))
        })
    }

    /// "Run now" and "delete" for one event; none for a stored form that
    /// is not an event (it has no id to name it by).
    fn buttons(ctx: &Ctx, stream: &str, page: &str, event: &DelayedEvent) -> Markup {
        let Some(id) = event.id else {
            return html! {};
        };
        html! {
            form.inline method="post" action=(ctx.url("/delayed/run")) {
                (ctx.csrf_field())
                input type="hidden" name="stream" value=(stream);
                input type="hidden" name="page" value=(page);
                input type="hidden" name="id" value=(id);
                button.run type="submit" { "Run now" }
            }
            " "
            form.inline method="post" action=(ctx.url("/delayed/delete")) {
                (ctx.csrf_field())
                input type="hidden" name="stream" value=(stream);
                input type="hidden" name="page" value=(page);
                input type="hidden" name="id" value=(id);
                button.danger.delete type="submit" { "Delete" }
            }
        }
    }

    /// The form of "run now" and "delete".
    #[derive(Debug, Deserialize)]
    pub(in crate::console) struct ActionForm {
        csrf: Option<String>,
        #[serde(default)]
        stream: String,
        #[serde(default)]
        page: String,
        #[serde(default)]
        id: String,
    }

    #[derive(Debug, Clone, Copy)]
    enum Action {
        Run,
        Delete,
    }

    pub(in crate::console) async fn run(
        ctx: Ctx,
        headers: HeaderMap,
        Form(form): Form<ActionForm>,
    ) -> Result<Response, ConsoleError> {
        act(ctx, headers, form, Action::Run).await
    }

    pub(in crate::console) async fn delete(
        ctx: Ctx,
        headers: HeaderMap,
        Form(form): Form<ActionForm>,
    ) -> Result<Response, ConsoleError> {
        act(ctx, headers, form, Action::Delete).await
    }

    /// Runs or deletes one event, then `303` back to the page it was on.
    async fn act(
        ctx: Ctx,
        headers: HeaderMap,
        form: ActionForm,
        action: Action,
    ) -> Result<Response, ConsoleError> {
        allowed(&ctx, &headers, form.csrf.as_deref())?;
        let streams = stream(&ctx, &form.stream)?;
        // The id's type is the one the stream's methods take (a UUID).
        let id = form.id.trim().parse().map_err(|_| {
            ConsoleError::BadRequest(format!(
                "`id` is a delayed event's id (a UUID, as the list shows it), not `{}`",
                form.id
            ))
        })?;
        let (done, entry) = match action {
            Action::Run => ("ran", streams.run_delayed(id).await?),
            Action::Delete => {
                streams.delete_delayed(id).await?;
                ("deleted", String::new())
            }
        };
        let pairs = [
            ("stream", streams.settings().get_stream()),
            ("page", form.page.trim()),
            ("done", done),
            ("entry", entry.as_str()),
        ];
        Ok(Redirect::to(&ctx.url(&format!("/delayed{}", layout::query(&pairs)))).into_response())
    }
}
