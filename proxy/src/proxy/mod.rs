//! The hot path, one request: match host and path on the table the request started with, then
//! answer locally (ACME challenges, redirects to HTTPS, default backends) or forward to an
//! endpoint (round-robin, one retry on a failed connect), with hop-by-hop headers removed and
//! ingress-nginx's forwarding headers set. Bodies stream both ways; the response body records
//! metrics and the access log when it ends.

mod body;
mod clients;
mod finish;
mod headers;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::access_log::AccessLog;
use crate::apply::Shared;
use crate::compile::affinity::Affinity;
use crate::compile::canary::{Decision, cookie_value};
use crate::compile::cors::Cors;
use crate::compile::forwarding::{Client, Forwarding, ProxiedAddrs, ip_value};
use crate::compile::policy::Admission;
use crate::compile::serving_config::UpstreamPool;
use crate::normalize::{normalize_host, normalize_path};
use crate::routes::{Canary, HostRoutes, Target, Upstream, UpstreamProtocol};

use clients::{Chosen, Clients};

pub use body::{ObservedBody, ProxyBody};
pub use clients::AnyServerCertificate;
pub use headers::strip_hop_by_hop;

use body::ReclaimableBody;
use finish::{Finish, LogFields, UpstreamOutcome, request_length, response_head_length};
use headers::{RequestIds, requested_upgrade};

pub type ResponseBody = ObservedBody;
type LocalBody = BoxBody<Bytes, hyper::Error>;

