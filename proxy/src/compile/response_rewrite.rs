//! `proxy-cookie-domain`, `proxy-cookie-path` and `proxy-redirect-from`/`-to`: response headers
//! rewritten as nginx's `proxy_cookie_domain`, `proxy_cookie_path` and `proxy_redirect` do,
//! with literal values only (no regexes, no variables).

use std::collections::BTreeMap;

use http::header::{self, HeaderMap, HeaderValue};

use super::canary::PREFIX;

const NAMES: &[&str] = &[
    "proxy-cookie-domain",
    "proxy-cookie-path",
    "proxy-redirect-from",
    "proxy-redirect-to",
];

pub fn handles(name: &str) -> bool {
    NAMES.contains(&name)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseRewrite {
    /// The Domain attribute to replace (lower case, no leading dot), and its replacement.
    cookie_domain: Option<(String, String)>,
    /// The Path attribute prefix to replace, and its replacement.
    cookie_path: Option<(String, String)>,
    /// The Location / Refresh URL prefix to replace, and its replacement.
    redirect: Option<(String, String)>,
}

/// `None` when nothing is rewritten; problems are `(annotation, reason)`.
pub fn parse(
    annotations: &BTreeMap<String, String>,
) -> (Option<ResponseRewrite>, Vec<(String, String)>) {
    let get = |name: &str| {
        annotations
            .get(&format!("{PREFIX}{name}"))
            .map(|v| v.trim())
    };
    let mut problems = Vec::new();
    let mut rewrite = ResponseRewrite::default();
    for name in ["proxy-cookie-domain", "proxy-cookie-path"] {
        let Some(value) = get(name) else { continue };
        if value == "off" {
            continue;
        }
        let words: Vec<&str> = value.split_whitespace().collect();
        let literal = |w: &str| {
            !w.starts_with('~')
                && w.bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'$' | b';' | b'"' | b','))
        };
        match words.as_slice() {
            [from, to] if literal(from) && literal(to) => {
                if name == "proxy-cookie-domain" {
                    let from = from.trim_start_matches('.').to_ascii_lowercase();
                    rewrite.cookie_domain = Some((from, (*to).to_owned()));
                } else {
                    rewrite.cookie_path = Some(((*from).to_owned(), (*to).to_owned()));
                }
            }
            _ => problems.push((
                format!("{PREFIX}{name}"),
                format!("{value:?} is not \"off\" or two literal values \"FROM TO\"; ignored"),
            )),
        }
    }
    let from = get("proxy-redirect-from");
    let to = get("proxy-redirect-to");
    let url = |v: &str| {
        !v.is_empty() && !v.starts_with('~') && v.bytes().all(|b| b.is_ascii_graphic() && b != b'$')
    };
    match (from, to) {
        // ingress-nginx's defaults: "off"; nginx's "default" replaces the proxy_pass URL
        // `http://upstream_balancer/`, which no upstream ever sends.
        (None | Some("off" | "default"), _) => {}
        (Some(_), None | Some("off")) => {}
        (Some(from), Some(to)) if url(from) && url(to) => {
            rewrite.redirect = Some((from.to_owned(), to.to_owned()));
        }
        (Some(from), Some(to)) => {
            let bad = if url(from) {
                ("proxy-redirect-to", to)
            } else {
                ("proxy-redirect-from", from)
            };
            problems.push((
                format!("{PREFIX}{}", bad.0),
                format!(
                    "{:?} is not a literal URL or path (no regex, no variables); no redirect is rewritten",
                    bad.1
                ),
            ));
        }
    }
    let any = rewrite != ResponseRewrite::default();
    (any.then_some(rewrite), problems)
}

