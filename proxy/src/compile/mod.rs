//! Snapshot → RouteTable + problems. Pure: no IO, no clock, no randomness, so every rule of
//! DESIGN.md is a unit test here.

pub mod affinity;
pub mod auth;
pub mod auth_tls;
mod backend;
pub mod canary;
mod class;
pub mod config;
mod config_log;
pub mod cors;
pub mod custom_errors;
pub mod forwarding;
pub mod hash_by;
pub mod headers;
mod host_tls;
mod memo;
pub mod mirror;
pub mod path_regex;
pub mod policy;
pub mod proxy_ssl;
pub mod regex_mode;
pub mod response_rewrite;
pub mod risk;
pub mod serving_config;
pub mod snippet;
mod tls;
pub mod tls_settings;
pub mod upstream;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use k8s_openapi::api::networking::v1::{HTTPIngressPath, Ingress, IngressBackend};
use rustls::sign::CertifiedKey;
use switchyard_crds::challenge::{
    self, CHALLENGE_LABEL, CHALLENGE_PREFIX, ChallengeAnswer, ChallengeError, RESPONSE_ANNOTATION,
};

use crate::model::{ObjectKey, Problem, Severity, Snapshot};
use crate::routes::{
    Canary, CertTable, HostRoutes, PathKind, PrefixRoute, RegexRoute, Rewrite, Route, RouteHash,
    RouteTable, ServerSnippet, Target, Upstream, not_found_route, regex_exhausted_route,
};

pub use backend::BackendError;
pub use class::{DEFAULT_CLASS_ANNOTATION, LEGACY_CLASS_ANNOTATION};
pub use tls::CertCache;

/// The flags that change what compile produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileOptions {
    pub ingress_class: String,
    pub controller_class: String,
    pub watch_ingress_without_class: bool,
    pub watch_namespace: Option<String>,
    pub default_backend_service: Option<ObjectKey>,
    pub default_ssl_certificate: Option<ObjectKey>,
    /// `--configmap`: the controller ConfigMap.
    pub configmap: Option<ObjectKey>,
    /// `--enable-ssl-passthrough`: honour `ssl-passthrough`.
    pub enable_ssl_passthrough: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            ingress_class: "switchyard".to_owned(),
            controller_class: "switchyard.dev/ingress-controller".to_owned(),
            watch_ingress_without_class: false,
            watch_namespace: None,
            default_backend_service: None,
            default_ssl_certificate: None,
            configmap: None,
            enable_ssl_passthrough: false,
        }
    }
}

const INGRESS: &str = "Ingress";
const CONFIGMAP: &str = "ConfigMap";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum HostKey {
    Exact(String),
    /// The suffix after `*.`.
    Wildcard(String),
    None,
}

impl HostKey {
    fn parse(host: Option<&str>) -> Result<Self, String> {
        let host = host.unwrap_or("").trim();
        if host.is_empty() {
            return Ok(HostKey::None);
        }
        let host = host.to_ascii_lowercase();
        if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!("invalid wildcard host {host:?}"));
            }
            return Ok(HostKey::Wildcard(suffix.to_owned()));
        }
        if host.contains('*') || host.contains(':') || host.contains('/') {
            return Err(format!(
                "invalid host {host:?}: a host is a DNS name, optionally starting with `*.`"
            ));
        }
        Ok(HostKey::Exact(host))
    }

    fn describe(&self) -> String {
        match self {
            HostKey::Exact(h) => h.clone(),
            HostKey::Wildcard(s) => format!("*.{s}"),
            HostKey::None => "(any host)".to_owned(),
        }
    }
}

#[derive(Default)]
struct HostBuilder {
    routes: HostRoutes,
    /// The Ingress whose `server-snippet` the host has.
    server_owner: Option<ObjectKey>,
}

impl HostBuilder {
    fn insert(&mut self, kind: PathKind, path: &str, route: Arc<Route>) {
        match kind {
            PathKind::Exact => {
                self.routes.exact.entry(path.to_owned()).or_insert(route);
            }
            // ImplementationSpecific is Prefix unless the path is in regex mode.
            PathKind::Prefix | PathKind::ImplementationSpecific => {
                self.routes.prefixes.push(PrefixRoute::new(path, route));
            }
        }
    }

    fn insert_regex(&mut self, regex: path_regex::PathRegex, path: &str, route: Arc<Route>) {
        self.routes.regexes.push(RegexRoute {
            regex,
            pattern_len: path.len(),
            route,
        });
    }

    fn finish(mut self) -> HostRoutes {
        // Stable: among equally long prefixes the older Ingress (inserted first) stays first.
        self.routes
            .prefixes
            .sort_by_key(|p| std::cmp::Reverse(p.elements));
        // ingress-nginx orders regex locations by pattern length, longest first.
        self.routes
            .regexes
            .sort_by_key(|r| std::cmp::Reverse(r.pattern_len));
        self.routes
    }
}

/// A Service port, and whether `service-upstream` asks for its cluster IP.
type UpstreamKey = (ObjectKey, Option<backend::PortRef>, bool);

struct Compiler<'a> {
    snapshot: &'a Snapshot,
    endpoints: backend::EndpointIndex<'a>,
    certs_before: &'a CertCache,
    certs_after: CertCache,
    /// Each Service port resolved once per compile, shared by every route to it (the flag:
    /// `service-upstream`, the cluster IP instead of the endpoints).
    upstreams: HashMap<UpstreamKey, Result<Arc<Upstream>, BackendError>>,
    /// The Ingress being compiled asks for `service-upstream`.
    service_upstream: bool,
    /// `--enable-ssl-passthrough`.
    ssl_passthrough: bool,
    problems: Vec<Problem>,
}

