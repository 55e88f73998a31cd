//! The access log: one line per request on stdout, in ingress-nginx's default format or as
//! JSON. Requests hand a finished entry to a channel without waiting; a dedicated thread
//! formats and writes, so a slow stdout never stalls a request (lines are dropped and counted
//! instead).

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use http::uri::Authority;
use http::{HeaderValue, Method, Uri, Version};
use prometheus_client::metrics::counter::Counter;

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

/// What one request leaves in the log; cheap to build (shared buffers, no formatting).
#[derive(Debug)]
pub struct Entry {
    pub time: jiff::Timestamp,
    pub peer: IpAddr,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub host: Arc<str>,
    pub status: u16,
    pub body_bytes_sent: u64,
    pub request_length: u64,
    pub request_time: Duration,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub request_id: Option<HeaderValue>,
    pub route: Arc<Route>,
    /// The request went to the route's canary.
    pub canary: bool,
    pub upstream_addr: Option<Authority>,
    pub upstream_status: Option<u16>,
    pub upstream_response_time: Option<Duration>,
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
    let mut line = String::with_capacity(512);
    // Block for the first entry, then take whatever else is queued before flushing once.
    while let Ok(entry) = receiver.recv() {
        let mut next = Some(entry);
        while let Some(entry) = next {
            line.clear();
            match format {
                Format::Text => text_line(&entry, &mut line),
                Format::Json => json_line(&entry, &mut line),
            }
            line.push('\n');
            if out.write_all(line.as_bytes()).is_err() {
                return;
            }
            next = receiver.try_recv().ok();
        }
        if out.flush().is_err() {
            return;
        }
    }
}

/// ingress-nginx's default:
/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
/// "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name]
/// [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length
/// $upstream_response_time $upstream_status $req_id`.
pub fn text_line(e: &Entry, out: &mut String) {
    use std::fmt::Write as _;
    let time = e.time.to_zoned(jiff::tz::TimeZone::UTC);
    let _ = write!(
        out,
        "{} - - [{}] \"",
        e.peer,
        time.strftime("%d/%b/%Y:%H:%M:%S %z")
    );
    push_escaped(out, e.method.as_str().as_bytes());
    out.push(' ');
    push_escaped(out, request_uri(&e.uri).as_bytes());
    let _ = write!(
        out,
        " {:?}\" {} {} \"",
        e.version, e.status, e.body_bytes_sent
    );
    push_header(out, e.referer.as_ref());
    out.push_str("\" \"");
    push_header(out, e.user_agent.as_ref());
    let _ = write!(
        out,
        "\" {} {:.3} [{}] [{}] ",
        e.request_length,
        e.request_time.as_secs_f64(),
        upstream_name(&e.route),
        alternative_name(e)
    );
    match &e.upstream_addr {
        Some(addr) => {
            let _ = write!(out, "{addr} {} ", e.body_bytes_sent);
        }
        None => out.push_str("- - "),
    }
    match e.upstream_response_time {
        Some(t) => {
            let _ = write!(out, "{:.3} ", t.as_secs_f64());
        }
        None => out.push_str("- "),
    }
    match e.upstream_status {
        Some(s) => {
            let _ = write!(out, "{s} ");
        }
        None => out.push_str("- "),
    }
    push_header(out, e.request_id.as_ref());
}

