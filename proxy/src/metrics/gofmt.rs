//! The Prometheus Go client's text formatting, so that our exposition matches ingress-nginx's
//! byte for byte: floats as Go's `strconv.FormatFloat(f, 'g', -1, 64)`, label values escaped as
//! the Go client escapes them.

use std::fmt::Write as _;

/// Appends `value` the way the Go client writes sample values and `le` bounds.
pub fn push_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if value == 0.0 {
        out.push('0');
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Go's -1 precision does:
    // "1.5e-5", "1e6", "-2.25e0".
    let scientific = format!("{value:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        out.push_str(&scientific);
        return;
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    // strconv's 'g' with the shortest precision switches to %e below 1e-4 and from 1e6 on.
    if !(-4..6).contains(&exponent) {
        out.push_str(mantissa);
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exponent.unsigned_abs());
        return;
    }
    let _ = write!(out, "{value}");
}

/// Appends `value` escaped for a label value inside double quotes.
pub fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends a count the way the Go client writes it: counts are float64 there, so a million is
/// `1e+06`.
pub fn push_count(out: &mut String, count: u64) {
    push_float(out, count as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: f64) -> String {
        let mut s = String::new();
        push_float(&mut s, v);
        s
    }

    #[test]
    fn floats_are_written_as_go_writes_them() {
        // Expected values are what Go's strconv.FormatFloat(v, 'g', -1, 64) returns.
        let cases = [
            (0.005, "0.005"),
            (0.01, "0.01"),
            (2.5, "2.5"),
            (1.0, "1"),
            (10.0, "10"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (1e7, "1e+07"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (1.5e-7, "1.5e-07"),
            (0.0, "0"),
            (-3.0, "-3"),
            (f64::INFINITY, "+Inf"),
            (123456.0, "123456"),
        ];
        for (value, expected) in cases {
            assert_eq!(float(value), expected, "{value}");
        }
    }

    #[test]
    fn counts_above_a_million_switch_to_exponent_form_like_go() {
        let mut s = String::new();
        push_count(&mut s, 999_999);
        s.push(' ');
        push_count(&mut s, 1_000_000);
        assert_eq!(s, "999999 1e+06");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        push_label_value(&mut s, "a\"b\\c\nd");
        assert_eq!(s, "a\\\"b\\\\c\\nd");
    }
}
