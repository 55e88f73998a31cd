//! `custom-http-errors`: an upstream answer with one of the listed statuses is replaced by the
//! error backend's answer (the `default-backend` annotation's Service, else the controller's
//! default backend), asked for `/` with ingress-nginx's `X-Code`, `X-Format`,
//! `X-Original-URI`, `X-Namespace`, `X-Ingress-Name`, `X-Service-Name`, `X-Service-Port` and
//! `X-Request-ID` headers.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri};

use super::body::ReclaimableBody;
use super::clients::Chosen;
use super::{LocalBody, Proxy, local, upstream_response};
use crate::routes::{Route, Target, Upstream};

/// The error backend answers quickly or not at all: then the upstream's own answer stands.
const ERROR_PAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the error backend is told about the request, captured before it is forwarded.
pub struct ErrorRequest {
    method: Method,
    host: Option<HeaderValue>,
    accept: Option<HeaderValue>,
    original_uri: Option<HeaderValue>,
    namespace: Option<HeaderValue>,
    ingress: Option<HeaderValue>,
    service: Option<HeaderValue>,
    port: Option<HeaderValue>,
    /// The client's address (the real IP rules applied), for `X-Forwarded-For`.
    client: HeaderValue,
}

impl ErrorRequest {
    pub fn capture<B>(
        req: &Request<B>,
        route: &Route,
        upstream: &Upstream,
        client: std::net::IpAddr,
    ) -> Self {
        let value = |s: &str| HeaderValue::from_str(s).ok();
        Self {
            method: req.method().clone(),
            host: req.headers().get(header::HOST).cloned(),
            accept: req.headers().get(header::ACCEPT).cloned(),
            original_uri: req.uri().path_and_query().and_then(|pq| value(pq.as_str())),
            namespace: route.ingress.as_ref().and_then(|i| value(&i.namespace)),
            ingress: route.ingress.as_ref().and_then(|i| value(&i.name)),
            service: value(&route.service),
            port: upstream.service_port.clone(),
            client: crate::compile::forwarding::ip_value(client),
        }
    }
}

impl Proxy {
    /// The error backend's answer for `code`, or `None` when it has none (no endpoints, an
    /// error): the upstream's answer then stands.
    pub(super) async fn error_page(
        &self,
        backend: Option<&Upstream>,
        fallback: &Target,
        request: ErrorRequest,
        code: StatusCode,
        request_id: Option<HeaderValue>,
    ) -> Option<Response<LocalBody>> {
        let upstream = match (backend, fallback) {
            (Some(upstream), _) => upstream,
            (None, Target::Upstream(upstream)) => upstream,
            // The controller's own default backend (404 unless one is configured), as
            // ingress-nginx's built-in one answers every error page.
            (None, Target::Respond { status, body }) => return Some(local(*status, body)),
            (None, _) => return None,
        };
        let count = upstream.endpoints.len();
        if count == 0 {
            return None;
        }
        let endpoint = &upstream.endpoints[upstream.pick() % count];
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(if upstream.protocol.is_tls() {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        });
        uri.authority = Some(endpoint.clone());
        uri.path_and_query = Some(PathAndQuery::from_static("/"));
        let uri = Uri::from_parts(uri).ok()?;
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: Option<HeaderValue>| {
            if let Some(value) = value {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        set("host", request.host);
        set("x-code", Some(HeaderValue::from(code.as_u16())));
        set("x-format", request.accept);
        set("x-original-uri", request.original_uri);
        set("x-namespace", request.namespace);
        set("x-ingress-name", request.ingress);
        set("x-service-name", request.service);
        set("x-service-port", request.port);
        set("x-request-id", request_id);
        set("x-forwarded-for", Some(request.client.clone()));
        let mut req = Request::new(ReclaimableBody::kept(bytes::Bytes::new()).attempt(None));
        *req.method_mut() = request.method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        let clients = self.clients.load_full();
        let response = match clients.1.get(upstream.protocol) {
            Chosen::Plain(client) => client.request(req),
            Chosen::Tls(client) => client.request(req),
        };
        match tokio::time::timeout(ERROR_PAGE_TIMEOUT, response).await {
            Ok(Ok(response)) => Some(upstream_response(response, None)),
            Ok(Err(err)) => {
                tracing::warn!(upstream = %endpoint, service = %upstream.service, "custom error page: {err}");
                None
            }
            Err(_) => {
                tracing::warn!(upstream = %endpoint, service = %upstream.service, "custom error page timed out");
                None
            }
        }
    }
}
