//! The compiled, immutable route table and its lookup: one hash probe for the host (one more for
//! a wildcard), then the host's exact paths and its prefix paths sorted longest first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, StatusCode};
use rustls::sign::CertifiedKey;

use crate::access_log::LogSettings;
use crate::balance::EndpointLoad;
use crate::compile::affinity::{Affinity, endpoint_key};
use crate::compile::canary::CanaryPolicy;
use crate::compile::config::ControllerConfig;
use crate::compile::hash_by::Ring;
use crate::compile::headers::GlobalHeaders;
use crate::compile::path_regex::{Exhausted, PathRegex};
use crate::compile::policy::Policy;
use crate::compile::regex_mode::RewriteTarget;
use crate::compile::snippet::Snippet;
use crate::metrics::{RouteLabels, RouteSeries};
use crate::model::ObjectKey;
use crate::variables::Template;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathKind {
    Exact,
    Prefix,
    ImplementationSpecific,
}

impl PathKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Exact" => Some(Self::Exact),
            "Prefix" => Some(Self::Prefix),
            "ImplementationSpecific" => Some(Self::ImplementationSpecific),
            _ => None,
        }
    }
}

/// What a matched request gets.
#[derive(Debug)]
pub struct Route {
    /// The Ingress that produced this route; `None` for the controller's own default backend.
    pub ingress: Option<ObjectKey>,
    /// The Ingress path (the `path` metrics label), empty for default backends.
    pub path: String,
    /// The Service name (the `service` metrics label), empty when there is none.
    pub service: String,
    pub target: Target,
    /// This route's request metrics, attached when its table is swapped in.
    pub series: OnceLock<Arc<RouteSeries>>,
    /// A canary Ingress attached to this host + path + pathType.
    pub canary: Option<Box<Canary>>,
    /// `rewrite-target`: the upstream gets this path instead of the request's.
    pub rewrite: Option<Rewrite>,
    /// The Ingress's annotation policies (shared by all its routes).
    pub policy: Arc<Policy>,
    /// `affinity: cookie` (its default cookie path is this route's path).
    pub affinity: Option<Affinity>,
    /// `upstream-hash-by`: the key and the ring of this route's upstream.
    pub hash: Option<Box<RouteHash>>,
}

/// `upstream-hash-by` on a route: the request key, and the ring built for the endpoints of the
/// route's (non-canary) upstream.
#[derive(Debug)]
pub struct RouteHash {
    pub key: Template,
    pub ring: Ring,
}

/// A `rewrite-target` with the regex of the path it belongs to (for the captures).
#[derive(Debug)]
pub struct Rewrite {
    pub regex: PathRegex,
    pub target: RewriteTarget,
}

impl Rewrite {
    /// The upstream path and query for a request whose normalized path is `path`.
    pub fn apply(&self, path: &str, query: Option<&str>) -> Result<Option<String>, Exhausted> {
        let Some(target) = self.target.apply(&self.regex, path)? else {
            return Ok(None);
        };
        let mut rewritten = encode_path(&target);
        if let Some(query) = query {
            rewritten.push('?');
            rewritten.push_str(query);
        }
        Ok(Some(rewritten))
    }
}

