//! Per-Ingress policies from `nginx.ingress.kubernetes.io/*` annotations, parsed and validated
//! here, at compile time, into typed values: nothing of an annotation is ever spliced into
//! anything or interpreted at request time.
//!
//! Fail closed: an annotation that restricts access (authentication, client certificates, a
//! snippet with a directive outside the safe subset, an unparsable source range) and cannot be
//! honoured makes its paths answer 503 rather than serve them open.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderValue, StatusCode};

use super::canary::PREFIX;
use super::mirror::Mirror;
use super::response_rewrite::ResponseRewrite;
use super::upstream::UpstreamPolicy;
use crate::limits::{Concurrency, InFlight, Limiter, Rate};
use crate::model::Severity;
use crate::routes::{Upstream, UpstreamProtocol};

/// One CIDR block (`10.0.0.0/8`, `2001:db8::/32`, or a single address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has an invalid prefix length"))?,
        };
        Ok(Self { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen on an IPv6 socket (::ffff:a.b.c.d) is the IPv4 client.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// What an Ingress's annotations make of its paths.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Why the paths answer 503 instead of being served (fail closed).
    pub closed: Option<String>,
    /// `ssl-redirect`: `false` turns the HTTPS redirect off for these paths.
    pub ssl_redirect: Option<bool>,
    /// `force-ssl-redirect`: redirect to HTTPS even without a TLS section.
    pub force_ssl_redirect: bool,
    /// `allowlist-source-range` (or its old name `whitelist-source-range`).
    pub allow: Vec<Cidr>,
    /// `denylist-source-range`.
    pub deny: Vec<Cidr>,
    /// `proxy-body-size` in bytes; `Some(0)` is unlimited.
    pub body_limit: Option<u64>,
    /// `permanent-redirect` / `temporal-redirect`: answered by the proxy.
    pub redirect: Option<(StatusCode, HeaderValue)>,
    /// `app-root`: `/` redirects here.
    pub app_root: Option<HeaderValue>,
    /// `proxy-read-timeout`.
    pub read_timeout: Option<Duration>,
    /// `backend-protocol`.
    pub backend_protocol: Option<UpstreamProtocol>,
    /// `configuration-snippet` (its safe subset) and `custom-headers`.
    pub snippet: super::snippet::Snippet,
    /// `enable-cors` and the `cors-*` options.
    pub cors: Option<super::cors::Cors>,
    /// `limit-rps` / `limit-rpm` with `limit-burst-multiplier`, per client address.
    pub rates: Vec<Rate>,
    /// `limit-allowlist` (or `limit-whitelist`): clients the rates do not apply to.
    pub limit_allow: Vec<Cidr>,
    /// The rate limiters' state, attached when the table is swapped in.
    pub limiters: OnceLock<Vec<Arc<Limiter>>>,
    /// `upstream-vhost`: the Host header the upstream gets.
    pub upstream_vhost: Option<HeaderValue>,
    /// `x-forwarded-prefix`: sent upstream as `X-Forwarded-Prefix`.
    pub forwarded_prefix: Option<HeaderValue>,
    /// `server-alias`: more hosts served like the Ingress's own.
    pub server_aliases: Vec<String>,
    /// `from-to-www-redirect`: `www.` + host (or host without `www.`) redirects to the host.
    pub from_to_www: bool,
    /// `default-backend`: the Service (same namespace, first port) that answers for a path
    /// whose own Service has no usable endpoints.
    pub default_backend: Option<String>,
    /// `service-upstream`: send to the Service's cluster IP instead of its endpoints.
    pub service_upstream: bool,
    /// `enable-access-log: "false"` turns the access log off for these paths.
    pub access_log: Option<bool>,
    /// `limit-connections`: requests in flight at once per client address.
    pub max_in_flight: Option<u32>,
    /// Its counter, attached when the table is swapped in.
    pub in_flight: OnceLock<Arc<Concurrency>>,
    /// Timeouts, retries, balancing, rate and buffering of the upstream exchange; `None`:
    /// ingress-nginx's defaults ([`UpstreamPolicy::DEFAULT`]).
    pub upstream: Option<Box<UpstreamPolicy>>,
    /// `proxy-cookie-domain`, `proxy-cookie-path`, `proxy-redirect-from`/`-to`.
    pub response_rewrite: Option<Box<ResponseRewrite>>,
    /// `mirror-target` and its options.
    pub mirror: Option<Box<Mirror>>,
    /// `custom-http-errors`: upstream statuses answered by the error backend instead.
    pub custom_errors: Vec<StatusCode>,
    /// The `default-backend` Service that answers them (resolved by the compiler); without
    /// it, the controller's default backend does.
    pub error_backend: Option<Arc<Upstream>>,
    /// `preserve-trailing-slash`: the HTTPS redirect keeps a trailing `/`.
    pub preserve_trailing_slash: bool,
    /// The authentication annotations, validated (`compile::auth`).
    pub auth_spec: super::auth::Spec,
    /// The authentication to apply, once its Secret and ConfigMap are read (or the global one).
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// `auth-tls-*` as written; compile resolves the Secret into `client_auth`.
    pub auth_tls: Option<super::auth_tls::AuthTlsSpec>,
    /// The client authentication the Ingress asks for its hosts (resolved at compile time).
    pub client_auth: Option<crate::client_auth::HostClientAuth>,
    /// `proxy-ssl-*` as written; compile resolves the Secret into `upstream_tls`.
    pub proxy_ssl: Option<super::proxy_ssl::ProxySslSpec>,
    /// The TLS configuration for HTTPS upstreams (resolved at compile time).
    pub upstream_tls: Option<Arc<crate::upstream_tls::UpstreamTls>>,
    /// `ssl-passthrough`.
    pub ssl_passthrough: bool,
}

impl Policy {
    /// Whether a client address may use these paths.
    pub fn admits(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|c| c.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }

    pub fn is_default(&self) -> bool {
        self.closed.is_none()
            && self.ssl_redirect.is_none()
            && !self.force_ssl_redirect
            && self.allow.is_empty()
            && self.deny.is_empty()
            && self.body_limit.is_none()
            && self.redirect.is_none()
            && self.app_root.is_none()
            && self.read_timeout.is_none()
            && self.backend_protocol.is_none()
            && self.snippet.is_empty()
            && self.cors.is_none()
            && self.rates.is_empty()
            && self.upstream_vhost.is_none()
            && self.forwarded_prefix.is_none()
            && self.server_aliases.is_empty()
            && !self.from_to_www
            && self.default_backend.is_none()
            && !self.service_upstream
            && self.access_log.is_none()
            && self.max_in_flight.is_none()
            && self.upstream.is_none()
            && self.response_rewrite.is_none()
            && self.mirror.is_none()
            && self.custom_errors.is_empty()
            && !self.preserve_trailing_slash
            && self.auth_spec.is_empty()
            && self.auth.is_none()
            && self.auth_tls.is_none()
            && self.proxy_ssl.is_none()
            && !self.ssl_passthrough
    }

    /// `satisfy: any` with authentication: a client outside the source ranges may still
    /// authenticate.
    pub fn satisfy_any(&self) -> bool {
        self.auth.as_ref().is_some_and(|auth| auth.satisfy_any)
    }

    /// `limit-connections`: whether this request may proceed, and the slot it then holds (when
    /// there is a limit) until it is dropped.
    pub fn enter(&self, ip: IpAddr) -> Admission {
        let Some(counter) = self.in_flight.get() else {
            return Admission::Unlimited;
        };
        if self.limit_allow.iter().any(|c| c.contains(ip)) {
            return Admission::Unlimited;
        }
        match counter.enter(ip) {
            Some(slot) => Admission::Admitted(slot),
            None => Admission::TooMany,
        }
    }

    /// Whether the rate limits let this request through (and count it).
    pub fn within_rates(&self, ip: IpAddr, now: std::time::Instant) -> bool {
        if self.limit_allow.iter().any(|c| c.contains(ip)) {
            return true;
        }
        self.limiters
            .get()
            .is_none_or(|limiters| limiters.iter().all(|l| l.admit(ip, now)))
    }
}

/// What `limit-connections` says about a request.
#[derive(Debug)]
pub enum Admission {
    Unlimited,
    Admitted(InFlight),
    /// The client already has the limit of requests in flight.
    TooMany,
}

impl Admission {
    /// The slot to hold until the response ends, if any.
    pub fn into_slot(self) -> Option<InFlight> {
        match self {
            Admission::Admitted(slot) => Some(slot),
            _ => None,
        }
    }
}

/// One thing to tell the user about an annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub annotation: String,
    pub severity: Severity,
    pub reason: &'static str,
    pub message: String,
}

