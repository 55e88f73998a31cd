//! ingress-nginx's canary annotations through the real binary and real sockets: an exact weight
//! split, header and cookie overrides in their order, a weight change applied live, a canary
//! without endpoints never turning into 503s, and the `canary` metrics label.

mod manifests_common;

use manifests_common::{
    Folder, Proxy, backend, backend_service, endpoint_slice, get, ingress, ingress_class, request,
};
use serde_json::Value;

const CANARY: &str = "nginx.ingress.kubernetes.io/canary";

fn objects(stable: u16, canary: u16, weight: &str, canary_endpoints: bool) -> Vec<Value> {
    let mut objects = vec![ingress_class(
        "switchyard",
        "switchyard.dev/ingress-controller",
        false,
    )];
    objects.extend(backend_service("shop-v1", stable));
    let [service, slice] = backend_service("shop-v2", canary);
    objects.push(service);
    objects.push(if canary_endpoints {
        slice
    } else {
        endpoint_slice("shop-v2-1", "shop-v2", "http", canary, &[])
    });
    objects.push(
        ingress("shop")
            .class("switchyard")
            .rule("shop.test", &[("/", "Prefix", "shop-v1")])
            .build(),
    );
    objects.push(
        ingress("shop-canary")
            .class("switchyard")
            .annotation(CANARY, "true")
            .annotation(&format!("{CANARY}-weight"), weight)
            .annotation(&format!("{CANARY}-by-header"), "X-Canary")
            .annotation(&format!("{CANARY}-by-cookie"), "canary")
            .rule("shop.test", &[("/", "Prefix", "shop-v2")])
            .build(),
    );
    objects
}

/// Which backend answered `n` sequential requests: (stable, canary, other statuses).
async fn split(port: u16, n: usize, extra: &str) -> (usize, usize, usize) {
    let (mut stable, mut canary, mut other) = (0, 0, 0);
    for _ in 0..n {
        let reply = request(
            port,
            &format!("GET / HTTP/1.1\r\nHost: shop.test\r\n{extra}"),
        )
        .await;
        match (reply.status, reply.body.lines().next()) {
            (200, Some("v1")) => stable += 1,
            (200, Some("v2")) => canary += 1,
            _ => other += 1,
        }
    }
    (stable, canary, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_ingresses_split_match_and_change_live() {
    let folder = Folder::new();
    let v1 = backend("v1").await;
    let v2 = backend("v2").await;
    folder.write_objects("shop.json", &objects(v1, v2, "10", true));
    let proxy = Proxy::start(&folder, &[]).await;

    // 10 %: exactly 20 of 200 requests (the split is counted, not a coin toss).
    assert_eq!(split(proxy.http, 200, "").await, (180, 20, 0));

    // Header first (always / never), then cookie, then weight.
    assert_eq!(
        split(proxy.http, 20, "X-Canary: always\r\n").await,
        (0, 20, 0)
    );
    assert_eq!(
        split(
            proxy.http,
            20,
            "X-Canary: never\r\nCookie: canary=always\r\n"
        )
        .await,
        (20, 0, 0)
    );
    assert_eq!(
        split(proxy.http, 20, "Cookie: a=b; canary=always\r\n").await,
        (0, 20, 0)
    );
    assert_eq!(
        split(proxy.http, 20, "Cookie: canary=never\r\n").await,
        (20, 0, 0)
    );

    // A new weight applies live.
    folder.write_objects("shop.json", &objects(v1, v2, "50", true));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (stable, canary, other) = split(proxy.http, 100, "").await;
        assert_eq!(other, 0);
        if (stable, canary) == (50, 50) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "weight 50 not applied: {stable}/{canary}"
        );
    }

    // The canary's pods are gone: everything goes to stable, even what asks for the canary.
    folder.write_objects("shop.json", &objects(v1, v2, "50", false));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let result = split(proxy.http, 40, "X-Canary: always\r\n").await;
        if result == (40, 0, 0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a canary without endpoints still gets requests: {result:?}"
        );
    }

    // Canary requests carry the `canary` label (ingress-nginx's alternative upstream name).
    let metrics = get(proxy.metrics, "localhost", "/metrics").await.body;
    let canary_line = metrics.lines().find(|l| {
        l.starts_with("nginx_ingress_controller_requests{canary=\"default-shop-v2-80\"")
            && l.contains("ingress=\"shop\"")
            && l.contains("status=\"200\"")
    });
    assert!(canary_line.is_some(), "{metrics}");
    assert!(
        metrics.lines().any(
            |l| l.starts_with("nginx_ingress_controller_requests{canary=\"\"")
                && l.contains("service=\"shop-v1\"")
        ),
        "{metrics}"
    );
}
