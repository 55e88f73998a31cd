//! The hot path, one request: match host and path on the table the request started with, then
//! answer locally or forward to an endpoint (round-robin, one retry on a failed connect), with
//! hop-by-hop headers removed and ingress-nginx's forwarding headers set. Bodies stream.

use std::convert::Infallible;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::apply::Shared;
use crate::metrics::RequestLabels;
use crate::normalize::{normalize_host, normalize_path};
use crate::routes::{Target, Upstream};

pub type ResponseBody = BoxBody<Bytes, hyper::Error>;

/// How long an upstream may take to connect, take the request and send response headers.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the proxy knows about the downstream connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local_port: u16,
    pub tls: bool,
}

pub struct Proxy {
    shared: Arc<Shared>,
    client: Client<HttpConnector, ProxyBody>,
    upstream_timeout: Duration,
    ids: RequestIds,
}

impl Proxy {
    pub fn new(shared: Arc<Shared>, upstream_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        // Keep-alive pooling per endpoint: not reusing upstream connections costs several
        // times the CPU per request.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self {
            shared,
            client,
            upstream_timeout,
            ids: RequestIds::new(),
        }
    }

    pub async fn handle(
        self: Arc<Self>,
        conn: ConnInfo,
        req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, Infallible> {
        // One table for the whole request, even if a new one is swapped in meanwhile.
        let table = self.shared.table.load_full();
        let raw_host = request_host(&req).unwrap_or_default();
        let host = normalize_host(&raw_host).into_owned();
        let route = table
            .route(&host, &normalize_path(req.uri().path()))
            .clone();
        let method = req.method().clone();

        let response = match &route.target {
            Target::Respond { status, body } => local(*status, body),
            Target::Upstream(upstream) => self.forward(conn, &raw_host, upstream, req).await,
        };

        if let Some(ingress) = &route.ingress {
            let metrics = &self.shared.metrics;
            let labels = RequestLabels {
                canary: String::new(),
                controller_class: metrics.controller_class.clone(),
                controller_namespace: metrics.controller_namespace.clone(),
                controller_pod: metrics.controller_pod.clone(),
                host,
                ingress: ingress.name.clone(),
                method: method_label(&method).to_owned(),
                namespace: ingress.namespace.clone(),
                path: route.path.clone(),
                service: route.service.clone(),
                status: response.status().as_str().to_owned(),
            };
            metrics.requests.get_or_create(&labels).inc();
        }
        Ok(response)
    }

    async fn forward(
        &self,
        conn: ConnInfo,
        raw_host: &str,
        upstream: &Upstream,
        mut req: Request<Incoming>,
    ) -> Response<ResponseBody> {
        let count = upstream.endpoints.len();
        if count == 0 {
            return local(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable\n");
        }
        let upgrade = requested_upgrade(req.headers());
        let downstream_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        self.upstream_headers(&mut parts.headers, conn, raw_host, upgrade);
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let body = ReclaimableBody::new(body);

        let first = upstream.pick();
        let attempts = count.min(2);
        for attempt in 0..attempts {
            let authority = &upstream.endpoints[(first + attempt) % count];
            let uri = Uri::builder()
                .scheme("http")
                .authority(authority.clone())
                .path_and_query(path_and_query.as_str())
                .build();
            let Ok(uri) = uri else {
                return local(StatusCode::BAD_REQUEST, "400 Bad Request\n");
            };
            let mut upstream_req = Request::new(body.attempt());
            *upstream_req.method_mut() = parts.method.clone();
            *upstream_req.uri_mut() = uri;
            *upstream_req.version_mut() = Version::HTTP_11;
            *upstream_req.headers_mut() = parts.headers.clone();

            match tokio::time::timeout(self.upstream_timeout, self.client.request(upstream_req))
                .await
            {
                Err(_) => {
                    tracing::warn!(upstream = %authority, service = %upstream.service, "upstream timed out");
                    return local(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Timeout\n");
                }
                Ok(Ok(response)) => return upstream_response(response, downstream_upgrade),
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

    /// Removes hop-by-hop headers and sets the headers ingress-nginx always sends upstream.
    fn upstream_headers(
        &self,
        headers: &mut HeaderMap,
        conn: ConnInfo,
        raw_host: &str,
        upgrade: Option<HeaderValue>,
    ) {
        strip_hop_by_hop(headers);
        if let Some(upgrade) = upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, upgrade);
        }
        let host_value = HeaderValue::from_str(raw_host).ok();
        // HTTP/2 requests carry the host in :authority; HTTP/1.1 upstream needs a Host header.
        if !headers.contains_key(header::HOST)
            && let Some(value) = &host_value
        {
            headers.insert(header::HOST, value.clone());
        }
        let ip = HeaderValue::from_str(&conn.peer.ip().to_string()).ok();
        let scheme = HeaderValue::from_static(if conn.tls { "https" } else { "http" });
        let set = |headers: &mut HeaderMap, name: &'static str, value: Option<HeaderValue>| {
            if let Some(value) = value {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        // Not appended to what the client sent: by default ingress-nginx trusts no client
        // forwarding headers.
        set(headers, "x-forwarded-for", ip.clone());
        set(headers, "x-real-ip", ip);
        set(headers, "x-forwarded-host", host_value);
        set(
            headers,
            "x-forwarded-port",
            Some(HeaderValue::from(conn.local_port)),
        );
        set(headers, "x-forwarded-proto", Some(scheme.clone()));
        set(headers, "x-scheme", Some(scheme));
        if !headers.contains_key("x-request-id") {
            set(headers, "x-request-id", Some(self.ids.next()));
        }
    }
}

fn request_host<B>(req: &Request<B>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
}

fn method_label(method: &Method) -> &str {
    match *method {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::HEAD
        | Method::OPTIONS
        | Method::PATCH
        | Method::CONNECT
        | Method::TRACE => method.as_str(),
        // Arbitrary methods would make arbitrary series.
        _ => "OTHER",
    }
}

/// The `Upgrade` value when the client asks for a protocol switch (WebSocket).
fn requested_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if wants {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// RFC 9110 section 7.6.1: Connection and the headers it names, plus the classic hop-by-hop set.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

fn upstream_response(
    mut response: Response<Incoming>,
    downstream_upgrade: Option<OnUpgrade>,
) -> Response<ResponseBody> {
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

/// A short answer from the proxy itself.
pub fn local(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The downstream body, handed to one upstream attempt after another: a failed connect never
/// polls the body, so the next attempt can still send it. The lock is per request, uncontended,
/// and never shared with reconfiguration.
struct ReclaimableBody {
    slot: Arc<Mutex<Option<Incoming>>>,
    end_stream: bool,
    hint: SizeHint,
}

impl ReclaimableBody {
    fn new(body: Incoming) -> Self {
        Self {
            end_stream: body.is_end_stream(),
            hint: body.size_hint(),
            slot: Arc::new(Mutex::new(Some(body))),
        }
    }

    fn attempt(&self) -> ProxyBody {
        ProxyBody {
            slot: self.slot.clone(),
            taken: None,
            end_stream: self.end_stream,
            hint: self.hint,
        }
    }
}

/// The body of one upstream attempt; takes the downstream body on first poll.
pub struct ProxyBody {
    slot: Arc<Mutex<Option<Incoming>>>,
    taken: Option<Incoming>,
    end_stream: bool,
    hint: SizeHint,
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.taken.is_none() {
            this.taken = this.slot.lock().ok().and_then(|mut slot| slot.take());
        }
        match this.taken.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end_stream
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// X-Request-ID values: 32 hex digits, unique per process (a counter) and unpredictable across
/// processes (random hash keys), without a random number generator on the hot path.
struct RequestIds {
    keys: (std::hash::RandomState, std::hash::RandomState),
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        Self {
            keys: (Default::default(), Default::default()),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> HeaderValue {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!(
            "{:016x}{:016x}",
            self.keys.0.hash_one(n),
            self.keys.1.hash_one(n)
        );
        HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn upgrade_requests_are_recognised() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(
            requested_upgrade(&headers),
            Some(HeaderValue::from_static("websocket"))
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert_eq!(requested_upgrade(&headers), None);
    }

    #[test]
    fn request_ids_are_32_hex_digits_and_distinct() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        let a = a.to_str().unwrap_or_default().to_owned();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
