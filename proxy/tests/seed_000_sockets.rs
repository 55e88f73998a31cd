//! Seed 000's manifests, each file copied unchanged, served by the real binary with
//! `--ingress-class nginx` over real sockets, one scenario per proxy: what the guide says each
//! does is what a client sees. (`seed_000.rs` checks the same files at the route-table level,
//! including the fragments the apiserver refuses.)

mod manifests_common;

use std::collections::BTreeMap;

use manifests_common::{Folder, Proxy, Trust, backend, backend_service, get, https_get, request};
use serde_json::{Value, json};

/// The IngressClass `nginx`, ours, and the guide's Services, each on a named echo backend.
async fn cluster() -> Vec<Value> {
    let mut objects = vec![json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "nginx"},
        "spec": {"controller": "switchyard.dev/ingress-controller"},
    })];
    for service in [
        "app1-service",
        "app2-service",
        "app-stable-service",
        "app-canary-service",
        "app-blue-service",
        "app-green-service",
    ] {
        objects.extend(backend_service(service, backend(service).await));
    }
    objects
}

/// A proxy serving `files` of seed 000 unchanged, with the cluster around them.
async fn serve(files: &[&str]) -> (Proxy, Folder) {
    let folder = Folder::new();
    folder.write_objects("cluster.json", &cluster().await);
    for file in files {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/seed_000")
            .join(file);
        let text = std::fs::read_to_string(&path).expect("read a seed 000 manifest");
        folder.write(file, &text);
    }
    let proxy = Proxy::start(&folder, &["--ingress-class", "nginx"]).await;
    (proxy, folder)
}

/// The backend that answered and the request line it got.
fn answered(reply: &manifests_common::Reply) -> (String, String) {
    let mut lines = reply.body.lines();
    (
        lines.next().unwrap_or("").to_owned(),
        lines.next().unwrap_or("").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_host_and_regex_routing_with_rewrites() {
    let (proxy, _folder) = serve(&["03-path-based-ingress.yaml"]).await;
    // rewrite-target: / sends every path of a prefix to `/`.
    let (name, line) = answered(&get(proxy.http, "any.example", "/app2/orders").await);
    assert_eq!((name.as_str(), line.as_str()), ("app2-service", "GET /"));
    let (name, _) = answered(&get(proxy.http, "any.example", "/somewhere").await);
    assert_eq!(name, "app1-service");
    drop(proxy);

    let (proxy, _folder) = serve(&["04-host-based-ingress.yaml"]).await;
    assert_eq!(
        get(proxy.http, "app1.local", "/").await.first_line(),
        "app1-service"
    );
    assert_eq!(
        get(proxy.http, "app2.local", "/x").await.first_line(),
        "app2-service"
    );
    assert_eq!(get(proxy.http, "other.local", "/").await.status, 404);
    drop(proxy);

    let (proxy, _folder) = serve(&["05-regex-ingress.yaml"]).await;
    let (name, line) = answered(&get(proxy.http, "any.example", "/api/v1/users/7?x=1").await);
    assert_eq!(
        (name.as_str(), line.as_str()),
        ("app1-service", "GET /users/7?x=1")
    );
    let (name, line) = answered(&get(proxy.http, "any.example", "/api/v2").await);
    assert_eq!((name.as_str(), line.as_str()), ("app2-service", "GET /"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_sessions_and_cors() {
    let (proxy, _folder) = serve(&["08-sticky-ingress.yaml"]).await;
    let first = get(proxy.http, "any.example", "/").await;
    let cookie = first.header("set-cookie").unwrap_or_default().to_owned();
    assert!(
        cookie.starts_with("route=") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let value = cookie.split(';').next().unwrap_or_default().to_owned();
    let again = request(
        proxy.http,
        &format!("GET / HTTP/1.1\r\nHost: any.example\r\nCookie: {value}\r\n"),
    )
    .await;
    assert_eq!(again.first_line(), "app1-service");
    assert_eq!(again.header("set-cookie"), None, "the session is kept");
    drop(proxy);

    let (proxy, _folder) = serve(&["09-cors-ingress.yaml"]).await;
    let preflight = request(
        proxy.http,
        "OPTIONS / HTTP/1.1\r\nHost: any.example\r\nOrigin: https://app.example.com\r\nAccess-Control-Request-Method: PUT\r\n",
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(preflight.header("access-control-max-age"), Some("1728000"));
    let other = request(
        proxy.http,
        "GET / HTTP/1.1\r\nHost: any.example\r\nOrigin: https://evil.example\r\n",
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_by_header_and_weight_and_blue_green_by_host() {
    let (proxy, _folder) = serve(&["12-main-ingress.yaml"]).await;
    let by_header = request(
        proxy.http,
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nX-Canary: true\r\n",
    )
    .await;
    assert_eq!(by_header.first_line(), "app-canary-service");
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..100 {
        let reply = get(proxy.http, "api.example.com", "/").await;
        *counts.entry(reply.first_line().to_owned()).or_default() += 1;
    }
    // canary-weight 10: exactly 10 of 100, spread evenly.
    assert_eq!(counts.get("app-canary-service"), Some(&10), "{counts:?}");
    drop(proxy);

    let (proxy, _folder) =
        serve(&["12-main-ingress.yaml", "13-weighted-canary-ingress.yaml"]).await;
    let mut canary = 0;
    for _ in 0..100 {
        if get(proxy.http, "api.example.com", "/").await.first_line() == "app-canary-service" {
            canary += 1;
        }
    }
    // One canary per route: the older canary Ingress keeps it (10 %); the other is reported.
    assert_eq!(canary, 10);
    assert!(
        proxy.log().contains("weighted-canary-ingress"),
        "{}",
        proxy.log()
    );
    drop(proxy);

    let (proxy, _folder) = serve(&["14-blue-ingress.yaml"]).await;
    assert_eq!(
        get(proxy.http, "api.example.com", "/").await.first_line(),
        "app-blue-service"
    );
    assert_eq!(
        get(proxy.http, "api-staging.example.com", "/")
            .await
            .first_line(),
        "app-green-service"
    );
}

/// The guide's TLS Secret holds placeholders where base64 belongs: it is refused (as the
/// apiserver refuses it) and the hosts are served over HTTPS with the default certificate, the
/// way ingress-nginx serves a TLS host whose Secret is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_hosts_are_served_over_https_even_with_the_placeholder_secret() {
    let (proxy, _folder) = serve(&["10-tls-ingress.yaml"]).await;
    for (host, service) in [
        ("app1.local", "app1-service"),
        ("app2.local", "app2-service"),
    ] {
        let reply = https_get(proxy.https, Some(host), host, "/", &Trust::Anything)
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(reply.reply.first_line(), service);
    }
    assert!(proxy.log().contains("MissingSecret"), "{}", proxy.log());
}
