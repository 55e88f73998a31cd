//! The controller ConfigMap keys that shape serving: client addresses and forwarded headers,
//! TLS, downstream and upstream connections, global defaults and answers. Each is parsed here
//! into a typed value; a bad value keeps ingress-nginx's default and is reported naming the key.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, StatusCode};

use super::config::ConfigProblem;
use super::forwarding::Forwarding;
use super::policy::{Cidr, parse_size};
use super::tls_settings::{self, TlsSettings};

/// The keys this module reads.
pub const KEYS: &[&str] = &[
    "use-forwarded-headers",
    "compute-full-forwarded-for",
    "forwarded-for-header",
    "proxy-real-ip-cidr",
    "enable-real-ip",
    "use-proxy-protocol",
    "proxy-protocol-header-timeout",
    "ssl-protocols",
    "ssl-ciphers",
    "ssl-prefer-server-ciphers",
    "use-http2",
    "proxy-connect-timeout",
    "proxy-body-size",
    "client-header-timeout",
    "keep-alive",
    "keep-alive-requests",
    "http2-max-concurrent-streams",
    "upstream-keepalive-connections",
    "upstream-keepalive-timeout",
    "limit-req-status-code",
    "limit-conn-status-code",
    "server-tokens",
    "hide-headers",
    "load-balance",
];

/// How client connections are accepted and kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// `client-header-timeout` and `keep-alive` share hyper's one header timer, which runs from
    /// when a connection is ready for a request until its headers are in: the longer of the two.
    pub header_timeout: Duration,
    /// `keep-alive: 0` turns HTTP/1.1 keep-alive off.
    pub keep_alive: bool,
    /// `keep-alive-requests`: requests per HTTP/1.1 connection before it is closed.
    pub keep_alive_requests: u32,
    /// `http2-max-concurrent-streams`.
    pub http2_max_concurrent_streams: u32,
    /// `use-proxy-protocol`: read a PROXY protocol header first; refuse connections without.
    pub proxy_protocol: bool,
    /// `proxy-protocol-header-timeout`: how long the header may take.
    pub proxy_protocol_timeout: Duration,
}

impl Default for Listener {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(75),
            keep_alive: true,
            keep_alive_requests: 1000,
            http2_max_concurrent_streams: 128,
            proxy_protocol: false,
            proxy_protocol_timeout: Duration::from_secs(5),
        }
    }
}

/// The upstream connection pools.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamPool {
    /// `proxy-connect-timeout`.
    pub connect_timeout: Duration,
    /// `upstream-keepalive-connections`: idle connections kept per endpoint (nginx keeps them
    /// per worker for the whole upstream; here per serving thread and endpoint).
    pub idle_per_endpoint: usize,
    /// `upstream-keepalive-timeout`.
    pub idle_timeout: Duration,
}

impl Default for UpstreamPool {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            idle_per_endpoint: 320,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// `load-balance`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadBalance {
    #[default]
    RoundRobin,
    Ewma,
}

/// Everything of this module, with ingress-nginx's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingConfig {
    pub forwarding: Forwarding,
    pub tls: TlsSettings,
    pub listener: Listener,
    pub upstream: UpstreamPool,
    /// `proxy-body-size` for Ingresses without the annotation; 0 is unlimited.
    pub body_limit: u64,
    /// `limit-req-status-code`: the answer beyond `limit-rps`/`limit-rpm`.
    pub limit_req_status: StatusCode,
    /// `limit-conn-status-code`: the answer beyond `limit-connections`.
    pub limit_conn_status: StatusCode,
    /// `server-tokens`: a `Server` header naming Switchyard and its version; off, responses
    /// carry no `Server` header at all (ingress-nginx clears it).
    pub server_tokens: bool,
    /// `hide-headers`: upstream response headers the client never sees.
    pub hide_headers: Vec<HeaderName>,
    /// `load-balance`.
    pub load_balance: LoadBalance,
}

impl Default for ServingConfig {
    fn default() -> Self {
        Self {
            forwarding: Forwarding::default(),
            tls: TlsSettings::default(),
            listener: Listener::default(),
            upstream: UpstreamPool::default(),
            body_limit: 1 << 20,
            limit_req_status: StatusCode::SERVICE_UNAVAILABLE,
            limit_conn_status: StatusCode::SERVICE_UNAVAILABLE,
            server_tokens: false,
            hide_headers: Vec::new(),
            load_balance: LoadBalance::RoundRobin,
        }
    }
}

