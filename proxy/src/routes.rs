//! The compiled, immutable route table and its lookup: one hash probe for the host (one more for
//! a wildcard), then the host's exact paths and its prefix paths sorted longest first.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::StatusCode;
use http::uri::Authority;
use rustls::sign::CertifiedKey;

use crate::model::ObjectKey;
use crate::normalize::path_elements;

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
}

#[derive(Debug)]
pub enum Target {
    Upstream(Upstream),
    /// Answered by the proxy itself (default backend 404, unusable backends 503).
    Respond {
        status: StatusCode,
        body: &'static str,
    },
}

/// A resolved backend: the endpoints traffic goes to, in a stable order.
#[derive(Debug)]
pub struct Upstream {
    pub service: ObjectKey,
    pub endpoints: Vec<Authority>,
    /// Round-robin position; lives as long as this table, no lock.
    next: AtomicUsize,
}

impl Upstream {
    pub fn new(service: ObjectKey, endpoints: Vec<Authority>) -> Self {
        Self {
            service,
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    /// The index of the endpoint the next request should try first.
    pub fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub(crate) struct PrefixRoute {
    pub(crate) elements: Vec<String>,
    pub(crate) route: Arc<Route>,
}

/// The routes of one host (or of the host-less rules), merged across Ingresses.
#[derive(Debug, Default)]
pub struct HostRoutes {
    pub(crate) exact: HashMap<String, Arc<Route>>,
    /// Sorted by element count, longest first; among equals the oldest Ingress first.
    pub(crate) prefixes: Vec<PrefixRoute>,
    /// The `spec.defaultBackend` of the oldest Ingress naming this host.
    pub(crate) default: Option<Arc<Route>>,
}

impl HostRoutes {
    /// Longest match wins; an Exact match is as long as the whole request path, so no Prefix
    /// can beat it, and on a tie Exact is preferred anyway.
    pub fn match_path(&self, path: &str) -> Option<&Arc<Route>> {
        if let Some(route) = self.exact.get(path) {
            return Some(route);
        }
        if self.prefixes.is_empty() {
            return None;
        }
        let request: Vec<&str> = path_elements(path).collect();
        self.prefixes
            .iter()
            .find(|p| {
                p.elements.len() <= request.len()
                    && p.elements.iter().zip(&request).all(|(a, b)| a == b)
            })
            .map(|p| &p.route)
    }

    pub fn path_count(&self) -> usize {
        self.exact.len() + self.prefixes.len()
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
    /// How many Ingresses contributed at least one route.
    pub served_ingresses: usize,
}

impl RouteTable {
    /// An empty table: everything goes to the controller's 404.
    pub fn empty() -> Self {
        Self {
            exact_hosts: HashMap::new(),
            wildcard_hosts: HashMap::new(),
            hostless: HostRoutes::default(),
            controller_default: Arc::new(not_found_route()),
            certs: CertTable::default(),
            served_ingresses: 0,
        }
    }

    /// `host` must be normalized (lower case, no port); `path` normalized too.
    pub fn route(&self, host: &str, path: &str) -> &Arc<Route> {
        let routes = self.host_routes(host);
        routes
            .match_path(path)
            .or(routes.default.as_ref())
            .unwrap_or(&self.controller_default)
    }

    fn host_routes(&self, host: &str) -> &HostRoutes {
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

pub(crate) fn not_found_route() -> Route {
    Route {
        ingress: None,
        path: String::new(),
        service: String::new(),
        target: Target::Respond {
            status: StatusCode::NOT_FOUND,
            body: "404 Not Found: no Ingress rule matches this host and path\n",
        },
    }
}
