//! `mirror-target`, `mirror-host` and `mirror-request-body`: where a copy of each request goes.
//! The target is an http(s) URL whose path may use `$request_uri` (the client's path and query);
//! no other variable is taken.

use std::collections::BTreeMap;

use http::HeaderValue;
use http::uri::{Authority, Scheme};

use super::canary::PREFIX;

pub fn handles(name: &str) -> bool {
    matches!(
        name,
        "mirror-target" | "mirror-host" | "mirror-request-body"
    )
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    pub scheme: Scheme,
    pub authority: Authority,
    /// The path and query, split around each `$request_uri`.
    pieces: Vec<String>,
    /// The Host header: `mirror-host`, else the target's host name.
    pub host: HeaderValue,
    /// `mirror-request-body` (default on).
    pub body: bool,
}

impl Mirror {
    /// The mirror's path and query for a request whose URI is `request_uri`.
    pub fn path_and_query(&self, request_uri: &str) -> String {
        self.pieces.join(request_uri)
    }
}

/// `None` without a usable `mirror-target`; problems are `(annotation, reason)`.
pub fn parse(annotations: &BTreeMap<String, String>) -> (Option<Mirror>, Vec<(String, String)>) {
    let get = |name: &str| {
        annotations
            .get(&format!("{PREFIX}{name}"))
            .map(|v| v.trim())
    };
    let mut problems = Vec::new();
    let mut problem = |name: &str, why: String| problems.push((format!("{PREFIX}{name}"), why));
    let body = match get("mirror-request-body") {
        None | Some("on") => true,
        Some("off") => false,
        Some(other) => {
            problem(
                "mirror-request-body",
                format!("{other:?} is not on or off; on applies"),
            );
            true
        }
    };
    let Some(target) = get("mirror-target") else {
        if get("mirror-host").is_some() {
            problem(
                "mirror-host",
                "has no effect without mirror-target".to_owned(),
            );
        }
        return (None, problems);
    };
    let mirror = match parse_target(target) {
        Ok((scheme, authority, pieces)) => {
            let host = match get("mirror-host") {
                Some(host) if valid_host(host) => HeaderValue::from_str(host).ok(),
                Some(host) => {
                    problem(
                        "mirror-host",
                        format!("{host:?} is not a host name; the target's host applies"),
                    );
                    None
                }
                None => None,
            }
            .or_else(|| HeaderValue::from_str(authority.host()).ok());
            host.map(|host| Mirror {
                scheme,
                authority,
                pieces,
                host,
                body,
            })
        }
        Err(why) => {
            problem("mirror-target", format!("{why}; nothing is mirrored"));
            None
        }
    };
    (mirror, problems)
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'))
}

fn parse_target(target: &str) -> Result<(Scheme, Authority, Vec<String>), String> {
    let (scheme, rest) = if let Some(rest) = target.strip_prefix("http://") {
        (Scheme::HTTP, rest)
    } else if let Some(rest) = target.strip_prefix("https://") {
        (Scheme::HTTPS, rest)
    } else {
        return Err(format!("{target:?} is not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.find(['/', '$', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !valid_host(authority) {
        return Err(format!("{target:?} has no valid host"));
    }
    let authority: Authority = authority
        .parse()
        .map_err(|_| format!("{target:?} has no valid host"))?;
    let pieces: Vec<String> = path.split("$request_uri").map(str::to_owned).collect();
    let literal = pieces.iter().all(|p| {
        p.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'$' | b'#' | b'"' | b'\\'))
    });
    if !literal {
        return Err(format!(
            "{target:?}: only $request_uri may be used, and no spaces or control characters"
        ));
    }
    let mut pieces = pieces;
    if let Some(first) = pieces.first_mut()
        && !first.starts_with('/')
        && !(first.is_empty() && path.starts_with("$request_uri"))
    {
        first.insert(0, '/');
    }
    Ok((scheme, authority, pieces))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(pairs: &[(&str, &str)]) -> (Option<Mirror>, usize) {
        let map = pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned()))
            .collect();
        let (m, p) = parse(&map);
        (m, p.len())
    }

    #[test]
    fn targets_with_request_uri() {
        let (m, problems) = mirror(&[("mirror-target", "https://test.env.com:8443$request_uri")]);
        assert_eq!(problems, 0);
        let m = m.expect("a mirror");
        assert_eq!(m.scheme, Scheme::HTTPS);
        assert_eq!(m.authority.as_str(), "test.env.com:8443");
        assert_eq!(m.host, "test.env.com");
        assert!(m.body);
        assert_eq!(m.path_and_query("/a?b=1"), "/a?b=1");

        let (m, _) = mirror(&[
            ("mirror-target", "http://10.0.0.1/copy$request_uri"),
            ("mirror-host", "copy.internal"),
            ("mirror-request-body", "off"),
        ]);
        let m = m.expect("a mirror");
        assert_eq!(m.path_and_query("/x"), "/copy/x");
        assert_eq!(m.host, "copy.internal");
        assert!(!m.body);
        let (m, _) = mirror(&[("mirror-target", "http://10.0.0.1")]);
        assert_eq!(m.map(|m| m.path_and_query("/x")), Some("/".to_owned()));
    }

    #[test]
    fn invalid_targets_are_reported() {
        for bad in [
            "ftp://x/",
            "http://$host/",
            "http://a/$remote_addr",
            "http://a b/",
        ] {
            let (m, problems) = mirror(&[("mirror-target", bad)]);
            assert!(m.is_none() && problems == 1, "{bad}");
        }
        assert_eq!(mirror(&[("mirror-host", "x")]).1, 1);
    }
}
