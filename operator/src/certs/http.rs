//! The HTTP client under instant-acme, wrapped so that what instant-acme drops on an error — the
//! response status and `Retry-After` — stays readable afterwards, and no request hangs forever.
//!
//! Every response is recorded into the client's shared [`ResponseLog`] and, when the request is
//! made inside [`scoped`], into that scope's log too. The Account (and so the client) is shared by
//! every Certificate of an issuer; the scope keeps one reconcile's record free of another's.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{Method, Request};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use jiff::Timestamp;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// One response as seen on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseRecord {
    pub method: Method,
    pub url: String,
    pub status: u16,
    /// `Retry-After`, made absolute at the time the response arrived.
    pub retry_after: Option<Timestamp>,
    pub received_at: Timestamp,
}

impl ResponseRecord {
    /// Whether the response was an error (4xx/5xx).
    pub fn is_error(&self) -> bool {
        self.status >= 400
    }
}

/// The last responses seen, cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct ResponseLog(Arc<Mutex<LogInner>>);

#[derive(Debug, Default)]
struct LogInner {
    last: Option<ResponseRecord>,
    last_error: Option<ResponseRecord>,
}

impl ResponseLog {
    fn lock(&self) -> MutexGuard<'_, LogInner> {
        // A panic while holding this lock cannot leave a half-written record behind.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, record: ResponseRecord) {
        let mut inner = self.lock();
        if record.is_error() {
            inner.last_error = Some(record.clone());
        }
        inner.last = Some(record);
    }

    /// The last response of any status.
    pub fn last(&self) -> Option<ResponseRecord> {
        self.lock().last.clone()
    }

    /// The last 4xx/5xx response: the one an instant-acme error came from.
    pub fn last_error(&self) -> Option<ResponseRecord> {
        self.lock().last_error.clone()
    }

    /// Forgets everything, so a new operation starts with a clean record.
    pub fn clear(&self) {
        *self.lock() = LogInner::default();
    }
}

tokio::task_local! {
    static SCOPE: ResponseLog;
}

/// Runs `future` with its ACME requests also recorded into `log`.
pub async fn scoped<F: Future>(log: ResponseLog, future: F) -> F::Output {
    SCOPE.scope(log, future).await
}

/// Parses `Retry-After` (delay-seconds or an HTTP-date, RFC 9110 section 10.2.3) into an
/// absolute time; `received_at` anchors the delay form.
pub fn parse_retry_after(value: &str, received_at: Timestamp) -> Option<Timestamp> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i64 = value.parse().ok()?;
        return received_at
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .ok();
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is valid RFC 2822.
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()
}

/// Errors building the HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("caBundle holds no PEM certificate")]
    EmptyCaBundle,
    #[error("caBundle is not valid PEM")]
    CaBundlePem(#[source] rustls_pki_types::pem::Error),
    #[error("caBundle holds a certificate rustls cannot use as a root")]
    CaBundleRoot(#[source] rustls::Error),
    #[error("setting up TLS for the ACME client failed")]
    Tls(#[source] std::io::Error),
    #[error("setting up TLS for the ACME client failed")]
    Rustls(#[source] rustls::Error),
}

/// The hyper client instant-acme would use by default, built with ring explicitly.
pub type DefaultInner =
    HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// A hyper client that trusts `ca_bundle_pem` (a private ACME server such as Pebble) or, without
/// it, the platform's roots.
pub fn default_inner(ca_bundle_pem: Option<&[u8]>) -> Result<DefaultInner, HttpClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match ca_bundle_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(HttpClientError::CaBundlePem)?;
                roots.add(cert).map_err(HttpClientError::CaBundleRoot)?;
            }
            if roots.is_empty() {
                return Err(HttpClientError::EmptyCaBundle);
            }
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(HttpClientError::Rustls)?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder.with_tls_config(config)
        }
        None => builder
            .with_provider_and_platform_verifier(provider)
            .map_err(HttpClientError::Tls)?,
    };
    let connector = builder.https_only().enable_http1().enable_http2().build();
    Ok(HyperClient::builder(TokioExecutor::new()).build(connector))
}

/// Why a request failed before any response (only the timeout is ours).
#[derive(Debug, thiserror::Error)]
#[error("no response from {url} within {}", switchyard_crds::format_duration(*.timeout))]
pub struct RequestTimeout {
    pub url: String,
    pub timeout: Duration,
}

/// instant-acme's [`HttpClient`], recording every response and bounding every request.
pub struct RecordingClient<C> {
    inner: C,
    log: ResponseLog,
    timeout: Duration,
    clock: fn() -> Timestamp,
}

impl<C: HttpClient> RecordingClient<C> {
    /// Wraps `inner`; requests taking longer than `timeout` fail.
    pub fn new(inner: C, timeout: Duration) -> Self {
        RecordingClient {
            inner,
            log: ResponseLog::default(),
            timeout,
            clock: Timestamp::now,
        }
    }

    /// The same, with a fixed clock (tests).
    pub fn with_clock(mut self, clock: fn() -> Timestamp) -> Self {
        self.clock = clock;
        self
    }

