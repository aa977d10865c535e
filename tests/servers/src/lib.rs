//! Private brokers for earn's tests of secure connections: a `redis-server`
//! or `nats-server` of the test's own, on a free port of 127.0.0.1, with
//! TLS certificates made at test time (a CA, a server certificate for
//! `127.0.0.1` and `localhost`, a client certificate) and users with
//! passwords, in a temporary directory; the process is killed and the
//! directory removed when the guard is dropped, also when the test panics.
//!
//! The binaries are `EARN_REDIS_SERVER` and `EARN_NATS_SERVER` if set,
//! else found on the `PATH`, else Debian's. A missing one makes [`RedisServer::start`] and
//! [`NatsServer::start`] print a skip line and return `None`, unless
//! `EARN_REQUIRE_SERVICES=1`, which turns it into a panic: CI never skips.
//!
//! ```no_run
//! use earn_test_servers::{RedisServer, RedisTlsOptions};
//!
//! let Some(server) = RedisServer::start(RedisTlsOptions::default().user("app", "pw")) else {
//!     return; // skipped: no redis-server here
//! };
//! let url = server.url("app", "pw"); // rediss://app:pw@127.0.0.1:PORT
//! let ca_pem = server.certs().ca_pem();
//! ```

mod certs;
mod nats;
mod process;
mod redis;
mod temp_dir;

pub use certs::{Certs, ClientCertificates};
pub use nats::{NatsServer, NatsTlsOptions, NatsUser};
pub use process::Server;
pub use redis::{RedisServer, RedisTlsOptions};
pub use temp_dir::TempDir;

/// Whether `EARN_REQUIRE_SERVICES=1`: a missing server fails the test.
pub fn required() -> bool {
    std::env::var("EARN_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The server binary: the one `env` names, else `name` on the `PATH`,
/// else `default` (Debian's place); `None` after a skip line when it does
/// not exist (a panic when [`required`]).
fn find_binary(name: &str, env: &str, default: &str) -> Option<std::path::PathBuf> {
    let binary = std::env::var_os(env)
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| default.into());
    if binary.is_file() {
        return Some(binary);
    }
    let message = format!("no {name} at {} (set {env})", binary.display());
    assert!(!required(), "EARN_REQUIRE_SERVICES=1 but {message}");
    eprintln!("skipped: {message}");
    None
}