impl Compiler<'_> {
    /// Annotation values that did not parse: `(annotation, reason)`, as Warnings.
    fn annotation_problems(&mut self, key: &ObjectKey, problems: Vec<(String, String)>) {
        for (annotation, why) in problems {
            let message = format!("{annotation}: {why}");
            self.problem(
                INGRESS,
                key,
                Severity::Warning,
                "InvalidAnnotation",
                message,
            );
        }
    }

    fn upstream(
        &mut self,
        key: ObjectKey,
        port: Option<backend::PortRef>,
    ) -> Result<Arc<Upstream>, BackendError> {
        let (snapshot, endpoints) = (self.snapshot, &self.endpoints);
        self.upstreams
            .entry((key, port, self.service_upstream))
            .or_insert_with_key(|(key, port, cluster_ip)| {
                if *cluster_ip {
                    backend::resolve_cluster_ip(snapshot, key, port.clone()).map(Arc::new)
                } else {
                    backend::resolve(snapshot, endpoints, key, port.clone()).map(Arc::new)
                }
            })
            .clone()
    }

    fn problem(
        &mut self,
        kind: &'static str,
        object: &ObjectKey,
        severity: Severity,
        reason: &'static str,
        message: String,
    ) {
        self.problems.push(Problem {
            kind,
            object: object.clone(),
            severity,
            reason,
            message,
        });
    }

    /// A backend → the route for one path (or a defaultBackend when `path` is empty). `None`
    /// when the backend is invalid and the path must not be served at all.
    fn backend_route(
        &mut self,
        ingress: &ObjectKey,
        path: &str,
        backend: &IngressBackend,
    ) -> Option<Arc<Route>> {
        let what = if path.is_empty() {
            "defaultBackend".to_owned()
        } else {
            format!("path {path}")
        };
        let route = |service: String, target: Target| {
            Some(Arc::new(Route::new(
                Some(ingress.clone()),
                path,
                service,
                target,
            )))
        };
        match (&backend.service, &backend.resource) {
            (Some(_), Some(_)) => {
                self.problem(
                    INGRESS,
                    ingress,
                    Severity::Error,
                    "InvalidBackend",
                    format!("{what}: a backend has either service or resource, not both; skipped"),
                );
                None
            }
            (None, None) => {
                self.problem(
                    INGRESS,
                    ingress,
                    Severity::Error,
                    "InvalidBackend",
                    format!("{what}: the backend names neither a service nor a resource; skipped"),
                );
                None
            }
            (None, Some(resource)) => {
                self.problem(
                    INGRESS,
                    ingress,
                    Severity::Warning,
                    "UnsupportedBackend",
                    format!(
                        "{what}: resource backends ({} {}) are not supported; it answers 503",
                        resource.kind, resource.name
                    ),
                );
                route(String::new(), unavailable())
            }
            (Some(service), None) => {
                let key = ObjectKey::new(ingress.namespace.clone(), service.name.clone());
                let port = backend::PortRef::from_backend(service.port.as_ref());
                match self.upstream(key, port) {
                    Ok(upstream) => route(service.name.clone(), Target::Upstream(upstream)),
                    Err(err) => {
                        self.problem(
                            INGRESS,
                            ingress,
                            Severity::Warning,
                            err.reason(),
                            format!("{what}: {err}; it answers 503"),
                        );
                        route(service.name.clone(), unavailable())
                    }
                }
            }
        }
    }
}

fn unavailable() -> Target {
    Target::Respond {
        status: StatusCode::SERVICE_UNAVAILABLE,
        body: "503 Service Unavailable: the backend of this route has no usable endpoints\n",
    }
}

/// The Ingresses of our class in the watched namespace: those whose status we own, whether or
/// not anything of them could be served.
pub fn ours(snapshot: &Snapshot, opts: &CompileOptions) -> BTreeSet<ObjectKey> {
    snapshot
        .ingresses
        .iter()
        .filter(|(key, _)| {
            opts.watch_namespace
                .as_ref()
                .is_none_or(|ns| key.namespace == *ns)
        })
        .filter(|(_, ingress)| class::select(ingress, &snapshot.ingress_classes, opts).is_ok())
        .map(|(key, _)| key.clone())
        .collect()
}

/// Compiles a snapshot into a route table and the problems found, per object.
pub fn compile(snapshot: &Snapshot, opts: &CompileOptions) -> (RouteTable, Vec<Problem>) {
    let (table, problems, _) = compile_cached(snapshot, opts, &CertCache::default());
    (table, problems)
}

