//! Component test of what a host with TLS does, through real sockets and real TLS (curl as the
//! client): plain HTTP gets ingress-nginx's 308 to HTTPS, HTTPS responses carry HSTS, ACME
//! HTTP-01 challenges are answered by the proxy itself and never redirected, and every request
//! leaves an access log line.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use switchyard_tests::pki::TestCa;
use switchyard_tests::ports::free_ports;
use switchyard_tests::process::{Supervised, log_tail};
use switchyard_tests::{backend, eventually, http};

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn manifests(backend_port: u16, cert: &str, key: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: switchyard}}
spec: {{controller: switchyard.dev/ingress-controller}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, port: {backend_port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: shop-tls}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{cert}
  tls.key: |
{key}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: shop}}
spec:
  ingressClassName: switchyard
  tls: [{{hosts: [shop.example], secretName: shop-tls}}]
  rules:
  - host: shop.example
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}
  - host: plain.example
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: cm-acme-http-solver-x1
  labels: {{switchyard.dev/acme-challenge: \"true\"}}
  annotations: {{switchyard.dev/acme-http01-response: tok_1.thumbprint_abc}}
spec:
  ingressClassName: switchyard
  rules:
  - host: shop.example
    http: {{paths: [{{path: /.well-known/acme-challenge/tok_1, pathType: Exact, backend: {{service: {{name: solver-not-running, port: {{number: 8089}}}}}}}}]}}
",
        cert = indent(cert),
        key = indent(key),
    )
}

fn curl_https(port: u16, ca: &Path, host: &str, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A request whose headers exceed the proxy's limit; returns the raw response.
fn oversized_request(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let filler = "a".repeat(40 * 1024);
    let _ = write!(
        stream,
        "GET / HTTP/1.1\r\nHost: plain.example\r\nX-Filler: {filler}\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_hosts_redirect_send_hsts_and_answer_acme_challenges_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend_port = backend::spawn("web").await.expect("backend");
    let ca = TestCa::new("https-policy test CA").expect("CA");
    let (cert, key) = ca.serving("shop.example", &["shop.example"]).expect("cert");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert_pem()).expect("write CA");
    let folder = dir.path().join("manifests");
    std::fs::create_dir(&folder).expect("manifests dir");
    std::fs::write(
        folder.join("all.yaml"),
        manifests(backend_port, &cert, &key),
    )
    .expect("write manifests");

    let ports = free_ports(3).expect("ports");
    let http_addr = format!("127.0.0.1:{}", ports[0]);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard-proxy"));
    cmd.arg("--manifests")
        .arg(&folder)
        .args(["--http-addr", &http_addr])
        .args(["--https-addr", &format!("127.0.0.1:{}", ports[1])])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", ports[2])])
        .args(["--configmap", "default/switchyard-controller"])
        .env("RUST_LOG", "info");
    let log = dir.path().join("proxy.log");
    let proxy = Supervised::spawn("proxy", cmd, &log).expect("start proxy");

    let addr = http_addr.clone();
    eventually(
        "the proxy serves plain.example",
        Duration::from_secs(20),
        || {
            let addr = addr.clone();
            async move {
                http::get(&addr, "plain.example", "/")
                    .is_ok_and(|r| r.status == 200 && r.body.starts_with("web: GET /"))
            }
        },
    )
    .await;

    let get = |host: &'static str, path: &'static str| {
        let addr = http_addr.clone();
        async move {
            tokio::task::spawn_blocking(move || http::get(&addr, host, path))
                .await
                .expect("join")
                .expect("request")
        }
    };

    // Plain HTTP to a TLS host: 308 to the same URI over HTTPS (the port is the Service's).
    let redirected = get("Shop.Example:80", "/cart?item=1").await;
    assert_eq!(redirected.status, 308, "{redirected:?}");
    assert_eq!(
        redirected.header("location"),
        Some("https://shop.example/cart?item=1")
    );

    // The challenge is answered by the proxy (its backend does not even exist), not redirected.
    let challenge = get("shop.example", "/.well-known/acme-challenge/tok_1").await;
    assert_eq!(challenge.status, 200, "{challenge:?}");
    assert_eq!(challenge.body, "tok_1.thumbprint_abc");
    assert_eq!(challenge.header("content-type"), Some("text/plain"));

    // Other challenge paths are not redirected either: they reach the host's backend.
    let other = get("shop.example", "/.well-known/acme-challenge/unknown").await;
    assert_eq!(other.status, 200, "{other:?}");
    assert!(
        other
            .body
            .starts_with("web: GET /.well-known/acme-challenge/unknown")
    );

    // Headers beyond ingress-nginx's 4 × 8k buffers are refused, and nothing else suffers.
    let big = tokio::task::spawn_blocking({
        let addr = http_addr.clone();
        move || oversized_request(&addr)
    })
    .await
    .expect("join");
    assert!(big.starts_with("HTTP/1.1 431 "), "{big}");

    // A host without TLS is served over plain HTTP, without HSTS.
    let plain = get("plain.example", "/x").await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("strict-transport-security"), None);

    // HTTPS: the Secret's certificate (curl verifies it against our CA) and HSTS.
    let https_port = ports[1];
    let ca_file = ca_path.clone();
    let response = tokio::task::spawn_blocking(move || {
        curl_https(https_port, &ca_file, "shop.example", "/secure")
    })
    .await
    .expect("join");
    assert!(response.starts_with("HTTP/2 200"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000; includesubdomains"),
        "{response}"
    );
    assert!(response.contains("x-forwarded-proto: https"), "{response}");

    // One access log line per request, in ingress-nginx's format.
    let lines = || log_tail(&log, 200);
    eventually("access log lines", Duration::from_secs(5), || {
        let text = lines();
        async move {
            text.contains("\"GET /cart?item=1 HTTP/1.1\" 308 ")
                && text.contains("\"GET /secure HTTP/2.0\" 200 ")
        }
    })
    .await;
    let text = lines();
    let line = text
        .lines()
        .find(|l| l.contains("\"GET /secure HTTP/2.0\""))
        .unwrap_or_default();
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.contains("[default-web-80] [] 127.0.0.1:"), "{line}");
    // The controller ConfigMap was missing so far: said so, defaults applied.
    assert!(text.contains("MissingConfigMap"), "{text}");

    // The controller ConfigMap turns the redirect, HSTS and the access log off, live.
    std::fs::write(
        folder.join("controller.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: switchyard-controller}\ndata: {ssl-redirect: \"false\", hsts: \"false\", disable-access-log: \"true\", hsts-max-age: soon}\n",
    )
    .expect("write ConfigMap");
    let addr = http_addr.clone();
    eventually("the redirect turned off", Duration::from_secs(10), || {
        let addr = addr.clone();
        async move { http::get(&addr, "shop.example", "/cart").is_ok_and(|r| r.status == 200) }
    })
    .await;
    let ca_file = ca_path.clone();
    let response = tokio::task::spawn_blocking(move || {
        curl_https(https_port, &ca_file, "shop.example", "/after-configmap")
    })
    .await
    .expect("join");
    assert!(response.starts_with("HTTP/2 200"), "{response}");
    assert!(
        !response
            .to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{response}"
    );
    let text = lines();
    assert!(!text.contains("/after-configmap"), "{text}");
    assert!(
        text.contains(
            "ConfigMap key \\\"hsts-max-age\\\": \\\"soon\\\" is not a number of seconds"
        ),
        "{text}"
    );
    drop(proxy);
}
