//! ingress-nginx's cookie affinity (`affinity: cookie`, `affinity-mode`,
//! `affinity-canary-behavior` and the `session-cookie-*` options). The cookie's value is
//! `KEY|BACKEND`, as ingress-nginx writes it: BACKEND names the Service port that served, so a
//! client stays on the canary or the main side; KEY depends on the mode:
//!
//! - `balanced` (ingress-nginx's default): a random key, placed on the endpoints by consistent
//!   hashing. When a Deployment scales, some keys move to the new endpoints and the load evens
//!   out.
//! - `persistent`: the endpoint's own stable name; a client stays there while it exists.
//!
//! Keys are the same on every proxy replica.

use std::collections::BTreeMap;

use http::HeaderValue;

use super::canary::PREFIX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Balanced,
    Persistent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Affinity {
    pub name: String,
    pub mode: Mode,
    /// `affinity-canary-behavior: sticky` (the default): a client whose cookie names the
    /// canary or the main side stays there; `legacy` ignores the cookie for that choice.
    pub canary_sticky: bool,
    /// `Path`, `Max-Age`, `Expires`, `SameSite`, `Secure`, `Domain` and `HttpOnly`, ready to
    /// follow `name=value`.
    attributes: String,
    /// `session-cookie-expires` in seconds: an `Expires` date is added per response.
    expires: Option<u64>,
}

impl Affinity {
    /// The `Set-Cookie` header with `key` (an endpoint's name, or a balanced key) on the
    /// backend `backend`.
    pub fn set_cookie(
        &self,
        key: &str,
        backend: &str,
        now: jiff::Timestamp,
    ) -> Option<HeaderValue> {
        let mut cookie = format!("{}={key}|{backend}{}", self.name, self.attributes);
        if let Some(seconds) = self.expires {
            let at = now
                .saturating_add(jiff::SignedDuration::from_secs(seconds as i64))
                .ok()?;
            cookie.push_str(&format!(
                "; Expires={}",
                at.to_zoned(jiff::tz::TimeZone::UTC)
                    .strftime("%a, %d %b %Y %H:%M:%S GMT")
            ));
        }
        HeaderValue::from_str(&cookie).ok()
    }
}

/// A cookie value's key and backend (`None` for a value written without one).
pub fn split_value(value: &str) -> (&str, Option<&str>) {
    match value.split_once('|') {
        Some((key, backend)) => (key, Some(backend)),
        None => (value, None),
    }
}