impl ResponseRewrite {
    /// Rewrites `Set-Cookie`, `Location` and `Refresh` in a response's headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if (self.cookie_domain.is_some() || self.cookie_path.is_some())
            && let header::Entry::Occupied(mut entry) = headers.entry(header::SET_COOKIE)
        {
            for value in entry.iter_mut() {
                if let Some(new) = value.to_str().ok().and_then(|v| self.cookie(v)) {
                    *value = new;
                }
            }
        }
        if let Some((from, to)) = &self.redirect {
            if let Some(location) = headers.get_mut(header::LOCATION)
                && let Some(new) = location
                    .to_str()
                    .ok()
                    .and_then(|v| v.strip_prefix(from.as_str()))
                    .and_then(|rest| HeaderValue::from_str(&format!("{to}{rest}")).ok())
            {
                *location = new;
            }
            if let Some(refresh) = headers.get_mut(header::REFRESH)
                && let Some(new) = refresh
                    .to_str()
                    .ok()
                    .and_then(|v| rewrite_refresh(v, from, to))
            {
                *refresh = new;
            }
        }
    }

    /// One Set-Cookie value with its Domain and Path attributes rewritten, when one changed.
    fn cookie(&self, value: &str) -> Option<HeaderValue> {
        let mut changed = false;
        let mut out = String::with_capacity(value.len() + 16);
        for (i, part) in value.split(';').enumerate() {
            if i > 0 {
                out.push(';');
            }
            let rewritten =
                (i > 0)
                    .then(|| part.split_once('='))
                    .flatten()
                    .and_then(|(name, attr)| {
                        let name = name.trim();
                        if name.eq_ignore_ascii_case("domain") {
                            let (from, to) = self.cookie_domain.as_ref()?;
                            // nginx compares the whole domain, without case, a leading dot aside.
                            let attr = attr.trim();
                            let (dot, bare) = match attr.strip_prefix('.') {
                                Some(bare) => (".", bare),
                                None => ("", attr),
                            };
                            bare.eq_ignore_ascii_case(from)
                                .then(|| format!(" {name}={dot}{to}"))
                        } else if name.eq_ignore_ascii_case("path") {
                            // A prefix, with case.
                            let (from, to) = self.cookie_path.as_ref()?;
                            let rest = attr.trim().strip_prefix(from.as_str())?;
                            Some(format!(" {name}={to}{rest}"))
                        } else {
                            None
                        }
                    });
            match rewritten {
                Some(new) => {
                    changed = true;
                    out.push_str(&new);
                }
                None => out.push_str(part),
            }
        }
        changed.then(|| HeaderValue::from_str(&out).ok()).flatten()
    }
}

/// nginx rewrites the URL after `url=` in a Refresh header.
fn rewrite_refresh(value: &str, from: &str, to: &str) -> Option<HeaderValue> {
    let at = value.to_ascii_lowercase().find("url=")? + 4;
    let rest = value[at..].strip_prefix(from)?;
    HeaderValue::from_str(&format!("{}{to}{rest}", &value[..at])).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(pairs: &[(&str, &str)]) -> (Option<ResponseRewrite>, usize) {
        let map = pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned()))
            .collect();
        let (rewrite, problems) = parse(&map);
        (rewrite, problems.len())
    }

    fn headers_after(
        rewrite: &ResponseRewrite,
        pairs: &[(&'static str, &'static str)],
    ) -> Vec<String> {
        let mut headers = HeaderMap::new();
        for (n, v) in pairs {
            headers.append(*n, HeaderValue::from_static(v));
        }
        rewrite.apply(&mut headers);
        headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
            .collect()
    }

    #[test]
    fn cookies_are_rewritten_as_nginx_does() {
        let (r, problems) = rewrite(&[
            ("proxy-cookie-domain", "internal.local example.com"),
            ("proxy-cookie-path", "/two/ /"),
        ]);
        assert_eq!(problems, 0);
        let r = r.unwrap_or_default();
        assert_eq!(
            headers_after(
                &r,
                &[
                    (
                        "set-cookie",
                        "a=1; Domain=.Internal.local; Path=/two/x/; HttpOnly"
                    ),
                    ("set-cookie", "b=2; domain=other.local; path=/one/"),
                    ("set-cookie", "c=Domain=internal.local"),
                ]
            ),
            [
                "set-cookie: a=1; Domain=.example.com; Path=/x/; HttpOnly",
                "set-cookie: b=2; domain=other.local; path=/one/",
                "set-cookie: c=Domain=internal.local",
            ]
        );
    }

    #[test]
    fn redirects_are_rewritten_by_prefix() {
        let (r, problems) = rewrite(&[
            ("proxy-redirect-from", "http://backend:8080/"),
            ("proxy-redirect-to", "https://shop.example/"),
        ]);
        assert_eq!(problems, 0);
        let r = r.unwrap_or_default();
        assert_eq!(
            headers_after(
                &r,
                &[
                    ("location", "http://backend:8080/cart?x=1"),
                    ("refresh", "5; url=http://backend:8080/a"),
                ]
            ),
            [
                "location: https://shop.example/cart?x=1",
                "refresh: 5; url=https://shop.example/a",
            ]
        );
        assert_eq!(
            headers_after(&r, &[("location", "http://other/cart")]),
            ["location: http://other/cart"]
        );
    }

    #[test]
    fn off_default_and_invalid_values() {
        assert_eq!(
            rewrite(&[
                ("proxy-cookie-domain", "off"),
                ("proxy-redirect-from", "default")
            ]),
            (None, 0)
        );
        assert_eq!(rewrite(&[("proxy-redirect-from", "http://a/")]), (None, 0));
        assert_eq!(rewrite(&[("proxy-cookie-path", "/only-one")]).1, 1);
        assert_eq!(
            rewrite(&[("proxy-cookie-domain", "~^(.*)$ $1.example")]).1,
            1
        );
        assert_eq!(
            rewrite(&[
                ("proxy-redirect-from", "http://a/"),
                ("proxy-redirect-to", "https://$host/")
            ])
            .1,
            1
        );
    }
}
