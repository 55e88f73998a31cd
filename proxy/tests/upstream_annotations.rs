//! The upstream traffic annotations through the real binary and real sockets: retries,
//! balancing, rate, HTTP version and Connection, response rewriting, mirroring, custom error
//! pages and the trailing slash of HTTPS redirects; each with an invalid value reported.

mod manifests_common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use manifests_common::{
    Folder, Proxy, backend, backend_service, endpoint_slice, get, ingress, ingress_class,
    listeners_on_one_port, request,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const NGINX: &str = "nginx.ingress.kubernetes.io";

/// What a purpose-built backend answers: status, headers, body (and how long it waits first).
#[derive(Clone, Default)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

/// Serves `answer(request line with version, body)` on `listener`.
fn serve<F>(listener: TcpListener, answer: F)
where
    F: Fn(String, Bytes) -> Answer + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let answer = answer.clone();
                    async move {
                        let mut line =
                            format!("{} {} {:?}", req.method(), req.uri(), req.version());
                        for (k, v) in req.headers() {
                            line.push_str(&format!("\n{k}: {}", v.to_str().unwrap_or("?")));
                        }
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let a = answer(line, body);
                        tokio::time::sleep(a.delay).await;
                        let mut response = Response::new(Full::new(Bytes::from(a.body)));
                        *response.status_mut() =
                            hyper::StatusCode::from_u16(a.status).unwrap_or_default();
                        for (k, v) in a.headers {
                            if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
                                response.headers_mut().append(k, v);
                            }
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn listener() -> (u16, TcpListener) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    (l.local_addr().expect("addr").port(), l)
}

fn ok(body: impl Into<String>) -> Answer {
    Answer {
        status: 200,
        body: body.into(),
        ..Answer::default()
    }
}

fn class() -> Value {
    ingress_class("switchyard", "switchyard.dev/ingress-controller", false)
}

/// An Ingress for `host` → Service `service` with these annotations (names without prefix).
fn site(name: &str, host: &str, service: &str, annotations: &[(&str, &str)]) -> Value {
    let mut builder = ingress(name).class("switchyard");
    for (k, v) in annotations {
        builder = builder.annotation(&format!("{NGINX}/{k}"), v);
    }
    builder.rule(host, &[("/", "Prefix", service)]).build()
}

/// `POST path` with a 5-byte body on a fresh connection.
async fn post(port: u16, host: &str, path: &str) -> manifests_common::Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return manifests_common::Reply::default();
    };
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    );
    let _ = stream.write_all(req.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    manifests_common::parse_reply(&raw)
}