/// Percent-encodes what may not appear in a URI path (the captures come from the decoded path).
pub(crate) fn encode_path(path: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A path in regex mode: ingress-nginx's `location ~* "^<path>"`.
#[derive(Clone, Debug)]
pub(crate) struct RegexRoute {
    pub(crate) regex: PathRegex,
    /// Longer patterns are tried first.
    pub(crate) pattern_len: usize,
    pub(crate) route: Arc<Route>,
}

/// The other side of a route while a canary Ingress exists for it.
#[derive(Debug)]
pub struct Canary {
    pub ingress: ObjectKey,
    pub target: Target,
    pub policy: CanaryPolicy,
    /// The `canary` metrics label of requests it serves: `<namespace>-<service>-<port>`, as
    /// ingress-nginx names the alternative upstream.
    pub label: String,
    /// Counts weighted decisions, for an exact, evenly spread split without a lock.
    decisions: AtomicU64,
    pub series: OnceLock<Arc<RouteSeries>>,
}

impl Canary {
    pub fn new(ingress: ObjectKey, target: Target, policy: CanaryPolicy, label: String) -> Self {
        Self {
            ingress,
            target,
            policy,
            label,
            decisions: AtomicU64::new(0),
            series: OnceLock::new(),
        }
    }

    /// Whether the next request the weight decides goes to the canary.
    pub fn next_weighted(&self) -> bool {
        let n = self.decisions.fetch_add(1, Ordering::Relaxed);
        self.policy.weighted_to_canary(n)
    }
}

impl Target {
    /// Whether requests sent here can reach an endpoint at all.
    pub fn has_endpoints(&self) -> bool {
        match self {
            Target::Upstream(upstream) => !upstream.endpoints.is_empty(),
            Target::Respond { .. } => false,
            Target::Answer { .. } | Target::HostRedirect { .. } => true,
        }
    }
}

impl Route {
    pub fn new(ingress: Option<ObjectKey>, path: &str, service: String, target: Target) -> Self {
        Self {
            ingress,
            path: path.to_owned(),
            service,
            target,
            series: OnceLock::new(),
            canary: None,
            rewrite: None,
            policy: Arc::default(),
            affinity: None,
            hash: None,
        }
    }

    /// The metrics labels of requests this route sends to its canary: the route's own, with
    /// `canary` set, as ingress-nginx labels them.
    pub fn canary_metric_labels(&self) -> Option<RouteLabels> {
        let canary = self.canary.as_ref()?;
        let mut labels = self.metric_labels()?;
        labels.canary = canary.label.clone();
        Some(labels)
    }

    /// The metrics labels this route fixes; `None` for the controller's own default backend,
    /// which (as in ingress-nginx) has no Ingress to count requests against.
    pub fn metric_labels(&self) -> Option<RouteLabels> {
        let ingress = self.ingress.as_ref()?;
        Some(RouteLabels {
            canary: String::new(),
            ingress: ingress.name.clone(),
            namespace: ingress.namespace.clone(),
            path: self.path.clone(),
            service: self.service.clone(),
        })
    }
}

#[derive(Debug)]
pub enum Target {
    /// Shared by every route to the same Service port, as one nginx upstream is: the
    /// round-robin position is per Service port, not per path.
    Upstream(Arc<Upstream>),
    /// Answered by the proxy itself (default backend 404, unusable backends 503).
    Respond {
        status: StatusCode,
        body: &'static str,
    },
    /// An ACME HTTP-01 key authorization (`200 text/plain`), answered before any redirect.
    Answer { body: Bytes },
    /// `from-to-www-redirect`: 308 to the same scheme and URI on this host.
    HostRedirect { host: String },
}

/// How the proxy talks to an upstream: set by the Service port's `appProtocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 over plain TCP (with keep-alive).
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge over plain TCP (`kubernetes.io/h2c`, `grpc`).
    H2c,
    /// HTTP/1.1 over TLS (`https`, `kubernetes.io/wss`).
    Https,
    /// HTTP/2 over TLS (`grpcs`).
    H2Tls,
}

impl UpstreamProtocol {
    /// A Service port's `appProtocol`; values we do not know keep HTTP/1.1.
    pub fn from_app_protocol(app_protocol: Option<&str>) -> Self {
        match app_protocol.map(str::to_ascii_lowercase).as_deref() {
            Some("kubernetes.io/h2c" | "h2c" | "grpc") => Self::H2c,
            Some("https" | "kubernetes.io/wss") => Self::Https,
            Some("grpcs") => Self::H2Tls,
            _ => Self::Http1,
        }
    }