/// [`compile`], reusing the certificates an earlier compile parsed; returns the cache for the
/// next one.
pub fn compile_cached(
    snapshot: &Snapshot,
    opts: &CompileOptions,
    certs: &CertCache,
) -> (RouteTable, Vec<Problem>, CertCache) {
    let mut c = Compiler {
        snapshot,
        endpoints: backend::EndpointIndex::new(snapshot),
        upstreams: HashMap::new(),
        service_upstream: false,
        ssl_passthrough: opts.enable_ssl_passthrough,
        certs_before: certs,
        certs_after: CertCache::default(),
        problems: Vec::new(),
    };

    let mut served: Vec<(&ObjectKey, &Ingress)> = Vec::new();
    for (key, ingress) in &snapshot.ingresses {
        if let Some(ns) = &opts.watch_namespace
            && key.namespace != *ns
        {
            continue;
        }
        match class::select(ingress, &snapshot.ingress_classes, opts) {
            Ok(()) => served.push((key, ingress)),
            Err(why) => c.problem(INGRESS, key, Severity::Info, "NotOurClass", why),
        }
    }
    // Oldest first: conflicts and per-host defaults go to the oldest Ingress.
    served.sort_by(|(ka, a), (kb, b)| {
        let age = |i: &Ingress| i.metadata.creation_timestamp.as_ref().map(|t| t.0);
        age(a).cmp(&age(b)).then_with(|| ka.cmp(kb))
    });

    let settings = controller_config(&mut c, opts);
    let global_headers = global_headers(&mut c, &settings, opts);
    let mut hosts: HashMap<HostKey, HostBuilder> = HashMap::new();
    let mut seen: HashMap<RouteKey, ObjectKey> = HashMap::new();
    let mut catch_all: Option<(Arc<Route>, ObjectKey)> = None;
    let mut served_count = 0;
    let (mut canaries, canary_ingresses) = canaries(&mut c, &served);
    let (regex_annotations, regex_hosts) = regex_modes(&mut c, &served, &canary_ingresses);
    let mut host_extras: Vec<(ObjectKey, Vec<String>, Arc<policy::Policy>)> = Vec::new();
    let global_auth = global_auth(&mut c, opts);
    let mut host_tls: Vec<host_tls::HostTls> = Vec::new();

    for &(key, ingress) in &served {
        if canary_ingresses.contains(key) {
            continue;
        }
        let Some(spec) = ingress.spec.as_ref() else {
            c.problem(
                INGRESS,
                key,
                Severity::Error,
                "InvalidIngress",
                "the Ingress has no spec; skipped".to_owned(),
            );
            continue;
        };
        let mut policy = ingress_policy(&mut c, key, ingress, &settings, &global_auth);
        let hash_by = {
            let empty = BTreeMap::new();
            let (parsed, problems) =
                hash_by::parse(ingress.metadata.annotations.as_ref().unwrap_or(&empty));
            c.annotation_problems(key, problems);
            parsed
        };
        let server_snippet = server_snippet(&mut c, key, ingress, &settings);
        c.service_upstream = policy.service_upstream;
        // `default-backend`: answers for this Ingress's paths whose Service has no endpoints.
        let fallback = policy.default_backend.as_ref().and_then(|name| {
            let service = ObjectKey::new(key.namespace.clone(), name.clone());
            match c.upstream(service, Some(backend::PortRef::First)) {
                Ok(upstream) => Some(upstream),
                Err(err) => {
                    let message = format!("default-backend: {err}; not used");
                    c.problem(INGRESS, key, Severity::Warning, err.reason(), message);
                    None
                }
            }
        });
        // `custom-http-errors` are answered by the same `default-backend`.
        if !policy.custom_errors.is_empty()
            && let Some(unique) = Arc::get_mut(&mut policy)
        {
            unique.error_backend = fallback.clone();
        }
        if !policy.server_aliases.is_empty() || policy.from_to_www {
            let rule_hosts = spec
                .rules
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .filter_map(|r| match HostKey::parse(r.host.as_deref()) {
                    Ok(HostKey::Exact(h)) => Some(h),
                    _ => None,
                })
                .collect::<Vec<_>>();
            host_extras.push((key.clone(), rule_hosts, policy.clone()));
        }
        let default_route = spec
            .default_backend
            .as_ref()
            .and_then(|b| c.backend_route(key, "", b))
            .map(|mut route| {
                if let Some(unique) = Arc::get_mut(&mut route) {
                    unique.policy = policy.clone();
                    if let Some(fallback) = &fallback
                        && !unique.target.has_endpoints()
                    {
                        unique.target = Target::Upstream(fallback.clone());
                    }
                }
                route
            });
        let rules = spec.rules.as_deref().unwrap_or(&[]);
        let mut contributed = false;
        let challenges = acme_answers(&mut c, key, ingress);

        if rules.is_empty() {
            match (&default_route, &catch_all) {
                (Some(route), None) => {
                    catch_all = Some((route.clone(), key.clone()));
                    contributed = true;
                }
                (Some(_), Some((_, owner))) => {
                    let message = format!(
                        "the catch-all defaultBackend is already taken by the older Ingress {owner}; this one is ignored"
                    );
                    c.problem(INGRESS, key, Severity::Warning, "Conflict", message);
                }
                (None, _) => c.problem(
                    INGRESS,
                    key,
                    Severity::Warning,
                    "NothingToServe",
                    "the Ingress has neither rules nor a usable defaultBackend".to_owned(),
                ),
            }
        }

        for rule in rules {
            let host = match HostKey::parse(rule.host.as_deref()) {
                Ok(host) => host,
                Err(message) => {
                    c.problem(INGRESS, key, Severity::Error, "InvalidHost", message);
                    continue;
                }
            };
            let paths = rule
                .http
                .as_ref()
                .map(|h| h.paths.as_slice())
                .unwrap_or(&[]);
            let mut claimed = false;
            for p in paths {
                let (kind, path) = match rule_path(&host, p) {
                    Ok(parsed) => parsed,
                    Err(message) => {
                        c.problem(INGRESS, key, Severity::Error, "InvalidPath", message);
                        continue;
                    }
                };
                let conflict = (host.clone(), path.to_owned(), kind);
                if let Some(owner) = seen.get(&conflict) {
                    let message = format!(
                        "host {} path {path} ({kind:?}) is already served by the older Ingress {owner}; ignored here",
                        host.describe()
                    );
                    c.problem(INGRESS, key, Severity::Warning, "Conflict", message);
                    continue;
                }
                let answer = match (&host, kind) {
                    (HostKey::Exact(h), PathKind::Exact) => challenges.iter().find(|a| {
                        a.host == *h
                            && path.strip_prefix(CHALLENGE_PREFIX) == Some(a.token.as_str())
                    }),
                    _ => None,
                };
                let route = match answer {
                    Some(answer) => Some(Arc::new(Route::new(
                        Some(key.clone()),
                        path,
                        p.backend
                            .service
                            .as_ref()
                            .map(|s| s.name.clone())
                            .unwrap_or_default(),
                        Target::Answer {
                            body: Bytes::from(answer.key_authorization.clone()),
                        },
                    ))),
                    None => c.backend_route(key, path, &p.backend),
                };
                let Some(mut route) = route else {
                    continue;
                };
                if let Some(unique) = Arc::get_mut(&mut route) {
                    unique.policy = policy.clone();
                    if let Some(fallback) = &fallback
                        && !unique.target.has_endpoints()
                    {
                        unique.target = Target::Upstream(fallback.clone());
                    }
                    let (affinity, problems) = ingress
                        .metadata
                        .annotations
                        .as_ref()
                        .map(|a| affinity::parse(a, path))
                        .unwrap_or_default();
                    unique.affinity = affinity;
                    c.annotation_problems(key, problems);
                    warm_sticky_ring(unique.affinity.as_ref(), &unique.target);
                    if let (Some(hash_by), Target::Upstream(upstream)) = (&hash_by, &unique.target)
                    {
                        unique.hash = Some(Box::new(RouteHash {
                            key: hash_by.key.clone(),
                            ring: hash_by::Ring::new(&upstream.keys, hash_by.subset),
                        }));
                    }
                }
                let annotations = regex_annotations.get(key);
                let regex_path =
                    regex_hosts.contains(&host) || annotations.is_some_and(|a| a.regex_for(path));
                let mut location = None;
                if regex_path {
                    match regex_mode::location_regex(path) {
                        Ok(regex) => location = Some(regex),
                        Err(err) => {
                            let message = format!(
                                "host {} path {path:?} is served as a regex here (regex mode) but does not compile: {err}; the path is not served",
                                host.describe()
                            );
                            c.problem(INGRESS, key, Severity::Error, "InvalidRegex", message);
                            continue;
                        }
                    }
                    if kind != PathKind::ImplementationSpecific
                        && annotations.is_some_and(|a| a.use_regex)
                        && regex_mode::looks_like_regex(path)
                    {
                        let message = format!(
                            "path {path:?} is a regex with pathType {kind:?}: served as a regex, as ingress-nginx did before its strict path validation; use pathType ImplementationSpecific"
                        );
                        c.problem(INGRESS, key, Severity::Warning, "RegexInTypedPath", message);
                    }
                }
                if let (Some(regex), Some(target)) = (
                    &location,
                    annotations.and_then(|a| a.rewrite_target.as_ref()),
                ) && let Some(unique) = Arc::get_mut(&mut route)
                {
                    unique.rewrite = Some(Rewrite {
                        regex: regex.clone(),
                        target: target.clone(),
                    });
                }
                if let Some(canary) = canaries.remove(&conflict)
                    && let Some(unique) = Arc::get_mut(&mut route)
                {
                    warm_sticky_ring(unique.affinity.as_ref(), &canary.canary.target);
                    unique.canary = Some(Box::new(canary.canary));
                }
                seen.insert(conflict, key.clone());
                let builder = hosts.entry(host.clone()).or_default();
                match location {
                    Some(regex) => builder.insert_regex(regex, path, route),
                    None => builder.insert(kind, path, route),
                }
                claimed = true;
            }
            // A host rule with only the Ingress's defaultBackend still claims the host.
            if host != HostKey::None && (claimed || default_route.is_some()) {
                let builder = hosts.entry(host.clone()).or_default();
                if builder.routes.default.is_none() {
                    builder.routes.default = default_route.clone();
                }
                claimed = true;
            }
            if !claimed && paths.is_empty() {
                let message = format!(
                    "the rule for host {} has no paths and the Ingress no defaultBackend",
                    host.describe()
                );
                c.problem(INGRESS, key, Severity::Warning, "NothingToServe", message);
            }
            if claimed && let Some(snippet) = &server_snippet {
                let builder = hosts.entry(host.clone()).or_default();
                match &builder.server_owner {
                    None => {
                        builder.routes.server = Some(snippet.clone());
                        builder.server_owner = Some(key.clone());
                    }
                    Some(owner) if owner != key => {
                        let message = format!(
                            "server-snippet: host {} already has the server-snippet of the older Ingress {owner}; one per host, this one is not used",
                            host.describe()
                        );
                        c.problem(INGRESS, key, Severity::Warning, "Conflict", message);
                    }
                    Some(_) => {}
                }
            }
            contributed |= claimed;
            if claimed && host_tls::HostTls::wanted(&policy) {
                host_tls.push(host_tls::HostTls {
                    host: host.clone(),
                    ingress: key.clone(),
                    policy: policy.clone(),
                });
            }
        }
        if contributed {
            served_count += 1;
        }
    }

    for ((host, path, kind), unattached) in canaries {
        let message = format!(
            "canary for host {} path {path} ({kind:?}) has no non-canary Ingress with the same host, path and pathType; it serves nothing",
            host.describe()
        );
        c.problem(
            INGRESS,
            &unattached.canary.ingress,
            Severity::Warning,
            "CanaryWithoutMainIngress",
            message,
        );
    }
    let controller_default = controller_default(&mut c, opts);
    let (certs, tls_hosts) = certificates(&mut c, &served, opts);

    let mut exact_hosts = HashMap::new();
    let mut wildcard_hosts = HashMap::new();
    let mut hostless = HostRoutes::hostless();
    for (host, builder) in hosts {
        let mut routes = builder.finish();
        routes.tls_redirect = settings.ssl_redirect && tls_hosts.contains(&host);
        routes.client_auth = host_tls::client_auth(&host_tls, &host);
        routes.label = Arc::from(match &host {
            HostKey::None => "_".to_owned(),
            other => other.describe(),
        });
        match host {
            HostKey::Exact(h) => {
                exact_hosts.insert(h, routes);
            }
            HostKey::Wildcard(s) => {
                wildcard_hosts.insert(s, routes);
            }
            HostKey::None => hostless = routes,
        }
    }
    hostless.default = catch_all.map(|(route, _)| route);
    add_aliases_and_www(&mut c, &mut exact_hosts, &host_extras);
    let passthrough = host_tls::passthrough(&mut c, &host_tls, &exact_hosts);
    let any_client_auth = exact_hosts
        .values()
        .chain(wildcard_hosts.values())
        .chain(std::iter::once(&hostless))
        .any(|routes| routes.client_auth.is_some());

    let table = RouteTable {
        exact_hosts,
        wildcard_hosts,
        hostless,
        controller_default,
        certs,
        hsts: settings.hsts.clone(),
        access_log: settings.access_log,
        log: settings.log.clone(),
        upstream_timeout: settings.upstream_timeout,
        headers: global_headers,
        served_ingresses: served_count,
        config: settings,
        regex_exhausted: Arc::new(regex_exhausted_route()),
        passthrough,
        any_client_auth,
    };
    (table, dedup(c.problems), c.certs_after)
}