/// Never redirected to HTTPS: an ACME CA fetches HTTP-01 tokens over plain HTTP.
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// What the proxy knows about the downstream connection; built once per connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// What the connection's PROXY protocol header said (`use-proxy-protocol`).
    pub proxied: Option<ProxiedAddrs>,
    peer_ip: HeaderValue,
    local_port: HeaderValue,
    /// Requests served on this connection so far (`keep-alive-requests`).
    requests: AtomicU32,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, local_port: u16, tls: bool) -> Self {
        Self {
            peer,
            tls,
            proxied: None,
            peer_ip: ip_value(peer.ip()),
            local_port: HeaderValue::from(local_port),
            requests: AtomicU32::new(0),
        }
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
    /// `proxy_set_header`s of the route's snippet.
    headers: &'a [(HeaderName, HeaderValue)],
    /// Cookie affinity, with the request's cookie value.
    affinity: Option<(&'a Affinity, Option<String>)>,
    /// `upstream-vhost`.
    vhost: Option<HeaderValue>,
    /// `x-forwarded-prefix`.
    forwarded_prefix: Option<HeaderValue>,
    /// X-Forwarded-* and X-Real-IP.
    forwarded: Forwarded,
    /// `proxy-connect-timeout` and the `upstream-keepalive-*` settings.
    pool: &'a UpstreamPool,
}

pub struct Proxy {
    shared: Arc<Shared>,
    /// The upstream pools, rebuilt when the ConfigMap's pool settings change.
    clients: ArcSwap<(UpstreamPool, Clients)>,
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
        // One table for the whole request, even if a new one is swapped in meanwhile.
        let table = self.shared.table.load_full();
        let host_value = request_host(&req);
        let raw_host = host_value
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let path = normalize_path(req.uri().path());
        let (host_routes, route) = table.route(&normalize_host(raw_host), &path);
        let route = route.clone();
        let policy = route.policy.clone();
        let serving = &table.config.serving;
        // The real_ip module: who the request is from, for access rules, limits and logs.
        let client = serving
            .forwarding
            .client(conn.peer.ip(), conn.proxied, req.headers());
        let acme = matches!(route.target, Target::Answer { .. });
        let redirect_to_https = !conn.tls
            && !acme
            && !path.starts_with(ACME_CHALLENGE_PREFIX)
            && (policy.force_ssl_redirect
                || (host_routes.tls_redirect && policy.ssl_redirect != Some(false)));
        // `limit-connections`: this request's slot, held until its response ends.
        let in_flight = policy.enter(client.ip);
        // The proxy's own answers from the Ingress's policies, in ingress-nginx's order.
        let policy_answer = if acme {
            None
        } else if policy.closed.is_some() {
            Some(local(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable: an access rule of this path is not supported; see the Ingress's Events\n",
            ))
        } else if !policy.admits(client.ip) {
            Some(local(StatusCode::FORBIDDEN, "403 Forbidden\n"))
        } else if matches!(in_flight, Admission::TooMany) {
            Some(too_many(serving.limit_conn_status))
        } else if !policy.within_rates(client.ip, started) {
            Some(too_many(serving.limit_req_status))
        } else if redirect_to_https {
            Some(redirect_https(host_routes, raw_host, req.uri()))
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
            None => (None, false),
        };
        drop(path);

        let access_log = self
            .access_log
            .as_ref()
            .filter(|_| table.access_log && policy.access_log != Some(false));
        let log = access_log.map(|_| {
            LogFields::capture(
                client.ip,
                req.method(),
                req.uri(),
                req.version(),
                req.headers(),
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
        let mut request_id = None;

        let canary = route
            .canary
            .as_deref()
            .filter(|canary| to_canary(canary, &route.target, req.headers()));
        let to_canary = canary.is_some();
        let target = canary.map_or(&route.target, |canary| &canary.target);

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
                    let id = match req.headers().get("x-request-id") {
                        Some(id) => id.clone(),
                        None => {
                            let id = self.ids.next();
                            req.headers_mut().insert("x-request-id", id.clone());
                            id
                        }
                    };
                    request_id = Some(id);
                    let plan = Outbound {
                        host: host_value.clone(),
                        rewritten,
                        timeout: policy.read_timeout.unwrap_or(table.upstream_timeout),
                        protocol: policy.backend_protocol.unwrap_or(target.protocol),
                        headers: &policy.upstream_headers,
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
                        vhost: policy.upstream_vhost.clone(),
                        forwarded_prefix: policy.forwarded_prefix.clone(),
                        forwarded: conn.forwarded(&serving.forwarding, &client, req.headers()),
                        pool: &serving.upstream,
                    };
                    self.forward(plan, target, req, &mut upstream).await
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
        let served = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if served >= serving.listener.keep_alive_requests
            && version < Version::HTTP_2
            && response.status() != StatusCode::SWITCHING_PROTOCOLS
        {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(hsts) = hsts {
            response
                .headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, hsts);
        }
        if let Some(cors) = &policy.cors
            && let Some(allowed) = cors.allow_origin(origin.as_ref())
        {
            cors_headers(response.headers_mut(), cors, allowed);
        }
        // `add_header` applies to the statuses nginx lists, or to all with `always`.
        let adds = add_header_applies(response.status());
        for (name, value, always) in &policy.response_headers {
            if *always || adds {
                response.headers_mut().insert(name.clone(), value.clone());
            }
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
            affinity,
            vhost,
            forwarded_prefix,
            forwarded,
            pool,
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
        upstream_headers(&mut headers, forwarded, host, upgrade);
        for (name, value) in extra_headers {
            headers.insert(name.clone(), value.clone());
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
        let (scheme, version) = match (protocol.is_tls(), protocol.is_http2()) {
            (false, false) => (Scheme::HTTP, Version::HTTP_11),
            (false, true) => (Scheme::HTTP, Version::HTTP_2),
            (true, false) => (Scheme::HTTPS, Version::HTTP_11),
            (true, true) => (Scheme::HTTPS, Version::HTTP_2),
        };
        let clients = self.clients(pool);
        let client = clients.1.get(protocol);
        let path_and_query = rewritten
            .or_else(|| parts.uri.path_and_query().cloned())
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let body = ReclaimableBody::new(body);

        // The endpoint the client's affinity cookie names, while it exists.
        let sticky = affinity
            .as_ref()
            .and_then(|(_, value)| value.as_deref())
            .and_then(|value| upstream.keys.iter().position(|k| k == value));
        let first = sticky.unwrap_or_else(|| upstream.pick());
        let attempts = count.min(2);
        let mut headers = Some(headers);
        for attempt in 0..attempts {
            let authority = &upstream.endpoints[(first + attempt) % count];
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
            let mut upstream_req = Request::new(body.attempt());
            *upstream_req.method_mut() = parts.method.clone();
            *upstream_req.uri_mut() = uri;
            *upstream_req.version_mut() = version;
            *upstream_req.headers_mut() = attempt_headers;

            let sent = Instant::now();
            outcome.addr = Some(authority.clone());
            outcome.sent_at = Some(sent);
            let response = match &client {
                Chosen::Plain(client) => client.request(upstream_req),
                Chosen::Tls(client) => client.request(upstream_req),
            };
            match tokio::time::timeout(timeout, response).await {
                Err(_) => {
                    tracing::warn!(upstream = %authority, service = %upstream.service, "upstream timed out");
                    return local(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Timeout\n");
                }
                Ok(Ok(response)) => {
                    outcome.header_time = Some(sent.elapsed());
                    outcome.status = Some(response.status().as_u16());
                    let mut response = upstream_response(response, downstream_upgrade);
                    let used = (first + attempt) % count;
                    if let Some((affinity, _)) = affinity
                        && sticky != Some(used)
                        && let Some(cookie) =
                            affinity.set_cookie(&upstream.keys[used], jiff::Timestamp::now())
                    {
                        response.headers_mut().append(header::SET_COOKIE, cookie);
                    }
                    return response;
                }
                Ok(Err(err)) if err.is_connect() && attempt + 1 < attempts => {
                    tracing::warn!(upstream = %authority, service = %upstream.service, "connect failed, trying the next endpoint: {err}");
                }
                Ok(Err(err)) => {
                    tracing::warn!(upstream = %authority, service = %upstream.service, "upstream error: {err}");
                    return local(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n");
                }
            }
        }
        local(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n")
    }
}

/// ingress-nginx's order: header, then cookie, then weight. A side without endpoints never gets
/// a request the other side could serve (a canary whose pods are all gone must not turn into
/// 503s).
fn to_canary(canary: &Canary, main: &Target, headers: &HeaderMap) -> bool {
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
/// standard one behind the Service) and the same request URI.
fn redirect_https(host: &HostRoutes, raw_host: &str, uri: &Uri) -> Response<LocalBody> {
    let name = normalize_host(raw_host);
    let name = if name.is_empty() {
        &*host.label
    } else {
        &*name
    };
    let target = format!(
        "https://{name}{}",
        uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/")
    );
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
