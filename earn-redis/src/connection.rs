//! `RedisConnection`: which server, as whom, and over what TLS.

use std::fmt;

use earn_core::{Error, RedactedUrl};
use redis::IntoConnectionInfo;

/// Where and how [`RedisStreams::connect`](crate::RedisStreams::connect)
/// connects: the server's URL, and optionally an ACL user and password and
/// the TLS certificates given apart from the URL.
///
/// A URL alone converts into one, so `connect("redis://…", settings)`
/// needs nothing more. The URL is `redis://[user[:password]@]host[:port][/db]`,
/// or `rediss://…` for TLS (the `redis-tls` feature of `earn`), which
/// checks the server's certificate against the system's trusted roots
/// unless [`ca_certificate`](Self::ca_certificate) names the CA to trust.
///
/// Its `Display` and `Debug` never show the password or a key: the URL is
/// shown through [`RedactedUrl`], and the certificates only as set or not.
///
/// ```
/// use earn::redis::RedisConnection;
///
/// let server = RedisConnection::new("redis://redis.internal:6379/0")
///     .username("billing")
///     .password("s3cret"); // from a secret store or the environment
/// assert_eq!(server.get_username(), Some("billing"));
/// assert_eq!(server.to_string(), "redis://redis.internal:6379/0");
/// assert!(!format!("{server:?}").contains("s3cret"));
///
/// let from_url = RedisConnection::from("redis://app:s3cret@redis.internal:6379");
/// assert_eq!(from_url.to_string(), "redis://app:***@redis.internal:6379");
/// ```
///
/// With TLS, a private CA and a client certificate (mutual TLS):
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use earn::redis::{RedisConnection, RedisSettings, RedisStreams};
///
/// let server = RedisConnection::new("rediss://billing@redis.internal:6380")
///     .password(std::env::var("REDIS_PASSWORD")?)
///     .ca_certificate(std::fs::read("/etc/earn/redis-ca.pem")?)
///     .client_certificate(
///         std::fs::read("/etc/earn/client.pem")?,
///         std::fs::read("/etc/earn/client-key.pem")?,
///     );
/// let streams = RedisStreams::connect(server, RedisSettings::new("orders", "billing")).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisConnection {
    url: String,
    username: Option<String>,
    password: Option<String>,
    #[cfg(feature = "tls")]
    ca_certificate: Option<Vec<u8>>,
    #[cfg(feature = "tls")]
    client_certificate: Option<ClientCertificate>,
}

/// A client certificate chain and its private key, in PEM.
#[cfg(feature = "tls")]
#[derive(Clone)]
struct ClientCertificate {
    chain: Vec<u8>,
    key: Vec<u8>,
}