    pub fn is_http2(self) -> bool {
        matches!(self, Self::H2c | Self::H2Tls)
    }

    pub fn is_tls(self) -> bool {
        matches!(self, Self::Https | Self::H2Tls)
    }
}

/// A resolved backend: the endpoints traffic goes to, in a stable order.
#[derive(Debug)]
pub struct Upstream {
    pub service: ObjectKey,
    pub endpoints: Vec<Authority>,
    /// Each endpoint's name in affinity cookies.
    pub keys: Vec<String>,
    pub protocol: UpstreamProtocol,
    /// Round-robin position; lives as long as this table, no lock.
    next: AtomicUsize,
    /// `load-balance: ewma` state per endpoint (atomics), as long as this table lives.
    pub loads: Box<[EndpointLoad]>,
    /// The Service port (custom error pages name it in `X-Service-Port`).
    pub service_port: Option<HeaderValue>,
    /// This upstream's name in affinity cookies: a stable hash of the Service and port.
    pub backend_key: String,
    /// `affinity-mode: balanced`: the ring its keys are placed on; built by compile for the
    /// upstreams that need it.
    pub sticky_ring: OnceLock<Ring>,
}

impl Upstream {
    pub fn new(service: ObjectKey, endpoints: Vec<Authority>, protocol: UpstreamProtocol) -> Self {
        let keys = endpoints.iter().map(|e| endpoint_key(e.as_str())).collect();
        let loads = endpoints.iter().map(|_| EndpointLoad::default()).collect();
        let backend_key = endpoint_key(&service.to_string());
        Self {
            loads,
            service_port: None,
            backend_key,
            sticky_ring: OnceLock::new(),
            service,
            endpoints,
            keys,
            protocol,
            next: AtomicUsize::new(0),
        }
    }

    pub fn with_service_port(mut self, port: i32) -> Self {
        self.service_port = Some(HeaderValue::from(port));
        self.backend_key = endpoint_key(&format!("{}:{port}", self.service));
        self
    }

    /// The ring balanced affinity places keys on (built on first use; compile builds it).
    pub fn sticky_ring(&self) -> &Ring {
        self.sticky_ring.get_or_init(|| Ring::new(&self.keys, None))
    }

    /// The index of the endpoint the next request should try first.
    pub fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct PrefixRoute {
    /// The prefix normalized to `/a/b` (no empty elements, no trailing slash); `` for `/`.
    pub(crate) prefix: String,
    pub(crate) elements: usize,
    pub(crate) route: Arc<Route>,
}

impl PrefixRoute {
    pub(crate) fn new(path: &str, route: Arc<Route>) -> Self {
        let mut prefix = String::with_capacity(path.len());
        let mut elements = 0;
        for element in path.split('/').filter(|e| !e.is_empty()) {
            prefix.push('/');
            prefix.push_str(element);
            elements += 1;
        }
        Self {
            prefix,
            elements,
            route,
        }
    }

