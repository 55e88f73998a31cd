//! The hot path, one request: match host and path on the table the request started with, then
//! answer locally (ACME challenges, redirects to HTTPS, default backends) or forward to an
//! endpoint (round-robin or ewma; the next endpoint on failure as `proxy-next-upstream` says,
//! by default on errors and timeouts, three tries in all), with hop-by-hop headers removed and
//! ingress-nginx's forwarding headers set. Bodies stream both ways; the response body records
//! metrics and the access log when it ends.

mod auth;
mod body;
mod buffered;
mod client_cert;
mod clients;
mod error_pages;
mod finish;
mod headers;
mod mirror;
mod snippet;
mod throttle;
mod tls_clients;

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::access_log::{self, AccessLog};
use crate::apply::Shared;
use crate::balance;
use crate::compile::affinity::{Affinity, Mode as AffinityMode, split_value};
use crate::compile::canary::{Decision, cookie_value};
use crate::compile::cors::Cors;
use crate::compile::forwarding::{Client, Forwarding, ProxiedAddrs, ip_value};
use crate::compile::hash_by;
use crate::compile::policy::Admission;
use crate::compile::serving_config::UpstreamPool;
use crate::compile::snippet::HeaderPattern;
use crate::compile::upstream::{Balance, Condition, UpstreamPolicy};
use crate::normalize::{normalize_host, normalize_path};
use crate::routes::{Canary, HostRoutes, ServerSnippet, Target, Upstream, UpstreamProtocol};
use crate::variables::RequestView;

use client_cert::ClientCert;
use clients::{Chosen, Clients, TimedClients};
use mirror::{MirrorPlan, Mirrors};

pub use body::{ObservedBody, ProxyBody};
pub use clients::AnyServerCertificate;
pub use headers::strip_hop_by_hop;

use body::{ReclaimableBody, SendClock};
use finish::{Finish, LogFields, UpstreamOutcome, request_length, response_head_length};
use headers::{RequestIds, requested_upgrade};

pub type ResponseBody = ObservedBody;
type LocalBody = BoxBody<Bytes, hyper::Error>;

/// nginx's bound on `rewrite … last` re-matching the location.
const MAX_REWRITE_CYCLES: usize = 10;

/// Never redirected to HTTPS: an ACME CA fetches HTTP-01 tokens over plain HTTP.
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// What the proxy knows about the downstream connection; built once per connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The port the request arrived on (`$server_port`).
    pub server_port: u16,
    /// What the connection's PROXY protocol header said (`use-proxy-protocol`).
    pub proxied: Option<ProxiedAddrs>,
    peer_ip: HeaderValue,
    local_port: HeaderValue,
    /// nginx's `$connection` and `$connection_requests` (the access log), and
    /// `keep-alive-requests`.
    id: u64,
    requests: AtomicU64,
    /// The client authentication the TLS handshake was made for, and its outcome.
    pub client: Option<Arc<crate::client_auth::ClientSession>>,
}

/// Connection serial numbers, from 1 as nginx counts them.
static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

impl ConnInfo {
    pub fn new(peer: SocketAddr, local_port: u16, tls: bool) -> Self {
        Self {
            peer,
            tls,
            server_port: local_port,
            proxied: None,
            peer_ip: ip_value(peer.ip()),
            local_port: HeaderValue::from(local_port),
            id: CONNECTIONS.fetch_add(1, Ordering::Relaxed),
            requests: AtomicU64::new(0),
            client: None,
        }
    }

