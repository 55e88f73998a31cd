//! ingress-nginx's upstream traffic annotations: timeouts, retries (`proxy-next-upstream*`),
//! `load-balance`, `limit-rate*`, buffering, `proxy-http-version` and
//! `connection-proxy-header`, parsed into one typed value with ingress-nginx's defaults.
//! An Ingress without any of them gets no value at all, and the proxy uses
//! [`UpstreamPolicy::DEFAULT`].

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderValue, Method, StatusCode};

use super::canary::PREFIX;
use super::policy::parse_size;

/// The annotations this module reads.
const NAMES: &[&str] = &[
    "proxy-connect-timeout",
    "proxy-send-timeout",
    "proxy-next-upstream",
    "proxy-next-upstream-timeout",
    "proxy-next-upstream-tries",
    "load-balance",
    "limit-rate",
    "limit-rate-after",
    "proxy-buffering",
    "proxy-request-buffering",
    "client-body-buffer-size",
    "proxy-buffer-size",
    "proxy-buffers-number",
    "proxy-max-temp-file-size",
    "proxy-http-version",
    "connection-proxy-header",
];

pub fn handles(name: &str) -> bool {
    NAMES.contains(&name)
}

/// When a failed attempt is passed to the next endpoint (nginx's `proxy_next_upstream`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextUpstream {
    /// A bit per condition, see [`Condition`].
    on: u16,
    /// `non_idempotent`: POST, PATCH and LOCK are retried too once sent.
    pub non_idempotent: bool,
}

/// Why an attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Connecting, sending the request or reading the response head failed.
    Error = 1,
    /// Connecting, sending or waiting for the response head took too long.
    Timeout = 1 << 1,
    /// The response head was not valid HTTP.
    InvalidHeader = 1 << 2,
    Http500 = 1 << 3,
    Http502 = 1 << 4,
    Http503 = 1 << 5,
    Http504 = 1 << 6,
    Http403 = 1 << 7,
    Http404 = 1 << 8,
    Http429 = 1 << 9,
}

impl Condition {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "error" => Self::Error,
            "timeout" => Self::Timeout,
            "invalid_header" => Self::InvalidHeader,
            "http_500" => Self::Http500,
            "http_502" => Self::Http502,
            "http_503" => Self::Http503,
            "http_504" => Self::Http504,
            "http_403" => Self::Http403,
            "http_404" => Self::Http404,
            "http_429" => Self::Http429,
            _ => return None,
        })
    }

    /// The condition a response status is, when it is one.
    pub fn of_status(status: StatusCode) -> Option<Self> {
        Some(match status.as_u16() {
            500 => Self::Http500,
            502 => Self::Http502,
            503 => Self::Http503,
            504 => Self::Http504,
            403 => Self::Http403,
            404 => Self::Http404,
            429 => Self::Http429,
            _ => return None,
        })
    }
}

impl NextUpstream {
    /// ingress-nginx's default: `error timeout`.
    pub const DEFAULT: Self = Self {
        on: Condition::Error as u16 | Condition::Timeout as u16,
        non_idempotent: false,
    };

    pub fn on(&self, condition: Condition) -> bool {
        self.on & condition as u16 != 0
    }

    /// Any status condition at all (so that a response is looked at).
    pub fn any_status(&self) -> bool {
        self.on
            & !(Condition::Error as u16
                | Condition::Timeout as u16
                | Condition::InvalidHeader as u16)
            != 0
    }

    /// nginx: a request with a non-idempotent method is not passed on once it was sent.
    pub fn may_resend(&self, method: &Method) -> bool {
        self.non_idempotent || !matches!(method.as_str(), "POST" | "PATCH" | "LOCK")
    }

    fn parse(value: &str) -> Result<Self, String> {
        let mut next = Self {
            on: 0,
            non_idempotent: false,
        };
        let mut off = false;
        for word in value.split_whitespace() {
            match word {
                "off" => off = true,
                "non_idempotent" => next.non_idempotent = true,
                _ => match Condition::parse(word) {
                    Some(c) => next.on |= c as u16,
                    None => {
                        return Err(format!(
                            "{word:?} is not one of error, timeout, invalid_header, http_500, http_502, http_503, http_504, http_403, http_404, http_429, non_idempotent, off"
                        ));
                    }
                },
            }
        }
        if value.split_whitespace().next().is_none() {
            return Err("empty".to_owned());
        }
        if off {
            next.on = 0;
        }
        Ok(next)
    }
}

/// `load-balance`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Balance {
    #[default]
    RoundRobin,
    /// Peak-EWMA of response latency, choosing the better of two endpoints.
    Ewma,
}

