//! The access log: one line per request on stdout, in ingress-nginx's default text format, as
//! JSON, or in the controller ConfigMap's `log-format-upstream`. Requests hand a finished entry
//! to a channel without waiting; a dedicated thread formats and writes, so a slow stdout never
//! stalls a request (lines are dropped and counted instead).

pub mod format;
mod render;
pub mod settings;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use http::uri::Authority;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version, header};
use prometheus_client::metrics::counter::Counter;

pub use format::{Escape, LogFormat, LogFormatError};
pub use settings::{LogSettings, SkipUrls};

use crate::routes::Route;

/// How many finished requests may wait for the writer.
const QUEUE: usize = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// ingress-nginx's default `log-format-upstream`.
    Text,
    /// One JSON object per line.
    Json,
}

/// The downstream connection a request came on.
#[derive(Clone, Copy, Debug)]
pub struct Connection {
    pub peer: SocketAddr,
    pub server_port: u16,
    pub tls: bool,
    /// nginx's `$connection`: the connection's serial number.
    pub id: u64,
    /// nginx's `$connection_requests`: this request's number on the connection.
    pub requests: u64,
}

/// What the log needs of a request, captured as it arrives: cheap clones (shared buffers) and
/// only the headers the format reads.
#[derive(Debug)]
pub struct RequestLog {
    /// The table's `log-format-upstream`; `None`: the `--access-log-format`.
    pub format: Option<Arc<LogFormat>>,
    pub peer: SocketAddr,
    pub server_port: u16,
    pub tls: bool,
    pub connection: u64,
    pub connection_requests: u64,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    /// The Host header (or HTTP/2 authority) as sent.
    pub host: Option<HeaderValue>,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    /// The client's X-Request-ID, or one made for the log: `$req_id` is never empty.
    pub request_id: Option<HeaderValue>,
    /// The request headers the format reads, in its slot order; empty (never allocated) when
    /// it reads none beyond Referer and User-Agent.
    pub headers: Vec<Option<HeaderValue>>,
    /// The response headers `$sent_http_*` reads.
    pub sent: Vec<Option<HeaderValue>>,
}

impl RequestLog {
    pub fn capture<B>(
        format: Option<Arc<LogFormat>>,
        conn: Connection,
        req: &Request<B>,
        host: Option<HeaderValue>,
    ) -> Self {
        let headers = req.headers();
        let slots = format
            .as_deref()
            .map_or(&[][..], LogFormat::request_headers);
        Self {
            headers: capture_slots(slots, headers),
            sent: Vec::new(),
            format,
            peer: conn.peer,
            server_port: conn.server_port,
            tls: conn.tls,
            connection: conn.id,
            connection_requests: conn.requests,
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            host,
            referer: headers.get(header::REFERER).cloned(),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            request_id: headers.get("x-request-id").cloned(),
        }
    }

    /// The response headers the format reads (`$sent_http_*`).
    pub fn capture_response(&mut self, headers: &HeaderMap) {
        if let Some(format) = &self.format
            && !format.response_headers().is_empty()
        {
            self.sent = capture_slots(format.response_headers(), headers);
        }
    }

    /// Whether the format shows `$req_id`: a request that did not go upstream then gets an id
    /// for the log, as nginx gives every request one.
    pub fn wants_request_id(&self) -> bool {
        self.request_id.is_none()
            && self
                .format
                .as_deref()
                .is_none_or(LogFormat::uses_request_id)
    }
}

fn capture_slots(names: &[HeaderName], headers: &HeaderMap) -> Vec<Option<HeaderValue>> {
    names.iter().map(|name| joined(headers, name)).collect()
}

/// A header's values as nginx's `$http_NAME` shows them: repeated ones joined with `, `
/// (cookies with `; `).
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(first.clone());
    };
    let separator: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
    let mut joined = first.as_bytes().to_vec();
    for value in std::iter::once(second).chain(values) {
        joined.extend_from_slice(separator);
        joined.extend_from_slice(value.as_bytes());
    }
    HeaderValue::from_bytes(&joined).ok()
}

