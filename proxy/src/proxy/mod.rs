//! The hot path, one request: match host and path on the table the request started with, then
//! answer locally (ACME challenges, redirects to HTTPS, default backends) or forward to an
//! endpoint (round-robin, one retry on a failed connect), with hop-by-hop headers removed and
//! ingress-nginx's forwarding headers set. Bodies stream both ways; the response body records
//! metrics and the access log when it ends.

mod body;
mod client_cert;
mod clients;
mod finish;
mod headers;
mod tls_clients;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
use crate::compile::policy::Admission;
use crate::normalize::{normalize_host, normalize_path};
use crate::routes::{Canary, HostRoutes, Target, Upstream, UpstreamProtocol};

use client_cert::ClientCert;
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
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    peer_ip: HeaderValue,
    local_port: HeaderValue,
    /// The client authentication the TLS handshake was made for, and its outcome.
    pub client: Option<Arc<crate::client_auth::ClientSession>>,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, local_port: u16, tls: bool) -> Self {
        Self {
            peer,
            tls,
            peer_ip: HeaderValue::from_str(&peer.ip().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("")),
            local_port: HeaderValue::from(local_port),
            client: None,
        }
    }

    pub fn with_client(mut self, client: Option<Arc<crate::client_auth::ClientSession>>) -> Self {
        self.client = client;
        self
    }

    fn scheme(&self) -> HeaderValue {
        HeaderValue::from_static(if self.tls { "https" } else { "http" })
    }
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
    /// `auth-tls-*`: the `ssl-client-*` headers.
    client_cert: ClientCert<'a>,
    /// `proxy-ssl-*`: the route's own upstream TLS configuration.
    upstream_tls: Option<&'a Arc<crate::upstream_tls::UpstreamTls>>,
}

pub struct Proxy {
    shared: Arc<Shared>,
    clients: Clients,
    ids: RequestIds,
    access_log: Option<AccessLog>,
}

impl Proxy {
    pub fn new(shared: Arc<Shared>, access_log: Option<AccessLog>) -> Self {
        Self {
            shared,
            clients: Clients::new(),
            ids: RequestIds::new(),
            access_log,
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
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
        let acme = matches!(route.target, Target::Answer { .. });
        let redirect_to_https = !conn.tls
            && !acme
            && !path.starts_with(ACME_CHALLENGE_PREFIX)
            && (policy.force_ssl_redirect
                || (host_routes.tls_redirect && policy.ssl_redirect != Some(false)));
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
        let in_flight = policy.enter(conn.peer.ip());
        // The proxy's own answers from the Ingress's policies, in ingress-nginx's order.
        let policy_answer = if acme {
            None
        } else if let Some(refused) = client_refusal {
            Some(refused.response())
        } else if policy.closed.is_some() {
            Some(local(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable: an access rule of this path is not supported; see the Ingress's Events\n",
            ))
        } else if !policy.admits(conn.peer.ip()) {
            Some(local(StatusCode::FORBIDDEN, "403 Forbidden\n"))
        } else if matches!(in_flight, Admission::TooMany)
            || !policy.within_rates(conn.peer.ip(), started)
        {
            // ingress-nginx's `limit-req-status-code` default.
            Some(local(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Temporarily Unavailable: too many requests\n",
            ))
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
            policy.body_limit.unwrap_or(DEFAULT_BODY_LIMIT),
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
        let rewritten = route
            .rewrite
            .as_ref()
            .and_then(|rewrite| rewrite.apply(&path, req.uri().query()))
            .and_then(|uri| PathAndQuery::try_from(uri).ok());
        drop(path);

        let access_log = self
            .access_log
            .as_ref()
            .filter(|_| table.access_log && policy.access_log != Some(false));
        let log = access_log.map(|_| {
            LogFields::capture(
                conn.peer.ip(),
                req.method(),
                req.uri(),
                req.version(),
                req.headers(),
            )
        });
        let method = method_label(req.method());
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
                        client_cert,
                        upstream_tls: policy.upstream_tls.as_ref(),
                    };
                    self.forward(&conn, plan, target, req, &mut upstream).await
                }
            }
        };
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
        conn: &ConnInfo,
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
        upstream_headers(&mut headers, conn, host, upgrade);
        client_cert::set_headers(&mut headers, client_cert);
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
        // `proxy-ssl-*`: the route's own configuration, pooled per serving thread.
        let own_tls = upstream_tls
            .filter(|_| protocol.is_tls())
            .map(|tls| tls_clients::client(tls, &upstream.service, protocol.is_http2()));
        let client = match &own_tls {
            Some(client) => Chosen::Tls(client),
            None => self.clients.get(protocol),
        };
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
    conn: &ConnInfo,
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
    // Not appended to what the client sent: by default ingress-nginx trusts no client
    // forwarding headers.
    set(headers, "x-forwarded-for", conn.peer_ip.clone());
    set(headers, "x-real-ip", conn.peer_ip.clone());
    if let Some(host) = host {
        set(headers, "x-forwarded-host", host);
    }
    set(headers, "x-forwarded-port", conn.local_port.clone());
    set(headers, "x-forwarded-proto", conn.scheme());
    set(headers, "x-scheme", conn.scheme());
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

/// ingress-nginx's default `proxy-body-size`.
const DEFAULT_BODY_LIMIT: u64 = 1 << 20;

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
