//! ingress-nginx's CORS annotations (`enable-cors`, `cors-*`), parsed into ready-made header
//! values. Preflight requests (OPTIONS) are answered by the proxy with 204; other responses of
//! an allowed origin get the headers added.

use std::collections::BTreeMap;

use http::HeaderValue;

use super::canary::PREFIX;

const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
const DEFAULT_HEADERS: &str = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
const DEFAULT_MAX_AGE: u64 = 1_728_000;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    /// `*`: any origin.
    Any,
    /// `https://app.example.com`, or `https://*.example.com` (any one or more labels).
    Exact(String),
    WildcardSubdomain {
        scheme: String,
        suffix: String,
    },
}

#[derive(Clone, Debug)]
pub struct Cors {
    origins: Vec<Origin>,
    pub methods: HeaderValue,
    pub headers: HeaderValue,
    pub expose: Option<HeaderValue>,
    pub credentials: bool,
    pub max_age: HeaderValue,
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, when it is allowed.
    pub fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        if self.origins.contains(&Origin::Any) {
            return Some(HeaderValue::from_static("*"));
        }
        let text = origin?.to_str().ok()?.to_ascii_lowercase();
        let allowed = self.origins.iter().any(|o| match o {
            Origin::Any => true,
            Origin::Exact(exact) => *exact == text,
            Origin::WildcardSubdomain { scheme, suffix } => text
                .strip_prefix(scheme.as_str())
                .and_then(|rest| rest.strip_suffix(suffix.as_str()))
                .is_some_and(|label| !label.is_empty() && !label.contains('/')),
        });
        allowed.then(|| origin.cloned()).flatten()
    }
}

/// `None` unless `enable-cors: "true"`; problems are `(annotation, reason)`.
pub fn parse(annotations: &BTreeMap<String, String>) -> (Option<Cors>, Vec<(String, String)>) {
    let get = |name: &str| {
        annotations
            .get(&format!("{PREFIX}{name}"))
            .map(|v| v.trim())
    };
    let mut problems = Vec::new();
    if get("enable-cors") != Some("true") {
        return (None, problems);
    }
    let mut problem = |name: &str, why: String| problems.push((format!("{PREFIX}{name}"), why));
    let mut origins = Vec::new();
    for origin in get("cors-allow-origin")
        .unwrap_or("*")
        .split(',')
        .map(str::trim)
    {
        match parse_origin(origin) {
            Ok(o) => origins.push(o),
            Err(why) => problem("cors-allow-origin", why),
        }
    }
    if origins.is_empty() {
        origins.push(Origin::Any);
    }
    let mut header = |name: &str, default: &str, check: fn(&str) -> bool| -> HeaderValue {
        let value = get(name).unwrap_or(default);
        match HeaderValue::from_str(value) {
            Ok(v) if check(value) => v,
            _ => {
                problem(
                    name,
                    format!("{value:?} is not a valid list; using the default"),
                );
                HeaderValue::from_str(default).unwrap_or(HeaderValue::from_static(""))
            }
        }
    };
    let token_list = |v: &str| {
        v.split(',').map(str::trim).all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
        })
    };
    let methods = header("cors-allow-methods", DEFAULT_METHODS, token_list);
    let headers = header("cors-allow-headers", DEFAULT_HEADERS, token_list);
    let expose = get("cors-expose-headers")
        .filter(|v| !v.is_empty())
        .map(|_| header("cors-expose-headers", "", token_list));
    let credentials = match get("cors-allow-credentials") {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            problem(
                "cors-allow-credentials",
                format!("{other:?} is not true or false; using true"),
            );
            true
        }
    };
    let max_age = match get("cors-max-age").map(str::parse::<u64>) {
        None => DEFAULT_MAX_AGE,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            problem(
                "cors-max-age",
                format!("not a number of seconds; using {DEFAULT_MAX_AGE}"),
            );
            DEFAULT_MAX_AGE
        }
    };
    (
        Some(Cors {
            origins,
            methods,
            headers,
            expose,
            credentials,
            max_age: HeaderValue::from(max_age),
        }),
        problems,
    )
}

fn parse_origin(origin: &str) -> Result<Origin, String> {
    if origin == "*" {
        return Ok(Origin::Any);
    }
    let lower = origin.to_ascii_lowercase();
    let (scheme, host) = lower
        .split_once("://")
        .filter(|(s, _)| matches!(*s, "http" | "https"))
        .ok_or_else(|| format!("{origin:?} is not an origin such as https://app.example.com"))?;
    let valid = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'))
    };
    match host.strip_prefix("*.") {
        Some(suffix) if valid(suffix) => Ok(Origin::WildcardSubdomain {
            scheme: format!("{scheme}://"),
            suffix: format!(".{suffix}"),
        }),
        None if valid(host) => Ok(Origin::Exact(lower)),
        _ => Err(format!(
            "{origin:?} is not an origin such as https://app.example.com"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(pairs: &[(&str, &str)]) -> (Option<Cors>, Vec<(String, String)>) {
        let mut all: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned()))
            .collect();
        all.insert(format!("{PREFIX}enable-cors"), "true".into());
        parse(&all)
    }

    #[test]
    fn defaults_are_ingress_nginx_defaults() {
        let (Some(c), problems) = cors(&[]) else {
            panic!("enabled")
        };
        assert!(problems.is_empty());
        assert_eq!(c.allow_origin(None), Some(HeaderValue::from_static("*")));
        assert_eq!(c.methods, DEFAULT_METHODS);
        assert!(c.credentials);
        assert_eq!(c.max_age, "1728000");
        assert!(parse(&BTreeMap::new()).0.is_none());
    }

    #[test]
    fn seed_000_origins_are_echoed_only_when_listed() {
        let (Some(c), problems) = cors(&[(
            "cors-allow-origin",
            "https://example.com,https://app.example.com",
        )]) else {
            panic!("enabled")
        };
        assert!(problems.is_empty(), "{problems:?}");
        let o = HeaderValue::from_static("https://app.example.com");
        assert_eq!(c.allow_origin(Some(&o)), Some(o.clone()));
        assert_eq!(
            c.allow_origin(Some(&HeaderValue::from_static("https://evil.example"))),
            None
        );
        assert_eq!(c.allow_origin(None), None);
    }

    #[test]
    fn wildcard_subdomains_match_any_label_depth_but_not_the_apex() {
        let (Some(c), _) = cors(&[("cors-allow-origin", "https://*.example.com")]) else {
            panic!("enabled")
        };
        let ok = HeaderValue::from_static("https://a.b.example.com");
        assert_eq!(c.allow_origin(Some(&ok)), Some(ok.clone()));
        for no in [
            "https://example.com",
            "http://a.example.com",
            "https://a.example.com.evil",
        ] {
            assert_eq!(
                c.allow_origin(Some(&HeaderValue::from_static(no))),
                None,
                "{no}"
            );
        }
        let (_, problems) = cors(&[
            ("cors-allow-origin", "javascript:alert(1)"),
            ("cors-max-age", "soon"),
        ]);
        assert_eq!(problems.len(), 2);
    }
}
