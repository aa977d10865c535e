//! The filters of the dead-letter views, as GET parameters and hidden
//! form fields, and the store filter they make.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use maud::{Markup, html};
use serde::Deserialize;

use crate::console::error::ConsoleError;
use crate::console::layout::Ctx;
use crate::{DeadLetterFilter, DeadLetters};

/// The filters of the list, as the query string carries them; empty
/// values mean "any".
#[derive(Debug, Default, Clone, Deserialize)]
pub(in crate::console) struct Filters {
    #[serde(default)]
    pub(super) source: String,
    #[serde(default)]
    pub(super) event: String,
    #[serde(default)]
    pub(super) handler: String,
    /// `90s`, `15m`, `2h`, `3d`, or seconds.
    #[serde(default)]
    pub(super) older_than: String,
}

impl Filters {
    /// The filter the stores take; `400` for an event pattern or an age
    /// they cannot use.
    pub(super) fn filter(&self) -> Result<DeadLetterFilter, ConsoleError> {
        let mut filter = DeadLetterFilter::default();
        if !self.event.trim().is_empty() {
            filter = filter.event(self.event.trim());
        }
        if !self.handler.trim().is_empty() {
            filter = filter.handler(self.handler.trim());
        }
        if !self.older_than.trim().is_empty() {
            let age = parse_age(self.older_than.trim()).map_err(ConsoleError::BadRequest)?;
            let before = SystemTime::now()
                .checked_sub(age)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            filter = filter.failed_before(before);
        }
        filter.validate()?;
        Ok(filter)
    }

    /// The source asked for, or the first one.
    pub(super) fn source<'a>(
        &self,
        ctx: &'a Ctx,
    ) -> Result<&'a Arc<dyn DeadLetters>, ConsoleError> {
        if self.source.is_empty() {
            return ctx.console.admin.sources().first().ok_or_else(|| {
                ConsoleError::NotFound("the console was given no dead-letter source".to_owned())
            });
        }
        Ok(ctx.console.admin.source_named(&self.source)?)
    }

    pub(super) fn pairs<'a>(&'a self, source: &'a str) -> [(&'static str, &'a str); 4] {
        [
            ("source", source),
            ("event", &self.event),
            ("handler", &self.handler),
            ("older_than", &self.older_than),
        ]
    }

    /// The filters as hidden form fields, for the actions to carry back.
    pub(super) fn hidden(&self, source: &str) -> Markup {
        html! {
            @for (name, value) in self.pairs(source) {
                @if !value.is_empty() { input type="hidden" name=(name) value=(value); }
            }
        }
    }
}

/// `90s`, `15m`, `2h`, `3d`, or a number of seconds.
fn parse_age(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad =
        || format!("`older_than` takes an age such as `90s`, `15m`, `2h` or `3d`, not `{text}`");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    number
        .checked_mul(unit)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_age("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_age("3d"), Ok(Duration::from_secs(3 * 86_400)));
        for bad in ["", "m", "2w", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