/// The stable name of an endpoint in affinity cookies: FNV-1a of `address:port`, in hex.
pub fn endpoint_key(authority: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in authority.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// `None` unless `affinity: cookie`; `path` is the Ingress path (the default cookie path);
/// problems are `(annotation, reason)`.
pub fn parse(
    annotations: &BTreeMap<String, String>,
    path: &str,
) -> (Option<Affinity>, Vec<(String, String)>) {
    let get = |name: &str| {
        annotations
            .get(&format!("{PREFIX}{name}"))
            .map(|v| v.trim())
    };
    let mut problems = Vec::new();
    match get("affinity") {
        None | Some("") => return (None, problems),
        Some("cookie") => {}
        Some(other) => {
            problems.push((
                format!("{PREFIX}affinity"),
                format!(
                    "{other:?} is not cookie (the only affinity ingress-nginx has); no affinity"
                ),
            ));
            return (None, problems);
        }
    }
    let mut problem = |name: &str, why: String| problems.push((format!("{PREFIX}{name}"), why));
    let mode = match get("affinity-mode") {
        None | Some("" | "balanced") => Mode::Balanced,
        Some("persistent") => Mode::Persistent,
        Some(other) => {
            problem(
                "affinity-mode",
                format!("{other:?} is not balanced or persistent; using balanced"),
            );
            Mode::Balanced
        }
    };
    let canary_sticky = match get("affinity-canary-behavior") {
        None | Some("" | "sticky") => true,
        Some("legacy") => false,
        Some(other) => {
            problem(
                "affinity-canary-behavior",
                format!("{other:?} is not sticky or legacy; using sticky"),
            );
            true
        }
    };
    let token = |v: &str| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let name = match get("session-cookie-name") {
        None => "INGRESSCOOKIE".to_owned(),
        Some(n) if token(n) => n.to_owned(),
        Some(n) => {
            problem(
                "session-cookie-name",
                format!("{n:?} is not a cookie name; using INGRESSCOOKIE"),
            );
            "INGRESSCOOKIE".to_owned()
        }
    };
    let mut attributes = String::new();
    let cookie_path = get("session-cookie-path").unwrap_or(path);
    if cookie_path.starts_with('/')
        && cookie_path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';')
    {
        attributes.push_str(&format!("; Path={cookie_path}"));
    } else {
        problem(
            "session-cookie-path",
            format!("{cookie_path:?} is not a plain path; using /"),
        );
        attributes.push_str("; Path=/");
    }
    let seconds = |name: &str, problem: &mut dyn FnMut(&str, String)| match get(name) {
        None => None,
        Some(v) => v.parse::<u64>().ok().or_else(|| {
            problem(name, format!("{v:?} is not a number of seconds; ignored"));
            None
        }),
    };
    if let Some(max_age) = seconds("session-cookie-max-age", &mut problem) {
        attributes.push_str(&format!("; Max-Age={max_age}"));
    }
    let expires = seconds("session-cookie-expires", &mut problem);
    if let Some(domain) = get("session-cookie-domain") {
        if token(domain) {
            attributes.push_str(&format!("; Domain={domain}"));
        } else {
            problem(
                "session-cookie-domain",
                format!("{domain:?} is not a domain; ignored"),
            );
        }
    }
    match get("session-cookie-samesite") {
        None => {}
        Some(v @ ("Strict" | "Lax" | "None")) => attributes.push_str(&format!("; SameSite={v}")),
        Some(other) => problem(
            "session-cookie-samesite",
            format!("{other:?} is not Strict, Lax or None; ignored"),
        ),
    }
    if get("session-cookie-secure") == Some("true") {
        attributes.push_str("; Secure");
    }
    attributes.push_str("; HttpOnly");
    (
        Some(Affinity {
            name,
            mode,
            canary_sticky,
            attributes,
            expires,
        }),
        problems,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_000_affinity_makes_the_cookie_it_asks_for() {
        let annotations: BTreeMap<String, String> = [
            ("affinity", "cookie"),
            ("session-cookie-name", "route"),
            ("session-cookie-expires", "172800"),
            ("session-cookie-max-age", "172800"),
            ("session-cookie-path", "/"),
            ("session-cookie-samesite", "Strict"),
        ]
        .iter()
        .map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned()))
        .collect();
        let (Some(affinity), problems) = parse(&annotations, "/app") else {
            panic!("affinity expected")
        };
        assert!(problems.is_empty(), "{problems:?}");
        let now: jiff::Timestamp = "2026-12-05T00:00:00Z".parse().unwrap_or_default();
        let cookie = affinity
            .set_cookie("00ff", "b1", now)
            .map(|v| v.to_str().unwrap_or("").to_owned());
        assert_eq!(
            cookie.as_deref(),
            Some(
                "route=00ff|b1; Path=/; Max-Age=172800; SameSite=Strict; HttpOnly; Expires=Mon, 07 Dec 2026 00:00:00 GMT"
            )
        );
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(endpoint_key("10.0.0.1:8080"), endpoint_key("10.0.0.1:8080"));
        assert_ne!(endpoint_key("10.0.0.1:8080"), endpoint_key("10.0.0.2:8080"));
        assert_eq!(endpoint_key("10.0.0.1:8080").len(), 16);
    }

    #[test]
    fn other_affinity_kinds_are_refused() {
        let annotations: BTreeMap<String, String> =
            [(format!("{PREFIX}affinity"), "ip".to_owned())].into();
        let (affinity, problems) = parse(&annotations, "/");
        assert!(affinity.is_none());
        assert_eq!(problems.len(), 1);
    }
}
