//! ingress-nginx's canary annotations, parsed into a typed policy. A canary Ingress attaches to
//! the non-canary Ingress with the same host, path and pathType; a request goes to the canary
//! by header (`always`/`never`, an exact value, or a regex), then by cookie (`always`/`never`),
//! then by weight.

use std::collections::BTreeMap;

use http::HeaderName;
use regex::Regex;

pub const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// How a request is matched to the canary side before the weight decides.
#[derive(Clone, Debug)]
pub enum HeaderRule {
    /// `canary-by-header` alone: `always` → canary, `never` → main, anything else → next rule.
    AlwaysNever(HeaderName),
    /// `canary-by-header-value`: this exact value → canary, anything else → next rule.
    Value(HeaderName, String),
    /// `canary-by-header-pattern`: a full match → canary, anything else → next rule.
    Pattern(HeaderName, Regex),
}

#[derive(Clone, Debug)]
pub struct CanaryPolicy {
    pub header: Option<HeaderRule>,
    /// `canary-by-cookie`: `always` → canary, `never` → main, anything else → the weight.
    pub cookie: Option<String>,
    /// `canary-weight` out of `canary-weight-total`.
    pub weight: u32,
    pub total: u32,
}

/// What the annotations of one Ingress say about canaries.
#[derive(Debug)]
pub enum Parsed {
    NotCanary,
    Canary(CanaryPolicy),
}

/// Regexes from annotations are bounded: no pattern may make a request slow.
const MAX_PATTERN_SIZE: usize = 64 * 1024;

/// Parses the canary annotations; an invalid value is a `(annotation, reason)` problem and the
/// rule it belongs to is left out (a bad weight means weight 0: no traffic moves by accident).
pub fn parse(annotations: &BTreeMap<String, String>) -> (Parsed, Vec<(String, String)>) {
    let get = |name: &str| {
        annotations
            .get(&format!("{PREFIX}{name}"))
            .map(|v| v.trim())
    };
    let mut problems = Vec::new();
    if get("canary") != Some("true") {
        return (Parsed::NotCanary, problems);
    }
    let mut problem = |name: &str, why: String| problems.push((format!("{PREFIX}{name}"), why));

    let total = match get("canary-weight-total") {
        None => 100,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => {
                problem(
                    "canary-weight-total",
                    format!("{v:?} is not a positive integer; using 100"),
                );
                100
            }
        },
    };
    let weight = match get("canary-weight") {
        None => 0,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n <= total => n,
            _ => {
                problem(
                    "canary-weight",
                    format!("{v:?} is not an integer from 0 to {total}; using 0"),
                );
                0
            }
        },
    };
    let header = match get("canary-by-header") {
        None | Some("") => None,
        Some(name) => match HeaderName::from_bytes(name.as_bytes()) {
            Err(_) => {
                problem(
                    "canary-by-header",
                    format!("{name:?} is not a valid header name"),
                );
                None
            }
            Ok(name) => match (
                get("canary-by-header-value"),
                get("canary-by-header-pattern"),
            ) {
                (Some(value), _) if !value.is_empty() => {
                    Some(HeaderRule::Value(name, value.to_owned()))
                }
                (_, Some(pattern)) if !pattern.is_empty() => {
                    match regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                        .size_limit(MAX_PATTERN_SIZE)
                        .build()
                    {
                        Ok(regex) => Some(HeaderRule::Pattern(name, regex)),
                        Err(err) => {
                            problem(
                                "canary-by-header-pattern",
                                format!("{pattern:?} is not a usable regular expression: {err}"),
                            );
                            None
                        }
                    }
                }
                _ => Some(HeaderRule::AlwaysNever(name)),
            },
        },
    };
    let cookie = get("canary-by-cookie")
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    (
        Parsed::Canary(CanaryPolicy {
            header,
            cookie,
            weight,
            total,
        }),
        problems,
    )
}

/// Which side a request goes to, before the weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Canary,
    Main,
    /// No header or cookie rule decided: the weight does.
    Weight,
}

impl CanaryPolicy {
    /// Header first, then cookie, as ingress-nginx orders them. `cookie` looks a cookie up by
    /// name in the request.
    pub fn decide<'a>(
        &self,
        header: impl Fn(&HeaderName) -> Option<&'a [u8]>,
        cookie: impl Fn(&str) -> Option<&'a str>,
    ) -> Decision {
        if let Some(rule) = &self.header {
            let decided = match rule {
                HeaderRule::AlwaysNever(name) => match header(name) {
                    Some(b"always") => Some(Decision::Canary),
                    Some(b"never") => Some(Decision::Main),
                    _ => None,
                },
                HeaderRule::Value(name, value) => {
                    (header(name) == Some(value.as_bytes())).then_some(Decision::Canary)
                }
                HeaderRule::Pattern(name, regex) => header(name)
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .filter(|v| regex.is_match(v))
                    .map(|_| Decision::Canary),
            };
            if let Some(decided) = decided {
                return decided;
            }
        }
        if let Some(name) = &self.cookie {
            match cookie(name) {
                Some("always") => return Decision::Canary,
                Some("never") => return Decision::Main,
                _ => {}
            }
        }
        Decision::Weight
    }

    /// The n-th weighted request (counting from 0) goes to the canary when this is true: exactly
    /// `weight` of every `total` consecutive requests, evenly spread, no randomness.
    pub fn weighted_to_canary(&self, n: u64) -> bool {
        let (w, t) = (u64::from(self.weight), u64::from(self.total));
        if w == 0 {
            return false;
        }
        let n = n % t;
        (n + 1) * w / t > n * w / t
    }
}