/// Annotations other modules handle (canary, regex mode).
fn handled_elsewhere(name: &str) -> bool {
    name.starts_with("canary")
        || name.starts_with("cors-")
        || name.starts_with("session-cookie-")
        || name.starts_with("upstream-hash-by")
        || matches!(
            name,
            "affinity" | "affinity-mode" | "affinity-canary-behavior"
        )
        || matches!(
            name,
            "use-regex" | "rewrite-target" | "enable-cors" | "custom-headers" | "server-snippet"
        )
        || super::upstream::handles(name)
        || super::response_rewrite::handles(name)
        || super::mirror::handles(name)
        || super::custom_errors::handles(name)
        || super::auth::handles(name)
        || super::auth_tls::handles(name)
        || super::proxy_ssl::handles(name)
}

/// ingress-nginx annotations that restrict who may use a path. Ignoring one would serve the
/// path open, so while Switchyard does not implement it the path answers 503.
const RESTRICTING: &[&str] = &[
    "auth-snippet",
    "stream-snippet",
    "modsecurity-snippet",
    "enable-modsecurity",
    "enable-owasp-core-rules",
];

/// Names manifests use that ingress-nginx never had, with what was meant.
fn not_an_annotation(name: &str) -> Option<&'static str> {
    match name {
        "proxy-set-headers" => Some(
            "a key of the controller ConfigMap, not an annotation; per Ingress, use custom-headers or a configuration-snippet with proxy_set_header",
        ),
        "limit-burst" => Some("not an annotation; the burst is set with limit-burst-multiplier"),
        "add-headers" => Some("a key of the controller ConfigMap, not an annotation"),
        _ => None,
    }
}