pub fn json_line(e: &Entry, out: &mut String) {
    let header = |v: &Option<HeaderValue>| {
        v.as_ref()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let ingress = e.route.ingress.as_ref();
    let value = serde_json::json!({
        "time": e.time.to_string(),
        "remote_addr": e.peer.to_string(),
        "request_id": header(&e.request_id),
        "method": e.method.as_str(),
        "host": &*e.host,
        "uri": request_uri(&e.uri),
        "protocol": format!("{:?}", e.version),
        "status": e.status,
        "bytes_sent": e.body_bytes_sent,
        "request_length": e.request_length,
        "request_time": e.request_time.as_secs_f64(),
        "referer": header(&e.referer),
        "user_agent": header(&e.user_agent),
        "namespace": ingress.map(|i| i.namespace.as_str()),
        "ingress": ingress.map(|i| i.name.as_str()),
        "service": (!e.route.service.is_empty()).then_some(e.route.service.as_str()),
        "path": (!e.route.path.is_empty()).then_some(e.route.path.as_str()),
        "canary": (e.canary).then(|| alternative_name(e)),
        "upstream_addr": e.upstream_addr.as_ref().map(|a| a.as_str()),
        "upstream_status": e.upstream_status,
        "upstream_response_time": e.upstream_response_time.map(|t| t.as_secs_f64()),
    });
    out.push_str(&value.to_string());
}

fn request_uri(uri: &Uri) -> &str {
    uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/")
}

/// ingress-nginx's `$proxy_upstream_name`: `namespace-service-port`; we name no port.
fn upstream_name(route: &Route) -> String {
    match &route.ingress {
        Some(ingress) if !route.service.is_empty() => {
            format!("{}-{}", ingress.namespace, route.service)
        }
        _ => "upstream-default-backend".to_owned(),
    }
}

/// ingress-nginx's `$proxy_alternative_upstream_name`: the canary's, when it served.
fn alternative_name(e: &Entry) -> &str {
    match (&e.route.canary, e.canary) {
        (Some(canary), true) => &canary.label,
        _ => "",
    }
}

fn push_header(out: &mut String, value: Option<&HeaderValue>) {
    match value {
        Some(v) => push_escaped(out, v.as_bytes()),
        None => out.push('-'),
    }
}

/// As nginx's default log escaping: `"`, `\` and bytes outside printable ASCII become `\xHH`,
/// so a client cannot forge log lines or fields.
fn push_escaped(out: &mut String, bytes: &[u8]) {
    use std::fmt::Write as _;
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectKey;
    use crate::routes::Target;

    fn entry() -> Entry {
        Entry {
            time: "2026-12-05T06:29:17Z".parse().unwrap_or_default(),
            peer: IpAddr::from([10, 0, 0, 7]),
            method: Method::GET,
            uri: Uri::from_static("/shop/cart?id=1"),
            version: Version::HTTP_11,
            host: Arc::from("shop.example"),
            status: 200,
            body_bytes_sent: 512,
            request_length: 87,
            request_time: Duration::from_micros(2500),
            referer: None,
            user_agent: Some(HeaderValue::from_static("curl/8.0 \"evil\"")),
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
        }
    }

    #[test]
    fn text_lines_follow_ingress_nginx_default_format() {
        let mut line = String::new();
        text_line(&entry(), &mut line);
        assert_eq!(
            line,
            "10.0.0.7 - - [05/Dec/2026:06:29:17 +0000] \"GET /shop/cart?id=1 HTTP/1.1\" 200 512 \"-\" \"curl/8.0 \\x22evil\\x22\" 87 0.003 [apps-shop-v1] [] 10.1.2.3:8080 512 0.002 200 abc123"
        );
    }

    #[test]
    fn control_bytes_cannot_forge_a_line() {
        let mut e = entry();
        e.user_agent = HeaderValue::from_bytes(b"a\tb\xff").ok();
        let mut line = String::new();
        text_line(&e, &mut line);
        assert!(line.contains("\"a\\x09b\\xFF\""), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn json_lines_are_one_object_with_the_route() {
        let mut line = String::new();
        json_line(&entry(), &mut line);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(value["status"], 200);
        assert_eq!(value["ingress"], "shop");
        assert_eq!(value["namespace"], "apps");
        assert_eq!(value["uri"], "/shop/cart?id=1");
        assert_eq!(value["upstream_addr"], "10.1.2.3:8080");
        assert_eq!(value["user_agent"], "curl/8.0 \"evil\"");
    }
}
