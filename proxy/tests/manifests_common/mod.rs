//! What the `--manifests` component tests share: a manifests folder written atomically, the real
//! `switchyard-proxy` binary on free loopback ports, named echo backends, a raw HTTP/1.1 client,
//! a rustls client that hands back the served certificate, and builders for the objects.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use switchyard_tests::ports::free_ports;
use switchyard_tests::process::{Supervised, log_tail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------------
// The manifests folder

/// A temporary work folder with a `manifests/` folder inside (the proxy's logs go next to it).
pub struct Folder {
    work: tempfile::TempDir,
    manifests: PathBuf,
}

impl Folder {
    pub fn new() -> Self {
        let work = tempfile::tempdir().expect("temp dir");
        let manifests = work.path().join("manifests");
        std::fs::create_dir(&manifests).expect("manifests dir");
        Self { work, manifests }
    }

    pub fn path(&self) -> &Path {
        &self.manifests
    }

    pub fn work(&self) -> &Path {
        self.work.path()
    }

    /// Writes `name` atomically: a temporary file the proxy ignores (no manifest extension),
    /// then a rename, so the proxy never reads a half-written file.
    pub fn write(&self, name: &str, contents: &str) {
        let tmp = self.manifests.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).expect("write manifest");
        std::fs::rename(&tmp, self.manifests.join(name)).expect("rename manifest");
    }

    /// Writes the objects as one `kind: List` (a `.json` name) or multi-document YAML.
    pub fn write_objects(&self, name: &str, objects: &[Value]) {
        let text = if name.ends_with(".json") {
            serde_json::to_string_pretty(
                &json!({"apiVersion": "v1", "kind": "List", "items": objects}),
            )
            .expect("serialize List")
        } else {
            // JSON is YAML: one flow-style document per object.
            objects
                .iter()
                .map(|o| format!("---\n{o}\n"))
                .collect::<String>()
        };
        self.write(name, &text);
    }

    pub fn rename(&self, from: &str, to: &str) {
        std::fs::rename(self.manifests.join(from), self.manifests.join(to)).expect("rename");
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.manifests.join(name)).expect("remove manifest");
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy process

/// A running `switchyard-proxy --manifests`; a failing test prints the end of its log.
pub struct Proxy {
    pub process: Supervised,
    pub http: u16,
    pub https: u16,
    pub metrics: u16,
}

static PROXIES: AtomicUsize = AtomicUsize::new(0);

impl Proxy {
    /// Starts the binary on `folder` with `args` added, and waits until /readyz answers 200
    /// (the first table is in place).
    pub async fn start(folder: &Folder, args: &[&str]) -> Proxy {
        let ports = free_ports(3).expect("free ports");
        let (http, https, metrics) = (ports[0], ports[1], ports[2]);
        let n = PROXIES.fetch_add(1, Ordering::Relaxed);
        let name = format!("switchyard-proxy-{n}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard-proxy"));
        cmd.arg("--manifests")
            .arg(folder.path())
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--https-addr", &format!("127.0.0.1:{https}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args(args)
            .env("RUST_LOG", "info");
        let log = folder.work().join(format!("{name}.log"));
        let process = Supervised::spawn(&name, cmd, &log).expect("spawn switchyard-proxy");
        let mut proxy = Proxy {
            process,
            http,
            https,
            metrics,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Err(err) = proxy.process.check_running() {
                panic!("switchyard-proxy {args:?} exited before it was ready: {err}");
            }
            if get(metrics, "localhost", "/readyz").await.status == 200 {
                return proxy;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "switchyard-proxy {args:?} not ready within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.process.log_path()).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ---\n{}",
                self.process.name(),
                log_tail(self.process.log_path(), 80)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Backends

/// Serves HTTP/1.1 on `listener` until the runtime ends, answering every request with
/// `<name>\n<METHOD> <uri>\n` and then the request headers, one `name: value` per line.
pub fn serve_named(name: String, listener: TcpListener) {
    let name: Arc<str> = name.into();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let name = name.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let mut body = format!("{name}\n{} {}\n", req.method(), req.uri());
                    for (key, value) in req.headers() {
                        body.push_str(&format!("{key}: {}\n", value.to_str().unwrap_or("?")));
                    }
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// A named backend on a free 127.0.0.1 port; returns the port.
pub async fn backend(name: impl Into<String>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let port = listener.local_addr().expect("backend address").port();
    serve_named(name.into(), listener);
    port
}

/// A port number that is free on each of 127.0.0.1 … 127.0.0.`count` (Linux routes all of
/// 127/8 to lo), with the listeners bound on it, in address order.
pub async fn listeners_on_one_port(count: u8) -> (u16, Vec<TcpListener>) {
    for _ in 0..50 {
        let first = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let port = first.local_addr().expect("address").port();
        let mut listeners = vec![first];
        for i in 2..=count {
            match TcpListener::bind(SocketAddr::from(([127, 0, 0, i], port))).await {
                Ok(l) => listeners.push(l),
                Err(_) => break,
            }
        }
        if listeners.len() == usize::from(count) {
            return (port, listeners);
        }
    }
    panic!("no port was free on all of 127.0.0.1..127.0.0.{count}");
}

// ---------------------------------------------------------------------------------------------
// A plain HTTP/1.1 client on raw sockets

#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// 0 when nothing answered (connection refused, timeout, garbage).
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first line of the body: a named backend's name.
    pub fn first_line(&self) -> &str {
        self.body.lines().next().unwrap_or("")
    }

    /// What answered, for messages: `200 from <name>` or `404 "<body start>"`.
    pub fn describe(&self) -> String {
        if self.status == 0 {
            return "no answer".to_owned();
        }
        let start: String = self.first_line().chars().take(80).collect();
        format!("{} {start:?}", self.status)
    }
}

/// Parses a whole HTTP/1.1 response (`Content-Length`, chunked, or read to the end).
pub fn parse_reply(raw: &[u8]) -> Reply {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Reply::default();
    };
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            break;
        };
        let start = eol + 2;
        if size == 0 || raw.len() < start + size {
            break;
        }
        out.extend_from_slice(&raw[start..start + size]);
        raw = raw.get(start + size + 2..).unwrap_or(&[]);
    }
    out
}

/// `GET path` with this Host on a fresh connection (`Connection: close`).
pub async fn get(port: u16, host: &str, path: &str) -> Reply {
    request(port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n")).await
}

/// Sends `head` (request line and headers, each ending in CRLF; `Connection: close` and the
/// blank line are added) and reads the whole answer.
pub async fn request(port: u16, head: &str) -> Reply {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return Reply::default();
    };
    let req = format!("{head}Connection: close\r\n\r\n");
    if stream.write_all(req.as_bytes()).await.is_err() {
        return Reply::default();
    }
    let mut raw = Vec::new();
    match tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await {
        Ok(Ok(_)) => parse_reply(&raw),
        _ => Reply::default(),
    }
}

// ---------------------------------------------------------------------------------------------
// TLS

/// How the test client checks the served certificate.
pub enum Trust {
    /// A real verification against these roots and the SNI name.
    Roots(rustls::RootCertStore),
    /// Accept whatever is served (to look at the default certificate).
    Anything,
}

impl Trust {
    /// Trust the certificates in this PEM text.
    pub fn pem(pem: &str) -> Trust {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("PEM certificate")).expect("root");
        }
        Trust::Roots(roots)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(trust: &Trust) -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let config = match trust {
        Trust::Roots(roots) => builder
            .with_root_certificates(roots.clone())
            .with_no_client_auth(),
        Trust::Anything => builder
            .dangerous()
            // The proxy's own verifier for backends it does not check (the default
            // certificate is self-signed).
            .with_custom_certificate_verifier(Arc::new(
                switchyard_proxy::proxy::AnyServerCertificate::new(),
            ))
            .with_no_client_auth(),
    };
    Arc::new(config)
}