/// Reads one key with `parse`; a value it refuses is reported and `None` returned.
struct Reader<'a> {
    data: &'a BTreeMap<String, String>,
    problems: &'a mut Vec<ConfigProblem>,
}

impl Reader<'_> {
    fn get<T>(
        &mut self,
        key: &str,
        expected: &str,
        default: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let value = self.data.get(key)?;
        let parsed = parse(value.trim());
        if parsed.is_none() {
            self.problems
                .push(super::config::invalid(key, value, expected, default));
        }
        parsed
    }

    fn flag(&mut self, key: &str, default: bool) -> bool {
        self.get(
            key,
            "true or false",
            &default.to_string(),
            super::config::parse_bool,
        )
        .unwrap_or(default)
    }

    fn seconds(&mut self, key: &str, default: u64, zero_allowed: bool) -> Duration {
        let expected = if zero_allowed {
            "a number of seconds"
        } else {
            "a positive number of seconds"
        };
        let seconds = self.get(key, expected, &default.to_string(), |v| {
            v.parse::<u64>().ok().filter(|s| zero_allowed || *s > 0)
        });
        Duration::from_secs(seconds.unwrap_or(default))
    }

    fn status(&mut self, key: &str) -> StatusCode {
        self.get(key, "an HTTP status from 400 to 599", "503", |v| {
            v.parse::<u16>()
                .ok()
                .filter(|c| (400..=599).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
        })
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
    }

    fn unsupported_part(&mut self, key: &str, parts: &[String], what: &str) {
        if !parts.is_empty() {
            self.problems.push(ConfigProblem {
                key: key.to_owned(),
                reason: "UnsupportedConfigValue",
                message: format!(
                    "ConfigMap key {key:?}: {} {what}; left out",
                    parts.join(", ")
                ),
            });
        }
    }
}

