//! The controller ConfigMap through the real binary and real sockets: forwarded headers and the
//! real client address, PROXY protocol v1 and v2, limit status codes, server tokens, hidden
//! headers, the global body size, keep-alive-requests, TLS protocols, and regex paths on the
//! backtracking engine. Settings change live when the ConfigMap file changes.

mod manifests_common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use manifests_common::{
    Folder, Proxy, Reply, backend, backend_service, get, ingress, ingress_class, parse_reply,
    request,
};
use serde_json::{Value, json};
use switchyard_tests::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NGINX: &str = "nginx.ingress.kubernetes.io";
const CONFIGMAP: [&str; 2] = ["--configmap", "default/switchyard-controller"];

fn configmap(data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "switchyard-controller"},
        "data": data,
    })
}

/// Our class, the Service `web` on a backend at `port`, and an Ingress for `host`.
fn site(port: u16, host: &str) -> Vec<Value> {
    let mut objects = vec![ingress_class(
        "switchyard",
        "switchyard.dev/ingress-controller",
        false,
    )];
    objects.extend(backend_service("web", port));
    objects.push(
        ingress("site")
            .class("switchyard")
            .rule(host, &[("/", "Prefix", "web")])
            .build(),
    );
    objects
}

/// The value of `name` in an echo backend's report of the request headers it received.
fn seen<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