pub fn parse(annotations: &BTreeMap<String, String>) -> (Policy, Vec<Finding>) {
    let mut policy = Policy::default();
    let mut findings = Vec::new();
    let mut find = |name: &str, severity: Severity, reason: &'static str, message: String| {
        findings.push(Finding {
            annotation: format!("{PREFIX}{name}"),
            severity,
            reason,
            message,
        });
    };
    let mut closed: Vec<String> = Vec::new();
    for (key, value) in annotations {
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        let value = value.trim();
        match name {
            _ if handled_elsewhere(name) => {}
            "ssl-redirect" | "force-ssl-redirect" => match parse_bool(value) {
                Some(b) if name == "ssl-redirect" => policy.ssl_redirect = Some(b),
                Some(b) => policy.force_ssl_redirect = b,
                None => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{value:?} is not true or false; ignored"),
                ),
            },
            "allowlist-source-range" | "whitelist-source-range" | "denylist-source-range" => {
                match value
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(Cidr::parse)
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(ranges) if name == "denylist-source-range" => policy.deny.extend(ranges),
                    Ok(ranges) => policy.allow.extend(ranges),
                    Err(why) => closed.push(format!("{PREFIX}{name}: {why}")),
                }
            }
            "limit-rps" | "limit-rpm" => match value.parse::<u64>() {
                Ok(n) if n > 0 => {
                    let multiplier = annotations
                        .get(&format!("{PREFIX}limit-burst-multiplier"))
                        .and_then(|m| m.trim().parse::<u64>().ok())
                        .filter(|m| *m > 0)
                        .unwrap_or(5);
                    policy.rates.push(Rate {
                        requests: n,
                        per: Duration::from_secs(if name == "limit-rps" { 1 } else { 60 }),
                        burst: n.saturating_mul(multiplier),
                    });
                }
                _ => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{value:?} is not a positive integer; no limit"),
                ),
            },
            "limit-connections" => match value.parse::<u32>() {
                Ok(n) if n > 0 => policy.max_in_flight = Some(n),
                _ => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{value:?} is not a positive integer; no limit"),
                ),
            },
            "limit-burst-multiplier" => {
                if !value.parse::<u64>().is_ok_and(|m| m > 0) {
                    find(
                        name,
                        Severity::Warning,
                        "InvalidAnnotation",
                        format!("{value:?} is not a positive integer; using 5"),
                    );
                }
            }
            "limit-allowlist" | "limit-whitelist" => {
                match value
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(Cidr::parse)
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(ranges) => policy.limit_allow.extend(ranges),
                    Err(why) => find(
                        name,
                        Severity::Warning,
                        "InvalidAnnotation",
                        format!("{why}; nobody is exempt"),
                    ),
                }
            }
            "upstream-vhost" => match host_value(value) {
                Some(v) => policy.upstream_vhost = Some(v),
                None => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{value:?} is not a host name; ignored"),
                ),
            },
            "x-forwarded-prefix" => match HeaderValue::from_str(value) {
                Ok(v) if value.starts_with('/') => policy.forwarded_prefix = Some(v),
                _ => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{value:?} is not a path prefix; ignored"),
                ),
            },
            "server-alias" => {
                for alias in value.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                    match host_value(alias) {
                        Some(_) => policy.server_aliases.push(alias.to_ascii_lowercase()),
                        None => find(
                            name,
                            Severity::Warning,
                            "InvalidAnnotation",
                            format!("{alias:?} is not a host name; ignored"),
                        ),
                    }
                }
            }
            "default-backend" => {
                let dns_label = !value.is_empty()
                    && value.len() <= 63
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if dns_label {
                    policy.default_backend = Some(value.to_owned());
                } else {
                    find(
                        name,
                        Severity::Warning,
                        "InvalidAnnotation",
                        format!("{value:?} is not a Service name; ignored"),
                    );
                }
            }
            "ssl-passthrough" => match parse_bool(value) {
                Some(b) => policy.ssl_passthrough = b,
                None => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{value:?} is not true or false; ignored"),
                ),
            },
            "enable-access-log" => match parse_bool(value) {
                Some(b) => policy.access_log = Some(b),
                None => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{value:?} is not true or false; ignored"),
                ),
            },
            "service-upstream" => match parse_bool(value) {
                Some(b) => policy.service_upstream = b,
                None => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{value:?} is not true or false; ignored"),
                ),
            },
            "from-to-www-redirect" => match parse_bool(value) {
                Some(b) => policy.from_to_www = b,
                None => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{value:?} is not true or false; ignored"),
                ),
            },
            "proxy-body-size" => match parse_size(value) {
                Some(bytes) => policy.body_limit = Some(bytes),
                None => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!(
                        "{value:?} is not a size (such as 8m, 512k or 0 for unlimited); the default 1m applies"
                    ),
                ),
            },
            "proxy-read-timeout" => match value.parse::<u64>() {
                Ok(s) if s > 0 => policy.read_timeout = Some(Duration::from_secs(s)),
                _ => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{value:?} is not a positive number of seconds; ignored"),
                ),
            },
            "preserve-trailing-slash" => match parse_bool(value) {
                Some(b) => policy.preserve_trailing_slash = b,
                None => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{value:?} is not true or false; ignored"),
                ),
            },
            "permanent-redirect" | "temporal-redirect" => match redirect_target(value) {
                Ok(location) => {
                    let code = annotations
                        .get(&format!("{PREFIX}{name}-code"))
                        .and_then(|c| c.trim().parse::<u16>().ok())
                        .and_then(|c| StatusCode::from_u16(c).ok())
                        .filter(StatusCode::is_redirection);
                    let default = if name == "permanent-redirect" {
                        StatusCode::MOVED_PERMANENTLY
                    } else {
                        StatusCode::FOUND
                    };
                    // permanent-redirect wins when both are set, as in ingress-nginx.
                    if name == "permanent-redirect" || policy.redirect.is_none() {
                        policy.redirect = Some((code.unwrap_or(default), location));
                    }
                }
                Err(why) => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{why}; ignored"),
                ),
            },
            "permanent-redirect-code" | "temporal-redirect-code" => {}
            "app-root" => match redirect_target(value) {
                Ok(location) if value.starts_with('/') => policy.app_root = Some(location),
                _ => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{value:?} is not a path starting with `/`; ignored"),
                ),
            },
            "backend-protocol" => match value.to_ascii_uppercase().as_str() {
                "HTTP" | "AUTO_HTTP" => policy.backend_protocol = Some(UpstreamProtocol::Http1),
                "HTTPS" => policy.backend_protocol = Some(UpstreamProtocol::Https),
                "GRPC" | "H2C" => policy.backend_protocol = Some(UpstreamProtocol::H2c),
                "GRPCS" => policy.backend_protocol = Some(UpstreamProtocol::H2Tls),
                _ => find(
                    name,
                    Severity::Warning,
                    "InvalidAnnotation",
                    format!("{value:?} is not HTTP, HTTPS, GRPC, GRPCS or AUTO_HTTP; ignored"),
                ),
            },
            "configuration-snippet" => match super::snippet::parse(value) {
                Ok(snippet) => policy.snippet.extend(snippet),
                Err(why) => closed.push(format!("{PREFIX}configuration-snippet: {why}")),
            },
            _ if RESTRICTING.contains(&name) => closed.push(format!(
                "{PREFIX}{name} restricts access and is not supported by Switchyard yet"
            )),
            _ => match not_an_annotation(name) {
                Some(meant) => find(
                    name,
                    Severity::Warning,
                    "NotAnAnnotation",
                    format!("ignored, as ingress-nginx ignores it: {meant}"),
                ),
                None => find(
                    name,
                    Severity::Warning,
                    "UnsupportedAnnotation",
                    "not supported by Switchyard yet; ignored".to_owned(),
                ),
            },
        }
    }
    // Client certificates and upstream TLS: parsed together, each in its own module.
    let (auth_tls, tls_findings, tls_closed) = super::auth_tls::parse(annotations);
    policy.auth_tls = auth_tls;
    findings.extend(tls_findings);
    if let Some(why) = tls_closed {
        // The check is the host's: its other Ingresses' paths must not be served without it.
        policy.client_auth = Some(crate::client_auth::HostClientAuth::Unusable(Arc::from(
            why.as_str(),
        )));
        closed.push(why);
    }
    let (proxy_ssl, ssl_findings, ssl_closed) = super::proxy_ssl::parse(annotations);
    policy.proxy_ssl = proxy_ssl;
    findings.extend(ssl_findings);
    closed.extend(ssl_closed);
    let (cors, mut problems) = super::cors::parse(annotations);
    policy.cors = cors;
    let (upstream, more) = super::upstream::parse(annotations);
    policy.upstream = upstream.map(Box::new);
    problems.extend(more);
    let (rewrite, more) = super::response_rewrite::parse(annotations);
    policy.response_rewrite = rewrite.map(Box::new);
    problems.extend(more);
    let (mirror, more) = super::mirror::parse(annotations);
    policy.mirror = mirror.map(Box::new);
    problems.extend(more);
    let (codes, more) = super::custom_errors::parse(annotations);
    policy.custom_errors = codes;
    problems.extend(more);
    for (annotation, why) in problems {
        findings.push(Finding {
            annotation,
            severity: Severity::Warning,
            reason: "InvalidAnnotation",
            message: why,
        });
    }
    let (auth_spec, auth_findings, auth_closed) = super::auth::parse(annotations);
    policy.auth_spec = auth_spec;
    findings.extend(auth_findings);
    closed.extend(auth_closed);
    if !closed.is_empty() {
        policy.closed = Some(closed.join("; "));
    }
    (policy, findings)
}

