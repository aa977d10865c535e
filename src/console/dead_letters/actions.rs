//! The actions on dead letters: retry or delete one, and retry or delete
//! every letter a filter matches after a typed confirmation. Each is a
//! `POST` with the console's CSRF token, refused by a read-only console.

use axum::Form;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::filters::Filters;
use crate::console::error::ConsoleError;
use crate::console::guard::{allowed, read_only};
use crate::console::layout::{self, Ctx};
use crate::{DeadLetter, DeadLetters, Error, PageRequest};

/// Retry and delete buttons for one letter, carrying the list's filters
/// back.
pub(super) fn buttons(ctx: &Ctx, filters: &Filters, letter: &DeadLetter) -> Markup {
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

/// The form of a per-letter action.
#[derive(Debug, Deserialize)]
pub(in crate::console) struct ActionForm {
    csrf: Option<String>,
    #[serde(flatten)]
    filters: Filters,
    #[serde(default)]
    id: String,
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

pub(in crate::console) async fn retry(
    ctx: Ctx,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Result<Response, ConsoleError> {
    one(ctx, headers, form, Action::Retry).await
}

pub(in crate::console) async fn delete(
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
pub(in crate::console) struct ConfirmQuery {
    #[serde(default)]
    action: String,
    #[serde(flatten)]
    filters: Filters,
}

/// The confirmation of "retry all" or "delete all": how many match, and a
/// form where the operator types that number.
pub(in crate::console) async fn confirm(
    ctx: Ctx,
    Query(query): Query<ConfirmQuery>,
) -> Result<Response, ConsoleError> {
    if ctx.read_only() {
        return Err(read_only());
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
pub(in crate::console) struct BulkForm {
    csrf: Option<String>,
    #[serde(flatten)]
    filters: Filters,
    #[serde(default)]
    confirm: String,
}

pub(in crate::console) async fn retry_all(
    ctx: Ctx,
    headers: HeaderMap,
    Form(form): Form<BulkForm>,
) -> Result<Response, ConsoleError> {
    all(ctx, headers, form, Action::Retry).await
}

pub(in crate::console) async fn delete_all(
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