impl RedisConnection {
    /// The server at `url`, with the user and password the URL carries if
    /// any, and no certificate of its own.
    ///
    /// ```
    /// let server = earn::redis::RedisConnection::new("redis://127.0.0.1:6379");
    /// assert_eq!(server.get_username(), None);
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        RedisConnection {
            url: url.into(),
            username: None,
            password: None,
            #[cfg(feature = "tls")]
            ca_certificate: None,
            #[cfg(feature = "tls")]
            client_certificate: None,
        }
    }

    /// The ACL user to authenticate as (`AUTH user password`), in place of
    /// the URL's; without a [`password`](Self::password), the URL's
    /// password is used.
    ///
    /// ```
    /// let server = earn::redis::RedisConnection::new("redis://h").username("billing");
    /// assert_eq!(server.get_username(), Some("billing"));
    /// ```
    pub fn username(mut self, user: impl Into<String>) -> Self {
        self.username = Some(user.into());
        self
    }

    /// The password to authenticate with, in place of the URL's: as the
    /// [`username`](Self::username)'s, or the URL's user's, or with no user
    /// as the `default` user's (`requirepass`). Read it from a secret store
    /// or the environment rather than putting it in the URL, which tends
    /// to be logged by tools outside earn.
    ///
    /// ```
    /// let server = earn::redis::RedisConnection::new("redis://billing@h").password("s3cret");
    /// assert!(!format!("{server} {server:?}").contains("s3cret"));
    /// ```
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Trusts only the CA of this PEM certificate (or bundle) for the
    /// server's certificate, instead of the system's trusted roots: for a
    /// Redis whose certificate a private CA signed. Needs a `rediss://`
    /// URL; [`connect`](crate::RedisStreams::connect) fails otherwise.
    /// (Feature `redis-tls` of `earn`.)
    ///
    /// ```no_run
    /// # fn run() -> std::io::Result<()> {
    /// let server = earn::redis::RedisConnection::new("rediss://redis.internal:6380")
    ///     .ca_certificate(std::fs::read("/etc/earn/redis-ca.pem")?);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificate = Some(pem.into());
        self
    }

    /// Presents this client certificate (PEM chain, leaf first) and proves
    /// it with its private key (PEM, PKCS#8, PKCS#1 or SEC1), for a Redis
    /// that requires client certificates (`tls-auth-clients yes`). Needs a
    /// `rediss://` URL. (Feature `redis-tls` of `earn`.)
    ///
    /// ```no_run
    /// # fn run() -> std::io::Result<()> {
    /// let server = earn::redis::RedisConnection::new("rediss://redis.internal:6380")
    ///     .client_certificate(std::fs::read("client.pem")?, std::fs::read("client-key.pem")?);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn client_certificate(
        mut self,
        chain_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_certificate = Some(ClientCertificate {
            chain: chain_pem.into(),
            key: key_pem.into(),
        });
        self
    }

    /// The URL, shown without its password.
    ///
    /// ```
    /// let server = earn::redis::RedisConnection::new("redis://app:pw@h:6379");
    /// assert_eq!(server.get_url().to_string(), "redis://app:***@h:6379");
    /// ```
    pub fn get_url(&self) -> RedactedUrl<'_> {
        RedactedUrl::new(&self.url)
    }

    /// The user set with [`username`](Self::username) (not the URL's).
    ///
    /// ```
    /// assert_eq!(earn::redis::RedisConnection::new("redis://h").get_username(), None);
    /// ```
    pub fn get_username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Whether this uses TLS: a `rediss://` (or `valkeys://`) URL.
    fn is_tls(&self) -> bool {
        let scheme = self.url.split("://").next().unwrap_or_default();
        scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
    }

    /// An error of connecting here, naming the server without secrets.
    pub(crate) fn error(&self, source: impl Into<earn_core::BoxError>) -> Error {
        Error::Transport {
            transport: "redis",
            operation: format!("connect to {}", self.get_url()).into(),
            source: source.into(),
        }
    }

    /// A Redis error of connecting here. A plain connection that the
    /// server closed at once is most often one to a TLS port: say so.
    pub(crate) fn connect_error(&self, error: redis::RedisError) -> Error {
        let closed = error.is_connection_dropped() && !error.is_connection_refusal();
        if closed && !self.is_tls() {
            return self.error(format!(
                "{error}: the server closed the connection; \
                 if it accepts only TLS, connect with a `rediss://` URL"
            ));
        }
        self.error(error)
    }

    /// The `redis` client for this server: the URL's settings, then ours.
    pub(crate) fn client(&self) -> Result<redis::Client, Error> {
        if self.is_tls() && !cfg!(feature = "tls") {
            return Err(self.error(
                "a `rediss://` URL needs TLS support: enable the `redis-tls` feature of `earn`",
            ));
        }
        let fail = |error: redis::RedisError| self.connect_error(error);
        let mut info = self.url.as_str().into_connection_info().map_err(fail)?;
        if self.username.is_some() || self.password.is_some() {
            let mut redis = info.redis_settings().clone();
            if let Some(user) = &self.username {
                redis = redis.set_username(user);
            }
            if let Some(password) = &self.password {
                redis = redis.set_password(password);
            }
            info = info.set_redis_settings(redis);
        }
        #[cfg(feature = "tls")]
        if self.ca_certificate.is_some() || self.client_certificate.is_some() {
            let certificates = redis::TlsCertificates {
                client_tls: self
                    .client_certificate
                    .as_ref()
                    .map(|client| redis::ClientTlsConfig {
                        client_cert: client.chain.clone(),
                        client_key: client.key.clone(),
                    }),
                root_cert: self.ca_certificate.clone(),
            };
            return redis::Client::build_with_tls(info, certificates).map_err(fail);
        }
        redis::Client::open(info).map_err(fail)
    }
}

impl fmt::Display for RedisConnection {
    /// The URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.get_url(), f)
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("RedisConnection");
        debug
            .field("url", &self.get_url())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"));
        #[cfg(feature = "tls")]
        debug
            .field("ca_certificate", &self.ca_certificate.is_some())
            .field("client_certificate", &self.client_certificate.is_some());
        debug.finish()
    }
}

impl From<&str> for RedisConnection {
    fn from(url: &str) -> Self {
        RedisConnection::new(url)
    }
}

impl From<String> for RedisConnection {
    fn from(url: String) -> Self {
        RedisConnection::new(url)
    }
}

impl From<&String> for RedisConnection {
    fn from(url: &String) -> Self {
        RedisConnection::new(url.as_str())
    }
}