/// What one request leaves in the log; cheap to build (shared buffers, no formatting).
#[derive(Debug)]
pub struct Entry {
    pub request: RequestLog,
    pub time: jiff::Timestamp,
    /// The Ingress rule's host (`$server_name`; `_` without one).
    pub host: Arc<str>,
    pub status: u16,
    pub body_bytes_sent: u64,
    /// The response head and body.
    pub bytes_sent: u64,
    pub request_length: u64,
    pub request_time: Duration,
    /// The X-Request-ID sent upstream.
    pub request_id: Option<HeaderValue>,
    pub route: Arc<Route>,
    /// The request went to the route's canary.
    pub canary: bool,
    pub upstream_addr: Option<Authority>,
    pub upstream_status: Option<u16>,
    pub upstream_response_time: Option<Duration>,
    pub upstream_header_time: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct AccessLog {
    sender: SyncSender<Entry>,
    dropped: Counter,
}

impl AccessLog {
    /// Starts the writer thread; lines go to `out`.
    pub fn start(
        format: Format,
        out: Box<dyn Write + Send>,
        dropped: Counter,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("access-log".to_owned())
            .spawn(move || write_loop(format, receiver, out))?;
        Ok(Self { sender, dropped })
    }

    pub fn log(&self, entry: Entry) {
        match self.sender.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }
}

fn write_loop(format: Format, receiver: Receiver<Entry>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let default = LogFormat::ingress_nginx_default(Escape::Default);
    let mut line = Vec::with_capacity(512);
    let mut scratch = Vec::new();
    // Block for the first entry, then take whatever else is queued before flushing once.
    while let Ok(entry) = receiver.recv() {
        let mut next = Some(entry);
        while let Some(entry) = next {
            line.clear();
            // The format of the table the request was served with.
            match (entry.request.format.as_deref(), format) {
                (Some(custom), _) => custom.render(&entry, &mut line, &mut scratch),
                (None, Format::Text) => default.render(&entry, &mut line, &mut scratch),
                (None, Format::Json) => json_line(&entry, &mut line),
            }
            line.push(b'\n');
            if out.write_all(&line).is_err() {
                return;
            }
            next = receiver.try_recv().ok();
        }
        if out.flush().is_err() {
            return;
        }
    }
}

/// ingress-nginx's default format (the writer keeps its own parsed copy).
#[cfg(test)]
fn text_line(e: &Entry, out: &mut Vec<u8>) {
    LogFormat::ingress_nginx_default(Escape::Default).render(e, out, &mut Vec::new());
}

/// `--access-log-format json`.
pub fn json_line(e: &Entry, out: &mut Vec<u8>) {
    let header =
        |v: Option<&HeaderValue>| v.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let r = &e.request;
    let ingress = e.route.ingress.as_ref();
    let value = serde_json::json!({
        "time": e.time.to_string(),
        "remote_addr": r.peer.ip().to_string(),
        "request_id": header(e.request_id.as_ref().or(r.request_id.as_ref())),
        "method": r.method.as_str(),
        "host": &*e.host,
        "uri": request_uri(&r.uri),
        "protocol": format!("{:?}", r.version),
        "status": e.status,
        "bytes_sent": e.body_bytes_sent,
        "request_length": e.request_length,
        "request_time": e.request_time.as_secs_f64(),
        "referer": header(r.referer.as_ref()),
        "user_agent": header(r.user_agent.as_ref()),
        "namespace": ingress.map(|i| i.namespace.as_str()),
        "ingress": ingress.map(|i| i.name.as_str()),
        "service": (!e.route.service.is_empty()).then_some(e.route.service.as_str()),
        "path": (!e.route.path.is_empty()).then_some(e.route.path.as_str()),
        "canary": (e.canary).then(|| alternative_name(e)),
        "upstream_addr": e.upstream_addr.as_ref().map(|a| a.as_str()),
        "upstream_status": e.upstream_status,
        "upstream_response_time": e.upstream_response_time.map(|t| t.as_secs_f64()),
    });
    let _ = serde_json::to_writer(out, &value);
}

fn request_uri(uri: &Uri) -> &str {
    uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/")
}

/// ingress-nginx's `$proxy_alternative_upstream_name`: the canary's, when it served.
fn alternative_name(e: &Entry) -> &str {
    match (&e.route.canary, e.canary) {
        (Some(canary), true) => &canary.label,
        _ => "",
    }
}

/// A request as the tests of this module and its children render it.
#[cfg(test)]
pub(crate) mod test_entry {
    use super::*;
    use crate::model::ObjectKey;
    use crate::routes::Target;

