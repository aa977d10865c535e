//! What every action passes before it runs: a console that may act, and
//! the form's CSRF token. The dead-letter and delayed-event actions share
//! it.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::error::ConsoleError;
use super::layout::Ctx;

/// Refuses every action of a read-only console with `403` before its body
/// is read, whatever it carries.
pub(super) async fn refuse_when_read_only(
    State(console): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    if console.options.read_only {
        return read_only().into_response();
    }
    next.run(request).await
}

pub(super) fn read_only() -> ConsoleError {
    ConsoleError::Forbidden("this console is read-only".to_owned())
}

/// `403` unless the console may act and the form carries its token.
pub(super) fn allowed(
    ctx: &Ctx,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<(), ConsoleError> {
    if ctx.read_only() {
        return Err(read_only());
    }
    ctx.console.csrf.check(headers, token)
}