/// Waits until the proxy's log mentions `text` (a Warning finding, say).
async fn log_mentions(proxy: &Proxy, text: &str) {
    // The log is JSON: quotes in messages are escaped.
    let text = &text.replace('"', "\\\"");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy.log().contains(text.as_str()) {
        assert!(
            Instant::now() < deadline,
            "log never said {text:?}:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_upstream_retries_what_it_may_and_never_resends_a_post() {
    // 127.0.0.1 answers 502, 127.0.0.2 answers well: both endpoints of Service `pair`.
    let (port, mut listeners) = listeners_on_one_port(2).await;
    let good = listeners.pop().expect("second listener");
    let bad = listeners.pop().expect("first listener");
    serve(bad, |_, _| Answer {
        status: 502,
        body: "bad\n".into(),
        ..Answer::default()
    });
    serve(good, |line, body| {
        ok(format!("good\n{line}\n{}", String::from_utf8_lossy(&body)))
    });
    let folder = Folder::new();
    let mut objects = vec![class()];
    objects.push(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pair"},
        "spec": {"ports": [{"name": "http", "port": 80}]}}),
    );
    objects.push(endpoint_slice(
        "pair-1",
        "pair",
        "http",
        port,
        &["127.0.0.1", "127.0.0.2"],
    ));
    objects.push(site(
        "retry",
        "retry.example",
        "pair",
        &[("proxy-next-upstream", "error timeout http_502")],
    ));
    objects.push(site(
        "replay",
        "replay.example",
        "pair",
        &[
            ("proxy-next-upstream", "http_502 non_idempotent"),
            ("proxy-request-buffering", "on"),
        ],
    ));
    objects.push(site(
        "plain",
        "plain.example",
        "pair",
        &[("proxy-next-upstream", "off")],
    ));
    objects.push(site(
        "wrong",
        "wrong.example",
        "pair",
        &[("proxy-next-upstream", "sometimes")],
    ));
    folder.write_objects("retry.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    // GETs that meet the 502 go on to the good endpoint: every one succeeds.
    for _ in 0..4 {
        let reply = get(proxy.http, "retry.example", "/").await;
        assert_eq!(
            (reply.status, reply.first_line()),
            (200, "good"),
            "{}",
            reply.describe()
        );
    }
    // Without retries, half of them get the 502.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get(proxy.http, "plain.example", "/").await.status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 502, 502]);
    // A POST that reached the bad endpoint is not sent again (non-idempotent, body streamed).
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(post(proxy.http, "retry.example", "/order").await.status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 502], "one POST started on the 502 endpoint");
    // With non_idempotent and the body read whole, it is: both arrive with their body.
    for _ in 0..2 {
        let reply = post(proxy.http, "replay.example", "/order").await;
        assert_eq!(reply.status, 200, "{}", reply.describe());
        assert!(reply.body.ends_with("hello"), "{}", reply.body);
    }
    log_mentions(
        &proxy,
        "nginx.ingress.kubernetes.io/proxy-next-upstream: \"sometimes\" is not one of",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_version_connection_header_and_response_rewrites() {
    let (port, l) = listener().await;
    serve(l, |line, _| Answer {
        status: 302,
        headers: vec![
            ("location", "http://backend.internal:8080/next".to_owned()),
            (
                "set-cookie",
                "sid=1; Domain=backend.internal; Path=/app/x; HttpOnly".to_owned(),
            ),
        ],
        body: line,
        ..Answer::default()
    });
    let folder = Folder::new();
    let mut objects = vec![class()];
    objects.extend(backend_service("web", port));
    objects.push(site(
        "old",
        "old.example",
        "web",
        &[
            ("proxy-http-version", "1.0"),
            ("proxy-cookie-domain", "backend.internal shop.example"),
            ("proxy-cookie-path", "/app/ /"),
            ("proxy-redirect-from", "http://backend.internal:8080/"),
            ("proxy-redirect-to", "https://shop.example/"),
        ],
    ));
    objects.push(site(
        "keep",
        "keep.example",
        "web",
        &[("connection-proxy-header", "keep-alive")],
    ));
    objects.push(site(
        "bad",
        "bad.example",
        "web",
        &[
            ("proxy-http-version", "2.0"),
            ("proxy-cookie-path", "/only-one"),
        ],
    ));
    folder.write_objects("web.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let reply = get(proxy.http, "old.example", "/a").await;
    assert_eq!(reply.status, 302);
    assert!(
        reply.body.starts_with("GET /a HTTP/1.0\n"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("\nconnection: close"), "{}", reply.body);
    assert_eq!(reply.header("location"), Some("https://shop.example/next"));
    assert_eq!(
        reply.header("set-cookie"),
        Some("sid=1; Domain=shop.example; Path=/x; HttpOnly")
    );

    let reply = get(proxy.http, "keep.example", "/a").await;
    assert!(
        reply.body.starts_with("GET /a HTTP/1.1\n"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("\nconnection: keep-alive"),
        "{}",
        reply.body
    );
    // Nothing rewritten without the annotations.
    assert_eq!(
        reply.header("location"),
        Some("http://backend.internal:8080/next")
    );

    let reply = get(proxy.http, "bad.example", "/a").await;
    assert!(
        reply.body.starts_with("GET /a HTTP/1.1\n"),
        "{}",
        reply.body
    );
    log_mentions(&proxy, "proxy-http-version: \"2.0\" is not 1.0 or 1.1").await;
    log_mentions(&proxy, "proxy-cookie-path: \"/only-one\" is not").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_rate_paces_the_response_after_the_free_bytes() {
    let (port, l) = listener().await;
    serve(l, |_, _| ok("x".repeat(30 * 1024)));
    let folder = Folder::new();
    let mut objects = vec![class()];
    objects.extend(backend_service("big", port));
    objects.push(site(
        "slow",
        "slow.example",
        "big",
        &[("limit-rate", "20"), ("limit-rate-after", "10")],
    ));
    objects.push(site(
        "fast",
        "fast.example",
        "big",
        &[("limit-rate", "20k")],
    ));
    folder.write_objects("big.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let started = Instant::now();
    let reply = get(proxy.http, "slow.example", "/").await;
    let slow = started.elapsed();
    assert_eq!(reply.body.len(), 30 * 1024);
    // 20 KiB beyond the free 10 KiB at 20 KiB/s: a second at least.
    assert!(slow >= Duration::from_millis(950), "{slow:?}");

    let started = Instant::now();
    let reply = get(proxy.http, "fast.example", "/").await;
    assert_eq!(reply.body.len(), 30 * 1024);
    assert!(started.elapsed() < Duration::from_millis(900));
    log_mentions(
        &proxy,
        "limit-rate: \"20k\" is not a whole number of kilobytes",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_http_errors_are_answered_by_the_default_backend() {
    let (port, l) = listener().await;
    serve(l, |line, _| {
        let status = if line.starts_with("GET /missing") {
            404
        } else {
            200
        };
        Answer {
            status,
            body: format!("app\n{line}"),
            ..Answer::default()
        }
    });
    let errors = backend("errors").await;
    let folder = Folder::new();
    let mut objects = vec![class()];
    objects.extend(backend_service("app", port));
    objects.extend(backend_service("error-pages", errors));
    objects.push(site(
        "shop",
        "shop.example",
        "app",
        &[
            ("custom-http-errors", "404,503"),
            ("default-backend", "error-pages"),
        ],
    ));
    objects.push(site(
        "typo",
        "typo.example",
        "app",
        &[("custom-http-errors", "404,abc")],
    ));
    folder.write_objects("errors.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let reply = request(
        proxy.http,
        "GET /missing?x=1 HTTP/1.1\r\nHost: shop.example\r\nAccept: text/html\r\n",
    )
    .await;
    assert_eq!(reply.first_line(), "errors", "{}", reply.body);
    let lines: Vec<&str> = reply.body.lines().collect();
    assert_eq!(lines[1], "GET /");
    for expected in [
        "x-code: 404",
        "x-format: text/html",
        "x-original-uri: /missing?x=1",
        "x-namespace: default",
        "x-ingress-name: shop",
        "x-service-name: app",
        "x-service-port: 80",
        "host: shop.example",
    ] {
        assert!(lines.contains(&expected), "{expected} in {lines:?}");
    }
    assert!(
        lines.iter().any(|l| l.starts_with("x-request-id: ")),
        "{lines:?}"
    );
    // Other statuses pass through.
    let reply = get(proxy.http, "shop.example", "/fine").await;
    assert_eq!((reply.status, reply.first_line()), (200, "app"));
    // An invalid list replaces nothing.
    let reply = get(proxy.http, "typo.example", "/missing").await;
    assert_eq!((reply.status, reply.first_line()), (404, "app"));
    log_mentions(&proxy, "custom-http-errors: \"abc\" is not an HTTP status").await;
}

/// The controller ConfigMap's `custom-http-errors`: every Ingress without its own list has its
/// errors answered by the controller's default backend; an Ingress's own list wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configmap_custom_http_errors_go_to_the_controller_default_backend() {
    let (port, l) = listener().await;
    serve(l, |line, _| Answer {
        status: if line.contains("/gone") { 410 } else { 503 },
        body: format!("app\n{line}"),
        ..Answer::default()
    });
    let errors = backend("errors").await;
    let folder = Folder::new();
    let mut objects = vec![class()];
    objects.extend(backend_service("app", port));
    objects.extend(backend_service("error-pages", errors));
    objects.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "switchyard-controller"},
        "data": {"custom-http-errors": "503,410"},
    }));
    objects.push(site("plain", "plain.example", "app", &[]));
    objects.push(site(
        "own",
        "own.example",
        "app",
        &[("custom-http-errors", "410")],
    ));
    folder.write_objects("errors.json", &objects);
    let proxy = Proxy::start(
        &folder,
        &[
            "--configmap",
            "default/switchyard-controller",
            "--default-backend-service",
            "default/error-pages",
        ],
    )
    .await;

    let reply = get(proxy.http, "plain.example", "/down").await;
    assert_eq!(reply.first_line(), "errors", "{}", reply.body);
    assert!(reply.body.contains("x-code: 503"), "{}", reply.body);
    // The Ingress's own list replaces the ConfigMap's: 503 passes through, 410 does not.
    let reply = get(proxy.http, "own.example", "/down").await;
    assert_eq!((reply.status, reply.first_line()), (503, "app"));
    let reply = get(proxy.http, "own.example", "/gone").await;
    assert_eq!(reply.first_line(), "errors", "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_redirects_drop_a_trailing_slash_unless_preserved() {
    let web = backend("web").await;
    let folder = Folder::new();
    let mut objects = vec![class()];
    objects.extend(backend_service("web", web));
    objects.push(site(
        "drop",
        "drop.example",
        "web",
        &[("force-ssl-redirect", "true")],
    ));
    objects.push(site(
        "keep",
        "keep.example",
        "web",
        &[
            ("force-ssl-redirect", "true"),
            ("preserve-trailing-slash", "true"),
        ],
    ));
    objects.push(site(
        "odd",
        "odd.example",
        "web",
        &[("preserve-trailing-slash", "yes")],
    ));
    folder.write_objects("slash.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let drop = get(proxy.http, "drop.example", "/docs/").await;
    assert_eq!(drop.status, 308);
    assert_eq!(drop.header("location"), Some("https://drop.example/docs"));
    let keep = get(proxy.http, "keep.example", "/docs/").await;
    assert_eq!(keep.header("location"), Some("https://keep.example/docs/"));
    log_mentions(
        &proxy,
        "preserve-trailing-slash: \"yes\" is not true or false",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_get_a_copy_and_never_delay_the_answer() {
    let web = backend("web").await;
    let (mirror_port, l) = listener().await;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    serve(l, move |line, body| {
        let _ = seen_tx.send(format!("{line}\n{}", String::from_utf8_lossy(&body)));
        // A slow mirror: the client's answer must not wait for it.
        Answer {
            status: 500,
            delay: Duration::from_secs(3),
            ..Answer::default()
        }
    });
    let folder = Folder::new();
    let mut objects = vec![class()];
    objects.extend(backend_service("web", web));
    let target = format!("http://127.0.0.1:{mirror_port}/copy$request_uri");
    objects.push(site(
        "mirrored",
        "mirrored.example",
        "web",
        &[
            ("mirror-target", &target),
            ("mirror-host", "mirror.internal"),
            ("proxy-body-size", "0"),
        ],
    ));
    objects.push(site(
        "broken",
        "broken.example",
        "web",
        &[("mirror-target", "ftp://x/")],
    ));
    folder.write_objects("mirror.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let started = Instant::now();
    let reply = post(proxy.http, "mirrored.example", "/orders?id=7").await;
    assert_eq!((reply.status, reply.first_line()), (200, "web"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited for the mirror"
    );
    let copy = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .expect("the mirror got a copy")
        .unwrap_or_default();
    assert!(
        copy.starts_with("POST /copy/orders?id=7 HTTP/1.1\n"),
        "{copy}"
    );
    assert!(copy.contains("\nhost: mirror.internal"), "{copy}");
    assert!(copy.ends_with("\nhello"), "{copy}");
    log_mentions(
        &proxy,
        "mirror-target: \"ftp://x/\" is not an http:// or https:// URL",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ewma_sends_most_requests_to_the_faster_endpoint() {
    let folder = Folder::new();
    let mut objects = fast_and_slow_pair(Duration::from_millis(300)).await;
    objects.push(site(
        "ewma",
        "ewma.example",
        "pair",
        &[("load-balance", "ewma")],
    ));
    objects.push(site(
        "lb",
        "lb.example",
        "pair",
        &[("load-balance", "least_conn")],
    ));
    folder.write_objects("ewma.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let fast_count = fast_share(proxy.http, "ewma.example").await;
    // Round-robin would give 10; once each endpoint was measured, the slow one loses.
    assert!(fast_count >= 16, "{fast_count} of 20 to the fast endpoint");
    log_mentions(
        &proxy,
        "load-balance: \"least_conn\" is not round_robin or ewma",
    )
    .await;
}

/// The IngressClass and a Service `pair` of two endpoints on one port: `fast` answers at once,
/// `slow` after `delay`.
async fn fast_and_slow_pair(delay: Duration) -> Vec<Value> {
    let (port, mut listeners) = listeners_on_one_port(2).await;
    let fast = listeners.pop().expect("second");
    let slow = listeners.pop().expect("first");
    serve(slow, move |_, _| Answer {
        status: 200,
        body: "slow\n".into(),
        delay,
        ..Answer::default()
    });
    serve(fast, |_, _| ok("fast\n"));
    vec![
        class(),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "pair"},
        "spec": {"ports": [{"name": "http", "port": 80}]}}),
        endpoint_slice("pair-1", "pair", "http", port, &["127.0.0.1", "127.0.0.2"]),
    ]
}

/// How many of 20 requests to `host` the fast endpoint of the pair answered.
async fn fast_share(port: u16, host: &str) -> usize {
    let mut fast = 0;
    for _ in 0..20 {
        if get(port, host, "/").await.first_line() == "fast" {
            fast += 1;
        }
    }
    fast
}

/// A backend that accepts connections and never reads from them.
async fn deaf_backend() -> u16 {
    let (port, l) = listener().await;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = l.accept().await {
            held.push(stream);
        }
    });
    port
}

/// The controller ConfigMap's `load-balance: ewma` applies to Ingresses without the
/// annotation; the annotation still wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configmap_load_balance_is_the_default_for_ingresses() {
    let folder = Folder::new();
    let mut objects = fast_and_slow_pair(Duration::from_millis(200)).await;
    objects.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "switchyard-controller"},
        "data": {"load-balance": "ewma"},
    }));
    objects.push(site("global", "global.example", "pair", &[]));
    objects.push(site(
        "own",
        "own.example",
        "pair",
        &[("load-balance", "round_robin")],
    ));
    folder.write_objects("ewma.json", &objects);
    let proxy = Proxy::start(&folder, &["--configmap", "default/switchyard-controller"]).await;

    let global = fast_share(proxy.http, "global.example").await;
    assert!(
        global >= 16,
        "{global} of 20 to the fast endpoint under the ConfigMap's ewma"
    );
    let own = fast_share(proxy.http, "own.example").await;
    assert_eq!(own, 10, "the annotation's round-robin alternates");
}

/// POSTs a large body to `host` through the proxy on `port`; returns the answer (its head is
/// enough: the client is still sending) and how long it took.
async fn stalled_upload(port: u16, host: &str) -> (manifests_common::Reply, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = host.to_owned();
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut read, mut write) = stream.into_split();
    let size: usize = 256 << 20;
    let writer = tokio::spawn(async move {
        let head = format!(
            "POST /up HTTP/1.1\r\nHost: {host}\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
        );
        let _ = write.write_all(head.as_bytes()).await;
        let chunk = vec![b'x'; 1 << 16];
        for _ in 0..size / chunk.len() {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    // The answer's head is enough: the client is still sending, so the connection stays open.
    let mut raw = Vec::new();
    let started = Instant::now();
    let head = async {
        let mut buf = [0u8; 4096];
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), head).await;
    writer.abort();
    (manifests_common::parse_reply(&raw), started.elapsed())
}

/// The controller ConfigMap's `proxy-send-timeout` for an Ingress without the annotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configmap_send_timeout_applies_to_ingresses_without_the_annotation() {
    let port = deaf_backend().await;
    let folder = Folder::new();
    let mut objects = vec![class()];
    objects.extend(backend_service("deaf", port));
    objects.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "switchyard-controller"},
        "data": {"proxy-send-timeout": "1"},
    }));
    objects.push(site(
        "upload",
        "upload.example",
        "deaf",
        &[("proxy-body-size", "0"), ("proxy-next-upstream", "off")],
    ));
    folder.write_objects("deaf.json", &objects);
    let proxy = Proxy::start(&folder, &["--configmap", "default/switchyard-controller"]).await;
    let (reply, took) = stalled_upload(proxy.http, "upload.example").await;
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(reply.status, 504, "{}", reply.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stops_reading_the_body_hits_the_send_timeout() {
    let port = deaf_backend().await;
    let folder = Folder::new();
    let mut objects = vec![class()];
    objects.extend(backend_service("deaf", port));
    objects.push(site(
        "upload",
        "upload.example",
        "deaf",
        &[
            ("proxy-send-timeout", "1"),
            ("proxy-body-size", "0"),
            ("proxy-next-upstream", "off"),
        ],
    ));
    objects.push(site(
        "odd",
        "odd.example",
        "deaf",
        &[("proxy-send-timeout", "0"), ("proxy-connect-timeout", "5s")],
    ));
    folder.write_objects("deaf.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let (reply, took) = stalled_upload(proxy.http, "upload.example").await;
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(reply.status, 504, "{}", reply.describe());
    log_mentions(&proxy, "timed out sending the request (proxy-send-timeout)").await;
    log_mentions(
        &proxy,
        "proxy-send-timeout: \"0\" is not a positive number of seconds",
    )
    .await;
    log_mentions(
        &proxy,
        "proxy-connect-timeout: \"5s\" is not a positive number of seconds",
    )
    .await;
}

/// `proxy-read-timeout` is the upstream's time to answer, counted from when the request body
/// last moved: an upload longer than it completes, while an upstream that answers too late
/// still gets the 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_timeout_counts_after_the_upload_not_during_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (port, l) = listener().await;
    serve(l, |line, body| Answer {
        status: 200,
        body: format!("{} bytes\n", body.len()),
        delay: if line.starts_with("POST /slow-answer") {
            Duration::from_millis(2500)
        } else {
            Duration::ZERO
        },
        ..Answer::default()
    });
    let folder = Folder::new();
    let mut objects = vec![class()];
    objects.extend(backend_service("uploads", port));
    objects.push(site(
        "uploads",
        "uploads.example",
        "uploads",
        &[("proxy-read-timeout", "1"), ("proxy-next-upstream", "off")],
    ));
    folder.write_objects("uploads.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let upload = |path: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", proxy.http))
            .await
            .expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: uploads.example\r\nContent-Length: 5120\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        // Five pieces, 600 ms apart: three seconds of upload against a one-second timeout.
        for _ in 0..5 {
            stream.write_all(&[b'x'; 1024]).await.expect("piece");
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        manifests_common::parse_reply(&raw)
    };
    let reply = upload("/upload").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "5120 bytes\n"));
    let reply = upload("/slow-answer").await;
    assert_eq!(reply.status, 504, "{}", reply.describe());
}
