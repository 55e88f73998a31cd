//! ingress-nginx annotations through the real binary and real sockets: what the upstream
//! receives when seed 000's regex and rewrite manifests are served.

mod manifests_common;

use manifests_common::{
    Folder, Proxy, backend, backend_service, get, ingress, ingress_class, request,
};

const NGINX: &str = "nginx.ingress.kubernetes.io";

/// Our IngressClass and the Service `web` (port 80) on a backend at `port`.
fn class_and_web(port: u16) -> Vec<serde_json::Value> {
    let mut objects = vec![ingress_class(
        "switchyard",
        "switchyard.dev/ingress-controller",
        false,
    )];
    objects.extend(backend_service("web", port));
    objects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_paths_and_rewrite_target_reach_the_upstream_rewritten() {
    let folder = Folder::new();
    let v1 = backend("app1").await;
    let v2 = backend("app2").await;
    let mut objects = vec![ingress_class(
        "switchyard",
        "switchyard.dev/ingress-controller",
        false,
    )];
    objects.extend(backend_service("app1-service", v1));
    objects.extend(backend_service("app2-service", v2));
    objects.push(
        ingress("regex-ingress")
            .class("switchyard")
            .annotation(&format!("{NGINX}/use-regex"), "true")
            .annotation(&format!("{NGINX}/rewrite-target"), "/$1")
            .rule(
                "",
                &[
                    ("/api/v1/?(.*)", "Prefix", "app1-service"),
                    ("/api/v2/?(.*)", "Prefix", "app2-service"),
                ],
            )
            .build(),
    );
    folder.write_objects("regex.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let reply = get(proxy.http, "api.example", "/API/v1/users/7?expand=orders").await;
    assert_eq!(reply.status, 200, "{}", reply.describe());
    let mut lines = reply.body.lines();
    assert_eq!(lines.next(), Some("app1"));
    assert_eq!(lines.next(), Some("GET /users/7?expand=orders"));

    // Captured text that needs escaping is escaped again for the upstream.
    let reply = get(proxy.http, "api.example", "/api/v2/a%20b").await;
    assert_eq!(reply.body.lines().nth(1), Some("GET /a%20b"));

    let reply = get(proxy.http, "api.example", "/api/v3/x").await;
    assert_eq!(reply.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_redirect_header_and_size_policies_apply_per_ingress() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = class_and_web(web);
    let site = |name: &str, host: &str| {
        ingress(name)
            .class("switchyard")
            .rule(host, &[("/", "Prefix", "web")])
    };
    objects.push(
        site("office", "office.example")
            .annotation(&format!("{NGINX}/whitelist-source-range"), "10.0.0.0/8")
            .build(),
    );
    objects.push(
        site("local", "local.example")
            .annotation(
                &format!("{NGINX}/allowlist-source-range"),
                "127.0.0.0/8, ::1",
            )
            .annotation(&format!("{NGINX}/proxy-body-size"), "1k")
            .annotation(
                &format!("{NGINX}/configuration-snippet"),
                "add_header X-Frame-Options DENY;\nmore_set_headers \"X-Served-By: switchyard\";",
            )
            .build(),
    );
    objects.push(
        site("sso", "sso.example")
            .annotation(&format!("{NGINX}/auth-type"), "digest")
            .annotation(&format!("{NGINX}/auth-secret"), "htdigest")
            .build(),
    );
    objects.push(
        site("moved", "old.example")
            .annotation(
                &format!("{NGINX}/permanent-redirect"),
                "https://new.example/",
            )
            .build(),
    );
    objects.push(
        site("forced", "forced.example")
            .annotation(&format!("{NGINX}/force-ssl-redirect"), "true")
            .build(),
    );
    folder.write_objects("policies.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    // Source ranges: our client is 127.0.0.1.
    assert_eq!(get(proxy.http, "office.example", "/").await.status, 403);
    let local = get(proxy.http, "local.example", "/").await;
    assert_eq!(local.status, 200, "{}", local.describe());
    assert_eq!(local.header("x-frame-options"), Some("DENY"));
    assert_eq!(local.header("x-served-by"), Some("switchyard"));

    // Authentication whose Secret does not exist is never served open.
    let sso = get(proxy.http, "sso.example", "/").await;
    assert_eq!(sso.status, 503, "{}", sso.describe());

    let moved = get(proxy.http, "old.example", "/anything").await;
    assert_eq!(moved.status, 301);
    assert_eq!(moved.header("location"), Some("https://new.example/"));

    let forced = get(proxy.http, "forced.example", "/x?y=1").await;
    assert_eq!(forced.status, 308);
    assert_eq!(
        forced.header("location"),
        Some("https://forced.example/x?y=1")
    );

    // proxy-body-size: a declared body over 1k is refused before it is read.
    let big = request(
        proxy.http,
        "POST / HTTP/1.1\r\nHost: local.example\r\nContent-Length: 4096\r\n",
    )
    .await;
    assert_eq!(big.status, 413, "{}", big.describe());
}

/// Seed 000's CORS Ingress, unchanged annotations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_and_allowed_origins_echoed() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = class_and_web(web);
    let mut cors = ingress("cors-ingress")
        .class("switchyard")
        .rule("api.example", &[("/", "Prefix", "web")]);
    for (name, value) in [
        ("enable-cors", "true"),
        (
            "cors-allow-origin",
            "https://example.com,https://app.example.com",
        ),
        (
            "cors-allow-methods",
            "GET, POST, PUT, DELETE, PATCH, OPTIONS",
        ),
        (
            "cors-allow-headers",
            "DNT,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization",
        ),
        ("cors-allow-credentials", "true"),
        ("cors-max-age", "1728000"),
    ] {
        cors = cors.annotation(&format!("{NGINX}/{name}"), value);
    }
    objects.push(cors.build());
    folder.write_objects("cors.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let preflight = request(
        proxy.http,
        "OPTIONS /orders HTTP/1.1\r\nHost: api.example\r\nOrigin: https://app.example.com\r\nAccess-Control-Request-Method: POST\r\n",
    )
    .await;
    assert_eq!(preflight.status, 204, "{}", preflight.describe());
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(preflight.header("access-control-max-age"), Some("1728000"));
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );

    let allowed = request(
        proxy.http,
        "GET /orders HTTP/1.1\r\nHost: api.example\r\nOrigin: https://example.com\r\n",
    )
    .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://example.com")
    );

    let other = request(
        proxy.http,
        "GET /orders HTTP/1.1\r\nHost: api.example\r\nOrigin: https://evil.example\r\n",
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
}

/// Seed 000's sticky-session Ingress: the cookie keeps a client on one of three endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_affinity_keeps_a_client_on_its_endpoint() {
    let folder = Folder::new();
    let (port, listeners) = manifests_common::listeners_on_one_port(3).await;
    for (i, listener) in listeners.into_iter().enumerate() {
        manifests_common::serve_named(format!("pod-{i}"), listener);
    }
    let mut objects = vec![ingress_class(
        "switchyard",
        "switchyard.dev/ingress-controller",
        false,
    )];
    let [service, _] = backend_service("app", port);
    objects.push(service);
    objects.push(manifests_common::endpoint_slice(
        "app-1",
        "app",
        "http",
        port,
        &["127.0.0.1", "127.0.0.2", "127.0.0.3"],
    ));
    let mut sticky = ingress("sticky")
        .class("switchyard")
        .rule("sticky.example", &[("/", "Prefix", "app")]);
    for (name, value) in [
        ("affinity", "cookie"),
        ("session-cookie-name", "route"),
        ("session-cookie-expires", "172800"),
        ("session-cookie-max-age", "172800"),
        ("session-cookie-path", "/"),
        ("session-cookie-samesite", "Strict"),
    ] {
        sticky = sticky.annotation(&format!("{NGINX}/{name}"), value);
    }
    objects.push(sticky.build());
    folder.write_objects("sticky.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let first = get(proxy.http, "sticky.example", "/").await;
    assert_eq!(first.status, 200, "{}", first.describe());
    let set_cookie = first.header("set-cookie").unwrap_or_default().to_owned();
    assert!(
        set_cookie.starts_with("route=")
            && set_cookie.contains("; Path=/; Max-Age=172800; SameSite=Strict; HttpOnly; Expires="),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
    let pod = first.body.lines().next().unwrap_or_default().to_owned();
    for _ in 0..12 {
        let again = request(
            proxy.http,
            &format!("GET / HTTP/1.1\r\nHost: sticky.example\r\nCookie: {cookie}\r\n"),
        )
        .await;
        assert_eq!(again.body.lines().next(), Some(pod.as_str()));
        assert_eq!(again.header("set-cookie"), None, "a valid cookie is kept");
    }
    // Without the cookie, clients get random keys (balanced mode), spread over the endpoints.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let reply = get(proxy.http, "sticky.example", "/").await;
        seen.insert(reply.body.lines().next().unwrap_or_default().to_owned());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

/// limit-rps with the default burst multiplier (5): the rate plus its burst passes at once,
/// then 503 (ingress-nginx's limit-req-status-code); limit-allowlist exempts clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_rates_are_limited_per_client_with_a_burst() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = class_and_web(web);
    objects.push(
        ingress("limited")
            .class("switchyard")
            .annotation(&format!("{NGINX}/limit-rps"), "2")
            .rule("limited.example", &[("/", "Prefix", "web")])
            .build(),
    );
    objects.push(
        ingress("exempt")
            .class("switchyard")
            .annotation(&format!("{NGINX}/limit-rps"), "2")
            .annotation(&format!("{NGINX}/limit-allowlist"), "127.0.0.0/8")
            .rule("exempt.example", &[("/", "Prefix", "web")])
            .build(),
    );
    folder.write_objects("limits.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(get(proxy.http, "limited.example", "/").await.status);
    }
    let passed = statuses.iter().filter(|s| **s == 200).count();
    // 1 + a burst of 2 × 5, and at most a token or two regained while the loop ran.
    assert!((11..=13).contains(&passed), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&503));

    for _ in 0..30 {
        assert_eq!(get(proxy.http, "exempt.example", "/").await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vhost_prefix_alias_and_www_redirect() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = class_and_web(web);
    objects.push(
        ingress("shop")
            .class("switchyard")
            .annotation(&format!("{NGINX}/upstream-vhost"), "shop.internal")
            .annotation(&format!("{NGINX}/x-forwarded-prefix"), "/shop")
            .annotation(&format!("{NGINX}/server-alias"), "shop.example.net")
            .annotation(&format!("{NGINX}/from-to-www-redirect"), "true")
            .rule("shop.example.com", &[("/", "Prefix", "web")])
            .build(),
    );
    folder.write_objects("shop.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let reply = get(proxy.http, "shop.example.com", "/cart").await;
    assert_eq!(reply.status, 200, "{}", reply.describe());
    assert!(
        reply.body.contains("\nhost: shop.internal\n"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("\nx-forwarded-prefix: /shop\n"),
        "{}",
        reply.body
    );
    assert!(
        reply
            .body
            .contains("\nx-forwarded-host: shop.example.com\n"),
        "{}",
        reply.body
    );

    let alias = get(proxy.http, "shop.example.net", "/cart").await;
    assert_eq!(alias.status, 200);
    assert_eq!(alias.body.lines().next(), Some("web"));

    let www = get(proxy.http, "www.shop.example.com", "/cart?x=1").await;
    assert_eq!(www.status, 308);
    assert_eq!(
        www.header("location"),
        Some("http://shop.example.com/cart?x=1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_access_log_false_leaves_an_ingress_out_of_the_access_log() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = class_and_web(web);
    objects.push(
        ingress("quiet")
            .class("switchyard")
            .annotation(&format!("{NGINX}/enable-access-log"), "false")
            .rule("quiet.example", &[("/", "Prefix", "web")])
            .build(),
    );
    objects.push(
        ingress("loud")
            .class("switchyard")
            .rule("loud.example", &[("/", "Prefix", "web")])
            .build(),
    );
    folder.write_objects("logs.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    assert_eq!(get(proxy.http, "quiet.example", "/hush").await.status, 200);
    assert_eq!(get(proxy.http, "loud.example", "/shout").await.status, 200);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !proxy.log().contains("\"GET /shout HTTP/1.1\" 200") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no access log line for the loud Ingress:\n{}",
            proxy.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Lines are written in order: the quiet request, sent first, would be there by now.
    assert!(!proxy.log().contains("/hush"), "{}", proxy.log());
}

/// A backend that answers after 1.5 s, so requests overlap even on a loaded machine.
async fn slow_backend() -> u16 {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        bytes::Bytes::from_static(b"slow\n"),
                    )))
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
async fn limit_connections_caps_requests_in_flight_per_client() {
    let folder = Folder::new();
    let slow = slow_backend().await;
    let mut objects = class_and_web(slow);
    objects.push(
        ingress("capped")
            .class("switchyard")
            .annotation(&format!("{NGINX}/limit-connections"), "2")
            .rule("capped.example", &[("/", "Prefix", "web")])
            .build(),
    );
    folder.write_objects("capped.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let port = proxy.http;
    let requests: Vec<_> = (0..4)
        .map(|_| tokio::spawn(async move { get(port, "capped.example", "/").await.status }))
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.expect("join"));
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 200, 503, 503],
        "two in flight at once, the rest refused"
    );
    // The slots came back with the responses.
    assert_eq!(get(port, "capped.example", "/").await.status, 200);
}

/// `affinity-mode`: when an endpoint is added, persistent clients all stay where they were and
/// balanced ones partly move to it; `affinity-canary-behavior: sticky` keeps a client on the
/// side its cookie names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affinity_modes_on_scale_up_and_canary_stickiness() {
    let folder = Folder::new();
    let (port, listeners) = manifests_common::listeners_on_one_port(4).await;
    for (i, listener) in listeners.into_iter().enumerate() {
        manifests_common::serve_named(format!("pod-{i}"), listener);
    }
    let canary_port = backend("canary").await;
    let objects = |addresses: &[&str]| {
        let mut objects = vec![ingress_class(
            "switchyard",
            "switchyard.dev/ingress-controller",
            false,
        )];
        let [service, _] = backend_service("app", port);
        objects.push(service);
        objects.push(manifests_common::endpoint_slice(
            "app-1", "app", "http", port, addresses,
        ));
        objects.extend(backend_service("app-canary", canary_port));
        for (name, host, mode) in [
            ("balanced", "balanced.example", "balanced"),
            ("persistent", "persistent.example", "persistent"),
        ] {
            objects.push(
                ingress(name)
                    .class("switchyard")
                    .annotation(&format!("{NGINX}/affinity"), "cookie")
                    .annotation(&format!("{NGINX}/affinity-mode"), mode)
                    .rule(host, &[("/", "Prefix", "app")])
                    .build(),
            );
        }
        objects.push(
            ingress("persistent-canary")
                .class("switchyard")
                .annotation(&format!("{NGINX}/canary"), "true")
                .annotation(&format!("{NGINX}/canary-weight"), "50")
                .rule("persistent.example", &[("/", "Prefix", "app-canary")])
                .build(),
        );
        objects
    };
    folder.write_objects(
        "objects.json",
        &objects(&["127.0.0.1", "127.0.0.2", "127.0.0.3"]),
    );
    let proxy = Proxy::start(&folder, &[]).await;

    let with_cookie = |host: &str, cookie: &str| {
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n")
    };
    let mut clients: Vec<(String, String, String)> = Vec::new();
    for host in ["balanced.example", "persistent.example"] {
        for _ in 0..40 {
            let reply = get(proxy.http, host, "/").await;
            let cookie = reply.header("set-cookie").unwrap_or_default();
            let cookie = cookie.split(';').next().unwrap_or_default().to_owned();
            assert!(
                cookie.starts_with("INGRESSCOOKIE=") && cookie.contains('|'),
                "{cookie}"
            );
            clients.push((host.to_owned(), cookie, reply.first_line().to_owned()));
        }
    }
    // The canary side kept its clients too: a cookie naming it brings them back.
    for (host, cookie, pod) in clients.iter().filter(|(_, _, pod)| pod == "canary").take(3) {
        for _ in 0..5 {
            let reply = request(proxy.http, &with_cookie(host, cookie)).await;
            assert_eq!(reply.first_line(), pod, "{host} {cookie}");
        }
    }

    // Scale up: a fourth endpoint.
    folder.write_objects(
        "objects.json",
        &objects(&["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = get(proxy.http, "balanced.example", "/").await;
        if reply.first_line() == "pod-3" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fourth endpoint never served"
        );
    }
    let (mut balanced_moved, mut persistent_moved) = (0, 0);
    for (host, cookie, pod) in &clients {
        let reply = request(proxy.http, &with_cookie(host, cookie)).await;
        if reply.first_line() != pod {
            assert_eq!(
                reply.first_line(),
                "pod-3",
                "keys move only to the new endpoint"
            );
            if host.starts_with("balanced") {
                balanced_moved += 1;
            } else {
                persistent_moved += 1;
            }
        }
    }
    assert_eq!(persistent_moved, 0, "persistent clients stay");
    assert!(balanced_moved > 0, "balanced clients rebalance");
}
