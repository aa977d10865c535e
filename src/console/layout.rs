//! The page around every view: the header and navigation, the style sheet,
//! the refresh script; and the small formatting helpers the views share.

use std::time::{Duration, SystemTime};

use axum::extract::{FromRequestParts, OriginalUri, State};
use axum::http::request::Parts;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::error::ConsoleError;
use super::{Shared, csrf};

/// What a view needs of the request: the path the console is mounted
/// under, and the console.
pub(super) struct Ctx {
    /// The console's root as the browser sees it (`/ops`, or empty).
    pub(super) base: String,
    pub(super) console: Shared,
}

impl Ctx {
    /// An absolute link to `path` (`/dead-letters`) of the console.
    pub(super) fn url(&self, path: &str) -> String {
        // `nest("/ops", ..)` answers `/ops`, not `/ops/`.
        if path == "/" && !self.base.is_empty() {
            return self.base.clone();
        }
        format!("{}{path}", self.base)
    }

    pub(super) fn read_only(&self) -> bool {
        self.console.options.read_only
    }

    /// The hidden field every form carries.
    pub(super) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name=(csrf::FIELD) value=(self.console.csrf.as_str()); }
    }
}

impl FromRequestParts<Shared> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let State(console) = State::<Shared>::from_request_parts(parts, state).await?;
        let base = match &console.options.base_path {
            Some(base) => base.clone(),
            None => mounted_at(parts),
        };
        Ok(Ctx { base, console })
    }
}

/// The prefix `nest` stripped: the original path minus the path the
/// console's router saw (`/ops/dead-letters` minus `/dead-letters`).
fn mounted_at(parts: &Parts) -> String {
    let Some(OriginalUri(original)) = parts.extensions.get::<OriginalUri>() else {
        return String::new();
    };
    let full = original.path();
    let inner = parts.uri.path();
    let base = if inner == "/" {
        full.trim_end_matches('/')
    } else {
        full.strip_suffix(inner).unwrap_or("")
    };
    base.to_owned()
}

/// The navigation entries: path and label.
const NAV: [(&str, &str); 5] = [
    ("/", "Dashboard"),
    ("/dead-letters", "Dead letters"),
    ("/streams", "Streams"),
    ("/delayed", "Delayed"),
    ("/registry", "Registry"),
];

/// A whole page: `active` is the navigation entry to highlight.
pub(super) fn page(ctx: &Ctx, title: &str, active: &str, body: Markup) -> Markup {
    let name = &ctx.console.options.title;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (name) " console" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    a.brand href=(ctx.url("/")) { (name) " console" }
                    nav {
                        @for (path, label) in NAV {
                            a href=(ctx.url(path)) class=[(path == active).then_some("active")] { (label) }
                        }
                    }
                    @if ctx.read_only() {
                        span.badge { "read-only" }
                    }
                }
                main { (body) }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// An instant as UTC, to the second: `2026-11-27T10:11:12Z`.
pub(super) fn utc(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// How long ago, roughly: `42 s ago`, `7 min ago`.
pub(super) fn ago(at: SystemTime) -> String {
    let age = SystemTime::now().duration_since(at).unwrap_or_default();
    format!("{} ago", span(age))
}

/// A duration, roughly: `500 ms`, `42 s`, `7 min`, `3 h`, `2 d`.
pub(super) fn span(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0 => format!("{} ms", age.as_millis()),
        1..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// The `page` parameter of a paged list: a number from 1, `1` when empty.
pub(super) fn page_number(text: &str) -> Result<u64, ConsoleError> {
    match text.trim() {
        "" => Ok(1),
        text => text.parse::<u64>().ok().filter(|&p| p >= 1).ok_or_else(|| {
            ConsoleError::BadRequest(format!("`page` is a number from 1, not `{text}`"))
        }),
    }
}

/// Percent-encodes a query value.
pub(super) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char);
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A query string from pairs, leaving out empty values.
pub(super) fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The refresh: every element with `data-live` is replaced by what its URL
/// returns (server-rendered, escaped HTML) every `data-every` ms.
const SCRIPT: &str = r#"
for (const el of document.querySelectorAll('[data-live]')) {
  const every = Number(el.dataset.every || 5000);
  const refresh = async () => {
    try {
      const response = await fetch(el.dataset.live, { credentials: 'same-origin' });
      if (response.ok) {
        el.innerHTML = await response.text();
        el.classList.remove('stale');
      } else {
        el.classList.add('stale');
      }
    } catch (_) {
      el.classList.add('stale');
    }
  };
  setInterval(refresh, every);
}
"#;

pub(super) const CSS: &str = r#"
:root { --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --bg: #f8f9fb; --accent: #2457c5; --bad: #c4320a; --ok: #067647; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.5rem; background: #fff; border-bottom: 1px solid var(--line); }
header .brand { font-weight: 700; color: var(--fg); text-decoration: none; }
nav a { margin-right: 1rem; color: var(--muted); text-decoration: none; }
nav a.active { color: var(--accent); font-weight: 600; }
.badge { margin-left: auto; padding: .1rem .5rem; border-radius: 1rem; background: #fef0c7; color: #93370d; font-size: 12px; }
main { padding: 1.2rem 1.5rem; max-width: 1200px; }
h1 { font-size: 1.3rem; margin: 0 0 1rem; }
h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
a { color: var(--accent); }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 1rem; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; min-width: 11rem; }
.card .value { font-size: 1.8rem; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .label { color: var(--muted); font-size: 12px; }
.card.bad .value { color: var(--bad); }
.muted { color: var(--muted); }
.error { color: var(--bad); }
.notice { padding: .5rem .8rem; background: #ecfdf3; border: 1px solid #abefc6; border-radius: 4px; }
.stale { opacity: .5; }
form.filters { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; margin-bottom: 1rem; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
input, select, button { font: inherit; padding: .25rem .5rem; border: 1px solid #d0d5dd; border-radius: 4px; background: #fff; }
button { cursor: pointer; }
button.danger { color: #fff; background: var(--bad); border-color: var(--bad); }
button.primary { color: #fff; background: var(--accent); border-color: var(--accent); }
form.inline { display: inline; }
.actions { display: flex; gap: .5rem; margin: .8rem 0; }
pre { background: #fff; border: 1px solid var(--line); padding: .6rem; overflow: auto; max-height: 30rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; }
dt { color: var(--muted); }
dd { margin: 0; }
svg.graph { background: #fff; border: 1px solid var(--line); width: 100%; max-width: 720px; height: auto; }
.legend span { margin-right: 1rem; font-size: 12px; }
.legend i { display: inline-block; width: .8rem; height: .2rem; vertical-align: middle; margin-right: .3rem; }
.pager { margin: .8rem 0; display: flex; gap: 1rem; align-items: center; }
"#;

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_825_600 + 3661);
        assert_eq!(utc(leap), "2000-02-29T13:01:01Z");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            query(&[("event", "a.**"), ("handler", ""), ("source", "redis:s x")]),
            "?event=a.%2A%2A&source=redis%3As%20x"
        );
        assert_eq!(query(&[("a", "")]), "");
    }
}