async fn settles(what: &str, check: impl Fn() -> futures::future::BoxFuture<'static, bool>) {
    eventually(what, Duration::from_secs(10), check).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_trusted_only_when_configured_and_from_trusted_peers() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = site(web, "fwd.example");
    objects.push(
        ingress("office")
            .class("switchyard")
            .annotation(&format!("{NGINX}/allowlist-source-range"), "203.0.113.0/24")
            .rule("office.example", &[("/", "Prefix", "web")])
            .build(),
    );
    folder.write_objects("site.json", &objects);
    let proxy = Proxy::start(&folder, &CONFIGMAP).await;
    let claimed = "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: public.example\r\nX-Forwarded-Port: 8443\r\n";
    let send = |host: &str| {
        let head = format!("GET /x HTTP/1.1\r\nHost: {host}\r\n{claimed}");
        let port = proxy.http;
        async move { request(port, &head).await }
    };

    // By default nothing the client claims is trusted.
    let reply = send("fwd.example").await;
    assert_eq!(reply.status, 200, "{}", reply.describe());
    assert_eq!(seen(&reply, "x-real-ip"), Some("127.0.0.1"));
    assert_eq!(seen(&reply, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen(&reply, "x-forwarded-proto"), Some("http"));
    assert_eq!(seen(&reply, "host"), Some("fwd.example"));
    assert_eq!(send("office.example").await.status, 403);

    // Behind a trusted L7 balancer: the client's address, scheme, host and port are taken.
    folder.write_objects(
        "controller.json",
        &[configmap(&[
            ("use-forwarded-headers", "true"),
            ("compute-full-forwarded-for", "true"),
            ("proxy-real-ip-cidr", "127.0.0.0/8"),
        ])],
    );
    let port = proxy.http;
    settles("use-forwarded-headers applied", || {
        Box::pin(async move {
            let head = format!("GET / HTTP/1.1\r\nHost: fwd.example\r\n{claimed}");
            seen(&request(port, &head).await, "x-real-ip") == Some("203.0.113.9")
        })
    })
    .await;
    let reply = send("fwd.example").await;
    assert_eq!(
        seen(&reply, "x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(seen(&reply, "x-forwarded-proto"), Some("https"));
    assert_eq!(seen(&reply, "x-scheme"), Some("https"));
    assert_eq!(seen(&reply, "x-forwarded-port"), Some("8443"));
    assert_eq!(seen(&reply, "x-forwarded-host"), Some("public.example"));
    assert_eq!(seen(&reply, "host"), Some("public.example"));
    // The real address is the one the allowlist sees, and the access log's.
    assert_eq!(send("office.example").await.status, 200);
    settles("the access log names the real client", || {
        let log = proxy.log();
        Box::pin(async move { log.lines().any(|l| l.starts_with("203.0.113.9 - ")) })
    })
    .await;

    // The peer is not in proxy-real-ip-cidr: its word about the client is not taken.
    folder.write_objects(
        "controller.json",
        &[configmap(&[
            ("use-forwarded-headers", "true"),
            ("proxy-real-ip-cidr", "10.0.0.0/8"),
        ])],
    );
    settles("proxy-real-ip-cidr applied", || {
        Box::pin(async move {
            let head = format!("GET / HTTP/1.1\r\nHost: fwd.example\r\n{claimed}");
            seen(&request(port, &head).await, "x-real-ip") == Some("127.0.0.1")
        })
    })
    .await;
    assert_eq!(send("office.example").await.status, 403);

    // A bad value is reported naming the key, and the default applies.
    folder.write_objects(
        "controller.json",
        &[configmap(&[("enable-real-ip", "maybe")])],
    );
    settles("the bad value reported", || {
        let log = proxy.log();
        Box::pin(async move { log.contains("ConfigMap key \\\"enable-real-ip\\\": \\\"maybe\\\"") })
    })
    .await;
}

/// A PROXY protocol v2 header for a TCP4 client `source`:`40000` → `10.0.0.1`:`port`.
fn proxy_v2(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&source);
    header.extend_from_slice(&[10, 0, 0, 1]);
    header.extend_from_slice(&40000u16.to_be_bytes());
    header.extend_from_slice(&port.to_be_bytes());
    header
}

/// Sends `prefix` then a GET, and reads the answer (status 0: the connection was refused).
async fn raw(port: u16, prefix: &[u8], host: &str) -> Reply {
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(
        format!("GET /pp HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    send_raw(port, &bytes).await
}

/// Sends `bytes` on a fresh connection and reads the answer to the end.
async fn send_raw(port: u16, bytes: &[u8]) -> Reply {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return Reply::default();
    };
    if stream.write_all(bytes).await.is_err() {
        return Reply::default();
    }
    let mut out = Vec::new();
    match tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await {
        Ok(_) => parse_reply(&out),
        Err(_) => Reply::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_v1_and_v2_carry_the_client_address_and_are_required() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = site(web, "pp.example");
    objects.push(configmap(&[
        ("use-proxy-protocol", "true"),
        ("proxy-protocol-header-timeout", "1s"),
    ]));
    folder.write_objects("site.json", &objects);
    let proxy = Proxy::start(&folder, &CONFIGMAP).await;

    let v1 = raw(
        proxy.http,
        b"PROXY TCP4 198.51.100.7 10.0.0.1 51000 443\r\n",
        "pp.example",
    )
    .await;
    assert_eq!(v1.status, 200, "{}", v1.describe());
    assert_eq!(seen(&v1, "x-real-ip"), Some("198.51.100.7"));
    assert_eq!(seen(&v1, "x-forwarded-for"), Some("198.51.100.7"));
    // The balancer took the connection on 443: the client used HTTPS.
    assert_eq!(seen(&v1, "x-forwarded-proto"), Some("https"));
    assert_eq!(seen(&v1, "x-forwarded-port"), Some("443"));

    let v2 = raw(proxy.http, &proxy_v2([192, 0, 2, 44], 80), "pp.example").await;
    assert_eq!(v2.status, 200, "{}", v2.describe());
    assert_eq!(seen(&v2, "x-real-ip"), Some("192.0.2.44"));
    assert_eq!(seen(&v2, "x-forwarded-proto"), Some("http"));

    // Without the header, or with a broken one, there is no connection to speak of.
    assert_eq!(raw(proxy.http, b"", "pp.example").await.status, 0);
    assert_eq!(
        raw(proxy.http, b"PROXY TCP4 nonsense\r\n", "pp.example")
            .await
            .status,
        0
    );
    // A client that sends nothing is let go after proxy-protocol-header-timeout.
    let mut silent = TcpStream::connect(("127.0.0.1", proxy.http))
        .await
        .expect("connect");
    let mut buf = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");

    // Turned off live: plain connections are served again.
    folder.write_objects("site.json", &site(web, "pp.example"));
    let port = proxy.http;
    settles("PROXY protocol turned off", || {
        Box::pin(async move { get(port, "pp.example", "/").await.status == 200 })
    })
    .await;
}

/// A backend that answers with the headers a framework would add.
async fn chatty_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    let mut response = Response::new(Full::new(Bytes::from_static(b"chatty\n")));
                    let headers = response.headers_mut();
                    headers.insert("server", "Apache/2.4.1".parse().expect("value"));
                    headers.insert("x-powered-by", "PHP/5.1".parse().expect("value"));
                    headers.insert("x-kept", "yes".parse().expect("value"));
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tokens_hide_headers_body_size_and_limit_status_codes() {
    let folder = Folder::new();
    let chatty = chatty_backend().await;
    let mut objects = site(chatty, "chatty.example");
    objects.push(
        ingress("limited")
            .class("switchyard")
            .annotation(&format!("{NGINX}/limit-rps"), "1")
            .annotation(&format!("{NGINX}/limit-burst-multiplier"), "1")
            .rule("limited.example", &[("/", "Prefix", "web")])
            .build(),
    );
    objects.push(
        ingress("uploads")
            .class("switchyard")
            .annotation(&format!("{NGINX}/proxy-body-size"), "1m")
            .rule("uploads.example", &[("/", "Prefix", "web")])
            .build(),
    );
    folder.write_objects("site.json", &objects);
    let proxy = Proxy::start(&folder, &CONFIGMAP).await;
    let post = |host: &str, length: usize| {
        let bytes = format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n{}",
            "x".repeat(length)
        );
        let port = proxy.http;
        async move { send_raw(port, bytes.as_bytes()).await }
    };

    // Defaults: the backend's Server header is not shown, others pass; 503 beyond the rate.
    let reply = get(proxy.http, "chatty.example", "/").await;
    assert_eq!(reply.status, 200, "{}", reply.describe());
    assert_eq!(reply.header("server"), None);
    assert_eq!(reply.header("x-powered-by"), Some("PHP/5.1"));
    let statuses = burst(proxy.http).await;
    assert!(
        statuses.contains(&503) && !statuses.contains(&429),
        "{statuses:?}"
    );
    assert_eq!(post("chatty.example", 2000).await.status, 200);

    folder.write_objects(
        "controller.json",
        &[configmap(&[
            ("server-tokens", "true"),
            ("hide-headers", "X-Powered-By"),
            ("proxy-body-size", "1k"),
            ("limit-req-status-code", "429"),
        ])],
    );
    let port = proxy.http;
    settles("server-tokens applied", || {
        Box::pin(async move {
            get(port, "chatty.example", "/")
                .await
                .header("server")
                .is_some()
        })
    })
    .await;
    let reply = get(proxy.http, "chatty.example", "/").await;
    assert_eq!(reply.header("server"), Some("switchyard/0.1.0"));
    assert_eq!(reply.header("x-powered-by"), None);
    assert_eq!(reply.header("x-kept"), Some("yes"));
    let statuses = burst(proxy.http).await;
    assert!(
        statuses.contains(&429) && !statuses.contains(&503),
        "{statuses:?}"
    );
    // The global body size applies where the Ingress sets none.
    assert_eq!(post("chatty.example", 2000).await.status, 413);
    assert_eq!(post("uploads.example", 2000).await.status, 200);
}

/// Ten quick requests to the host limited to 1 r/s with a burst of 1.
async fn burst(port: u16) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(get(port, "limited.example", "/").await.status);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_requests_closes_the_connection_after_its_last_request() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = site(web, "ka.example");
    objects.push(configmap(&[("keep-alive-requests", "2")]));
    folder.write_objects("site.json", &objects);
    let proxy = Proxy::start(&folder, &CONFIGMAP).await;

    let mut stream = TcpStream::connect(("127.0.0.1", proxy.http))
        .await
        .expect("connect");
    let one = "GET /1 HTTP/1.1\r\nHost: ka.example\r\n\r\n";
    // Three requests on one connection; the proxy answers two, then closes it.
    stream
        .write_all(format!("{one}{one}{one}").as_bytes())
        .await
        .expect("send");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the proxy closes the connection")
        .expect("read");
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    let second = text.rfind("HTTP/1.1 200 OK").unwrap_or(0);
    assert!(text[second..].contains("connection: close"), "{text}");
}

/// A TLS 1.2-only client against the proxy's HTTPS port; `Ok` when the handshake succeeds.
async fn tls12_handshake(port: u16) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(
            switchyard_proxy::proxy::AnyServerCertificate::new(),
        ))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("tls.example").map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_protocols_apply_live_and_what_rustls_lacks_is_reported() {
    let folder = Folder::new();
    let web = backend("web").await;
    folder.write_objects("site.json", &site(web, "tls.example"));
    let proxy = Proxy::start(&folder, &CONFIGMAP).await;
    assert_eq!(tls12_handshake(proxy.https).await, Ok(()));

    folder.write_objects(
        "controller.json",
        &[configmap(&[("ssl-protocols", "TLSv1.1 TLSv1.3")])],
    );
    let port = proxy.https;
    settles("TLS 1.2 turned off", || {
        Box::pin(async move { tls12_handshake(port).await.is_err() })
    })
    .await;
    let reply = manifests_common::https_get(
        proxy.https,
        Some("tls.example"),
        "tls.example",
        "/",
        &manifests_common::Trust::Anything,
    )
    .await
    .expect("TLS 1.3 still works");
    assert_eq!(reply.reply.status, 200);
    let log = proxy.log();
    assert!(log.contains("UnsupportedConfigValue"), "{log}");
    assert!(log.contains("TLSv1.1 not implemented by rustls"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catastrophic_regex_path_answers_500_at_once_and_others_keep_working() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = site(web, "other.example");
    objects.push(
        ingress("regex")
            .class("switchyard")
            .annotation(&format!("{NGINX}/use-regex"), "true")
            .rule(
                "regex.example",
                &[("/((?=a)a+)+$", "ImplementationSpecific", "web")],
            )
            .rule(
                "ahead.example",
                &[("/(?!admin)\\w+", "ImplementationSpecific", "web")],
            )
            .build(),
    );
    folder.write_objects("site.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    assert_eq!(get(proxy.http, "regex.example", "/aaaa").await.status, 200);
    // Look-ahead, which the linear-time engine cannot take.
    assert_eq!(get(proxy.http, "ahead.example", "/shop").await.status, 200);
    assert_eq!(get(proxy.http, "ahead.example", "/admin").await.status, 404);
    // A path that makes the pattern backtrack without end: a defined answer, not a hung worker.
    let hostile = format!("/{}!", "a".repeat(200));
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        get(proxy.http, "regex.example", &hostile),
    )
    .await
    .expect("answered");
    assert_eq!(reply.status, 500, "{}", reply.describe());
    assert_eq!(get(proxy.http, "other.example", "/").await.status, 200);
}
