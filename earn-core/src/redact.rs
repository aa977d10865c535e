//! `RedactedUrl`: a connection URL as earn prints it, in errors, logs and
//! the command line, without the secrets it may carry.

use std::fmt;

/// A connection URL shown without its secrets: the password of
/// `scheme://user:password@host` and the value of a `password` or `pass`
/// query parameter become `***`; the user name stays, so a message still
/// says who connected. A `nats://token@host` URL carries a token where
/// others carry a user name, so there the whole user part is masked.
///
/// Everything earn prints about a database, Redis or NATS server goes
/// through this. It allocates nothing: use it where a URL is formatted.
///
/// When unsure where the credentials end (an unencoded `@` in a password
/// or a query), it masks more rather than less.
///
/// ```
/// use earn::RedactedUrl;
///
/// let url = "rediss://app:s3cret@redis.internal:6380/0";
/// assert_eq!(RedactedUrl::new(url).to_string(), "rediss://app:***@redis.internal:6380/0");
/// assert_eq!(RedactedUrl::new("redis://:s3cret@h").to_string(), "redis://:***@h");
/// assert_eq!(
///     RedactedUrl::new("redis+unix:///run/redis.sock?db=1&pass=s3cret").to_string(),
///     "redis+unix:///run/redis.sock?db=1&pass=***",
/// );
/// assert_eq!(RedactedUrl::new("nats://t0ken@h:4222").to_string(), "nats://***@h:4222");
/// assert_eq!(RedactedUrl::new("postgres://app@db/orders").to_string(), "postgres://app@db/orders");
/// ```
#[derive(Clone, Copy)]
pub struct RedactedUrl<'a>(&'a str);

/// Query parameters whose value is a secret.
const SECRET_PARAMS: [&str; 2] = ["password", "pass"];

impl<'a> RedactedUrl<'a> {
    /// `url`, to be shown without its secrets.
    pub fn new(url: &'a str) -> Self {
        RedactedUrl(url)
    }
}

impl fmt::Display for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0;
        let Some(scheme_end) = url.find("://") else {
            return write_query_redacted(f, url);
        };
        let (scheme, rest) = (&url[..scheme_end], &url[scheme_end + 3..]);
        f.write_str(scheme)?;
        f.write_str("://")?;
        // The last `@` ends the credentials: one in an unencoded password
        // is then masked with it.
        let rest = match rest.rfind('@') {
            Some(at) => {
                let (user_info, host) = rest.split_at(at);
                match user_info.split_once(':') {
                    Some((user, _password)) => write!(f, "{user}:***")?,
                    None if scheme.eq_ignore_ascii_case("nats") => f.write_str("***")?,
                    None => f.write_str(user_info)?,
                }
                host
            }
            None => rest,
        };
        write_query_redacted(f, rest)
    }
}

/// Writes `text` with the values of its secret query parameters masked.
fn write_query_redacted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    let Some((before, query)) = text.split_once('?') else {
        return f.write_str(text);
    };
    f.write_str(before)?;
    f.write_str("?")?;
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            f.write_str("&")?;
        }
        match pair.split_once('=') {
            Some((key, _)) if SECRET_PARAMS.iter().any(|s| key.eq_ignore_ascii_case(s)) => {
                write!(f, "{key}=***")?;
            }
            _ => f.write_str(pair)?,
        }
    }
    if let Some(fragment) = fragment {
        write!(f, "#{fragment}")?;
    }
    Ok(())
}

impl fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::RedactedUrl;

    fn redacted(url: &str) -> String {
        RedactedUrl::new(url).to_string()
    }

    #[test]
    fn masks_only_the_secrets() {
        assert_eq!(
            redacted("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redacted("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(
            redacted("sqlite://app.db?mode=rwc"),
            "sqlite://app.db?mode=rwc"
        );
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redacted("rediss://app:pw@h:6380#insecure"),
            "rediss://app:***@h:6380#insecure"
        );
        assert_eq!(
            redacted("postgres://h/db?user=u&Password=secret&sslmode=require"),
            "postgres://h/db?user=u&Password=***&sslmode=require"
        );
        assert_eq!(
            format!("{:?}", RedactedUrl::new("redis://:pw@h")),
            "\"redis://:***@h\""
        );
    }

    #[test]
    fn an_unencoded_at_or_colon_in_a_password_is_masked_too() {
        assert_eq!(redacted("redis://u:p@ss:w@rd@h:1"), "redis://u:***@h:1");
        assert_eq!(redacted("redis://u:p/a?s#s@h"), "redis://u:***@h");
    }
}