/// What an HTTPS exchange showed: the served chain (leaf first) and the answer.
pub struct TlsReply {
    pub chain: Vec<CertificateDer<'static>>,
    pub reply: Reply,
}

impl TlsReply {
    pub fn leaf(&self) -> CertInfo {
        cert_info(self.chain.first().map(|c| c.as_ref()).unwrap_or(&[]))
    }
}

/// A TLS handshake with `sni` (`None`: no SNI at all, as when connecting to an IP address),
/// then `GET path` with this Host. Errs with the handshake error.
pub async fn https_get(
    port: u16,
    sni: Option<&str>,
    host: &str,
    path: &str,
    trust: &Trust,
) -> Result<TlsReply, String> {
    let connector = tokio_rustls::TlsConnector::from(client_config(trust));
    let name = match sni {
        Some(sni) => ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?,
        // rustls sends no SNI for an IP address.
        None => ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    };
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| format!("handshake: {e}"))?;
    let chain: Vec<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .unwrap_or(&[])
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    // A peer that closes without close_notify is an error to rustls; what was read counts.
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut raw)).await;
    Ok(TlsReply {
        chain,
        reply: parse_reply(&raw),
    })
}

/// Subject, issuer and DNS names of a certificate, read with a small DER walker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertInfo {
    pub subject_cn: Option<String>,
    pub issuer_cn: Option<String>,
    pub dns_names: Vec<String>,
}

/// One DER element: (tag, contents, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn elements(mut input: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let Some((tag, content, rest)) = tlv(input) {
        out.push((tag, content));
        input = rest;
    }
    out
}