/// `server-alias` (more names for a host, routed the same) and `from-to-www-redirect`
/// (`www.` + host, or the host without `www.`, redirects to it). A name some rule already
/// serves keeps its own routes.
fn add_aliases_and_www(
    c: &mut Compiler<'_>,
    exact_hosts: &mut HashMap<String, HostRoutes>,
    extras: &[(ObjectKey, Vec<String>, Arc<policy::Policy>)],
) {
    for (key, hosts, policy) in extras {
        let Some(first) = hosts.first() else {
            continue;
        };
        for alias in &policy.server_aliases {
            match (
                exact_hosts.contains_key(alias),
                exact_hosts.get(first).cloned(),
            ) {
                (false, Some(routes)) => {
                    exact_hosts.insert(alias.clone(), routes);
                }
                (true, _) => {
                    let message = format!(
                        "server-alias {alias}: a rule already serves this host; it keeps its own routes"
                    );
                    c.problem(INGRESS, key, Severity::Warning, "Conflict", message);
                }
                (false, None) => {}
            }
        }
        if !policy.from_to_www {
            continue;
        }
        for host in hosts {
            let other = match host.strip_prefix("www.") {
                Some(bare) => bare.to_owned(),
                None => format!("www.{host}"),
            };
            if exact_hosts.contains_key(&other) {
                continue;
            }
            let redirect = Route::new(
                Some(key.clone()),
                "",
                String::new(),
                Target::HostRedirect { host: host.clone() },
            );
            let routes = HostRoutes {
                label: Arc::from(other.as_str()),
                default: Some(Arc::new(redirect)),
                ..HostRoutes::default()
            };
            exact_hosts.insert(other, routes);
        }
    }
}