    /// The log shared by all requests through this client.
    pub fn log(&self) -> ResponseLog {
        self.log.clone()
    }
}

impl<C: HttpClient> HttpClient for RecordingClient<C> {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let method = req.method().clone();
        let url = req.uri().to_string();
        // Read at call time: instant-acme calls this from inside the caller's task.
        let scope = SCOPE.try_with(ResponseLog::clone).ok();
        let shared = self.log.clone();
        let clock = self.clock;
        let timeout = self.timeout;
        let response = self.inner.request(req);
        Box::pin(async move {
            let response = match tokio::time::timeout(timeout, response).await {
                Ok(response) => response?,
                Err(_) => {
                    return Err(instant_acme::Error::Other(Box::new(RequestTimeout {
                        url,
                        timeout,
                    })));
                }
            };
            let received_at = clock();
            let record = ResponseRecord {
                method,
                url,
                status: response.parts.status.as_u16(),
                retry_after: response
                    .parts
                    .headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, received_at)),
                received_at,
            };
            if let Some(scope) = scope {
                scope.record(record.clone());
            }
            shared.record(record);
            Ok(response)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http::Response;
    use http_body_util::Full;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn fixed() -> Timestamp {
        ts("2026-11-22T21:00:00Z")
    }

    /// A fake server: answers each request with the status and headers it was given.
    pub(crate) struct Fake {
        pub status: u16,
        pub headers: Vec<(&'static str, &'static str)>,
        pub delay: Duration,
    }

    impl HttpClient for Fake {
        fn request(
            &self,
            _req: Request<BodyWrapper<Bytes>>,
        ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>>
        {
            let mut builder = Response::builder().status(self.status);
            for (name, value) in &self.headers {
                builder = builder.header(*name, *value);
            }
            let response = builder.body(Full::new(Bytes::from_static(b"{}")));
            let delay = self.delay;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(BytesResponse::from(response?))
            })
        }
    }

    fn get(url: &str) -> Request<BodyWrapper<Bytes>> {
        Request::get(url)
            .body(BodyWrapper::default())
            .expect("request")
    }

    #[test]
    fn retry_after_forms() {
        let at = fixed();
        assert_eq!(
            parse_retry_after("120", at),
            Some(ts("2026-11-22T21:02:00Z"))
        );
        assert_eq!(
            parse_retry_after(" 0 ", at),
            Some(ts("2026-11-22T21:00:00Z"))
        );
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 23:30:00 GMT", at),
            Some(ts("2026-11-22T23:30:00Z"))
        );
        assert_eq!(parse_retry_after("", at), None);
        assert_eq!(parse_retry_after("soon", at), None);
        assert_eq!(parse_retry_after("-5", at), None);
    }

    #[tokio::test]
    async fn records_status_and_retry_after_of_errors() {
        let client = RecordingClient::new(
            Fake {
                status: 429,
                headers: vec![("Retry-After", "3600")],
                delay: Duration::ZERO,
            },
            Duration::from_secs(5),
        )
        .with_clock(fixed);
        let log = client.log();
        let response = client
            .request(get("https://ca.test/acme/new-order"))
            .await
            .expect("a response");
        assert_eq!(response.parts.status, 429);
        let record = log.last_error().expect("recorded");
        assert_eq!(record.status, 429);
        assert_eq!(record.url, "https://ca.test/acme/new-order");
        assert_eq!(record.retry_after, Some(ts("2026-11-22T22:00:00Z")));
        assert_eq!(log.last(), Some(record));
        log.clear();
        assert_eq!(log.last(), None);
    }

    #[tokio::test]
    async fn scopes_keep_concurrent_operations_apart() {
        let ok = Arc::new(RecordingClient::new(
            Fake {
                status: 200,
                headers: vec![],
                delay: Duration::ZERO,
            },
            Duration::from_secs(5),
        ));
        let mine = ResponseLog::default();
        let client = ok.clone();
        scoped(mine.clone(), async move {
            client.request(get("https://ca.test/order/1")).await
        })
        .await
        .expect("response");
        // Outside the scope: only the shared log sees it.
        ok.request(get("https://ca.test/order/2"))
            .await
            .expect("response");
        assert_eq!(
            mine.last().map(|r| r.url),
            Some("https://ca.test/order/1".to_string())
        );
        assert_eq!(mine.last_error(), None);
        assert_eq!(
            ok.log().last().map(|r| r.url),
            Some("https://ca.test/order/2".to_string())
        );
    }

    #[tokio::test]
    async fn bounds_every_request() {
        let client = RecordingClient::new(
            Fake {
                status: 200,
                headers: vec![],
                delay: Duration::from_secs(60),
            },
            Duration::from_millis(50),
        );
        let error = match client.request(get("https://ca.test/dir")).await {
            Err(error) => error,
            Ok(_) => panic!("should time out"),
        };
        assert_eq!(
            error.to_string(),
            "no response from https://ca.test/dir within 50ms"
        );
        assert_eq!(client.log().last(), None);
    }
}