    pub fn entry() -> Entry {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static("curl/8.0 \"evil\""),
        );
        let req = Request::builder()
            .uri("/shop/cart?id=1")
            .body(())
            .unwrap_or_default();
        let mut request = RequestLog::capture(
            None,
            Connection {
                peer: SocketAddr::from(([10, 0, 0, 7], 40001)),
                server_port: 8080,
                tls: false,
                id: 3,
                requests: 2,
            },
            &req,
            Some(HeaderValue::from_static("Shop.Example:8080")),
        );
        request.user_agent = headers.get(header::USER_AGENT).cloned();
        Entry {
            request,
            time: "2026-12-05T06:29:17.042Z".parse().unwrap_or_default(),
            host: Arc::from("shop.example"),
            status: 200,
            body_bytes_sent: 512,
            bytes_sent: 640,
            request_length: 87,
            request_time: Duration::from_micros(2500),
            request_id: Some(HeaderValue::from_static("abc123")),
            route: Arc::new(Route::new(
                Some(ObjectKey::new("apps", "shop")),
                "/shop",
                "shop-v1".into(),
                Target::Respond {
                    status: http::StatusCode::OK,
                    body: "",
                },
            )),
            canary: false,
            upstream_addr: Some(Authority::from_static("10.1.2.3:8080")),
            upstream_status: Some(200),
            upstream_response_time: Some(Duration::from_millis(2)),
            upstream_header_time: Some(Duration::from_millis(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_entry::entry;
    use super::*;

    fn text(e: &Entry) -> String {
        let mut line = Vec::new();
        text_line(e, &mut line);
        String::from_utf8(line).unwrap_or_default()
    }

    #[test]
    fn text_lines_follow_ingress_nginx_default_format() {
        assert_eq!(
            text(&entry()),
            "10.0.0.7 - - [05/Dec/2026:06:29:17 +0000] \"GET /shop/cart?id=1 HTTP/1.1\" 200 512 \"-\" \"curl/8.0 \\x22evil\\x22\" 87 0.002 [apps-shop-v1] [] 10.1.2.3:8080 512 0.002 200 abc123"
        );
    }

    #[test]
    fn control_bytes_cannot_forge_a_line() {
        let mut e = entry();
        e.request.user_agent = HeaderValue::from_bytes(b"a\tb\xff").ok();
        let line = text(&e);
        assert!(line.contains("\"a\\x09b\\xFF\""), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn json_lines_are_one_object_with_the_route() {
        let mut line = Vec::new();
        json_line(&entry(), &mut line);
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
        assert_eq!(value["status"], 200);
        assert_eq!(value["ingress"], "shop");
        assert_eq!(value["namespace"], "apps");
        assert_eq!(value["uri"], "/shop/cart?id=1");
        assert_eq!(value["upstream_addr"], "10.1.2.3:8080");
        assert_eq!(value["user_agent"], "curl/8.0 \"evil\"");
    }

    #[test]
    fn only_the_headers_the_format_reads_are_captured() {
        let format = Arc::new(
            LogFormat::parse("$http_x_a $cookie_s $sent_http_x_b", Escape::Default)
                .unwrap_or_else(|_| LogFormat::ingress_nginx_default(Escape::Default)),
        );
        let req = Request::builder()
            .header("x-a", "1")
            .header("x-a", "2")
            .header("cookie", "a=1")
            .header("cookie", "s=2")
            .header("x-unread", "3")
            .body(())
            .unwrap_or_default();
        let conn = Connection {
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            server_port: 80,
            tls: false,
            id: 1,
            requests: 1,
        };
        let mut log = RequestLog::capture(Some(format), conn, &req, None);
        assert_eq!(
            log.headers,
            [
                Some(HeaderValue::from_static("1, 2")),
                Some(HeaderValue::from_static("a=1; s=2"))
            ]
        );
        let mut response = HeaderMap::new();
        response.insert("x-b", HeaderValue::from_static("done"));
        log.capture_response(&response);
        assert_eq!(log.sent, [Some(HeaderValue::from_static("done"))]);
        assert!(!log.wants_request_id());

        // The default format reads no other header: nothing is allocated for them.
        let log = RequestLog::capture(None, conn, &req, None);
        assert!(log.headers.is_empty() && log.headers.capacity() == 0);
        assert!(log.wants_request_id());
    }
}