/// An Ingress's annotation policy; what cannot be honoured is reported, and an access
/// restriction that cannot be honoured closes its paths (reported as an error).
fn ingress_policy(
    c: &mut Compiler<'_>,
    key: &ObjectKey,
    ingress: &Ingress,
    settings: &config::ControllerConfig,
    global_auth: &auth::Global,
) -> Arc<policy::Policy> {
    let no_annotations = BTreeMap::new();
    let annotations = ingress
        .metadata
        .annotations
        .as_ref()
        .unwrap_or(&no_annotations);
    let (mut parsed, mut findings) = policy::parse(annotations);
    // Authentication reads the Secret and ConfigMap its annotations name (or is the global one).
    let resolved = auth::resolve(&parsed.auth_spec, c.snapshot, &key.namespace, global_auth);
    findings.extend(resolved.findings);
    match resolved.auth {
        Ok(auth) => parsed.auth = auth,
        Err(why) => {
            parsed.closed = Some(match parsed.closed.take() {
                Some(earlier) => format!("{earlier}; {why}"),
                None => why,
            });
        }
    }
    for finding in findings {
        let message = format!("{}: {}", finding.annotation, finding.message);
        c.problem(INGRESS, key, finding.severity, finding.reason, message);
    }
    // The ConfigMap's `custom-http-errors` for Ingresses without their own.
    if parsed.custom_errors.is_empty() {
        parsed.custom_errors = settings.custom_http_errors.clone();
    }
    // The ConfigMap's `proxy-send-timeout` for Ingresses without the annotation.
    let send_annotation = format!("{}proxy-send-timeout", canary::PREFIX);
    if let Some(timeout) = settings.proxy_send_timeout
        && !annotations.contains_key(&send_annotation)
    {
        parsed
            .upstream
            .get_or_insert_with(|| Box::new(upstream::UpstreamPolicy::DEFAULT))
            .send_timeout = Some(timeout);
    }
    // The ConfigMap's `load-balance` for Ingresses without the annotation.
    let balance_annotation = format!("{}load-balance", canary::PREFIX);
    if settings.serving.load_balance == serving_config::LoadBalance::Ewma
        && !annotations.contains_key(&balance_annotation)
    {
        parsed
            .upstream
            .get_or_insert_with(|| Box::new(upstream::UpstreamPolicy::DEFAULT))
            .balance = upstream::Balance::Ewma;
    }
    let mut closed: Vec<String> = parsed.closed.take().into_iter().collect();
    if let Some(reference) = annotations.get(&format!("{}custom-headers", canary::PREFIX)) {
        match headers::custom_headers(
            reference,
            &key.namespace,
            &c.snapshot.config_maps,
            &settings.allowed_response_headers,
        ) {
            Ok(custom) => parsed.snippet.response_headers.extend(custom),
            Err(why) => closed.push(format!("{}custom-headers: {why}", canary::PREFIX)),
        }
    }
    closed.extend(settings.admit.refused(annotations));
    if !closed.is_empty() {
        parsed.closed = Some(closed.join("; "));
    }
    if let Some(why) = &parsed.closed {
        let message = format!("its paths answer 503 instead of being served open: {why}");
        c.problem(INGRESS, key, Severity::Error, "FailedClosed", message);
    }
    host_tls::resolve(c, key, &mut parsed);
    Arc::new(parsed)
}