    /// Element-wise: `/foo/bar` matches `/foo/bar`, `/foo/bar/` and `/foo/bar/baz`, not
    /// `/foo/barbaz`. `path` is normalized (no `//`), so a string comparison is enough.
    fn matches(&self, path: &str) -> bool {
        match path.strip_prefix(self.prefix.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// The routes of one host (or of the host-less rules), merged across Ingresses.
#[derive(Clone, Debug, Default)]
pub struct HostRoutes {
    /// The `host` metrics label: the host as the rule names it (`*.foo.com` for a wildcard, so
    /// that arbitrary request hosts cannot create series), `_` for host-less rules.
    pub(crate) label: Arc<str>,
    /// A `spec.tls` entry with a usable certificate names this host: plain HTTP gets a 308 to
    /// HTTPS and HTTPS responses carry HSTS (ingress-nginx's defaults).
    pub(crate) tls_redirect: bool,
    pub(crate) exact: HashMap<String, Arc<Route>>,
    /// Sorted by element count, longest first; among equals the oldest Ingress first.
    pub(crate) prefixes: Vec<PrefixRoute>,
    /// Regex paths, longest pattern first; tried before the others, first match wins.
    pub(crate) regexes: Vec<RegexRoute>,
    /// The `spec.defaultBackend` of the oldest Ingress naming this host.
    pub(crate) default: Option<Arc<Route>>,
    /// `auth-tls-*`: client certificate authentication for this host.
    pub client_auth: Option<crate::client_auth::HostClientAuth>,
    /// The `server-snippet` of the oldest Ingress naming this host that has one.
    pub(crate) server: Option<Arc<ServerSnippet>>,
}

/// A host's `server-snippet`: its translated directives, or why it could not be, in which case
/// the whole host answers 503 (the snippet may be what protects it).
#[derive(Debug)]
pub enum ServerSnippet {
    Translated(Snippet),
    Closed,
}

impl HostRoutes {
    /// Longest match wins; an Exact match is as long as the whole request path, so no Prefix
    /// can beat it, and on a tie Exact is preferred anyway. A regex the backtracking engine
    /// gave up on ends the search: a later route must not get a request an earlier regex
    /// might have claimed.
    pub fn match_path(&self, path: &str) -> Result<Option<&Arc<Route>>, Exhausted> {
        for regex in &self.regexes {
            if regex.regex.is_match(path)? {
                return Ok(Some(&regex.route));
            }
        }
        if let Some(route) = self.exact.get(path) {
            return Ok(Some(route));
        }
        Ok(self
            .prefixes
            .iter()
            .find(|p| p.matches(path))
            .map(|p| &p.route))
    }

    fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.exact
            .values()
            .chain(self.prefixes.iter().map(|p| &p.route))
            .chain(self.regexes.iter().map(|r| &r.route))
            .chain(self.default.iter())
    }

    pub fn path_count(&self) -> usize {
        self.exact.len() + self.prefixes.len() + self.regexes.len()
    }

    /// The routes of the host-less rules.
    pub(crate) fn hostless() -> Self {
        Self {
            label: Arc::from("_"),
            ..Self::default()
        }
    }
}

/// Certificates by SNI name, built at compile time.
#[derive(Debug, Default)]
pub struct CertTable {
    pub(crate) exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.`.
    pub(crate) wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// From `--default-ssl-certificate`, when it resolved.
    pub(crate) default: Option<Arc<CertifiedKey>>,
}

impl CertTable {
    pub fn lookup(&self, server_name: &str) -> Option<&Arc<CertifiedKey>> {
        if let Some(cert) = self.exact.get(server_name) {
            return Some(cert);
        }
        server_name
            .split_once('.')
            .and_then(|(_, suffix)| self.wildcard.get(suffix))
            .or(self.default.as_ref())
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug)]
pub struct RouteTable {
    pub(crate) exact_hosts: HashMap<String, HostRoutes>,
    /// Keyed by the suffix after `*.`: `*.foo.com` is stored as `foo.com`.
    pub(crate) wildcard_hosts: HashMap<String, HostRoutes>,
    /// Host-less rules; its default is the catch-all (an Ingress with only a defaultBackend).
    pub(crate) hostless: HostRoutes,
    pub(crate) controller_default: Arc<Route>,
    pub certs: CertTable,
    /// The Strict-Transport-Security value for HTTPS responses of TLS hosts; `None`: off.
    pub hsts: Option<HeaderValue>,
    /// The ConfigMap did not turn the access log off.
    pub access_log: bool,
    /// The ConfigMap's access log format and which requests it leaves out.
    pub log: LogSettings,
    /// How long an upstream may take to send its response headers.
    pub upstream_timeout: Duration,
    /// The controller ConfigMap's `proxy-set-headers` and `add-headers`.
    pub headers: GlobalHeaders,
    /// How many Ingresses contributed at least one route.
    pub served_ingresses: usize,
    /// The whole controller ConfigMap, typed: what the listeners, the TLS handshake and the
    /// hot path read beyond the fields above.
    pub config: ControllerConfig,
    /// Answers a request whose regex match the backtracking engine gave up on (nginx answers
    /// a failed PCRE match with 500).
    pub(crate) regex_exhausted: Arc<Route>,
    /// `ssl-passthrough` hosts (with `--enable-ssl-passthrough`) and where their TLS
    /// connections go.
    pub passthrough: HashMap<String, Arc<Upstream>>,
    /// Some host has client certificate authentication: handshakes look at the ClientHello
    /// before choosing a configuration (otherwise they need not).
    pub any_client_auth: bool,
}

impl RouteTable {
    /// An empty table: everything goes to the controller's 404.
    pub fn empty() -> Self {
        Self {
            exact_hosts: HashMap::new(),
            wildcard_hosts: HashMap::new(),
            hostless: HostRoutes::hostless(),
            controller_default: Arc::new(not_found_route()),
            certs: CertTable::default(),
            hsts: None,
            access_log: true,
            log: LogSettings::default(),
            upstream_timeout: Duration::from_secs(60),
            headers: GlobalHeaders::default(),
            served_ingresses: 0,
            config: ControllerConfig::default(),
            regex_exhausted: Arc::new(regex_exhausted_route()),
            passthrough: HashMap::new(),
            any_client_auth: false,
        }
    }

    /// `host` must be normalized (lower case, no port); `path` normalized too. Returns the
    /// matched host's routes (its metrics label and TLS policy) with the route.
    pub fn route(&self, host: &str, path: &str) -> (&HostRoutes, &Arc<Route>) {
        let routes = self.host_routes(host);
        (routes, self.route_in(routes, path))
    }

    /// The route for `path` among a host's routes (from [`Self::host_routes`]); a regex that
    /// gave up on the path answers like nginx's failed PCRE match.
    pub fn route_in<'a>(&'a self, routes: &'a HostRoutes, path: &str) -> &'a Arc<Route> {
        match routes.match_path(path) {
            Ok(matched) => matched
                .or(routes.default.as_ref())
                .unwrap_or(&self.controller_default),
            Err(Exhausted) => &self.regex_exhausted,
        }
    }

    /// Every route of the table, each once per place it is used.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.exact_hosts
            .values()
            .chain(self.wildcard_hosts.values())
            .chain(std::iter::once(&self.hostless))
            .flat_map(HostRoutes::routes)
    }

    /// A normalized host's routes: its own, a wildcard's, or the host-less ones.
    pub fn host_routes(&self, host: &str) -> &HostRoutes {
        if let Some(routes) = self.exact_hosts.get(host) {
            return routes;
        }
        // A wildcard covers exactly one label: the suffix after the first dot must be the key.
        if let Some((_, suffix)) = host.split_once('.')
            && let Some(routes) = self.wildcard_hosts.get(suffix)
        {
            return routes;
        }
        &self.hostless
    }

    pub fn host_count(&self) -> usize {
        self.exact_hosts.len() + self.wildcard_hosts.len()
    }

    pub fn path_count(&self) -> usize {
        self.exact_hosts
            .values()
            .chain(self.wildcard_hosts.values())
            .chain(std::iter::once(&self.hostless))
            .map(HostRoutes::path_count)
            .sum()
    }
}

pub(crate) fn regex_exhausted_route() -> Route {
    Route::new(
        None,
        "",
        String::new(),
        Target::Respond {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: "500 Internal Server Error: a regex path could not be matched within its limits\n",
        },
    )
}

pub(crate) fn not_found_route() -> Route {
    Route::new(
        None,
        "",
        String::new(),
        Target::Respond {
            status: StatusCode::NOT_FOUND,
            body: "404 Not Found: no Ingress rule matches this host and path\n",
        },
    )
}