/// `limit-rate` / `limit-rate-after`, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub bytes_per_second: u64,
    pub after: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamPolicy {
    /// `proxy-connect-timeout` (ingress-nginx's default 5 s is the clients' own).
    pub connect_timeout: Option<Duration>,
    /// `proxy-send-timeout`: the longest the upstream may take to accept one piece of the
    /// request body. Only watched when the annotation is set.
    pub send_timeout: Option<Duration>,
    pub next_upstream: NextUpstream,
    /// `proxy-next-upstream-timeout`: no new attempt starts later than this after the first.
    pub next_upstream_timeout: Option<Duration>,
    /// `proxy-next-upstream-tries`: attempts in all; 0 is one per endpoint.
    pub tries: u32,
    pub balance: Balance,
    pub limit_rate: Option<RateLimit>,
    /// `proxy-request-buffering: on`: the whole body is read before the upstream is asked.
    pub request_buffering: bool,
    /// `proxy-http-version: "1.0"`.
    pub http10: bool,
    /// `connection-proxy-header`: the Connection header sent upstream.
    pub connection: Option<HeaderValue>,
}

impl UpstreamPolicy {
    /// ingress-nginx's defaults, used for Ingresses that set none of these annotations.
    pub const DEFAULT: Self = Self {
        connect_timeout: None,
        send_timeout: None,
        next_upstream: NextUpstream::DEFAULT,
        next_upstream_timeout: None,
        tries: 3,
        balance: Balance::RoundRobin,
        limit_rate: None,
        request_buffering: false,
        http10: false,
        connection: None,
    };

    /// How many attempts a request may make to an upstream with `endpoints` endpoints.
    pub fn attempts(&self, endpoints: usize) -> usize {
        match self.tries {
            0 => endpoints,
            n => n as usize,
        }
    }
}