/// Balanced affinity's ring is built here, off the hot path.
fn warm_sticky_ring(affinity: Option<&affinity::Affinity>, target: &Target) {
    if let (Some(affinity), Target::Upstream(upstream)) = (affinity, target)
        && affinity.mode == affinity::Mode::Balanced
    {
        upstream.sticky_ring();
    }
}

/// An Ingress's `server-snippet`, for the hosts its rules name. One that cannot be translated,
/// or that the controller ConfigMap does not admit, closes those hosts (reported).
fn server_snippet(
    c: &mut Compiler<'_>,
    key: &ObjectKey,
    ingress: &Ingress,
    settings: &config::ControllerConfig,
) -> Option<Arc<ServerSnippet>> {
    let name = format!("{}server-snippet", canary::PREFIX);
    let annotations = ingress.metadata.annotations.as_ref()?;
    let text = annotations.get(&name)?;
    let admitted = settings
        .admit
        .refused(&[(name.clone(), String::new())].into_iter().collect())
        .into_iter()
        .next();
    let parsed = match admitted {
        Some(why) => Err(why),
        None => snippet::parse(text).map_err(|why| format!("{name}: {why}")),
    };
    Some(Arc::new(match parsed {
        Ok(snippet) => ServerSnippet::Translated(snippet),
        Err(why) => {
            let message =
                format!("every path of its hosts answers 503 instead of being served open: {why}");
            c.problem(INGRESS, key, Severity::Error, "FailedClosed", message);
            ServerSnippet::Closed
        }
    }))
}

/// The controller ConfigMap's `proxy-set-headers` and `add-headers`: a ConfigMap that is missing
/// or has entries that are not headers is reported and not used.
fn global_headers(
    c: &mut Compiler<'_>,
    settings: &config::ControllerConfig,
    opts: &CompileOptions,
) -> headers::GlobalHeaders {
    let mut global = headers::GlobalHeaders::default();
    let Some(controller) = &opts.configmap else {
        return global;
    };
    for (setting, reference, upstream) in [
        ("proxy-set-headers", &settings.proxy_set_headers, true),
        ("add-headers", &settings.add_headers, false),
    ] {
        let Some(reference) = reference else {
            continue;
        };
        let found = headers::config_map_key(reference, &controller.namespace).and_then(|key| {
            let map = c
                .snapshot
                .config_maps
                .get(&key)
                .ok_or_else(|| format!("the ConfigMap {key} was not found"))?;
            headers::header_entries(map).map_err(|why| format!("ConfigMap {key}: {why}"))
        });
        match found {
            Ok(entries) if upstream => global.upstream = entries,
            Ok(entries) => global.response = entries,
            Err(why) => {
                let message = format!("ConfigMap key {setting:?}: {why}; no headers are added");
                c.problem(
                    CONFIGMAP,
                    controller,
                    Severity::Warning,
                    "InvalidConfigValue",
                    message,
                );
            }
        }
    }
    global
}

/// Each served Ingress's regex annotations, and the hosts in regex mode: those some Ingress
/// puts there with `use-regex` or a path-changing `rewrite-target` (ingress-nginx's rule).
fn regex_modes(
    c: &mut Compiler<'_>,
    served: &[(&ObjectKey, &Ingress)],
    canaries: &HashSet<ObjectKey>,
) -> (
    HashMap<ObjectKey, regex_mode::RegexAnnotations>,
    HashSet<HostKey>,
) {
    let mut all = HashMap::new();
    let mut hosts = HashSet::new();
    for &(key, ingress) in served {
        if canaries.contains(key) {
            continue;
        }
        let Some(annotations) = ingress.metadata.annotations.as_ref() else {
            continue;
        };
        let (parsed, problems) = regex_mode::parse(annotations);
        c.annotation_problems(key, problems);
        for (host, _, path, _) in valid_paths(ingress) {
            if parsed.host_wide_for(path) {
                hosts.insert(host);
            }
        }
        if parsed.use_regex || parsed.rewrite_target.is_some() {
            all.insert(key.clone(), parsed);
        }
    }
    (all, hosts)
}

