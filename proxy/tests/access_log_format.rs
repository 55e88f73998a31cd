//! The controller ConfigMap's access log keys through the real binary and real sockets: a
//! custom `log-format-upstream` in the process output, a format change that applies live,
//! `skip-access-log-urls`, `enable-access-log-for-default-backend`, and an invalid format that
//! is reported while ingress-nginx's default format keeps being used.

mod manifests_common;

use std::time::Duration;

use manifests_common::{
    Folder, Proxy, backend, backend_service, get, ingress, ingress_class, request,
};
use serde_json::{Value, json};

fn objects(web: u16, log_keys: &[(&str, &str)]) -> Vec<Value> {
    let mut objects = vec![ingress_class(
        "switchyard",
        "switchyard.dev/ingress-controller",
        false,
    )];
    objects.extend(backend_service("web", web));
    objects.push(
        ingress("shop")
            .class("switchyard")
            .rule("shop.example", &[("/", "Prefix", "web")])
            .build(),
    );
    let data: serde_json::Map<String, Value> = log_keys
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    objects.push(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "switchyard-controller"},
        "data": data,
    }));
    objects
}

/// The proxy's output once it contains `needle` (the access log is written by its own thread).
async fn logged(proxy: &Proxy, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = proxy.log();
        if log.contains(needle) {
            return log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{needle:?} not in the log within 10 s:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends requests to `path-N` until a line containing `marker` and that path shows up: the
/// ConfigMap is read from a watched folder, so a change takes effect a moment later.
async fn until_logged_with(proxy: &Proxy, path: &str, marker: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for n in 0.. {
        let uri = format!("{path}-{n}");
        assert_eq!(get(proxy.http, "shop.example", &uri).await.status, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let log = proxy.log();
        if let Some(line) = log.lines().find(|l| l.contains(marker) && l.contains(&uri)) {
            return line.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {marker:?} line for {path} within 20 s:\n{log}"
        );
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_upstream_is_typed_follows_the_configmap_and_filters() {
    let folder = Folder::new();
    let web = backend("web").await;
    let format = "LOG1 $request_method $request_uri $status $namespace/$ingress_name $service_name:$service_port [$proxy_upstream_name] $upstream_status \"$http_x_tag\" $sent_http_content_length $remote_user $arg_page $cookie_sid";
    folder.write_objects(
        "objects.json",
        &objects(
            web,
            &[
                ("log-format-upstream", format),
                ("skip-access-log-urls", "/healthz, ~^/metrics"),
                ("log-format-stream", "[$remote_addr] $protocol"),
            ],
        ),
    );
    let proxy = Proxy::start(&folder, &["--configmap", "default/switchyard-controller"]).await;

    // The custom format, each variable filled from the request, the route and the response.
    let reply = request(
        proxy.http,
        "GET /hello?page=2 HTTP/1.1\r\nHost: shop.example\r\nX-Tag: a\"b\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\nCookie: sid=s-1; theme=dark\r\n",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.describe());
    let expected = format!(
        "LOG1 GET /hello?page=2 200 default/shop web:80 [default-web-80] 200 \"a\\x22b\" {} alice 2 s-1\n",
        reply.body.len()
    );
    let log = logged(&proxy, &expected).await;
    // log-format-stream is accepted and said to have no effect.
    assert!(log.contains("does not proxy TCP/UDP services"), "{log}");

    // skip-access-log-urls (exact, and a regex), and the controller's default server for a
    // host no rule names (enable-access-log-for-default-backend is false by default).
    assert_eq!(
        get(proxy.http, "shop.example", "/healthz").await.status,
        200
    );
    assert_eq!(
        get(proxy.http, "shop.example", "/metrics/x").await.status,
        200
    );
    assert_eq!(get(proxy.http, "ghost.example", "/ghost").await.status, 404);
    // A query makes it another URI, as nginx's map sees it.
    assert_eq!(
        get(proxy.http, "shop.example", "/healthz?full=1")
            .await
            .status,
        200
    );
    let log = logged(&proxy, "LOG1 GET /healthz?full=1 200").await;
    for skipped in ["GET /healthz ", "/metrics/x", "/ghost"] {
        assert!(!log.contains(skipped), "{skipped} was logged:\n{log}");
    }

    // A new format applies live: JSON escaping, and the default server logged on request.
    folder.write_objects(
        "objects.json",
        &objects(
            web,
            &[
                (
                    "log-format-upstream",
                    r#"{"v": 2, "uri": "$request_uri", "ua": "$http_user_agent", "host": "$host", "status": $status}"#,
                ),
                ("log-format-escape-json", "true"),
                ("enable-access-log-for-default-backend", "true"),
            ],
        ),
    );
    let line = until_logged_with(&proxy, "/probe", "{\"v\": 2").await;
    let value: Value = serde_json::from_str(&line).unwrap_or_default();
    assert_eq!(value["status"], 200, "{line}");
    assert_eq!(value["host"], "shop.example", "{line}");
    let reply = request(
        proxy.http,
        "GET /ghost-2 HTTP/1.1\r\nHost: ghost.example\r\nUser-Agent: x\"y\\z\r\n",
    )
    .await;
    assert_eq!(reply.status, 404);
    let log = logged(&proxy, "\"uri\": \"/ghost-2\"").await;
    let line = log
        .lines()
        .find(|l| l.contains("/ghost-2"))
        .unwrap_or_default();
    let value: Value = serde_json::from_str(line).unwrap_or_default();
    assert_eq!(value["ua"], "x\"y\\z", "{line}");
    assert_eq!(value["status"], 404, "{line}");

    // An unknown variable: reported, and the whole default format is used, never half of it.
    folder.write_objects(
        "objects.json",
        &objects(web, &[("log-format-upstream", "$remote_addr $no_such_var")]),
    );
    let line = until_logged_with(&proxy, "/after-invalid", "\" 200 ").await;
    assert!(
        line.starts_with("127.0.0.1 - - [") && line.contains(" [default-web-80] [] 127.0.0.1:"),
        "{line}"
    );
    let log = proxy.log();
    assert!(log.contains("unknown log variable $no_such_var"), "{log}");
    assert!(log.contains("log-format-upstream"), "{log}");
}