    /// Counts a request on this connection; what the access log knows of the connection.
    fn next_request(&self) -> access_log::Connection {
        access_log::Connection {
            peer: self.peer,
            server_port: self.server_port,
            tls: self.tls,
            id: self.id,
            requests: self.requests.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }

    pub fn with_client(mut self, client: Option<Arc<crate::client_auth::ClientSession>>) -> Self {
        self.client = client;
        self
    }

    pub fn proxied(mut self, proxied: Option<ProxiedAddrs>) -> Self {
        self.proxied = proxied;
        self
    }

    fn scheme(&self) -> HeaderValue {
        HeaderValue::from_static(if self.tls { "https" } else { "http" })
    }

    /// The X-Forwarded-* values the upstream gets, as ingress-nginx computes them: the
    /// client's own with `use-forwarded-headers`, else the PROXY protocol's destination port
    /// (443 means https), else this connection's.
    fn forwarded(
        &self,
        forwarding: &Forwarding,
        client: &Client,
        headers: &HeaderMap,
    ) -> Forwarded {
        let proxied_https = self.proxied.is_some_and(|p| p.destination_port == 443);
        Forwarded {
            real_ip: if client.ip == self.peer.ip() {
                self.peer_ip.clone()
            } else {
                ip_value(client.ip)
            },
            forwarded_for: if client.ip == self.peer.ip() && !forwarding.compute_full_forwarded_for
            {
                self.peer_ip.clone()
            } else {
                forwarding.forwarded_for(client, headers)
            },
            host: forwarding.trusted_header(headers, "x-forwarded-host"),
            port: forwarding
                .trusted_header(headers, "x-forwarded-port")
                .or_else(|| self.proxied.map(|p| HeaderValue::from(p.destination_port)))
                .unwrap_or_else(|| self.local_port.clone()),
            proto: forwarding
                .trusted_header(headers, "x-forwarded-proto")
                .unwrap_or_else(|| {
                    if proxied_https {
                        HeaderValue::from_static("https")
                    } else {
                        self.scheme()
                    }
                }),
        }
    }
}

/// The forwarding headers a request's upstream gets.
struct Forwarded {
    real_ip: HeaderValue,
    forwarded_for: HeaderValue,
    /// `use-forwarded-headers`: the client's X-Forwarded-Host, which also becomes the Host.
    host: Option<HeaderValue>,
    port: HeaderValue,
    proto: HeaderValue,
}

/// How a request goes upstream, decided from its route.
struct Outbound<'a> {
    /// The Host header (or HTTP/2 authority) to forward.
    host: Option<HeaderValue>,
    /// `rewrite-target`'s path and query, replacing the request's.
    rewritten: Option<PathAndQuery>,
    /// How long the upstream may take to send its response headers.
    timeout: Duration,
    /// The Service port's `appProtocol`, or the `backend-protocol` annotation.
    protocol: UpstreamProtocol,
    /// The ConfigMap's `proxy-set-headers` and the snippet's `proxy_set_header`s, expanded.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The server's and the location's `more_clear_input_headers`.
    clear: &'a [HeaderPattern],
    clear_location: &'a [HeaderPattern],
    /// Cookie affinity, with the request's cookie value.
    affinity: Option<(&'a Affinity, Option<String>)>,
    /// `upstream-hash-by`: the endpoint the request's key maps to.
    hashed: Option<usize>,
    /// `upstream-vhost`.
    vhost: Option<HeaderValue>,
    /// `x-forwarded-prefix`.
    forwarded_prefix: Option<HeaderValue>,
    /// Timeouts, retries, balancing, HTTP version and buffering.
    policy: &'a UpstreamPolicy,
    /// `proxy-body-size` (0: unlimited), for bodies read whole.
    body_limit: u64,
    /// `mirror-target`: where a copy goes.
    mirror: Option<MirrorPlan<'a>>,
    /// X-Forwarded-* and X-Real-IP.
    forwarded: Forwarded,
    /// `proxy-connect-timeout` and the `upstream-keepalive-*` settings.
    pool: &'a UpstreamPool,
    /// `auth-tls-*`: the `ssl-client-*` headers.
    client_cert: ClientCert<'a>,
    /// `proxy-ssl-*`: the route's own upstream TLS configuration.
    upstream_tls: Option<&'a Arc<crate::upstream_tls::UpstreamTls>>,
}

pub struct Proxy {
    shared: Arc<Shared>,
    /// The upstream pools, rebuilt when the ConfigMap's pool settings change.
    clients: ArcSwap<(UpstreamPool, Clients)>,
    timed_clients: TimedClients,
    mirrors: Mirrors,
    ids: RequestIds,
    access_log: Option<AccessLog>,
}

impl Proxy {
    pub fn new(shared: Arc<Shared>, access_log: Option<AccessLog>) -> Self {
        Self {
            shared,
            clients: ArcSwap::from_pointee({
                let pool = UpstreamPool::default();
                let clients = Clients::new(&pool);
                (pool, clients)
            }),
            timed_clients: TimedClients::default(),
            mirrors: Mirrors::new(),
            ids: RequestIds::new(),
            access_log,
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The pools for `pool`'s settings; a change starts new pools (the old ones close as their
    /// requests finish).
    fn clients(&self, pool: &UpstreamPool) -> Arc<(UpstreamPool, Clients)> {
        let current = self.clients.load_full();
        if current.0 == *pool {
            return current;
        }
        let fresh = Arc::new((pool.clone(), Clients::new(pool)));
        self.clients.store(fresh.clone());
        fresh
    }

    pub async fn handle(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        mut req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, Infallible> {
        let started = Instant::now();
        let mut connection = conn.next_request();
        // One table for the whole request, even if a new one is swapped in meanwhile.
        let table = self.shared.table.load_full();
        let host_value = request_host(&req);
        let raw_host = host_value
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let path = normalize_path(req.uri().path());
        let serving = &table.config.serving;
        // The real_ip module: who the request is from, for access rules, limits and logs.
        let client = serving
            .forwarding
            .client(conn.peer.ip(), conn.proxied, req.headers());
        // The access log's `$remote_addr` is the real client too, as with nginx's real_ip.
        connection.peer.set_ip(client.ip);
        let host = normalize_host(raw_host);
        let host_routes = table.host_routes(&host);
        // A `server-snippet` runs before the location is chosen, as nginx's server rewrite
        // phase does; ACME tokens are never rewritten away.
        let server = host_routes
            .server
            .as_deref()
            .filter(|_| !path.starts_with(ACME_CHALLENGE_PREFIX));
        let (server_answer, server_uri) = match server {
            Some(ServerSnippet::Closed) => (
                Some(local(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "503 Service Unavailable: the server-snippet of this host is not supported; see the Ingress's Events\n",
                )),
                None,
            ),
            Some(ServerSnippet::Translated(s)) if !s.steps.is_empty() => {
                let view = request_view(
                    &req,
                    &conn,
                    client.ip,
                    &host,
                    &host_routes.label,
                    &path,
                    None,
                );
                match snippet::rewrite_phase(&s.steps, &view) {
                    snippet::Phase::Respond(response) => (Some(response), None),
                    snippet::Phase::Continue(uri) => (None, uri),
                    // At server level the location is chosen next anyway.
                    snippet::Phase::Last(uri) => (None, Some(uri)),
                }
            }
            _ => (None, None),
        };
        let server = match server {
            Some(ServerSnippet::Translated(s)) => Some(s),
            _ => None,
        };
        // After a server-level rewrite the new path chooses the location.
        let mut path = match &server_uri {
            Some(uri) => {
                let new_path = uri.split('?').next().unwrap_or("/");
                Cow::Owned(normalize_path(new_path).into_owned())
            }
            None => path,
        };
        let mut route = table.route_in(host_routes, &path).clone();
        // The location's rewrite phase (`configuration-snippet`), worked out before its access
        // checks, whose answers still win: `rewrite … last` chooses the location again with the
        // new URI, at most 10 times, as nginx does.
        let mut location_phase = None;
        let mut last_uri = None;
        if !path.starts_with(ACME_CHALLENGE_PREFIX) {
            for cycle in 0..=MAX_REWRITE_CYCLES {
                let steps = &route.policy.snippet.steps;
                if steps.is_empty() || matches!(route.target, Target::Answer { .. }) {
                    break;
                }
                let view = request_view(
                    &req,
                    &conn,
                    client.ip,
                    &host,
                    &host_routes.label,
                    &path,
                    None,
                );
                match snippet::rewrite_phase(steps, &view) {
                    // `rewrite-target`'s own rewrite comes first and stops the rest.
                    snippet::Phase::Last(_) if route.rewrite.is_some() => {
                        location_phase = Some(snippet::Phase::Continue(None));
                    }
                    snippet::Phase::Last(_) if cycle == MAX_REWRITE_CYCLES => {
                        tracing::warn!(host = %host, "rewrite or internal redirection cycle");
                        location_phase = Some(snippet::Phase::Respond(local(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "500 Internal Server Error: rewrite cycle\n",
                        )));
                    }
                    snippet::Phase::Last(uri) => {
                        let new_path = uri.split('?').next().unwrap_or("/");
                        path = Cow::Owned(normalize_path(new_path).into_owned());
                        route = table.route_in(host_routes, &path).clone();
                        last_uri = Some(uri);
                        continue;
                    }
                    phase => location_phase = Some(phase),
                }
                break;
            }
        }
        let policy = route.policy.clone();
        let acme = matches!(route.target, Target::Answer { .. });
        let redirect_to_https = !conn.tls
            && !acme
            && !path.starts_with(ACME_CHALLENGE_PREFIX)
            && (policy.force_ssl_redirect
                || (host_routes.tls_redirect && policy.ssl_redirect != Some(false)));
        // The default `no-auth-locations` of ingress-nginx: ACME challenges skip authentication.
        let auth_exempt = acme
            || path.starts_with(ACME_CHALLENGE_PREFIX)
            || table
                .config
                .no_auth_locations
                .iter()
                .any(|location| route.path.starts_with(location.as_str()));
        // `auth-tls-*`: the host's client certificate check comes first, as in nginx.
        let (client_cert, client_refusal) = match client_cert::check(
            host_routes.client_auth.as_ref(),
            &conn,
            acme || redirect_to_https,
        ) {
            Ok(checked) => (checked, None),
            Err(refused) => (ClientCert::Unchecked, Some(refused)),
        };
        // `limit-connections`: this request's slot, held until its response ends.
        let in_flight = policy.enter(client.ip);
        // The proxy's own answers from the Ingress's policies, in ingress-nginx's order: access
        // first, then the snippet's rewrite phase, then redirects and request checks.
        let access_answer = if let Some(refused) = client_refusal.filter(|_| !acme) {
            // nginx checks the certificate before any rewrite phase runs.
            Some(refused.response())
        } else if server_answer.is_some() {
            server_answer
        } else if acme {
            None
        } else if policy.closed.is_some() {
            Some(local(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable: an access rule of this path is not supported; see the Ingress's Events\n",
            ))
        } else if !policy.admits(client.ip) && !policy.satisfy_any() {
            Some(local(StatusCode::FORBIDDEN, "403 Forbidden\n"))
        } else if matches!(in_flight, Admission::TooMany) {
            Some(too_many(serving.limit_conn_status))
        } else if !policy.within_rates(client.ip, started) {
            Some(too_many(serving.limit_req_status))
        } else {
            None
        };
        let mut snippet_uri = last_uri;
        let phase_answer = match location_phase {
            Some(snippet::Phase::Respond(response)) if access_answer.is_none() && !acme => {
                Some(response)
            }
            Some(snippet::Phase::Continue(Some(uri))) => {
                snippet_uri = Some(uri);
                None
            }
            _ => None,
        };
        let policy_answer = if access_answer.is_some() || phase_answer.is_some() {
            access_answer.or(phase_answer)
        } else if acme {
            None
        } else if redirect_to_https {
            Some(redirect_https(
                host_routes,
                raw_host,
                req.uri(),
                policy.preserve_trailing_slash,
            ))
        } else if let Some((code, location)) = &policy.redirect {
            Some(redirect(*code, location.clone()))
        } else if let (Some(location), "/") = (&policy.app_root, &*path) {
            Some(redirect(StatusCode::FOUND, location.clone()))
        } else if let Some(preflight) = policy
            .cors
            .as_ref()
            .filter(|_| req.method() == Method::OPTIONS)
            .and_then(|cors| cors_preflight(cors, req.headers().get(header::ORIGIN)))
        {
            Some(preflight)
        } else if too_large(
            req.headers(),
            policy.body_limit.unwrap_or(serving.body_limit),
        ) {
            Some(local(
                StatusCode::PAYLOAD_TOO_LARGE,
                "413 Request Entity Too Large\n",
            ))
        } else {
            None
        };
        let hsts = if conn.tls && host_routes.tls_redirect {
            table.hsts.clone()
        } else {
            None
        };
        let host_label = host_routes.label.clone();
        // `rewrite-target`: the captures come from the normalized path, the query stays.
        let (rewritten, rewrite_exhausted) = match route
            .rewrite
            .as_ref()
            .map(|r| r.apply(&path, req.uri().query()))
        {
            Some(Ok(uri)) => (uri.and_then(|uri| PathAndQuery::try_from(uri).ok()), false),
            // The backtracking engine gave up on the captures: answered like the match.
            Some(Err(_)) => (None, true),
            None => (
                snippet_uri
                    .or(server_uri)
                    .and_then(|uri| PathAndQuery::try_from(uri).ok()),
                false,
            ),
        };

        // Not logged: what `skip-access-log-urls` names, and what ingress-nginx's default server
        // answers for unknown hosts unless `enable-access-log-for-default-backend`.
        let default_server = Arc::ptr_eq(&route, &table.controller_default)
            && std::ptr::eq(host_routes, &table.hostless);
        let access_log = self.access_log.as_ref().filter(|_| {
            table.access_log
                && policy.access_log != Some(false)
                && table.log.logs(req.uri(), default_server)
        });
        let mut log = access_log.map(|_| {
            LogFields::capture(
                table.log.format.clone(),
                connection,
                &req,
                host_value.clone(),
            )
        });
        let method = method_label(req.method());
        let version = req.version();
        let origin = policy
            .cors
            .as_ref()
            .and(req.headers().get(header::ORIGIN).cloned());
        let request_length = request_length(req.method(), req.uri(), req.headers());
        let mut upstream = UpstreamOutcome::default();

        let canary = route.canary.as_deref().filter(|canary| {
            to_canary(
                canary,
                &route.target,
                route.affinity.as_ref(),
                req.headers(),
            )
        });
        let to_canary = canary.is_some();
        let target = canary.map_or(&route.target, |canary| &canary.target);
        let goes_upstream = policy_answer.is_none() && matches!(target, Target::Upstream(_));
        // X-Request-ID: the client's, or a new one, for requests that go upstream.
        let (request_id, new_id) = match req.headers().get("x-request-id") {
            _ if !goes_upstream => (None, false),
            Some(id) => (Some(id.clone()), false),
            None => (Some(self.ids.next()), true),
        };
        // Header directives with variables, expanded while the request is at hand; nothing is
        // allocated for routes without any.
        let snippet = &policy.snippet;
        let mut upstream_extra = Vec::new();
        let mut response_extra = Vec::new();
        let mut global_extra = Vec::new();
        let server_headers = server.is_some_and(|s| {
            !s.response_headers.is_empty() || (goes_upstream && !s.upstream_headers.is_empty())
        });
        let hash = route
            .hash
            .as_deref()
            .filter(|_| goes_upstream && !to_canary);
        let mut hashed = None;
        let wants_view = hash.is_some()
            || server_headers
            || !snippet.response_headers.is_empty()
            || !table.headers.response.is_empty()
            || (goes_upstream
                && !(snippet.upstream_headers.is_empty() && table.headers.upstream.is_empty()));
        if wants_view {
            let view = request_view(
                &req,
                &conn,
                client.ip,
                &host,
                &host_routes.label,
                &path,
                request_id.as_ref(),
            );
            // `upstream-hash-by`: the endpoint for this request's key.
            if let Some(hash) = hash {
                let mut key = Vec::with_capacity(64);
                hash.key.expand_into(&view, &mut key);
                hashed = hash.ring.pick(hash_by::hash(&key));
            }
            // The ConfigMap's, then the server's, then the location's: the last one set wins.
            if goes_upstream {
                snippet::expand_headers(&table.headers.upstream, &view, &mut upstream_extra);
                if let Some(server) = server {
                    snippet::expand_headers(&server.upstream_headers, &view, &mut upstream_extra);
                }
                snippet::expand_headers(&snippet.upstream_headers, &view, &mut upstream_extra);
            }
            snippet::expand_headers(&table.headers.response, &view, &mut global_extra);
            if let Some(server) = server {
                snippet::expand_response_headers(
                    &server.response_headers,
                    &view,
                    &mut response_extra,
                );
            }
            snippet::expand_response_headers(&snippet.response_headers, &view, &mut response_extra);
        }
        drop(path);
        if new_id && let Some(id) = &request_id {
            req.headers_mut().insert("x-request-id", id.clone());
        }
        if let Some(log) = &mut log
            && request_id.is_none()
            && log.wants_request_id()
        {
            log.request_id = Some(self.ids.next());
        }

        // Authentication (`auth-*`, `satisfy`): nginx's access phase, after every answer of the
        // proxy's own and before the upstream.
        let mut auth_grant = None;
        let policy_answer = match (policy_answer, policy.auth.as_deref()) {
            (None, Some(auth)) if !auth_exempt => {
                let place = auth::Place {
                    conn: &conn,
                    client: client.ip,
                    server_name: &host_routes.label,
                    route_path: &route.path,
                    timeout: policy.read_timeout.unwrap_or(table.upstream_timeout),
                };
                match self.authorize(auth, &policy, &place, &mut req).await {
                    Ok(grant) => {
                        auth_grant = Some(grant);
                        None
                    }
                    Err(denied) => Some(denied),
                }
            }
            (answer, _) => answer,
        };

        let mut response = if let Some(answer) = policy_answer {
            answer
        } else if rewrite_exhausted {
            local(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error: a regex path could not be matched within its limits\n",
            )
        } else {
            match target {
                Target::Respond { status, body } => local(*status, body),
                Target::Answer { body } => answer(body.clone()),
                Target::HostRedirect { host } => {
                    let scheme = if conn.tls { "https" } else { "http" };
                    let uri = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
                    match HeaderValue::from_str(&format!("{scheme}://{host}{uri}")) {
                        Ok(location) => redirect(StatusCode::PERMANENT_REDIRECT, location),
                        Err(_) => local(StatusCode::BAD_REQUEST, "400 Bad Request\n"),
                    }
                }
                Target::Upstream(target) => {
                    let plan = Outbound {
                        host: host_value.clone(),
                        rewritten,
                        timeout: policy.read_timeout.unwrap_or(table.upstream_timeout),
                        protocol: policy.backend_protocol.unwrap_or(target.protocol),
                        headers: upstream_extra,
                        clear: server.map_or(&[][..], |s| &s.clear_upstream[..]),
                        clear_location: &snippet.clear_upstream,
                        affinity: route.affinity.as_ref().map(|affinity| {
                            let value = req
                                .headers()
                                .get_all(header::COOKIE)
                                .iter()
                                .filter_map(|v| v.to_str().ok())
                                .find_map(|v| cookie_value(v, &affinity.name))
                                .map(str::to_owned);
                            (affinity, value)
                        }),
                        hashed,
                        vhost: policy.upstream_vhost.clone(),
                        forwarded_prefix: policy.forwarded_prefix.clone(),
                        policy: policy
                            .upstream
                            .as_deref()
                            .unwrap_or(&UpstreamPolicy::DEFAULT),
                        body_limit: policy.body_limit.unwrap_or(serving.body_limit),
                        mirror: policy.mirror.as_deref().map(|mirror| MirrorPlan {
                            mirror,
                            request_uri: req
                                .uri()
                                .path_and_query()
                                .map_or("/", |pq| pq.as_str())
                                .to_owned(),
                        }),
                        forwarded: conn.forwarded(&serving.forwarding, &client, req.headers()),
                        pool: &serving.upstream,
                        client_cert,
                        upstream_tls: policy.upstream_tls.as_ref(),
                    };
                    // What a custom error page needs of the request, kept only when it may.
                    let error_request = (!policy.custom_errors.is_empty()).then(|| {
                        error_pages::ErrorRequest::capture(&req, &route, target, client.ip)
                    });
                    let mut response = self.forward(plan, target, req, &mut upstream).await;
                    if let Some(request) = error_request
                        && policy.custom_errors.contains(&response.status())
                    {
                        let backend = policy.error_backend.as_deref();
                        let fallback = &table.controller_default.target;
                        response = self
                            .error_page(
                                backend,
                                fallback,
                                request,
                                response.status(),
                                request_id.clone(),
                            )
                            .await
                            .unwrap_or(response);
                    }
                    if let Some(rewrite) = &policy.response_rewrite {
                        rewrite.apply(response.headers_mut());
                    }
                    if let Some(limit) = policy.upstream.as_ref().and_then(|u| u.limit_rate) {
                        response = response.map(|body| throttle::throttle(body, limit));
                    }
                    response
                }
            }
        };
        // `hide-headers`, and `server-tokens` (off: no Server header, as ingress-nginx clears it).
        for name in &serving.hide_headers {
            response.headers_mut().remove(name);
        }
        if serving.server_tokens {
            response
                .headers_mut()
                .insert(header::SERVER, HeaderValue::from_static(SERVER_TOKEN));
        } else {
            response.headers_mut().remove(header::SERVER);
        }
        // `keep-alive-requests`: the last request a connection may carry closes it.
        if connection.requests >= u64::from(serving.listener.keep_alive_requests)
            && version < Version::HTTP_2
            && response.status() != StatusCode::SWITCHING_PROTOCOLS
        {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let headers = response.headers_mut();
        if let Some(hsts) = hsts {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
        }
        if let Some(cors) = &policy.cors
            && let Some(allowed) = cors.allow_origin(origin.as_ref())
        {
            cors_headers(headers, cors, allowed);
        }
        // The ConfigMap's `add-headers` (headers-more: every status).
        for (name, value) in global_extra {
            headers.insert(name, value);
        }
        // `add_header` applies to the statuses nginx lists, or to all with `always`.
        let adds = add_header_applies(response.status());
        let headers = response.headers_mut();
        for (name, value, always) in response_extra {
            if always || adds {
                headers.insert(name, value);
            }
        }
        let server_clears = server.map_or(&[][..], |s| &s.clear_response[..]);
        for pattern in server_clears.iter().chain(&snippet.clear_response) {
            pattern.clear(headers);
        }
        if let Some(grant) = auth_grant {
            auth::add_cookies(response.headers_mut(), grant, adds);
        }

        if let Some(log) = &mut log {
            log.capture_response(response.headers());
        }
        let status = response.status().as_u16();
        let finish = Finish {
            shared: self.shared.clone(),
            access_log: access_log.cloned(),
            log,
            route,
            canary: to_canary,
            host: host_label,
            method,
            status,
            started,
            request_length,
            response_head_length: response_head_length(response.headers()),
            request_id,
            upstream,
            _in_flight: in_flight.into_slot(),
        };
        Ok(response.map(|body| ObservedBody::new(body, Some(finish))))
    }

    async fn forward(
        &self,
        plan: Outbound<'_>,
        upstream: &Upstream,
        mut req: Request<Incoming>,
        outcome: &mut UpstreamOutcome,
    ) -> Response<LocalBody> {
        let Outbound {
            host,
            rewritten,
            timeout,
            protocol,
            headers: extra_headers,
            clear,
            clear_location,
            affinity,
            hashed,
            vhost,
            forwarded_prefix,
            policy: up,
            body_limit,
            mirror,
            forwarded,
            pool,
            client_cert,
            upstream_tls,
        } = plan;
        let count = upstream.endpoints.len();
        if count == 0 {
            return local(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable\n");
        }
        let upgrade = requested_upgrade(req.headers());
        // gRPC needs `te: trailers` end to end; TE is hop-by-hop, so it is set again for HTTP/2.
        let wants_trailers = req
            .headers()
            .get_all(header::TE)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
        let downstream_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        let upgrading = upgrade.is_some();
        upstream_headers(&mut headers, forwarded, host, upgrade);
        client_cert::set_headers(&mut headers, client_cert);
        for (name, value) in extra_headers {
            headers.insert(name, value);
        }
        for pattern in clear.iter().chain(clear_location) {
            pattern.clear(&mut headers);
        }
        if let Some(vhost) = vhost {
            headers.insert(header::HOST, vhost);
        }
        if let Some(prefix) = forwarded_prefix {
            headers.insert(HeaderName::from_static("x-forwarded-prefix"), prefix);
        }
        if protocol.is_http2() && wants_trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        let (scheme, mut version) = match (protocol.is_tls(), protocol.is_http2()) {
            (false, false) => (Scheme::HTTP, Version::HTTP_11),
            (false, true) => (Scheme::HTTP, Version::HTTP_2),
            (true, false) => (Scheme::HTTPS, Version::HTTP_11),
            (true, true) => (Scheme::HTTPS, Version::HTTP_2),
        };
        // `proxy-http-version: "1.0"`: no keep-alive, as nginx's HTTP/1.0 upstream requests.
        let http10 = up.http10 && !protocol.is_http2();
        if http10 {
            version = Version::HTTP_10;
            if !upgrading {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
        // `connection-proxy-header` replaces whatever Connection would be sent.
        if let Some(connection) = &up.connection
            && !protocol.is_http2()
        {
            headers.insert(header::CONNECTION, connection.clone());
        }
        // `proxy-connect-timeout`: a pool of its own, since the connector owns the timeout.
        let clients = self.clients(pool);
        let timed = up.connect_timeout.map(|t| self.timed_clients.get(pool, t));
        // `proxy-ssl-*`: the route's own configuration, pooled per serving thread.
        let own_tls = upstream_tls
            .filter(|_| protocol.is_tls())
            .map(|tls| tls_clients::client(tls, &upstream.service, protocol.is_http2(), pool));
        let client = match &own_tls {
            Some(client) => Chosen::Tls(client),
            None => timed.as_deref().unwrap_or(&clients.1).get(protocol),
        };
        let path_and_query = rewritten
            .or_else(|| parts.uri.path_and_query().cloned())
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        // `proxy-request-buffering: on` reads the whole body first; so does HTTP/1.0 for a body
        // without a length (it has no chunked encoding), as nginx does, and a mirror that
        // gets a copy of a small body.
        let no_length = body.size_hint().exact().is_none() && !body.is_end_stream();
        let mirror_body = mirror.as_ref().is_some_and(|m| {
            m.mirror.body
                && !body.is_end_stream()
                && body
                    .size_hint()
                    .exact()
                    .is_some_and(|n| n <= mirror::BODY_CAP)
        });
        let body = if up.request_buffering || (http10 && no_length) || mirror_body {
            match buffered::read_whole(body, body_limit).await {
                Ok(bytes) => ReclaimableBody::kept(bytes),
                Err(buffered::ReadError::TooLarge) => {
                    return local(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "413 Request Entity Too Large\n",
                    );
                }
                Err(buffered::ReadError::Failed) => {
                    return local(StatusCode::BAD_REQUEST, "400 Bad Request\n");
                }
            }
        } else {
            ReclaimableBody::new(body)
        };
        if let Some(plan) = mirror {
            self.mirrors
                .send(&clients.1, plan, &parts.method, &headers, &body, timeout);
        }

        // Affinity: the endpoint the client's cookie leads to, or a new key for it.
        let (sticky, new_key) = match &affinity {
            None => (None, None),
            Some((affinity, value)) => {
                let key = value.as_deref().map(|v| split_value(v).0);
                match (affinity.mode, key) {
                    (AffinityMode::Persistent, key) => (
                        key.and_then(|k| upstream.keys.iter().position(|e| e == k)),
                        None,
                    ),
                    (AffinityMode::Balanced, Some(key)) => (
                        upstream.sticky_ring().pick(hash_by::hash(key.as_bytes())),
                        None,
                    ),
                    (AffinityMode::Balanced, None) => {
                        let fresh = self.ids.next();
                        let fresh = fresh.to_str().unwrap_or_default().to_owned();
                        let endpoint = upstream.sticky_ring().pick(hash_by::hash(fresh.as_bytes()));
                        (endpoint, Some(fresh))
                    }
                }
            }
        };
        let started = Instant::now();
        let pick = |draw: usize| match up.balance {
            Balance::RoundRobin => draw % count,
            Balance::Ewma => balance::pick(&upstream.loads, draw, started),
        };
        // Affinity first, then the key's endpoint, as ingress-nginx's balancer chooses.
        let first = sticky
            .or(hashed.filter(|i| *i < count))
            .unwrap_or_else(|| pick(upstream.pick()));
        let attempts = up.attempts(count).max(1);
        let retry_until = up.next_upstream_timeout.map(|t| started + t);
        let next = up.next_upstream;
        let mut headers = Some(headers);
        let mut used = first;
        for attempt in 0..attempts {
            if attempt > 0 {
                used = match up.balance {
                    Balance::RoundRobin => (first + attempt) % count,
                    Balance::Ewma => pick(upstream.pick()),
                };
            }
            let authority = &upstream.endpoints[used];
            let mut uri = http::uri::Parts::default();
            uri.scheme = Some(scheme.clone());
            uri.authority = Some(authority.clone());
            uri.path_and_query = Some(path_and_query.clone());
            let Ok(uri) = Uri::from_parts(uri) else {
                return local(StatusCode::BAD_REQUEST, "400 Bad Request\n");
            };
            // The last attempt takes the headers; an earlier one needs a copy.
            let attempt_headers = if attempt + 1 == attempts {
                headers.take().unwrap_or_default()
            } else {
                headers.clone().unwrap_or_default()
            };
            // A request with a body keeps a clock: the wait for the response counts from when
            // the body last moved, so an upload longer than proxy-read-timeout still completes.
            let clock =
                (up.send_timeout.is_some() || !body.is_empty()).then(|| Arc::new(SendClock::new()));
            let mut upstream_req = Request::new(body.attempt(clock.clone()));
            *upstream_req.method_mut() = parts.method.clone();
            *upstream_req.uri_mut() = uri;
            *upstream_req.version_mut() = version;
            *upstream_req.headers_mut() = attempt_headers;

            let sent = Instant::now();
            outcome.addr = Some(authority.clone());
            outcome.sent_at = Some(sent);
            // Only `load-balance: ewma` keeps per-endpoint load.
            let ewma = (up.balance == Balance::Ewma).then(|| &upstream.loads[used]);
            let waiting = ewma.map(|load| load.start());
            let response = match &client {
                Chosen::Plain(client) => client.request(upstream_req),
                Chosen::Tls(client) => client.request(upstream_req),
            };
            let stalled = async {
                match (&clock, up.send_timeout) {
                    (Some(clock), Some(limit)) => clock.stalled(limit).await,
                    _ => std::future::pending().await,
                }
            };
            let read_timeout = async {
                match &clock {
                    Some(clock) => clock.quiet_for(timeout).await,
                    None => tokio::time::sleep(timeout).await,
                }
            };
            let result = tokio::select! {
                response = response => Ok(response),
                () = read_timeout => Err("timed out waiting for the response"),
                () = stalled => Err("timed out sending the request (proxy-send-timeout)"),
            };
            drop(waiting);
            let more = attempt + 1 < attempts && retry_until.is_none_or(|t| Instant::now() < t);
            // Whether the request can go to another endpoint after it reached this one.
            let resendable = || next.may_resend(&parts.method) && body.replayable();
            match result {
                Err(why) => {
                    tracing::warn!(upstream = %authority, service = %upstream.service, "upstream {why}");
                    if more && next.on(Condition::Timeout) && resendable() {
                        continue;
                    }
                    return local(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Timeout\n");
                }
                Ok(Ok(response)) => {
                    let header_time = sent.elapsed();
                    if let Some(load) = ewma {
                        load.observe(header_time, Instant::now());
                    }
                    outcome.header_time = Some(header_time);
                    outcome.status = Some(response.status().as_u16());
                    if more
                        && next.any_status()
                        && Condition::of_status(response.status()).is_some_and(|c| next.on(c))
                        && resendable()
                    {
                        tracing::warn!(upstream = %authority, service = %upstream.service, status = response.status().as_u16(), "trying the next endpoint (proxy-next-upstream)");
                        continue;
                    }
                    let mut response = upstream_response(response, downstream_upgrade);
                    let cookie_key = match (&affinity, &new_key) {
                        (Some((a, _)), _)
                            if a.mode == AffinityMode::Persistent && sticky != Some(used) =>
                        {
                            Some(upstream.keys[used].as_str())
                        }
                        (Some(_), Some(fresh)) => Some(fresh.as_str()),
                        _ => None,
                    };
                    if let (Some((affinity, _)), Some(key)) = (&affinity, cookie_key)
                        && let Some(cookie) =
                            affinity.set_cookie(key, &upstream.backend_key, jiff::Timestamp::now())
                    {
                        response.headers_mut().append(header::SET_COOKIE, cookie);
                    }
                    return response;
                }
                Ok(Err(err)) => {
                    let (condition, reached) = classify(&err);
                    tracing::warn!(upstream = %authority, service = %upstream.service, "upstream error: {err}");
                    if more && next.on(condition) && (!reached || resendable()) {
                        continue;
                    }
                    return match condition {
                        Condition::Timeout => {
                            local(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Timeout\n")
                        }
                        _ => local(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n"),
                    };
                }
            }
        }
        local(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n")
    }
}

/// What a failed exchange was in nginx's terms, and whether the request reached the upstream
/// (a connect failure never sent anything, so any request may go to the next endpoint).
fn classify(err: &hyper_util::client::legacy::Error) -> (Condition, bool) {
    let mut source = std::error::Error::source(err);
    let mut timed_out = false;
    let mut parse = false;
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            parse |= h.is_parse() || h.is_parse_status();
        }
        source = e.source();
    }
    let condition = if timed_out {
        Condition::Timeout
    } else if parse {
        Condition::InvalidHeader
    } else {
        Condition::Error
    };
    (condition, !err.is_connect())
}

/// ingress-nginx's order: header, then cookie, then weight. A side without endpoints never gets
/// a request the other side could serve (a canary whose pods are all gone must not turn into
/// 503s).
fn to_canary(
    canary: &Canary,
    main: &Target,
    affinity: Option<&Affinity>,
    headers: &HeaderMap,
) -> bool {
    // `affinity-canary-behavior: sticky`: a client whose cookie names a side stays there.
    if let Some(affinity) = affinity.filter(|a| a.canary_sticky)
        && let Some(value) = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| cookie_value(v, &affinity.name))
        && let (_, Some(backend)) = split_value(value)
    {
        let names = |target: &Target| match target {
            Target::Upstream(u) => u.backend_key == backend,
            _ => false,
        };
        if names(main) && main.has_endpoints() {
            return false;
        }
        if names(&canary.target) && canary.target.has_endpoints() {
            return true;
        }
    }
    let decision = canary.policy.decide(
        |name| headers.get(name).map(HeaderValue::as_bytes),
        |name| {
            headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| cookie_value(v, name))
        },
    );
    let wanted = match decision {
        Decision::Canary => true,
        Decision::Main => false,
        Decision::Weight => canary.next_weighted(),
    };
    match (wanted, canary.target.has_endpoints(), main.has_endpoints()) {
        (true, false, true) => false,
        (false, true, false) => true,
        _ => wanted,
    }
}

/// Removes hop-by-hop headers and sets the headers ingress-nginx always sends upstream.
fn upstream_headers(
    headers: &mut HeaderMap,
    forwarded: Forwarded,
    host: Option<HeaderValue>,
    upgrade: Option<HeaderValue>,
) {
    strip_hop_by_hop(headers);
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
    // HTTP/2 requests carry the host in :authority; HTTP/1.1 upstream needs a Host header.
    if !headers.contains_key(header::HOST)
        && let Some(value) = &host
    {
        headers.insert(header::HOST, value.clone());
    }
    let set = |headers: &mut HeaderMap, name: &'static str, value: HeaderValue| {
        headers.insert(HeaderName::from_static(name), value);
    };
    // Replacing what the client sent unless the ConfigMap says to trust it
    // (`use-forwarded-headers`, `compute-full-forwarded-for`).
    set(headers, "x-forwarded-for", forwarded.forwarded_for);
    set(headers, "x-real-ip", forwarded.real_ip);
    // ingress-nginx's `$best_http_host`: a trusted X-Forwarded-Host is also the Host.
    if let Some(trusted) = forwarded.host {
        headers.insert(header::HOST, trusted.clone());
        set(headers, "x-forwarded-host", trusted);
    } else if let Some(host) = host {
        set(headers, "x-forwarded-host", host);
    }
    set(headers, "x-forwarded-port", forwarded.port);
    set(headers, "x-forwarded-proto", forwarded.proto.clone());
    set(headers, "x-scheme", forwarded.proto);
}

/// `server-tokens: "true"`: what the Server header says.
const SERVER_TOKEN: &str = concat!("switchyard/", env!("CARGO_PKG_VERSION"));

/// The answer beyond a rate or connection limit (`limit-req-status-code`,
/// `limit-conn-status-code`; 503 by default).
fn too_many(status: StatusCode) -> Response<LocalBody> {
    local(status, "too many requests\n")
}

/// What nginx variables read from this request.
fn request_view<'a, B>(
    req: &'a Request<B>,
    conn: &ConnInfo,
    client: std::net::IpAddr,
    host: &'a str,
    server_name: &'a str,
    path: &'a str,
    request_id: Option<&'a HeaderValue>,
) -> RequestView<'a> {
    RequestView {
        method: req.method(),
        uri: req.uri(),
        version: req.version(),
        headers: req.headers(),
        host,
        server_name,
        path,
        client,
        client_port: conn.peer.port(),
        server_port: conn.server_port,
        tls: conn.tls,
        request_id,
        captures: &[],
    }
}

/// The Host header, or the HTTP/2 `:authority`.
fn request_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    match req.headers().get(header::HOST) {
        Some(host) => Some(host.clone()),
        None => req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        // Arbitrary methods would make arbitrary series.
        _ => "OTHER",
    }
}

fn upstream_response(
    mut response: Response<Incoming>,
    downstream_upgrade: Option<OnUpgrade>,
) -> Response<LocalBody> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(downstream) = downstream_upgrade {
            let upstream = hyper::upgrade::on(&mut response);
            tokio::spawn(tunnel(downstream, upstream));
        }
    } else {
        strip_hop_by_hop(response.headers_mut());
    }
    response.map(BodyExt::boxed)
}

/// Copies bytes both ways once both sides switched protocols (WebSocket and friends).
async fn tunnel(downstream: OnUpgrade, upstream: OnUpgrade) {
    match tokio::try_join!(downstream, upstream) {
        Ok((down, up)) => {
            let mut down = TokioIo::new(down);
            let mut up = TokioIo::new(up);
            if let Err(err) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                tracing::debug!("upgraded connection ended: {err}");
            }
        }
        Err(err) => tracing::debug!("protocol upgrade failed: {err}"),
    }
}

fn body_of(bytes: Bytes) -> LocalBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// A short answer from the proxy itself.
pub fn local(status: StatusCode, body: &'static str) -> Response<LocalBody> {
    let mut response = Response::new(body_of(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// An ACME HTTP-01 key authorization, answered by the proxy itself.
fn answer(body: Bytes) -> Response<LocalBody> {
    let mut response = Response::new(body_of(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// The CORS headers of an allowed origin.
fn cors_headers(headers: &mut HeaderMap, cors: &Cors, allowed: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    if cors.credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, cors.methods.clone());
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, cors.headers.clone());
    if let Some(expose) = &cors.expose {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
    }
}

/// A CORS preflight from an allowed origin: 204 from the proxy, as ingress-nginx answers it.
fn cors_preflight(cors: &Cors, origin: Option<&HeaderValue>) -> Option<Response<LocalBody>> {
    let allowed = cors.allow_origin(origin)?;
    let mut response = Response::new(body_of(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    cors_headers(headers, cors, allowed);
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain charset=UTF-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    Some(response)
}

/// A declared body larger than the limit (0: unlimited) is refused before it is read.
fn too_large(headers: &HeaderMap, limit: u64) -> bool {
    limit > 0
        && headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|length| length > limit)
}

/// nginx's `add_header` without `always`: these statuses only.
fn add_header_applies(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

/// `permanent-redirect`, `temporal-redirect`, `app-root`.
fn redirect(code: StatusCode, location: HeaderValue) -> Response<LocalBody> {
    let mut response = local(code, "Redirecting\n");
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// ingress-nginx's `ssl-redirect`: 308 to the same host (without a port: the HTTPS port is the
/// standard one behind the Service) and the same request URI, less one trailing `/` unless
/// `preserve-trailing-slash` (ingress-nginx drops it, query or not: `/a/` and `/?q=/` lose it).
fn redirect_https(
    host: &HostRoutes,
    raw_host: &str,
    uri: &Uri,
    preserve_trailing_slash: bool,
) -> Response<LocalBody> {
    let name = normalize_host(raw_host);
    let name = if name.is_empty() {
        &*host.label
    } else {
        &*name
    };
    let request_uri = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let request_uri = if preserve_trailing_slash {
        request_uri
    } else {
        request_uri.strip_suffix('/').unwrap_or(request_uri)
    };
    let target = format!("https://{name}{request_uri}");
    match HeaderValue::from_str(&target) {
        Ok(location) => {
            let mut response = local(
                StatusCode::PERMANENT_REDIRECT,
                "308 Permanent Redirect: this host is served over HTTPS\n",
            );
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Err(_) => local(StatusCode::BAD_REQUEST, "400 Bad Request\n"),
    }
}