/// `None` when the Ingress sets none of these annotations; problems are
/// `(annotation, reason)`, each value that does not parse keeping ingress-nginx's default.
pub fn parse(
    annotations: &BTreeMap<String, String>,
) -> (Option<UpstreamPolicy>, Vec<(String, String)>) {
    let mut policy = UpstreamPolicy::DEFAULT;
    let mut problems = Vec::new();
    let mut any = false;
    let mut rate = 0u64;
    let mut rate_after = 0u64;
    for (key, value) in annotations {
        let Some(name) = key.strip_prefix(PREFIX).filter(|n| handles(n)) else {
            continue;
        };
        any = true;
        let value = value.trim();
        let mut problem = |why: String| problems.push((key.clone(), why));
        let seconds = |value: &str| {
            value
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
        };
        match name {
            "proxy-connect-timeout" => match seconds(value) {
                Some(t) => policy.connect_timeout = Some(t),
                None => problem(format!(
                    "{value:?} is not a positive number of seconds; the default 5 applies"
                )),
            },
            "proxy-send-timeout" => match seconds(value) {
                Some(t) => policy.send_timeout = Some(t),
                None => problem(format!(
                    "{value:?} is not a positive number of seconds; the default 60 applies"
                )),
            },
            "proxy-next-upstream" => match NextUpstream::parse(value) {
                Ok(next) => policy.next_upstream = next,
                Err(why) => problem(format!("{why}; the default \"error timeout\" applies")),
            },
            "proxy-next-upstream-timeout" => match value.parse::<u64>() {
                Ok(0) => {}
                Ok(s) => policy.next_upstream_timeout = Some(Duration::from_secs(s)),
                Err(_) => problem(format!(
                    "{value:?} is not a number of seconds; no limit applies"
                )),
            },
            "proxy-next-upstream-tries" => match value.parse::<u32>() {
                Ok(n) => policy.tries = n,
                Err(_) => problem(format!(
                    "{value:?} is not a whole number; the default 3 applies"
                )),
            },
            "load-balance" => match value {
                "round_robin" => policy.balance = Balance::RoundRobin,
                "ewma" => policy.balance = Balance::Ewma,
                _ => problem(format!(
                    "{value:?} is not round_robin or ewma; round_robin applies"
                )),
            },
            // ingress-nginx reads both as whole kilobytes (it writes `limit_rate {n}k`).
            "limit-rate" | "limit-rate-after" => match value.parse::<u64>() {
                Ok(kb) if name == "limit-rate" => rate = kb.saturating_mul(1024),
                Ok(kb) => rate_after = kb.saturating_mul(1024),
                Err(_) => problem(format!(
                    "{value:?} is not a whole number of kilobytes; no limit applies"
                )),
            },
            "proxy-request-buffering" | "proxy-buffering" => match value {
                "on" | "off" if name == "proxy-request-buffering" => {
                    policy.request_buffering = value == "on"
                }
                "on" | "off" => {}
                _ => problem(format!("{value:?} is not on or off; ignored")),
            },
            "client-body-buffer-size" | "proxy-buffer-size" | "proxy-max-temp-file-size"
                if parse_size(value).is_none() =>
            {
                problem(format!(
                    "{value:?} is not a size (such as 8k or 1m); ignored"
                ));
            }
            "proxy-buffers-number" if !value.parse::<u32>().is_ok_and(|n| n > 0) => {
                problem(format!("{value:?} is not a positive whole number; ignored"));
            }
            "proxy-http-version" => match value {
                "1.0" => policy.http10 = true,
                "1.1" => policy.http10 = false,
                _ => problem(format!("{value:?} is not 1.0 or 1.1; 1.1 applies")),
            },
            "connection-proxy-header" => {
                let token_list = !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b',' | b' '));
                match HeaderValue::from_str(value) {
                    Ok(v) if token_list => policy.connection = Some(v),
                    _ => problem(format!(
                        "{value:?} is not a Connection header value (such as keep-alive or close); ignored"
                    )),
                }
            }
            _ => {}
        }
    }
    if rate > 0 {
        policy.limit_rate = Some(RateLimit {
            bytes_per_second: rate,
            after: rate_after,
        });
    }
    (any.then_some(policy), problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(pairs: &[(&str, &str)]) -> (Option<UpstreamPolicy>, Vec<String>) {
        let map = pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned()))
            .collect();
        let (policy, problems) = parse(&map);
        (policy, problems.into_iter().map(|(a, _)| a).collect())
    }

    #[test]
    fn no_annotation_no_policy() {
        assert_eq!(parsed(&[("rewrite-target", "/")]), (None, vec![]));
    }

    #[test]
    fn next_upstream_conditions() {
        let (policy, problems) = parsed(&[
            ("proxy-next-upstream", "error http_502 non_idempotent"),
            ("proxy-next-upstream-tries", "5"),
            ("proxy-next-upstream-timeout", "7"),
        ]);
        assert!(problems.is_empty());
        let policy = policy.unwrap_or(UpstreamPolicy::DEFAULT);
        let next = policy.next_upstream;
        assert!(next.on(Condition::Error) && next.on(Condition::Http502));
        assert!(!next.on(Condition::Timeout) && !next.on(Condition::Http503));
        assert!(next.any_status() && next.may_resend(&Method::POST));
        assert_eq!(policy.attempts(2), 5);
        assert_eq!(policy.next_upstream_timeout, Some(Duration::from_secs(7)));

        let (policy, _) = parsed(&[("proxy-next-upstream", "error off")]);
        let next = policy.map(|p| p.next_upstream);
        assert_eq!(next.map(|n| n.on(Condition::Error)), Some(false));
        assert!(!NextUpstream::DEFAULT.may_resend(&Method::POST));
        assert!(NextUpstream::DEFAULT.may_resend(&Method::PUT));
        assert!(!NextUpstream::DEFAULT.any_status());
        assert_eq!(UpstreamPolicy::DEFAULT.attempts(1), 3);
    }

    #[test]
    fn invalid_values_are_reported_and_keep_the_defaults() {
        let (policy, problems) = parsed(&[
            ("proxy-connect-timeout", "5s"),
            ("proxy-next-upstream", "error sometimes"),
            ("proxy-next-upstream-tries", "-1"),
            ("load-balance", "least_conn"),
            ("limit-rate", "100k"),
            ("proxy-http-version", "2"),
            ("connection-proxy-header", "close\r\nX-Evil: 1"),
            ("proxy-buffer-size", "4 k"),
            ("proxy-request-buffering", "yes"),
        ]);
        assert_eq!(problems.len(), 9, "{problems:?}");
        assert_eq!(policy, Some(UpstreamPolicy::DEFAULT));
    }

    #[test]
    fn typed_values() {
        let (policy, problems) = parsed(&[
            ("proxy-connect-timeout", "2"),
            ("proxy-send-timeout", "3"),
            ("load-balance", "ewma"),
            ("limit-rate", "8"),
            ("limit-rate-after", "16"),
            ("proxy-request-buffering", "on"),
            ("proxy-http-version", "1.0"),
            ("connection-proxy-header", "keep-alive"),
            ("proxy-buffers-number", "8"),
            ("proxy-max-temp-file-size", "0"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let policy = policy.unwrap_or(UpstreamPolicy::DEFAULT);
        assert_eq!(policy.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(policy.send_timeout, Some(Duration::from_secs(3)));
        assert_eq!(policy.balance, Balance::Ewma);
        assert_eq!(
            policy.limit_rate,
            Some(RateLimit {
                bytes_per_second: 8192,
                after: 16384
            })
        );
        assert!(policy.request_buffering && policy.http10);
        assert_eq!(
            policy.connection,
            Some(HeaderValue::from_static("keep-alive"))
        );
    }
}
