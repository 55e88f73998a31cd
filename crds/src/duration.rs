//! Durations in Go's `time.ParseDuration` form ("30s", "1h30m", "500ms"), the form Kubernetes
//! users already write in cert-manager and Argo manifests.
//!
//! The API keeps them as strings (so `kubectl get -o yaml` shows what the user wrote); the operator
//! turns them into [`std::time::Duration`] with [`parse_duration`]. The schema carries
//! [`DURATION_PATTERN`] so the apiserver refuses a malformed value at `kubectl apply` already.

use std::time::Duration;

/// Regular expression (RE2 syntax, as the apiserver evaluates `pattern`) accepting exactly the
/// strings that [`parse_duration`] accepts, except values too large for it.
pub const DURATION_PATTERN: &str =
    r"^\+?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$";

/// The units, for error messages.
const UNITS: &str = "ns, us, ms, s, m, h";

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration: expected a number and a unit ({UNITS}), e.g. \"30s\"")]
    Empty,
    #[error("invalid duration {input:?}: durations cannot be negative")]
    Negative { input: String },
    #[error("invalid duration {input:?}: expected a number and a unit ({UNITS}), e.g. \"30s\"")]
    Syntax { input: String },
    #[error("invalid duration {input:?}: missing unit after the number ({UNITS})")]
    MissingUnit { input: String },
    #[error("invalid duration {input:?}: unknown unit {unit:?} (use one of {UNITS})")]
    UnknownUnit { input: String, unit: String },
    #[error("invalid duration {input:?}: longer than the maximum of about 292 years")]
    Overflow { input: String },
}

/// Go's limit: a `time.Duration` is an `int64` of nanoseconds. Keeping the same limit means a
/// value accepted here is also valid for Go tooling that reads the same manifests.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Fraction digits beyond this cannot change the result by a nanosecond (the largest unit, the
/// hour, is 3.6e12 ns); ignoring them keeps the arithmetic in range.
const MAX_FRACTION_DIGITS: u32 = 18;

/// Parses a Go duration string such as `"30s"`, `"1h30m"`, `"1.5h"`, `"500ms"` or `"0"`.
///
/// Accepts what Go's `time.ParseDuration` accepts, except negative values (no Switchyard field
/// can mean a negative time). Precision beyond a nanosecond is truncated, as Go does.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let syntax = || DurationError::Syntax {
        input: input.to_owned(),
    };
    let overflow = || DurationError::Overflow {
        input: input.to_owned(),
    };

    let rest = match input.as_bytes()[0] {
        b'-' => {
            return Err(DurationError::Negative {
                input: input.to_owned(),
            });
        }
        b'+' => &input[1..],
        _ => input,
    };
    // Go special-cases a bare zero: the only number allowed without a unit.
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(syntax());
    }

    let mut total: u128 = 0;
    let mut s = rest;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = s.split_at(int_len);
        let (frac_digits, after_number) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                after_dot.split_at(frac_len)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(syntax());
        }

        let unit_len = after_number
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_number.len());
        let (unit, next) = after_number.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit {
                input: input.to_owned(),
            });
        }
        let unit_nanos = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            input: input.to_owned(),
            unit: unit.to_owned(),
        })?;

        let mut whole: u128 = 0;
        for digit in int_digits.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u128::from(digit - b'0')))
                .filter(|w| *w <= MAX_NANOS)
                .ok_or_else(overflow)?;
        }
        let mut fraction: u128 = 0;
        let mut scale: u128 = 1;
        for digit in frac_digits.bytes().take(MAX_FRACTION_DIGITS as usize) {
            fraction = fraction * 10 + u128::from(digit - b'0');
            scale *= 10;
        }

        let part = whole
            .checked_mul(unit_nanos)
            .and_then(|w| w.checked_add(fraction * unit_nanos / scale))
            .ok_or_else(overflow)?;
        total = total
            .checked_add(part)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(overflow)?;
        s = next;
    }

    // In range by the checks above: MAX_NANOS fits in a u64.
    let nanos = u64::try_from(total).map_err(|_| overflow())?;
    Ok(Duration::from_nanos(nanos))
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        // U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU, as Go accepts both.
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Formats a duration the way Go's `time.Duration.String` does ("1h0m0s", "1m30s", "1.5s",
/// "500ms"), so values written into status read like the ones users put into the spec.
/// The result always parses back to the same duration (at nanosecond precision).
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        let (unit_nanos, unit) = if nanos < 1_000 {
            (1, "ns")
        } else if nanos < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{unit}", decimal(nanos, unit_nanos));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = decimal(nanos % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / unit` as a decimal without trailing zeros.
fn decimal(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let rest = value % unit;
    if rest == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let fraction = format!("{rest:0width$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Duration {
        match parse_duration(input) {
            Ok(d) => d,
            Err(e) => panic!("{input:?} should parse: {e}"),
        }
    }

    #[test]
    fn parses_the_forms_users_write() {
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("720h"), Duration::from_secs(720 * 3600));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("2m3s"), Duration::from_secs(123));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok("10ns"), Duration::from_nanos(10));
        assert_eq!(ok("7us"), Duration::from_micros(7));
        assert_eq!(ok("7µs"), Duration::from_micros(7));
        assert_eq!(ok("7μs"), Duration::from_micros(7));
        // Units may repeat and come in any order, as in Go.
        assert_eq!(ok("1s1s"), Duration::from_secs(2));
        assert_eq!(ok("1m1h"), Duration::from_secs(3660));
    }

    #[test]
    fn parses_fractions() {
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("0.001s"), Duration::from_millis(1));
        assert_eq!(ok("1.0000000001s"), Duration::from_nanos(1_000_000_000));
        assert_eq!(
            ok("0.3333333333333333333333333h"),
            Duration::from_nanos(1_199_999_999_999)
        );
    }

    #[test]
    fn accepts_go_s_maximum() {
        assert_eq!(
            ok("2562047h47m16.854775807s"),
            Duration::from_nanos(i64::MAX as u64)
        );
    }

    #[test]
    fn refuses_what_go_refuses() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        for input in [
            "+", ".", "s", ".s", "1.2.3s", "h1", " 1s", "1s ", "1 s", "0x10s",
        ] {
            assert!(parse_duration(input).is_err(), "{input:?} should fail");
        }
    }

    #[test]
    fn names_the_problem() {
        assert!(matches!(
            parse_duration("30"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_duration("1h30"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert_eq!(
            parse_duration("3d"),
            Err(DurationError::UnknownUnit {
                input: "3d".into(),
                unit: "d".into()
            })
        );
        assert!(matches!(
            parse_duration("-1s"),
            Err(DurationError::Negative { .. })
        ));
        assert!(matches!(
            parse_duration("2562047h47m16.854775808s"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            parse_duration("99999999999999999999999999999999999999999h"),
            Err(DurationError::Overflow { .. })
        ));
        let message = parse_duration("3d").map_err(|e| e.to_string());
        assert_eq!(
            message,
            Err(
                "invalid duration \"3d\": unknown unit \"d\" (use one of ns, us, ms, s, m, h)"
                    .into()
            )
        );
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(412_300), "412.3ms"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(720 * 3600), "720h0m0s"),
            (Duration::from_nanos(3_600_000_000_001), "1h0m0.000000001s"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration), "{text} parses back");
        }
    }
}
