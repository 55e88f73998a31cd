//! ingress-nginx annotations through the real binary and real sockets: what the upstream
//! receives when seed 000's regex and rewrite manifests are served.

mod manifests_common;

use manifests_common::{Folder, Proxy, backend, backend_service, get, ingress, ingress_class};

const NGINX: &str = "nginx.ingress.kubernetes.io";

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
