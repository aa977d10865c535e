//! Durations as operators write them (`90s`, `15m`, `1h30m`, `2d`) and as
//! they read them (`1h 3m`).

use std::time::Duration;

/// Parses a duration written as numbers with units `s`, `m`, `h`, `d`
/// (`90s`, `15m`, `1h30m`, `2d`): what `--older-than` takes.
///
/// ```
/// use std::time::Duration;
/// use earn::cli::parse_duration;
///
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert!(parse_duration("10").is_err()); // which unit?
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; write e.g. `90s`, `15m`, `1h30m` or `2d`".to_owned());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "`{text}`: unknown unit `{c}`; use s, m, h or d (e.g. `1h30m`)"
                ));
            }
        };
        if digits.is_empty() {
            return Err(format!(
                "`{text}`: `{c}` needs a number before it (e.g. `15{c}`)"
            ));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}`: `{digits}` is too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!(
            "`{text}`: `{digits}` has no unit; write `{digits}s`, `{digits}m`, `{digits}h` or `{digits}d`"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// `2d 4h`, `1h 3m`, `4m 2s`, `12s`, `0.3s`: the two largest units.
pub(super) fn format_age(age: Duration) -> String {
    let secs = age.as_secs();
    if secs < 10 {
        return format!("{:.1}s", age.as_secs_f64());
    }
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    parts[first..]
        .iter()
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_combine() {
        let cases = [
            ("90s", 90),
            ("15m", 900),
            ("1h", 3600),
            ("2d", 172_800),
            ("1h30m", 5400),
            ("1d2h3m4s", 93_784),
            (" 5m ", 300),
            ("0s", 0),
        ];
        for (text, secs) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_durations_say_what_to_write() {
        let cases = [
            ("", "empty duration"),
            ("10", "`10` has no unit; write `10s`"),
            ("1w", "unknown unit `w`"),
            ("h", "`h` needs a number"),
            ("1.5h", "unknown unit `.`"),
            ("-1h", "unknown unit `-`"),
            ("99999999999999999999s", "too large"),
            ("999999999999999d", "too long"),
        ];
        for (text, expected) in cases {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn ages_show_the_two_largest_units() {
        let cases = [
            (Duration::from_millis(300), "0.3s"),
            (Duration::from_secs(12), "12s"),
            (Duration::from_secs(242), "4m 2s"),
            (Duration::from_secs(3780), "1h 3m"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(187_200), "2d 4h"),
        ];
        for (age, expected) in cases {
            assert_eq!(format_age(age), expected);
        }
    }
}
