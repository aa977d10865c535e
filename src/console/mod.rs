//! A web console over an [`Admin`]: the dashboard (backlog, stream lag,
//! dead letters per source, a graph of the last minutes), the dead letters
//! (filtered, paged, inspected, retried, deleted), the streams with their
//! consumer groups and consumers, the delayed events (listed by due time,
//! run now, deleted) and the registry (feature `console`).
//!
//! [`router`] gives an [`axum::Router`] to mount under any path of your
//! application; its links follow that path. [`serve`] runs it on its own
//! (the `earn console` command). Pages are rendered on the server; a few
//! lines of plain JavaScript refresh the dashboard.
//!
//! # Safe by default
//!
//! - Every action (retry, delete, retry or delete all matching; run a
//!   delayed event now, delete it) is a `POST` carrying the console's CSRF
//!   token, a random secret drawn when the router is built and embedded in
//!   its forms: a page of another site cannot read it, so it cannot forge
//!   the request. A `POST` without it,
//!   with a wrong one, or sent by a browser as cross-site
//!   (`Sec-Fetch-Site: cross-site`) is refused with `403`.
//! - "Retry all" and "delete all" go through a confirmation page where the
//!   operator types how many dead letters they mean to act on.
//! - [`ConsoleOptions::read_only`] hides the buttons and refuses every
//!   `POST` with `403`.
//! - Everything shown is HTML-escaped: event payloads are user data.
//!
//! The console has no login of its own: wrap it in your application's
//! authentication, as below, or keep [`serve`] on `127.0.0.1`.
//!
//! ```no_run
//! use axum::extract::Request;
//! use axum::http::StatusCode;
//! use axum::middleware::{self, Next};
//! use axum::response::Response;
//! use axum::Router;
//! use earn::admin::Admin;
//! use earn::console::{self, ConsoleOptions};
//!
//! async fn operators_only(request: Request, next: Next) -> Result<Response, StatusCode> {
//!     // Your own check: a session, a header set by your proxy, a token.
//!     match request.headers().get("x-operator-token") {
//!         Some(token) if token == "let-me-in" => Ok(next.run(request).await),
//!         _ => Err(StatusCode::UNAUTHORIZED),
//!     }
//! }
//!
//! # async fn run(db: earn::Db, bus: earn::EventBus) -> std::io::Result<()> {
//! let admin = Admin::new().database(db).bus(bus);
//! let app = Router::new()
//!     // ... your routes ...
//!     .nest(
//!         "/ops",
//!         console::router(admin, ConsoleOptions::default())
//!             .layer(middleware::from_fn(operators_only)),
//!     );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

mod csrf;
mod dashboard;
mod dead_letters;
mod delayed;
mod error;
mod guard;
mod layout;
mod registry;
mod sampler;
mod streams;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

use crate::admin::Admin;

pub use error::ConsoleError;

/// Where [`serve`] listens unless told otherwise: `127.0.0.1:7979`, this
/// machine only.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7979));

/// How the console behaves.
///
/// ```
/// use std::time::Duration;
/// use earn::console::ConsoleOptions;
///
/// let options = ConsoleOptions::default()
///     .read_only(true)
///     .sample_every(Duration::from_secs(10))
///     .title("billing ops");
/// ```
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    read_only: bool,
    base_path: Option<String>,
    sample_every: Duration,
    samples: usize,
    per_page: u64,
    title: String,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions {
            read_only: false,
            base_path: None,
            sample_every: Duration::from_secs(5),
            samples: 120,
            per_page: 50,
            title: "earn".to_owned(),
        }
    }
}

impl ConsoleOptions {
    /// With `true`, the console shows and never changes: no buttons, and
    /// every `POST` is refused with `403`.
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The path the browser sees the console under, when a proxy strips
    /// it before the request reaches the application (`/ops`). Without
    /// it, links follow the path the router was nested under.
    #[must_use]
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        self.base_path = Some(path.into().trim_end_matches('/').to_owned());
        self
    }

    /// How often the dashboard's graph samples the status (default 5 s).
    #[must_use]
    pub fn sample_every(mut self, every: Duration) -> Self {
        self.sample_every = every.max(Duration::from_millis(100));
        self
    }

    /// How many samples the graph keeps (default 120: ten minutes at 5 s).
    #[must_use]
    pub fn samples(mut self, samples: usize) -> Self {
        self.samples = samples.max(2);
        self
    }

    /// Dead letters per page (default 50, at most 500).
    #[must_use]
    pub fn per_page(mut self, per_page: u64) -> Self {
        self.per_page = per_page.clamp(1, 500);
        self
    }

    /// The name in the page titles and header (default `earn`).
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }
}

/// What every handler reads: the admin, the options, the CSRF secret and
/// the graph's samples.
#[derive(Debug)]
struct Console {
    admin: Admin,
    options: ConsoleOptions,
    csrf: csrf::Token,
    samples: sampler::Samples,
}

type Shared = Arc<Console>;

/// The console's routes, to mount under a path of your choice
/// (`Router::new().nest("/ops", earn::console::router(admin, options))`)
/// or to serve on their own ([`serve`]).
///
/// The graph's sampler starts here when called inside a Tokio runtime,
/// else with the first request; it stops when the router is dropped.
pub fn router(admin: Admin, options: ConsoleOptions) -> Router {
    let console = Arc::new(Console {
        samples: sampler::Samples::new(options.samples),
        csrf: csrf::Token::random(),
        admin,
        options,
    });
    sampler::start(&console);
    let actions = Router::new()
        .route("/dead-letter/retry", post(dead_letters::retry))
        .route("/dead-letter/delete", post(dead_letters::delete))
        .route("/dead-letters/retry", post(dead_letters::retry_all))
        .route("/dead-letters/delete", post(dead_letters::delete_all));
    #[cfg(feature = "redis")]
    let actions = actions
        .route("/delayed/run", post(delayed::run))
        .route("/delayed/delete", post(delayed::delete));
    let actions = actions.route_layer(middleware::from_fn_with_state(
        console.clone(),
        guard::refuse_when_read_only,
    ));
    Router::new()
        .route("/", get(dashboard::page))
        .route("/live", get(dashboard::live))
        .route("/dead-letters", get(dead_letters::list))
        .route("/dead-letter", get(dead_letters::detail))
        .route("/dead-letters/confirm", get(dead_letters::confirm))
        .route("/streams", get(streams::page))
        .route("/delayed", get(delayed::page))
        .route("/registry", get(registry::page))
        .merge(actions)
        .fallback(error::not_found)
        .with_state(console)
}

/// Serves the console alone on `addr` ([`DEFAULT_LISTEN`] keeps it on this
/// machine) until the future is dropped or the listener fails.
pub async fn serve(admin: Admin, options: ConsoleOptions, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(admin, options, listener).await
}

/// Serves the console on a listener already bound (to learn the port of
/// `127.0.0.1:0`, for one).
pub async fn serve_on(
    admin: Admin,
    options: ConsoleOptions,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    axum::serve(listener, router(admin, options)).await
}