pub fn parse(data: &BTreeMap<String, String>, problems: &mut Vec<ConfigProblem>) -> ServingConfig {
    let mut config = ServingConfig::default();
    let mut r = Reader { data, problems };

    let f = &mut config.forwarding;
    f.use_forwarded_headers = r.flag("use-forwarded-headers", false);
    f.compute_full_forwarded_for = r.flag("compute-full-forwarded-for", false);
    f.enable_real_ip = r.flag("enable-real-ip", false);
    f.proxy_protocol = r.flag("use-proxy-protocol", false);
    if let Some(name) = r.get(
        "forwarded-for-header",
        "a header name",
        "X-Forwarded-For",
        |v| HeaderName::from_bytes(v.as_bytes()).ok(),
    ) {
        f.forwarded_for_header = name;
    }
    if let Some(cidrs) = r.get(
        "proxy-real-ip-cidr",
        "a comma-separated list of CIDR blocks",
        "0.0.0.0/0",
        |v| {
            v.split(',')
                .filter(|c| !c.trim().is_empty())
                .map(|c| Cidr::parse(c).ok())
                .collect::<Option<Vec<_>>>()
                .filter(|c| !c.is_empty())
        },
    ) {
        f.trusted = cidrs;
    }

    let l = &mut config.listener;
    l.proxy_protocol = config.forwarding.proxy_protocol;
    if let Some(timeout) = r.get(
        "proxy-protocol-header-timeout",
        "a duration such as 5s",
        "5s",
        go_duration,
    ) {
        l.proxy_protocol_timeout = timeout;
    }
    let header = r.seconds("client-header-timeout", 60, false);
    let keep_alive = r.seconds("keep-alive", 75, true);
    l.keep_alive = !keep_alive.is_zero();
    l.header_timeout = header.max(keep_alive);
    l.keep_alive_requests = r
        .get("keep-alive-requests", "a positive number", "1000", |v| {
            v.parse::<u32>().ok().filter(|n| *n > 0)
        })
        .unwrap_or(1000);
    l.http2_max_concurrent_streams = r
        .get(
            "http2-max-concurrent-streams",
            "a positive number",
            "128",
            |v| v.parse::<u32>().ok().filter(|n| *n > 0),
        )
        .unwrap_or(128);

    let t = &mut config.tls;
    t.prefer_server_ciphers = r.flag("ssl-prefer-server-ciphers", true);
    t.http2 = r.flag("use-http2", true);
    if let Some(value) = data.get("ssl-protocols") {
        match tls_settings::parse_protocols(value) {
            Ok((versions, unsupported)) => {
                t.versions = versions;
                r.unsupported_part("ssl-protocols", &unsupported, "not implemented by rustls");
            }
            Err(why) => r.problems.push(super::config::invalid(
                "ssl-protocols",
                value,
                &format!("usable ({why})"),
                "TLSv1.2 TLSv1.3",
            )),
        }
    }
    if let Some(value) = data.get("ssl-ciphers") {
        match tls_settings::parse_ciphers(value) {
            Ok((suites, unsupported)) => {
                t.tls12_suites = suites;
                r.unsupported_part(
                    "ssl-ciphers",
                    &unsupported,
                    "not TLS 1.2 suites rustls implements (OpenSSL keywords and exclusions are not evaluated)",
                );
            }
            Err(why) => r.problems.push(super::config::invalid(
                "ssl-ciphers",
                value,
                &format!("usable ({why})"),
                "ingress-nginx's default suites",
            )),
        }
    }

    let u = &mut config.upstream;
    u.connect_timeout = r.seconds("proxy-connect-timeout", 5, false);
    u.idle_per_endpoint = r
        .get(
            "upstream-keepalive-connections",
            "a number of connections",
            "320",
            |v| v.parse::<usize>().ok(),
        )
        .unwrap_or(320);
    u.idle_timeout = r.seconds("upstream-keepalive-timeout", 60, false);

    if let Some(limit) = r.get(
        "proxy-body-size",
        "a size such as 1m, 512k or 0 (unlimited)",
        "1m",
        parse_size,
    ) {
        config.body_limit = limit;
    }
    config.limit_req_status = r.status("limit-req-status-code");
    config.limit_conn_status = r.status("limit-conn-status-code");
    config.server_tokens = r.flag("server-tokens", false);
    if let Some(value) = data.get("hide-headers") {
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(header) => config.hide_headers.push(header),
                Err(_) => r.problems.push(super::config::invalid(
                    "hide-headers",
                    name,
                    "a header name",
                    "not hidden",
                )),
            }
        }
    }
    config.load_balance = r
        .get(
            "load-balance",
            "round_robin or ewma",
            "round_robin",
            |v| match v {
                "round_robin" => Some(LoadBalance::RoundRobin),
                "ewma" => Some(LoadBalance::Ewma),
                _ => None,
            },
        )
        .unwrap_or_default();
    config
}

