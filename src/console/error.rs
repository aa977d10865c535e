//! What goes wrong in a request, as the status and page the operator sees.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::Error;

/// Why the console refused or failed a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// A query or form the console cannot use (`400`).
    #[error("{0}")]
    BadRequest(String),
    /// A page, source, stream, dead letter or delayed event that is not
    /// there (`404`).
    #[error("{0}")]
    NotFound(String),
    /// An action the console refuses: read-only, or no valid CSRF token
    /// (`403`).
    #[error("{0}")]
    Forbidden(String),
    /// A store failed (`500`; `404` for a missing dead letter, source or
    /// delayed event, `400` for a bad filter).
    #[error(transparent)]
    Earn(#[from] Error),
    /// A "retry all" or "delete all" stopped at a failing store (`500`).
    #[error("{done} of {of} done, then the store failed: {source}")]
    Interrupted {
        /// Dead letters retried or deleted before the failure.
        done: u64,
        /// Dead letters the action was confirmed for.
        of: usize,
        /// The store's error.
        source: Error,
    },
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::Earn(
                Error::NoDeadLetter { .. }
                | Error::NoDeadLetterSource { .. }
                | Error::NoDelayedEvent { .. },
            ) => StatusCode::NOT_FOUND,
            ConsoleError::Earn(Error::InvalidFilter { .. }) => StatusCode::BAD_REQUEST,
            ConsoleError::Earn(_) | ConsoleError::Interrupted { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        let page = html! {
            (maud::DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { (status.as_u16()) " · earn console" }
                    style { (maud::PreEscaped(super::layout::CSS)) }
                }
                body {
                    main {
                        h1 { (status) }
                        p.error { (self.to_string()) }
                        p { a href="javascript:history.back()" { "Back" } }
                    }
                }
            }
        };
        (status, page).into_response()
    }
}

pub(super) async fn not_found() -> ConsoleError {
    ConsoleError::NotFound("no such page in the console".to_owned())
}
