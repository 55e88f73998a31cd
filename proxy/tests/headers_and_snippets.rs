//! Header annotations, snippets and the controller ConfigMap's header and risk keys, through
//! the real binary and real sockets: what the upstream receives and what the client gets.

mod manifests_common;

use manifests_common::{
    Folder, Proxy, backend, backend_service, get, ingress, ingress_class, request,
};
use serde_json::{Value, json};

const NGINX: &str = "nginx.ingress.kubernetes.io";

fn class_and_web(port: u16) -> Vec<Value> {
    let mut objects = vec![ingress_class(
        "switchyard",
        "switchyard.dev/ingress-controller",
        false,
    )];
    objects.extend(backend_service("web", port));
    objects
}

fn config_map(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

/// The request headers the echo backend reported, lowercased names.
fn received(body: &str, name: &str) -> Option<String> {
    body.lines()
        .skip(2)
        .filter_map(|l| l.split_once(": "))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_snippet_headers_expand_variables() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = class_and_web(web);
    objects.push(
        ingress("snippets")
            .class("switchyard")
            .annotation(
                &format!("{NGINX}/configuration-snippet"),
                "add_header X-Served-For $remote_addr;\n\
                 add_header X-Only-Ok yes;\n\
                 more_set_headers \"X-Request-Id-Seen: $request_id\" 'X-Host: $host';\n\
                 proxy_set_header X-Tenant $http_x_tenant_id;\n\
                 proxy_set_header X-Original $scheme://$host$request_uri;\n\
                 more_clear_input_headers Cookie;\n",
            )
            .rule("shop.example", &[("/", "Prefix", "web")])
            .build(),
    );
    folder.write_objects("objects.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let reply = request(
        proxy.http,
        "GET /cart?id=3 HTTP/1.1\r\nHost: Shop.Example\r\nX-Tenant-Id: acme\r\nCookie: s=1\r\nX-Request-ID: req-42\r\n",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.describe());
    assert_eq!(received(&reply.body, "x-tenant").as_deref(), Some("acme"));
    assert_eq!(
        received(&reply.body, "x-original").as_deref(),
        Some("http://shop.example/cart?id=3")
    );
    assert_eq!(received(&reply.body, "cookie"), None, "{}", reply.body);
    assert_eq!(reply.header("x-served-for"), Some("127.0.0.1"));
    assert_eq!(reply.header("x-request-id-seen"), Some("req-42"));
    assert_eq!(reply.header("x-host"), Some("shop.example"));
    assert_eq!(reply.header("x-only-ok"), Some("yes"));

    // A request id the proxy made up is the one the upstream got.
    let reply = get(proxy.http, "shop.example", "/").await;
    let sent = received(&reply.body, "x-request-id").unwrap_or_default();
    assert_eq!(sent.len(), 32, "{}", reply.body);
    assert_eq!(reply.header("x-request-id-seen"), Some(sent.as_str()));

    // As in nginx, a header whose value expands to nothing is not sent.
    let reply = get(proxy.http, "shop.example", "/").await;
    assert_eq!(received(&reply.body, "x-tenant"), None, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snippet_rewrite_and_return_run_like_nginx_rewrite_phase() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = class_and_web(web);
    objects.push(
        ingress("rewrites")
            .class("switchyard")
            .annotation(
                &format!("{NGINX}/configuration-snippet"),
                "rewrite ^/old/(.*)$ /new/$1 break;\n\
                 rewrite ^/moved$ /elsewhere?from=moved permanent;\n\
                 rewrite ^/docs/(.*)$ https://docs.example/$1 redirect;\n\
                 rewrite ^/health$ /healthz;\n\
                 rewrite ^/healthz$ /status last;\n",
            )
            .rule("shop.example", &[("/", "Prefix", "web")])
            .build(),
    );
    objects.push(
        ingress("health")
            .class("switchyard")
            .annotation(
                &format!("{NGINX}/configuration-snippet"),
                "return 200 \"healthy on $host\";",
            )
            .rule("shop.example", &[("/ping", "Exact", "web")])
            .build(),
    );
    folder.write_objects("objects.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let reply = get(proxy.http, "shop.example", "/old/a%20b?x=1").await;
    assert_eq!(reply.body.lines().nth(1), Some("GET /new/a%20b?x=1"));

    let reply = get(proxy.http, "shop.example", "/moved?y=2").await;
    assert_eq!(reply.status, 301);
    assert_eq!(reply.header("location"), Some("/elsewhere?from=moved&y=2"));

    let reply = get(proxy.http, "shop.example", "/docs/intro").await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header("location"), Some("https://docs.example/intro"));

    // Without a flag the next rewrite sees the new URI.
    let reply = get(proxy.http, "shop.example", "/health").await;
    assert_eq!(reply.body.lines().nth(1), Some("GET /status"));

    let reply = get(proxy.http, "shop.example", "/ping").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "healthy on shop.example")
    );
    assert_eq!(reply.header("content-type"), Some("text/html"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snippets_outside_the_subset_fail_closed_and_say_what_was_refused() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = class_and_web(web);
    objects.push(
        ingress("raw-lua")
            .class("switchyard")
            .annotation(
                &format!("{NGINX}/configuration-snippet"),
                "add_header X-A 1;\naccess_by_lua_block { ngx.exit(403) }\n",
            )
            .rule("shop.example", &[("/admin", "Prefix", "web")])
            .build(),
    );
    objects.push(
        ingress("open")
            .class("switchyard")
            .rule("shop.example", &[("/", "Prefix", "web")])
            .build(),
    );
    folder.write_objects("objects.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    assert_eq!(get(proxy.http, "shop.example", "/admin").await.status, 503);
    assert_eq!(get(proxy.http, "shop.example", "/").await.status, 200);
    let log = proxy.log();
    assert!(
        log.contains("FailedClosed") && log.contains("blocks"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_snippet_applies_to_every_path_of_its_hosts() {
    let folder = Folder::new();
    let web = backend("web").await;
    let api = backend("api").await;
    let mut objects = class_and_web(web);
    objects.extend(backend_service("api", api));
    objects.push(
        ingress("site")
            .class("switchyard")
            .annotation(
                &format!("{NGINX}/server-snippet"),
                "more_set_headers 'X-Frame-Options: DENY';\n\
                 rewrite ^/v1/(.*)$ /api/$1;\n",
            )
            .rule("shop.example", &[("/", "Prefix", "web")])
            .build(),
    );
    objects.push(
        ingress("api")
            .class("switchyard")
            .rule("shop.example", &[("/api", "Prefix", "api")])
            .build(),
    );
    objects.push(
        ingress("locked")
            .class("switchyard")
            .annotation(
                &format!("{NGINX}/server-snippet"),
                "if ($bad) { return 403; }",
            )
            .rule("locked.example", &[("/", "Prefix", "web")])
            .build(),
    );
    objects.push(
        ingress("locked-neighbour")
            .class("switchyard")
            .rule("locked.example", &[("/other", "Prefix", "api")])
            .build(),
    );
    folder.write_objects("objects.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    // The other Ingress's path on the same host gets the server's header.
    let reply = get(proxy.http, "shop.example", "/api/users").await;
    assert_eq!(reply.first_line(), "api");
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    // A server-level rewrite happens before the location is chosen.
    let reply = get(proxy.http, "shop.example", "/v1/users?page=2").await;
    assert_eq!(reply.first_line(), "api", "{}", reply.body);
    assert_eq!(reply.body.lines().nth(1), Some("GET /api/users?page=2"));
    let reply = get(proxy.http, "shop.example", "/catalog").await;
    assert_eq!(reply.first_line(), "web");

    // A refused server-snippet closes its host, the neighbour's paths too.
    assert_eq!(get(proxy.http, "locked.example", "/").await.status, 503);
    assert_eq!(
        get(proxy.http, "locked.example", "/other").await.status,
        503
    );
    assert!(proxy.log().contains("server-snippet"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_and_the_configmap_header_keys() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = class_and_web(web);
    objects.push(config_map(
        "switchyard-controller",
        &[
            ("proxy-set-headers", "default/upstream-headers"),
            ("add-headers", "response-headers"),
            ("global-allowed-response-headers", "X-Shop-Region,X-Team"),
        ],
    ));
    objects.push(config_map(
        "upstream-headers",
        &[("X-Client", "$remote_addr"), ("X-Via", "switchyard")],
    ));
    objects.push(config_map(
        "response-headers",
        &[("X-Powered-By", "switchyard")],
    ));
    objects.push(config_map("shop-headers", &[("X-Shop-Region", "eu-$host")]));
    objects.push(config_map("sneaky-headers", &[("Set-Cookie", "admin=1")]));
    objects.push(
        ingress("shop")
            .class("switchyard")
            .annotation(&format!("{NGINX}/custom-headers"), "default/shop-headers")
            .rule("shop.example", &[("/", "Prefix", "web")])
            .build(),
    );
    objects.push(
        ingress("quiet")
            .class("switchyard")
            .annotation(
                &format!("{NGINX}/configuration-snippet"),
                "more_clear_headers 'X-Powered-*';",
            )
            .rule("quiet.example", &[("/", "Prefix", "web")])
            .build(),
    );
    objects.push(
        ingress("sneaky")
            .class("switchyard")
            .annotation(&format!("{NGINX}/custom-headers"), "sneaky-headers")
            .rule("sneaky.example", &[("/", "Prefix", "web")])
            .build(),
    );
    folder.write_objects("objects.json", &objects);
    let proxy = Proxy::start(&folder, &["--configmap", "default/switchyard-controller"]).await;

    let reply = get(proxy.http, "shop.example", "/").await;
    assert_eq!(reply.status, 200, "{}", reply.describe());
    assert_eq!(reply.header("x-shop-region"), Some("eu-shop.example"));
    assert_eq!(reply.header("x-powered-by"), Some("switchyard"));
    assert_eq!(
        received(&reply.body, "x-client").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        received(&reply.body, "x-via").as_deref(),
        Some("switchyard")
    );

    // A location's more_clear_headers removes what the ConfigMap added.
    let reply = get(proxy.http, "quiet.example", "/").await;
    assert_eq!((reply.status, reply.header("x-powered-by")), (200, None));

    // A header the ConfigMap does not allow denies the Ingress's paths, as in ingress-nginx.
    assert_eq!(get(proxy.http, "sneaky.example", "/").await.status, 503);
    let log = proxy.log();
    assert!(log.contains("global-allowed-response-headers"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configmap_limits_annotation_risk_and_snippets() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = class_and_web(web);
    objects.push(config_map(
        "switchyard-controller",
        &[
            ("annotations-risk-level", "Medium"),
            ("allow-snippet-annotations", "false"),
        ],
    ));
    objects.push(
        ingress("medium")
            .class("switchyard")
            .annotation(&format!("{NGINX}/x-forwarded-prefix"), "/shop")
            .rule("medium.example", &[("/", "Prefix", "web")])
            .build(),
    );
    objects.push(
        ingress("high")
            .class("switchyard")
            .annotation(&format!("{NGINX}/server-alias"), "alias.example")
            .rule("high.example", &[("/", "Prefix", "web")])
            .build(),
    );
    objects.push(
        ingress("snippet")
            .class("switchyard")
            .annotation(
                &format!("{NGINX}/configuration-snippet"),
                "add_header X-A 1;",
            )
            .rule("snippet.example", &[("/", "Prefix", "web")])
            .build(),
    );
    folder.write_objects("objects.json", &objects);
    let proxy = Proxy::start(&folder, &["--configmap", "default/switchyard-controller"]).await;

    let reply = get(proxy.http, "medium.example", "/").await;
    assert_eq!(
        received(&reply.body, "x-forwarded-prefix").as_deref(),
        Some("/shop")
    );
    assert_eq!(get(proxy.http, "high.example", "/").await.status, 503);
    assert_eq!(get(proxy.http, "snippet.example", "/").await.status, 503);
    let log = proxy.log();
    assert!(log.contains("annotations-risk-level (Medium)"), "{log}");
    assert!(log.contains("allow-snippet-annotations"), "{log}");
}

/// `rewrite … last` chooses the location again with the new URI (another Ingress's path and
/// backend here), and a rewrite that never settles ends in nginx's 500 after 10 cycles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_last_chooses_the_location_again() {
    let folder = Folder::new();
    let web = backend("web").await;
    let api = backend("api").await;
    let mut objects = class_and_web(web);
    objects.extend(backend_service("api", api));
    objects.push(
        ingress("legacy")
            .class("switchyard")
            .annotation(
                &format!("{NGINX}/configuration-snippet"),
                "rewrite ^/old/(.*)$ /api/$1 last;",
            )
            .rule("shop.example", &[("/old", "Prefix", "web")])
            .build(),
    );
    objects.push(
        ingress("api")
            .class("switchyard")
            .rule("shop.example", &[("/api", "Prefix", "api")])
            .build(),
    );
    objects.push(
        ingress("loop")
            .class("switchyard")
            .annotation(
                &format!("{NGINX}/configuration-snippet"),
                "rewrite ^/loop/(.*)$ /loop/$1 last;",
            )
            .rule("shop.example", &[("/loop", "Prefix", "web")])
            .build(),
    );
    folder.write_objects("objects.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let reply = get(proxy.http, "shop.example", "/old/users?page=2").await;
    assert_eq!(reply.first_line(), "api", "{}", reply.body);
    assert_eq!(reply.body.lines().nth(1), Some("GET /api/users?page=2"));
    assert_eq!(get(proxy.http, "shop.example", "/loop/x").await.status, 500);
}
