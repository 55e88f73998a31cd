//! Component test: the real binary in `--manifests` mode in front of real HTTP backends on
//! loopback. Asserts what a user would notice: routing, forwarding headers, live edits, a broken
//! document not stopping the good ones, and the operations endpoints.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that answers with its name, the request URI and every request header.
async fn start_backend(name: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let port = listener.local_addr().expect("backend addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let mut body = format!("{name}\nuri: {}\n", req.uri());
                    for (key, value) in req.headers() {
                        body.push_str(&format!(
                            "{key}: {}\n",
                            value.to_str().unwrap_or("<binary>")
                        ));
                    }
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One HTTP/1.1 request on a fresh connection: (status, body); status 0 when nothing listens.
async fn request(port: u16, host: &str, path: &str, extra: &str) -> (u16, String) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .expect("send request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response within 10 s")
        .expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Polls until `check` holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within {limit:?}");
}

struct Proxy {
    child: Child,
    log: std::path::PathBuf,
}

impl Proxy {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Ports {
    http: u16,
    https: u16,
    metrics: u16,
}

/// Starts the binary on free loopback ports and waits for /readyz: (proxy, http port, metrics port).
async fn start_proxy(work: &Path, manifests: &Path) -> (Proxy, u16, u16) {
    let (proxy, ports) = start_proxy_ports(work, manifests).await;
    (proxy, ports.http, ports.metrics)
}

async fn start_proxy_ports(work: &Path, manifests: &Path) -> (Proxy, Ports) {
    let (http, https, metrics) = (free_port(), free_port(), free_port());
    let log = work.join("proxy.log");
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard-proxy"))
        .args(["--manifests".as_ref(), manifests.as_os_str()])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--https-addr", &format!("127.0.0.1:{https}")])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start switchyard-proxy");
    let proxy = Proxy { child, log };
    eventually(Duration::from_secs(20), "/readyz answering 200", || async {
        request(metrics, "localhost", "/readyz", "").await.0 == 200
    })
    .await;
    (
        proxy,
        Ports {
            http,
            https,
            metrics,
        },
    )
}

fn app_manifests(service: &str, alpha: u16, beta: u16) -> String {
    let mut out = String::from(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: switchyard}\nspec: {controller: switchyard.dev/ingress-controller}\n",
    );
    for (name, port) in [("alpha", alpha), ("beta", beta)] {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: apps}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n\
             ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, namespace: apps, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]\n"
        ));
    }
    out.push_str(&format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: app, namespace: apps}}\nspec:\n  ingressClassName: switchyard\n  rules:\n  - host: app.test\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend: {{service: {{name: {service}, port: {{name: http}}}}}}\n      - path: /missing\n        pathType: Prefix\n        backend: {{service: {{name: nope, port: {{number: 80}}}}}}\n"
    ));
    out
}

const BROKEN_AND_GOOD: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: [this is not closed\n---\n\
apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: other, namespace: apps}\nspec:\n  ingressClassName: switchyard\n  rules:\n  - host: other.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: beta, port: {number: 80}}}}\n";