/// The paths of an Ingress's rules whose host and path are valid (the main loop reports the
/// others): host, pathType, path and the path itself.
fn valid_paths(ingress: &Ingress) -> Vec<(HostKey, PathKind, &str, &HTTPIngressPath)> {
    let rules = ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_deref())
        .unwrap_or(&[]);
    let mut out = Vec::new();
    for rule in rules {
        let Ok(host) = HostKey::parse(rule.host.as_deref()) else {
            continue;
        };
        for p in rule
            .http
            .as_ref()
            .map(|h| h.paths.as_slice())
            .unwrap_or(&[])
        {
            if let Ok((kind, path)) = rule_path(&host, p) {
                out.push((host.clone(), kind, path, p));
            }
        }
    }
    out
}

/// A path's type and path (an empty ImplementationSpecific path is `/`), or why it is invalid.
fn rule_path<'p>(host: &HostKey, p: &'p HTTPIngressPath) -> Result<(PathKind, &'p str), String> {
    let Some(kind) = PathKind::parse(&p.path_type) else {
        return Err(format!(
            "host {}: pathType {:?} is not Exact, Prefix or ImplementationSpecific; path skipped",
            host.describe(),
            p.path_type
        ));
    };
    match p.path.as_deref() {
        None | Some("") if kind == PathKind::ImplementationSpecific => Ok((kind, "/")),
        Some(path) if path.starts_with('/') => Ok((kind, path)),
        other => Err(format!(
            "host {}: path {:?} must start with `/`; skipped",
            host.describe(),
            other.unwrap_or("")
        )),
    }
}

/// A route's identity: host, path and pathType.
type RouteKey = (HostKey, String, PathKind);

struct PendingCanary {
    canary: Canary,
}

/// The canary Ingresses among `served` (oldest first): their routes by host + path + pathType,
/// waiting for the non-canary route they attach to, and the set of canary Ingresses (which are
/// never routes of their own).
fn canaries(
    c: &mut Compiler<'_>,
    served: &[(&ObjectKey, &Ingress)],
) -> (HashMap<RouteKey, PendingCanary>, HashSet<ObjectKey>) {
    let mut pending = HashMap::new();
    let mut canary_ingresses = HashSet::new();
    for &(key, ingress) in served {
        let annotations = ingress.metadata.annotations.clone().unwrap_or_default();
        let (parsed, problems) = canary::parse(&annotations);
        let canary::Parsed::Canary(policy) = parsed else {
            continue;
        };
        canary_ingresses.insert(key.clone());
        c.annotation_problems(key, problems);
        for (host, kind, path, p) in valid_paths(ingress) {
            let Some(route) = c.backend_route(key, path, &p.backend) else {
                continue;
            };
            let Ok(route) = Arc::try_unwrap(route) else {
                continue;
            };
            let port = p
                .backend
                .service
                .as_ref()
                .and_then(|s| s.port.as_ref())
                .map(|port| match (&port.name, port.number) {
                    (Some(name), _) if !name.is_empty() => name.clone(),
                    (_, Some(n)) => n.to_string(),
                    _ => String::new(),
                })
                .unwrap_or_default();
            let label = format!("{}-{}-{port}", key.namespace, route.service);
            let slot = (host.clone(), path.to_owned(), kind);
            if let Some(older) = pending
                .get(&slot)
                .map(|p: &PendingCanary| p.canary.ingress.clone())
            {
                let message = format!(
                    "host {} path {path} already has the canary of the older Ingress {older}; one canary per route, this one is ignored",
                    host.describe()
                );
                c.problem(INGRESS, key, Severity::Warning, "Conflict", message);
                continue;
            }
            pending.insert(
                slot,
                PendingCanary {
                    canary: Canary::new(key.clone(), route.target, policy.clone(), label),
                },
            );
        }
    }
    (pending, canary_ingresses)
}

/// The `--configmap` settings; the defaults when there is none, or it is missing (reported).
fn controller_config(c: &mut Compiler<'_>, opts: &CompileOptions) -> config::ControllerConfig {
    let Some(key) = &opts.configmap else {
        return config::ControllerConfig::default();
    };
    let Some(map) = c.snapshot.config_maps.get(key) else {
        let message = "--configmap: ConfigMap not found; the default settings apply".to_owned();
        c.problem(
            CONFIGMAP,
            key,
            Severity::Warning,
            "MissingConfigMap",
            message,
        );
        return config::ControllerConfig::default();
    };
    let data = map.data.clone().unwrap_or_default();
    let (settings, problems) = config::parse(&data);
    for problem in problems {
        c.problem(
            CONFIGMAP,
            key,
            Severity::Warning,
            problem.reason,
            problem.message,
        );
    }
    settings
}

/// The controller ConfigMap's `global-auth-*` keys; problems are reported on the ConfigMap (its
/// absence is reported by `controller_config`).
fn global_auth(c: &mut Compiler<'_>, opts: &CompileOptions) -> auth::Global {
    let Some(map) = opts
        .configmap
        .as_ref()
        .and_then(|key| c.snapshot.config_maps.get(key).map(|map| (key, map)))
    else {
        return auth::Global::Off;
    };
    let (key, map) = map;
    let (global, problems) = auth::parse_global(map.data.as_ref().unwrap_or(&Default::default()));
    for problem in problems {
        c.problem(
            CONFIGMAP,
            key,
            Severity::Warning,
            problem.reason,
            problem.message,
        );
    }
    global
}