/// A Go duration as ingress-nginx reads `proxy-protocol-header-timeout`: `5s`, `500ms`, `1m`
/// (a bare number is seconds).
fn go_duration(value: &str) -> Option<Duration> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().ok()?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        _ => return None,
    };
    (!duration.is_zero()).then_some(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::tls_settings::TlsVersion;

    fn parsed(pairs: &[(&str, &str)]) -> (ServingConfig, Vec<ConfigProblem>) {
        let data = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut problems = Vec::new();
        (parse(&data, &mut problems), problems)
    }

    #[test]
    fn defaults_are_ingress_nginx_defaults() {
        let (config, problems) = parsed(&[]);
        assert!(problems.is_empty());
        assert_eq!(config, ServingConfig::default());
        assert_eq!(config.body_limit, 1 << 20);
        assert_eq!(config.listener.header_timeout, Duration::from_secs(75));
        assert!(!config.forwarding.use_forwarded_headers && !config.server_tokens);
    }

    #[test]
    fn every_key_is_typed() {
        let (config, problems) = parsed(&[
            ("use-forwarded-headers", "true"),
            ("compute-full-forwarded-for", "true"),
            ("forwarded-for-header", "CF-Connecting-IP"),
            ("proxy-real-ip-cidr", "10.0.0.0/8, 192.168.0.0/16"),
            ("enable-real-ip", "true"),
            ("use-proxy-protocol", "true"),
            ("proxy-protocol-header-timeout", "500ms"),
            ("ssl-protocols", "TLSv1.3"),
            ("ssl-ciphers", "ECDHE-RSA-AES128-GCM-SHA256"),
            ("ssl-prefer-server-ciphers", "false"),
            ("use-http2", "false"),
            ("proxy-connect-timeout", "2"),
            ("proxy-body-size", "8m"),
            ("client-header-timeout", "10"),
            ("keep-alive", "0"),
            ("keep-alive-requests", "3"),
            ("http2-max-concurrent-streams", "16"),
            ("upstream-keepalive-connections", "0"),
            ("upstream-keepalive-timeout", "5"),
            ("limit-req-status-code", "429"),
            ("limit-conn-status-code", "503"),
            ("server-tokens", "true"),
            ("hide-headers", "X-Powered-By, Server"),
            ("load-balance", "ewma"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let f = &config.forwarding;
        assert!(f.use_forwarded_headers && f.compute_full_forwarded_for && f.enable_real_ip);
        assert_eq!(f.forwarded_for_header, "cf-connecting-ip");
        assert_eq!(f.trusted.len(), 2);
        assert!(config.listener.proxy_protocol);
        assert_eq!(
            config.listener.proxy_protocol_timeout,
            Duration::from_millis(500)
        );
        assert_eq!(config.tls.versions, [TlsVersion::Tls13]);
        assert_eq!(config.tls.tls12_suites.len(), 1);
        assert!(!config.tls.prefer_server_ciphers && !config.tls.http2);
        assert_eq!(config.upstream.connect_timeout, Duration::from_secs(2));
        assert_eq!(config.body_limit, 8 << 20);
        assert!(!config.listener.keep_alive);
        assert_eq!(config.listener.header_timeout, Duration::from_secs(10));
        assert_eq!(config.listener.keep_alive_requests, 3);
        assert_eq!(config.listener.http2_max_concurrent_streams, 16);
        assert_eq!(config.upstream.idle_per_endpoint, 0);
        assert_eq!(config.upstream.idle_timeout, Duration::from_secs(5));
        assert_eq!(config.limit_req_status, StatusCode::TOO_MANY_REQUESTS);
        assert!(config.server_tokens);
        assert_eq!(config.hide_headers, ["x-powered-by", "server"]);
        assert_eq!(config.load_balance, LoadBalance::Ewma);
    }

    #[test]
    fn bad_values_keep_the_default_and_name_the_key() {
        let (config, problems) = parsed(&[
            ("use-forwarded-headers", "yes"),
            ("forwarded-for-header", "Bad Header"),
            ("proxy-real-ip-cidr", "10.0.0.0/8, nonsense"),
            ("proxy-protocol-header-timeout", "soon"),
            ("ssl-protocols", "SSLv3"),
            ("ssl-ciphers", "HIGH:!aNULL"),
            ("proxy-connect-timeout", "0"),
            ("proxy-body-size", "huge"),
            ("keep-alive-requests", "-1"),
            ("limit-req-status-code", "200"),
            ("hide-headers", "ok, not ok"),
            ("load-balance", "least_conn"),
        ]);
        assert_eq!(config.forwarding, Forwarding::default());
        assert_eq!(config.tls, TlsSettings::default());
        assert_eq!(config.upstream.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.body_limit, 1 << 20);
        assert_eq!(config.limit_req_status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(config.hide_headers, ["ok"]);
        assert_eq!(config.load_balance, LoadBalance::RoundRobin);
        let mut keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "forwarded-for-header",
                "hide-headers",
                "keep-alive-requests",
                "limit-req-status-code",
                "load-balance",
                "proxy-body-size",
                "proxy-connect-timeout",
                "proxy-protocol-header-timeout",
                "proxy-real-ip-cidr",
                "ssl-ciphers",
                "ssl-protocols",
                "use-forwarded-headers",
            ]
        );
        assert!(problems.iter().all(|p| p.reason == "InvalidConfigValue"));
    }

    #[test]
    fn what_rustls_cannot_do_is_reported_and_the_rest_applies() {
        let (config, problems) = parsed(&[
            ("ssl-protocols", "TLSv1.1 TLSv1.2"),
            ("ssl-ciphers", "ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA"),
        ]);
        assert_eq!(config.tls.versions, [TlsVersion::Tls12]);
        assert_eq!(config.tls.tls12_suites.len(), 1);
        let reasons: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("ssl-protocols", "UnsupportedConfigValue"),
                ("ssl-ciphers", "UnsupportedConfigValue")
            ]
        );
        assert!(problems[1].message.contains("AES128-SHA"));
    }
}