/// The commonName (OID 2.5.4.3) of an X.501 Name.
fn common_name(name: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    for (_, set) in elements(name) {
        for (_, attribute) in elements(set) {
            let parts = elements(attribute);
            if let [(0x06, oid), (_, value)] = parts.as_slice()
                && *oid == CN
            {
                return Some(String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    None
}

pub fn cert_info(der: &[u8]) -> CertInfo {
    const SAN: &[u8] = &[0x55, 0x1d, 0x11];
    let mut info = CertInfo::default();
    let Some((_, cert, _)) = tlv(der) else {
        return info;
    };
    let Some((_, tbs, _)) = tlv(cert) else {
        return info;
    };
    let mut fields = elements(tbs);
    if fields.first().is_some_and(|(tag, _)| *tag == 0xa0) {
        fields.remove(0); // [0] version
    }
    // serial, signature, issuer, validity, subject, subjectPublicKeyInfo, then optional fields.
    if let Some((_, issuer)) = fields.get(2) {
        info.issuer_cn = common_name(issuer);
    }
    if let Some((_, subject)) = fields.get(4) {
        info.subject_cn = common_name(subject);
    }
    for (tag, content) in fields.iter().skip(6) {
        if *tag != 0xa3 {
            continue;
        }
        let Some((_, extensions, _)) = tlv(content) else {
            continue;
        };
        for (_, extension) in elements(extensions) {
            let parts = elements(extension);
            let Some((0x06, oid)) = parts.first() else {
                continue;
            };
            if *oid != SAN {
                continue;
            }
            if let Some((0x04, value)) = parts.last()
                && let Some((_, names, _)) = tlv(value)
            {
                for (tag, name) in elements(names) {
                    if tag == 0x82 {
                        info.dns_names
                            .push(String::from_utf8_lossy(name).into_owned());
                    }
                }
            }
        }
    }
    info
}

// ---------------------------------------------------------------------------------------------
// Objects

pub const CONTROLLER: &str = "switchyard.dev/ingress-controller";

pub fn ingress_class(name: &str, controller: &str, is_default: bool) -> Value {
    let mut class = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name},
        "spec": {"controller": controller},
    });
    if is_default {
        class["metadata"]["annotations"] =
            json!({"ingressclass.kubernetes.io/is-default-class": "true"});
    }
    class
}

/// A Service `name` (port 80, named `http`) and its EndpointSlice: 127.0.0.1:`port`.
pub fn backend_service(name: &str, port: u16) -> [Value; 2] {
    [
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        }),
        endpoint_slice(&format!("{name}-1"), name, "http", port, &["127.0.0.1"]),
    ]
}

/// An EndpointSlice of `service` with one port and one ready endpoint per address.
pub fn endpoint_slice(
    name: &str,
    service: &str,
    port_name: &str,
    port: u16,
    addresses: &[&str],
) -> Value {
    let endpoints: Vec<Value> = addresses
        .iter()
        .map(|a| json!({"addresses": [a], "conditions": {"ready": true}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": port}],
        "endpoints": endpoints,
    })
}

pub fn tls_secret(name: &str, (cert, key): &(String, String)) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert, "tls.key": key},
    })
}

/// A backend reference to port 80 of `service`.
pub fn service_backend(service: &str) -> Value {
    json!({"service": {"name": service, "port": {"number": 80}}})
}

/// An Ingress, built up field by field.
pub struct IngressBuilder(Value);

pub fn ingress(name: &str) -> IngressBuilder {
    IngressBuilder(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name},
        "spec": {},
    }))
}

impl IngressBuilder {
    pub fn class(mut self, class: &str) -> Self {
        self.0["spec"]["ingressClassName"] = json!(class);
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.0["metadata"]["annotations"][key] = json!(value);
        self
    }

    pub fn default_backend(mut self, service: &str) -> Self {
        self.0["spec"]["defaultBackend"] = service_backend(service);
        self
    }

    /// A rule for `host` (`""`: no host) with `(path, pathType, service)` paths; no paths at
    /// all gives a rule without `http`.
    pub fn rule(self, host: &str, paths: &[(&str, &str, &str)]) -> Self {
        let paths: Vec<Value> = paths
            .iter()
            .map(|(path, kind, service)| {
                json!({"path": path, "pathType": kind, "backend": service_backend(service)})
            })
            .collect();
        self.rule_with(host, paths)
    }

    /// A rule with paths given as raw JSON (for named ports and the like).
    pub fn rule_with(mut self, host: &str, paths: Vec<Value>) -> Self {
        let mut rule = json!({});
        if !host.is_empty() {
            rule["host"] = json!(host);
        }
        if !paths.is_empty() {
            rule["http"] = json!({ "paths": paths });
        }
        push(&mut self.0["spec"]["rules"], rule);
        self
    }

    pub fn tls(mut self, hosts: &[&str], secret: &str) -> Self {
        push(
            &mut self.0["spec"]["tls"],
            json!({"hosts": hosts, "secretName": secret}),
        );
        self
    }

    pub fn build(self) -> Value {
        self.0
    }
}

fn push(slot: &mut Value, item: Value) {
    match slot {
        Value::Array(items) => items.push(item),
        _ => *slot = json!([item]),
    }
}