/// The HTTP-01 answers a challenge Ingress provides, for the proxy to give itself. A malformed
/// challenge is reported and its paths go to their backend (the operator's solver) as written.
fn acme_answers(c: &mut Compiler<'_>, key: &ObjectKey, ingress: &Ingress) -> Vec<ChallengeAnswer> {
    match challenge::answers(ingress) {
        Ok(answers) => answers,
        Err(ChallengeError::NotLabelled) => {
            let annotated = ingress
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(RESPONSE_ANNOTATION));
            if annotated {
                let message = format!(
                    "{RESPONSE_ANNOTATION} is ignored: the Ingress lacks the label {CHALLENGE_LABEL}: \"true\""
                );
                c.problem(INGRESS, key, Severity::Warning, "InvalidChallenge", message);
            }
            Vec::new()
        }
        Err(ChallengeError::NoResponse) => Vec::new(),
        Err(err) => {
            let message = format!(
                "not answered by the proxy: {err}; its paths go to their backend as written"
            );
            c.problem(INGRESS, key, Severity::Warning, "InvalidChallenge", message);
            Vec::new()
        }
    }
}

fn controller_default(c: &mut Compiler<'_>, opts: &CompileOptions) -> Arc<Route> {
    let Some(key) = &opts.default_backend_service else {
        return Arc::new(not_found_route());
    };
    match backend::resolve(c.snapshot, &c.endpoints, key, Some(backend::PortRef::First)) {
        Ok(upstream) => Arc::new(Route::new(
            None,
            "",
            key.name.clone(),
            Target::Upstream(Arc::new(upstream)),
        )),
        Err(err) => {
            let message =
                format!("--default-backend-service: {err}; the built-in 404 answers instead");
            c.problem("Service", key, Severity::Warning, err.reason(), message);
            Arc::new(not_found_route())
        }
    }
}

/// The certificates by SNI name, and the hosts whose TLS is usable (they get the HTTPS redirect
/// and HSTS): those of a `spec.tls` entry whose Secret resolved, or that names no Secret (the
/// default certificate then serves them, as in ingress-nginx).
fn certificates(
    c: &mut Compiler<'_>,
    served: &[(&ObjectKey, &Ingress)],
    opts: &CompileOptions,
) -> (CertTable, HashSet<HostKey>) {
    let mut parsed: HashMap<ObjectKey, Option<Arc<CertifiedKey>>> = HashMap::new();
    let mut table = CertTable::default();
    let mut tls_hosts = HashSet::new();
    for &(key, ingress) in served {
        let entries = ingress
            .spec
            .as_ref()
            .and_then(|s| s.tls.as_deref())
            .unwrap_or(&[]);
        for entry in entries {
            let hosts = entry.hosts.as_deref().unwrap_or(&[]);
            // Without a Secret the hosts get the default certificate, as in ingress-nginx.
            let Some(secret_name) = entry.secret_name.as_deref().filter(|s| !s.is_empty()) else {
                tls_hosts.extend(hosts.iter().filter_map(|h| HostKey::parse(Some(h)).ok()));
                continue;
            };
            let secret_key = ObjectKey::new(key.namespace.clone(), secret_name);
            let cert = match parsed.get(&secret_key) {
                Some(cert) => cert.clone(),
                None => {
                    let cert = match c.snapshot.secrets.get(&secret_key) {
                        None => {
                            let message = format!(
                                "TLS Secret {secret_key} not found; its hosts get the default certificate"
                            );
                            c.problem(INGRESS, key, Severity::Warning, "MissingSecret", message);
                            None
                        }
                        Some(secret) => {
                            match c.certs_before.get(&mut c.certs_after, &secret_key, secret) {
                                Ok(cert) => Some(cert),
                                Err(err) => {
                                    let message = format!(
                                        "TLS Secret {secret_key}: {err}; its hosts get the default certificate"
                                    );
                                    c.problem(
                                        INGRESS,
                                        key,
                                        Severity::Warning,
                                        "InvalidSecret",
                                        message,
                                    );
                                    None
                                }
                            }
                        }
                    };
                    parsed.insert(secret_key, cert.clone());
                    cert
                }
            };
            let Some(cert) = cert else { continue };
            for host in hosts {
                let parsed = HostKey::parse(Some(host));
                if let Ok(host) = &parsed {
                    tls_hosts.insert(host.clone());
                }
                match parsed {
                    Ok(HostKey::Exact(h)) => {
                        table.exact.entry(h).or_insert_with(|| cert.clone());
                    }
                    Ok(HostKey::Wildcard(s)) => {
                        table.wildcard.entry(s).or_insert_with(|| cert.clone());
                    }
                    Ok(HostKey::None) => {}
                    Err(message) => {
                        c.problem(INGRESS, key, Severity::Warning, "InvalidHost", message);
                    }
                }
            }
        }
    }
    if let Some(key) = &opts.default_ssl_certificate {
        let secret = c.snapshot.secrets.get(key);
        match secret.map(|s| c.certs_before.get(&mut c.certs_after, key, s)) {
            Some(Ok(cert)) => table.default = Some(cert),
            Some(Err(err)) => {
                let message = format!(
                    "--default-ssl-certificate: {err}; the self-signed certificate is used"
                );
                c.problem("Secret", key, Severity::Warning, "InvalidSecret", message);
            }
            None => {
                let message = "--default-ssl-certificate: Secret not found; the self-signed certificate is used".to_owned();
                c.problem("Secret", key, Severity::Warning, "MissingSecret", message);
            }
        }
    }
    (table, tls_hosts)
}

/// The same problem found twice (e.g. one missing Service behind two paths) is reported once.
fn dedup(problems: Vec<Problem>) -> Vec<Problem> {
    let mut seen = HashSet::new();
    problems
        .into_iter()
        .filter(|p| seen.insert(p.clone()))
        .collect()
}