/// The value of cookie `name` in a `Cookie` header value.
pub fn cookie_value<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    cookie_header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned()))
            .collect()
    }

    fn policy(pairs: &[(&str, &str)]) -> CanaryPolicy {
        match parse(&annotations(pairs)).0 {
            Parsed::Canary(p) => p,
            Parsed::NotCanary => panic!("not a canary: {pairs:?}"),
        }
    }

    #[test]
    fn only_canary_true_makes_a_canary() {
        assert!(matches!(parse(&annotations(&[])).0, Parsed::NotCanary));
        assert!(matches!(
            parse(&annotations(&[
                ("canary", "false"),
                ("canary-weight", "50")
            ]))
            .0,
            Parsed::NotCanary
        ));
        let p = policy(&[("canary", "true")]);
        assert_eq!((p.weight, p.total), (0, 100));
    }

    #[test]
    fn weights_are_exact_and_evenly_spread() {
        for (weight, total) in [
            (10u32, 100u32),
            (50, 100),
            (1, 3),
            (100, 100),
            (0, 100),
            (7, 1000),
        ] {
            let p = policy(&[
                ("canary", "true"),
                ("canary-weight", &weight.to_string()),
                ("canary-weight-total", &total.to_string()),
            ]);
            let hits = (0..u64::from(total) * 3)
                .filter(|n| p.weighted_to_canary(*n))
                .count();
            assert_eq!(hits as u32, weight * 3, "{weight}/{total}");
        }
        // 10 %: one in every ten consecutive requests, not ten in a row.
        let p = policy(&[("canary", "true"), ("canary-weight", "10")]);
        for window in 0..90 {
            let hits = (window..window + 10)
                .filter(|n| p.weighted_to_canary(*n))
                .count();
            assert_eq!(hits, 1, "window at {window}");
        }
    }

    #[test]
    fn bad_values_are_reported_and_move_no_traffic() {
        let (parsed, problems) = parse(&annotations(&[
            ("canary", "true"),
            ("canary-weight", "150"),
            ("canary-by-header", "bad header"),
        ]));
        let Parsed::Canary(p) = parsed else {
            panic!("canary expected")
        };
        assert_eq!(p.weight, 0);
        assert!(p.header.is_none());
        let names: Vec<&str> = problems.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "nginx.ingress.kubernetes.io/canary-weight",
                "nginx.ingress.kubernetes.io/canary-by-header"
            ]
        );
    }

    #[test]
    fn header_then_cookie_then_weight() {
        let name = HeaderName::from_static("x-canary");
        let decide =
            |p: &CanaryPolicy, header: Option<&'static str>, cookie: Option<&'static str>| {
                let name = name.clone();
                p.decide(
                    move |h| (*h == name).then_some(()).and(header.map(str::as_bytes)),
                    move |c| (c == "canary").then_some(()).and(cookie),
                )
            };
        let p = policy(&[
            ("canary", "true"),
            ("canary-by-header", "X-Canary"),
            ("canary-by-cookie", "canary"),
        ]);
        assert_eq!(decide(&p, Some("always"), Some("never")), Decision::Canary);
        assert_eq!(decide(&p, Some("never"), Some("always")), Decision::Main);
        assert_eq!(decide(&p, Some("other"), Some("always")), Decision::Canary);
        assert_eq!(decide(&p, None, Some("never")), Decision::Main);
        assert_eq!(decide(&p, None, Some("x")), Decision::Weight);

        let p = policy(&[
            ("canary", "true"),
            ("canary-by-header", "X-Canary"),
            ("canary-by-header-value", "yes"),
            ("canary-by-header-pattern", "ignored-when-value-is-set"),
        ]);
        assert_eq!(decide(&p, Some("yes"), None), Decision::Canary);
        assert_eq!(decide(&p, Some("always"), None), Decision::Weight);

        let p = policy(&[
            ("canary", "true"),
            ("canary-by-header", "X-Canary"),
            ("canary-by-header-pattern", "beta|rc[0-9]+"),
        ]);
        assert_eq!(decide(&p, Some("rc12"), None), Decision::Canary);
        assert_eq!(decide(&p, Some("rc12x"), None), Decision::Weight);
    }

    #[test]
    fn cookies_are_found_by_name() {
        assert_eq!(
            cookie_value("a=1; canary=always; b=2", "canary"),
            Some("always")
        );
        assert_eq!(cookie_value("xcanary=always", "canary"), None);
        assert_eq!(cookie_value("", "canary"), None);
    }
}
