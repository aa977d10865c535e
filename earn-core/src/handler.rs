//! What a handler returns, and how `#[event_handler]` functions register.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::error::BoxError;
use crate::event::{Event, PayloadError};

/// Whether lower-priority handlers still get the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Let the next handlers run.
    #[default]
    Continue,
    /// Stop: handlers of lower priority do not see this event.
    Stop,
}

/// A handler failure. Retryable unless made [`permanent`](HandlerError::permanent);
/// a malformed payload ([`PayloadError`]) is permanent by itself.
///
/// Like `HookError`, it does not implement `std::error::Error`, so any error
/// converts into it with `?`.
pub struct HandlerError {
    error: BoxError,
    permanent: bool,
}

impl HandlerError {
    /// A failure that retrying may fix (the default for any error).
    pub fn retryable(error: impl Into<BoxError>) -> Self {
        HandlerError {
            error: error.into(),
            permanent: false,
        }
    }

    /// A failure that retrying cannot fix: no retry, straight to dead letters.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        HandlerError {
            error: error.into(),
            permanent: true,
        }
    }

    /// A retryable failure described by a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        HandlerError::retryable(message.to_string())
    }

    /// Whether retries are skipped.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The underlying error.
    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.error
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        let permanent = (&error as &dyn Any).is::<PayloadError>();
        HandlerError {
            error: Box::new(error),
            permanent,
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("error", &self.error)
            .field("permanent", &self.permanent)
            .finish()
    }
}

/// The result of one handler call.
pub type HandlerResult = Result<Propagation, HandlerError>;

/// What a handler call returns: done (a sync handler: no allocation) or a
/// future that owns what it needs.
pub enum HandlerStep {
    /// Already ran.
    Ready(HandlerResult),
    /// Still running.
    Pending(Pin<Box<dyn Future<Output = HandlerResult> + Send + 'static>>),
}

impl fmt::Debug for HandlerStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerStep::Ready(result) => f.debug_tuple("Ready").field(result).finish(),
            HandlerStep::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// Converts what a handler returns, `()`, [`Propagation`],
/// `Result<(), E>` or `Result<Propagation, E>`, into its result.
#[diagnostic::on_unimplemented(
    message = "an event handler must return `()`, `Propagation`, or `Result` of those with an error convertible into `HandlerError`, not `{Self}`",
    label = "this handler returns `{Self}`"
)]
pub trait IntoHandlerResult {
    /// The result.
    fn into_handler_result(self) -> HandlerResult;
}

impl IntoHandlerResult for () {
    #[inline]
    fn into_handler_result(self) -> HandlerResult {
        Ok(Propagation::Continue)
    }
}

impl IntoHandlerResult for Propagation {
    #[inline]
    fn into_handler_result(self) -> HandlerResult {
        Ok(self)
    }
}

impl<E: Into<HandlerError>> IntoHandlerResult for Result<(), E> {
    #[inline]
    fn into_handler_result(self) -> HandlerResult {
        self.map(|()| Propagation::Continue).map_err(Into::into)
    }
}

impl<E: Into<HandlerError>> IntoHandlerResult for Result<Propagation, E> {
    #[inline]
    fn into_handler_result(self) -> HandlerResult {
        self.map_err(Into::into)
    }
}

/// The options of one `#[event_handler("pattern", …)]`, on a free function
/// or a service method.
#[derive(Debug, Clone, Copy)]
pub struct HandlerOptions {
    /// The pattern, validated at compile time.
    pub pattern: &'static str,
    /// Higher runs first.
    pub priority: i32,
    /// `filter = path`: the event is skipped unless this returns `true`.
    pub filter: Option<fn(&Event) -> bool>,
    /// `retries = N`: overrides the bus's retry count for `publish`.
    pub retries: Option<u32>,
    /// `timeout_ms = N`: overrides the bus's handler timeout.
    pub timeout_ms: Option<u64>,
    /// `sources = ["billing", …]`: the only event sources the handler
    /// accepts (empty: any). An event from another source, or from none,
    /// is not handed to it, and a warning names the handler and the source.
    pub sources: &'static [&'static str],
    /// `batch = N, linger_ms = M`: the handler takes events in batches.
    pub batch: Option<crate::batch::BatchHandler>,
}

/// A free function registered with `#[event_handler]`, collected at link
/// time and included by every bus built with the default builder.
pub struct HandlerRegistration {
    /// The handler's name: `module::function`.
    pub name: &'static str,
    /// What `#[event_handler(…)]` said.
    pub options: HandlerOptions,
    /// `file!()` and `line!()` of the function, for the run order of equal
    /// priorities and for debugging.
    pub file: &'static str,
    /// See `file`.
    pub line: u32,
    /// The generated shim.
    pub call: fn(&Event) -> HandlerStep,
}

inventory::collect!(HandlerRegistration);

impl fmt::Display for HandlerRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on `{}` (priority {}) at {}:{}",
            self.name, self.options.pattern, self.options.priority, self.file, self.line
        )
    }
}

impl fmt::Debug for HandlerRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerRegistration")
            .field("name", &self.name)
            .field("options", &self.options)
            .field("file", &self.file)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// Every `#[event_handler]` function linked into the program.
pub fn handler_registrations() -> impl Iterator<Item = &'static HandlerRegistration> {
    inventory::iter::<HandlerRegistration>.into_iter()
}

/// Why a handler failed, as recorded in reports and dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It returned an error.
    Error {
        /// The error's message.
        message: String,
        /// Whether it was permanent.
        permanent: bool,
    },
    /// It panicked.
    Panic(String),
    /// It did not finish within its timeout.
    Timeout(std::time::Duration),
}

impl Failure {
    /// Whether a retry could help.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            Failure::Error {
                permanent: true,
                ..
            }
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error {
                message,
                permanent: true,
            } => write!(f, "failed permanently: {message}"),
            Failure::Error { message, .. } => write!(f, "failed: {message}"),
            Failure::Panic(message) => write!(f, "panicked: {message}"),
            Failure::Timeout(after) => write!(f, "timed out after {after:?}"),
        }
    }
}
