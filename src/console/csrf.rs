//! The CSRF token: one random secret per router, embedded in every form
//! and required back with every `POST`. A page of another site can make
//! the operator's browser send a form, but cannot read the console's
//! pages, so it cannot know the token.

use std::fmt;

use axum::http::HeaderMap;

use super::error::ConsoleError;

/// The form field that carries the token.
pub(super) const FIELD: &str = "csrf";

pub(super) struct Token(String);

impl Token {
    /// 32 bytes from the operating system's generator, as hex.
    pub(super) fn random() -> Token {
        let mut bytes = [0u8; 32];
        // Without an OS generator no token can be trusted: refuse every
        // action rather than accept a guessable one (an empty token never
        // matches, see `check`).
        if getrandom::fill(&mut bytes).is_err() {
            return Token(String::new());
        }
        Token(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    /// `Ok` when `sent` is the token and the browser does not say the
    /// request came from another site.
    pub(super) fn check(
        &self,
        headers: &HeaderMap,
        sent: Option<&str>,
    ) -> Result<(), ConsoleError> {
        if headers
            .get("sec-fetch-site")
            .is_some_and(|site| site == "cross-site")
        {
            return Err(ConsoleError::Forbidden(
                "this request came from another site".to_owned(),
            ));
        }
        let Some(sent) = sent.filter(|s| !s.is_empty()) else {
            return Err(ConsoleError::Forbidden(
                "the form carries no CSRF token: reload the page and try again".to_owned(),
            ));
        };
        if self.0.is_empty() || !same(self.0.as_bytes(), sent.as_bytes()) {
            return Err(ConsoleError::Forbidden(
                "the form's CSRF token is not this console's (was it restarted?): reload the \
                 page and try again"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

/// Compares in time independent of where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_passes() {
        let token = Token::random();
        assert_eq!(token.as_str().len(), 64);
        let none = HeaderMap::new();
        assert!(token.check(&none, Some(token.as_str())).is_ok());
        assert!(token.check(&none, None).is_err());
        assert!(token.check(&none, Some("")).is_err());
        assert!(token.check(&none, Some(&token.as_str()[1..])).is_err());
        let mut cross = HeaderMap::new();
        cross.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(token.check(&cross, Some(token.as_str())).is_err());
        assert_ne!(Token::random().as_str(), token.as_str());
    }
}