/// A DNS name (with an optional port), usable as a Host header.
fn host_value(value: &str) -> Option<HeaderValue> {
    let valid = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'));
    valid.then(|| HeaderValue::from_str(value).ok()).flatten()
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "true" | "True" | "TRUE" | "1" => Some(true),
        "false" | "False" | "FALSE" | "0" => Some(false),
        _ => None,
    }
}

/// nginx sizes: bytes, or with k/m/g suffixes (case-insensitive).
pub fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim();
    let (digits, unit) = match value.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => value.split_at(i),
        None => (value, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let multiplier = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(multiplier)
}

/// A redirect target: an absolute http(s) URL or a path; never anything with spaces or
/// control characters.
fn redirect_target(value: &str) -> Result<HeaderValue, String> {
    let well_formed =
        (value.starts_with("http://") || value.starts_with("https://") || value.starts_with('/'))
            && !value.chars().any(|c| c.is_control() || c == ' ');
    if !well_formed {
        return Err(format!("{value:?} is not an http(s) URL or a path"));
    }
    HeaderValue::from_str(value).map_err(|_| format!("{value:?} is not a valid header value"))
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

    #[test]
    fn cidrs_match_v4_v6_and_mapped_addresses() {
        let net = Cidr::parse("10.1.0.0/16").unwrap_or_else(|e| panic!("{e}"));
        assert!(net.contains("10.1.200.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        assert!(!net.contains(IpAddr::from([10, 2, 0, 1])));
        assert!(
            net.contains(
                "::ffff:10.1.0.9"
                    .parse()
                    .unwrap_or(IpAddr::from([0, 0, 0, 0]))
            )
        );
        let one = Cidr::parse("192.0.2.7").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            one.contains(IpAddr::from([192, 0, 2, 7]))
                && !one.contains(IpAddr::from([192, 0, 2, 8]))
        );
        let all = Cidr::parse("0.0.0.0/0").unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains(IpAddr::from([8, 8, 8, 8])));
        let v6 = Cidr::parse("2001:db8::/32").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            v6.contains(
                "2001:db8:1::5"
                    .parse()
                    .unwrap_or(IpAddr::from([0, 0, 0, 0]))
            )
        );
        for bad in ["10.0.0.0/33", "banana", "10.0.0/8", "::/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn source_ranges_deny_first_then_allow() {
        let (policy, findings) = parse(&annotations(&[
            ("whitelist-source-range", "10.0.0.0/8, 192.0.2.0/24"),
            ("denylist-source-range", "10.9.0.0/16"),
        ]));
        assert!(findings.is_empty(), "{findings:?}");
        assert!(policy.admits(IpAddr::from([10, 1, 2, 3])));
        assert!(!policy.admits(IpAddr::from([10, 9, 2, 3])));
        assert!(!policy.admits(IpAddr::from([172, 16, 0, 1])));
    }

    #[test]
    fn restricting_annotations_that_cannot_be_honoured_close_the_paths() {
        for (name, value) in [
            ("auth-url", "auth.example/check"),
            ("auth-type", "basic"),
            ("auth-snippet", "return 200;"),
            ("whitelist-source-range", "10.0.0.0/8, nonsense"),
            ("configuration-snippet", "deny all;"),
            ("configuration-snippet", "add_header X-Who $upstream_addr;"),
        ] {
            let (policy, _) = parse(&annotations(&[(name, value)]));
            let closed = policy.closed.unwrap_or_default();
            assert!(closed.contains(name), "{name}: {closed}");
        }
    }

    #[test]
    fn seed_000_snippet_is_in_the_safe_subset() {
        let (policy, findings) = parse(&annotations(&[(
            "configuration-snippet",
            "add_header X-Content-Type-Options nosniff;\nadd_header X-Frame-Options DENY;\nadd_header X-XSS-Protection \"1; mode=block\";\n",
        )]));
        assert!(policy.closed.is_none(), "{:?}", policy.closed);
        assert!(findings.is_empty());
        let headers: Vec<(String, String)> = policy
            .snippet
            .response_headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_string()))
            .collect();
        assert_eq!(
            headers,
            [
                ("x-content-type-options".to_owned(), "nosniff".to_owned()),
                ("x-frame-options".to_owned(), "DENY".to_owned()),
                ("x-xss-protection".to_owned(), "1; mode=block".to_owned()),
            ]
        );
    }

    #[test]
    fn names_ingress_nginx_never_had_are_ignored_and_named() {
        let (policy, findings) = parse(&annotations(&[
            ("proxy-set-headers", "default/headers"),
            ("limit-burst", "50"),
            ("influxdb-host", "127.0.0.1"),
        ]));
        assert!(policy.is_default());
        let reasons: Vec<(&str, &str)> = findings
            .iter()
            .map(|f| (f.annotation.as_str(), f.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    "nginx.ingress.kubernetes.io/influxdb-host",
                    "UnsupportedAnnotation"
                ),
                ("nginx.ingress.kubernetes.io/limit-burst", "NotAnAnnotation"),
                (
                    "nginx.ingress.kubernetes.io/proxy-set-headers",
                    "NotAnAnnotation"
                ),
            ]
        );
        assert!(findings[1].message.contains("limit-burst-multiplier"));
    }

    #[test]
    fn typed_values() {
        let (policy, findings) = parse(&annotations(&[
            ("proxy-body-size", "8m"),
            ("proxy-read-timeout", "120"),
            ("permanent-redirect", "https://new.example/"),
            ("permanent-redirect-code", "308"),
            ("app-root", "/app"),
            ("backend-protocol", "GRPC"),
            ("ssl-redirect", "false"),
        ]));
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(policy.body_limit, Some(8 << 20));
        assert_eq!(policy.read_timeout, Some(Duration::from_secs(120)));
        assert_eq!(
            policy
                .redirect
                .as_ref()
                .map(|(c, l)| (c.as_u16(), l.to_str().unwrap_or(""))),
            Some((308, "https://new.example/"))
        );
        assert_eq!(policy.backend_protocol, Some(UpstreamProtocol::H2c));
        assert_eq!(policy.ssl_redirect, Some(false));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("512K"), Some(512 << 10));
        assert_eq!(parse_size("1.5m"), None);
        let (_, findings) = parse(&annotations(&[(
            "permanent-redirect",
            "javascript:alert(1)",
        )]));
        assert_eq!(findings[0].reason, "InvalidAnnotation");
    }
}