fn write(path: &Path, contents: &str) {
    // Write then rename, so the proxy never reads a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write manifest");
    std::fs::rename(&tmp, path).expect("rename manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_manifests_folder_live() {
    let alpha = start_backend("alpha").await;
    let beta = start_backend("beta").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).expect("manifests dir");
    let app = manifests.join("10-app.yaml");
    write(&app, &app_manifests("alpha", alpha, beta));
    write(&manifests.join("20-other.yaml"), BROKEN_AND_GOOD);

    let (mut proxy, http, metrics) = start_proxy(dir.path(), &manifests).await;

    assert_eq!(request(metrics, "localhost", "/healthz", "").await.0, 200);

    // Routed, with ingress-nginx's upstream headers, and hop-by-hop headers removed.
    let (status, body) = request(
        http,
        "App.Test",
        "/hello/../world?x=1",
        "X-Forwarded-For: 6.6.6.6\r\nX-Drop-Me: secret\r\nConnection: X-Drop-Me\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", proxy.log());
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "alpha", "{body}");
    for expected in [
        "uri: /hello/../world?x=1",
        "host: App.Test",
        "x-forwarded-for: 127.0.0.1",
        "x-real-ip: 127.0.0.1",
        "x-forwarded-host: App.Test",
        &format!("x-forwarded-port: {http}"),
        "x-forwarded-proto: http",
        "x-scheme: http",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{body}");
    }
    let request_id = lines
        .iter()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("an X-Request-ID");
    assert!(request_id.len() == 32 && request_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!body.to_ascii_lowercase().contains("x-drop-me"), "{body}");
    // A client's own X-Request-ID is kept.
    let (_, body) = request(http, "app.test", "/", "X-Request-ID: abc123\r\n").await;
    assert!(body.lines().any(|l| l == "x-request-id: abc123"), "{body}");

    // The broken document in 20-other.yaml did not stop its good neighbour.
    let (status, body) = request(http, "other.test", "/", "").await;
    assert_eq!((status, body.lines().next()), (200, Some("beta")), "{body}");
    assert!(
        proxy.log().contains("20-other.yaml"),
        "the skipped document is logged with its file:\n{}",
        proxy.log()
    );

    // No rule for the host: the default backend's 404. A missing Service: 503 for that path only.
    assert_eq!(request(http, "unknown.test", "/", "").await.0, 404);
    assert_eq!(request(http, "app.test", "/missing/x", "").await.0, 503);

    // Edit the file: re-routed live, same process.
    write(&app, &app_manifests("beta", alpha, beta));
    eventually(
        Duration::from_secs(10),
        "app.test routed to beta",
        || async {
            let (status, body) = request(http, "app.test", "/", "").await;
            status == 200 && body.starts_with("beta\n")
        },
    )
    .await;

    // ingress-nginx's request counter, line for line: no `_total`, the Ingress path as label.
    let (status, text) = request(metrics, "localhost", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("# TYPE nginx_ingress_controller_requests counter\n"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("nginx_ingress_controller_requests{")
                && l.contains("ingress=\"app\"")
                && l.contains("service=\"alpha\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no request series for app/alpha in\n{text}"));
    assert!(line.starts_with("nginx_ingress_controller_requests{canary=\"\",controller_class=\"switchyard.dev/ingress-controller\",controller_namespace="), "{line}");
    assert!(line.contains(",host=\"app.test\",ingress=\"app\",method=\"GET\",namespace=\"apps\",path=\"/\",service=\"alpha\",status=\"200\"} "), "{line}");
    assert!(
        !text.contains("nginx_ingress_controller_requests_total"),
        "{text}"
    );

    // SIGTERM: a clean, successful exit.
    let pid = proxy.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()));
    let start = Instant::now();
    loop {
        match proxy.child.try_wait() {
            Ok(Some(status)) => {
                assert!(status.success(), "exit status {status}\n{}", proxy.log());
                break;
            }
            _ if start.elapsed() > Duration::from_secs(10) => {
                panic!("no exit within 10 s of SIGTERM\n{}", proxy.log())
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_across_endpoints_and_a_dead_one_is_skipped() {
    let alpha = start_backend("alpha").await;
    let beta = start_backend("beta").await;
    let dead = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let manifests = dir.path().join("m");
    std::fs::create_dir(&manifests).expect("manifests dir");
    // One Service, three slices: the slice's port is authoritative, so each endpoint differs.
    let mut text = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{name: http, port: 80}]}\n",
    );
    for (i, port) in [alpha, beta, dead].iter().enumerate() {
        text.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-{i}, labels: {{kubernetes.io/service-name: web}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n"
        ));
    }
    text.push_str("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, annotations: {kubernetes.io/ingress.class: switchyard}}\nspec: {defaultBackend: {service: {name: web, port: {number: 80}}}}\n");
    write(&manifests.join("web.yaml"), &text);
    let (_proxy, http, _) = start_proxy(dir.path(), &manifests).await;

    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..12 {
        let (status, body) = request(http, "anything.example", "/", "").await;
        assert_eq!(
            status, 200,
            "a dead endpoint must be retried on the next one: {body}"
        );
        *seen
            .entry(body.lines().next().unwrap_or("").to_owned())
            .or_insert(0) += 1;
    }
    // The catch-all got every request; both live endpoints served some.
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ["alpha", "beta"],
        "{seen:?}"
    );
    assert!(seen.values().all(|n| *n >= 4), "uneven split {seen:?}");
}

#[test]
fn check_reports_problems_per_object_and_fails_on_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: ok, annotations: {kubernetes.io/ingress.class: switchyard}}\nspec: {rules: [{host: a.test, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: missing, port: {number: 80}}}}]}}]}\n").expect("write");
    let run = |files: &[&Path]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard-proxy"));
        cmd.arg("check");
        for f in files {
            cmd.arg("-f").arg(f);
        }
        cmd.output().expect("run check")
    };
    let out = run(&[&good]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "warnings alone pass:\n{stdout}");
    assert!(stdout.contains("Ingress default/ok\n  Warning ServiceNotFound: path /: Service default/missing not found"), "{stdout}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bad, annotations: {kubernetes.io/ingress.class: switchyard}}\nspec: {rules: [{host: 'x*y', http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}}]}\n---\nkind: [\n").expect("write");
    let out = run(&[&good, &bad]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("bad.yaml document 2: "), "{stdout}");
    assert!(
        stdout.contains("Ingress default/bad\n  Error InvalidHost"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_picks_the_ingress_certificate_by_sni() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let alpha = start_backend("alpha").await;
    let generated =
        rcgen::generate_simple_self_signed(vec!["secure.test".to_owned()]).expect("rcgen");
    let indent = |pem: String| {
        pem.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: secure-tls}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}\n  tls.key: |\n{}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{ports: [{{port: 80}}]}}\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-1, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nports: [{{port: {alpha}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n\
         ---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: secure, annotations: {{kubernetes.io/ingress.class: switchyard}}}}\n\
         spec:\n  tls: [{{hosts: [secure.test], secretName: secure-tls}}]\n  rules: [{{host: secure.test, http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}}}]\n",
        indent(generated.cert.pem()),
        indent(generated.signing_key.serialize_pem())
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let manifests = dir.path().join("m");
    std::fs::create_dir(&manifests).expect("manifests dir");
    write(&manifests.join("secure.yaml"), &text);
    let (_proxy, ports) = start_proxy_ports(dir.path(), &manifests).await;
    let https = ports.https;

    // Trust only the Ingress's certificate: the handshake succeeds only if SNI chose it.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(generated.cert.der().clone())
        .expect("trust the test certificate");
    let config = std::sync::Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = TcpStream::connect(("127.0.0.1", https))
        .await
        .expect("connect TLS port");
    let name = rustls_pki_types::ServerName::try_from("secure.test").expect("name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("handshake with the Ingress certificate");
    tls.write_all(b"GET /x HTTP/1.1\r\nHost: secure.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\r\n\r\nalpha\n"), "{text}");
    assert!(text.contains("x-forwarded-proto: https\n"), "{text}");

    // Another name gets the default (self-signed) certificate, which this client rejects.
    let tcp = TcpStream::connect(("127.0.0.1", https))
        .await
        .expect("connect TLS port");
    let other = rustls_pki_types::ServerName::try_from("other.test").expect("name");
    assert!(connector.connect(other, tcp).await.is_err());
}
