//! The proxy against a real kube-apiserver: Ingresses, IngressClasses and Services applied with
//! kubectl are served, changes apply live without a restart, and a broken Ingress never takes
//! another one down.

use std::time::Duration;

use switchyard_tests::{backend, eventually, http, shared_cluster};

mod common;

use common::{Proxy, external_service, ingress, ingress_class, start_proxy};

/// A Service without a selector: its EndpointSlices are written by hand, as here.
fn selectorless_service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n"
    )
}

fn endpoint_slice(name: &str, service: &str, ip: std::net::IpAddr, port: u16) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints: [{{addresses: [\"{ip}\"], conditions: {{ready: true}}}}]\n"
    )
}

/// The name of the backend that answered `host` + `path`, or the status when none did.
fn served_by(proxy: &Proxy, host: &str, path: &str) -> Result<String, u16> {
    match http::get(&proxy.http, host, path) {
        Ok(r) if r.status == 200 => Ok(r.body.split(':').next().unwrap_or_default().to_string()),
        Ok(r) => Err(r.status),
        Err(_) => Err(0),
    }
}

// Multi-threaded: the backends run on this runtime while the test blocks on plain sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_ingresses_from_the_apiserver_and_follows_changes() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("proxy").expect("namespace");
    let logs = tempfile::tempdir().expect("tempdir");
    // A class and controller of this test's own, so other tests' Ingresses never mix in.
    let class = format!("class-{}", ns.name());
    let controller = format!("switchyard.dev/test-{}", ns.name());
    let blue = backend::spawn("blue").await.expect("blue backend");
    let green = backend::spawn("green").await.expect("green backend");

    cluster
        .apply_yaml(
            ns.name(),
            &format!(
                "{}---{}---{}---{}---{}",
                ingress_class(&class, &controller),
                external_service("blue", blue),
                external_service("green", green),
                ingress("shop", &class, "shop.test", "blue", blue),
                ingress("other-class", "somebody-else", "other.test", "blue", blue),
            ),
        )
        .expect("apply");

    let proxy = start_proxy(
        cluster.kubeconfig(),
        ns.name(),
        "kubernetes-mode-test",
        logs.path(),
        &[
            "--controller-class",
            &controller,
            "--watch-namespace",
            ns.name(),
        ],
    );
    eventually("the proxy is ready", Duration::from_secs(30), || {
        let ok = http::get(&proxy.metrics, "localhost", "/readyz").is_ok_and(|r| r.status == 200);
        async move { ok }
    })
    .await;
    eventually(
        "shop.test is served by blue",
        Duration::from_secs(10),
        || {
            let ok = served_by(&proxy, "shop.test", "/cart") == Ok("blue".into());
            async move { ok }
        },
    )
    .await;
    // An Ingress of another class is not ours: its host is unknown here.
    assert_eq!(served_by(&proxy, "other.test", "/"), Err(404));

    // A live change re-routes without a restart.
    cluster
        .apply_yaml(
            ns.name(),
            &ingress("shop", &class, "shop.test", "green", green),
        )
        .expect("re-point shop");
    eventually("shop.test moves to green", Duration::from_secs(10), || {
        let ok = served_by(&proxy, "shop.test", "/") == Ok("green".into());
        async move { ok }
    })
    .await;

    // An Ingress naming a Service that does not exist fails on its own: 503 there, and
    // shop.test keeps being served.
    cluster
        .apply_yaml(
            ns.name(),
            &ingress("broken", &class, "broken.test", "missing", 80),
        )
        .expect("apply broken");
    eventually("broken.test answers 503", Duration::from_secs(10), || {
        let ok = served_by(&proxy, "broken.test", "/") == Err(503);
        async move { ok }
    })
    .await;
    assert_eq!(served_by(&proxy, "shop.test", "/"), Ok("green".into()));

    // A Service with its own EndpointSlice (what Kubernetes' endpoint controllers write):
    // routed to the slice's address and port, and re-routed when the slice changes.
    match switchyard_tests::ports::host_address() {
        Some(ip) => {
            let red = backend::spawn_on(ip, "red").await.expect("red backend");
            let purple = backend::spawn_on(ip, "purple")
                .await
                .expect("purple backend");
            cluster
                .apply_yaml(
                    ns.name(),
                    &format!(
                        "{}---\n{}---\n{}",
                        selectorless_service("api"),
                        endpoint_slice("api-1", "api", ip, red),
                        ingress("api", &class, "api.test", "api", 80),
                    ),
                )
                .expect("apply Service, EndpointSlice and Ingress");
            eventually("api.test is served by red", Duration::from_secs(10), || {
                let ok = served_by(&proxy, "api.test", "/") == Ok("red".into());
                async move { ok }
            })
            .await;
            let changed = std::time::Instant::now();
            cluster
                .apply_yaml(ns.name(), &endpoint_slice("api-1", "api", ip, purple))
                .expect("move the endpoint");
            eventually("api.test moves to purple", Duration::from_secs(10), || {
                let ok = served_by(&proxy, "api.test", "/") == Ok("purple".into());
                async move { ok }
            })
            .await;
            eprintln!(
                "EndpointSlice change live after {:?} (kubectl apply included)",
                changed.elapsed()
            );
        }
        None => eprintln!("no non-loopback address on this machine: EndpointSlice part skipped"),
    }

    // The request counter carries the Ingress; its series go when the Ingress goes, as in
    // ingress-nginx.
    let shop_series = || {
        let metrics = http::get(&proxy.metrics, "localhost", "/metrics").expect("metrics");
        let wanted = format!("namespace=\"{}\"", ns.name());
        metrics.body.lines().any(|l| {
            l.starts_with("nginx_ingress_controller_requests{")
                && l.contains(&wanted)
                && l.contains("ingress=\"shop\"")
        })
    };
    assert!(shop_series(), "no request series for the shop Ingress");

    // Deleting the Ingress removes the host.
    cluster
        .kubectl_ok(&["delete", "ingress", "shop", "-n", ns.name()])
        .expect("delete");
    eventually("shop.test is gone", Duration::from_secs(10), || {
        let ok = served_by(&proxy, "shop.test", "/") == Err(404);
        async move { ok }
    })
    .await;
    assert!(
        !shop_series(),
        "the deleted Ingress still has request series"
    );

    cluster
        .kubectl_ok(&["delete", "ingressclass", &class])
        .expect("delete class");
}

/// A GET with an Authorization header; the status, or 0 when nothing answered.
fn status_with_authorization(addr: &str, host: &str, authorization: &str) -> u16 {
    use std::io::{Read, Write};
    let Ok(mut sock) = std::net::TcpStream::connect(addr) else {
        return 0;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
    );
    if sock.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut raw = Vec::new();
    let _ = sock.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Basic auth reads an Opaque Secret (what `kubectl create secret generic` makes) from the
/// apiserver, and follows its changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_reads_its_secret_from_the_apiserver() {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace("proxy-auth").expect("namespace");
    let logs = tempfile::tempdir().expect("tempdir");
    let class = format!("class-{}", ns.name());
    let controller = format!("switchyard.dev/test-{}", ns.name());
    let web = backend::spawn("web").await.expect("web backend");
    let secret = |hash: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: staff}}\ntype: Opaque\nstringData: {{auth: \"ann:{hash}\"}}\n"
        )
    };
    let guarded = ingress("staff", &class, "staff.test", "web", web).replace(
        "metadata: {name: staff}",
        "metadata:\n  name: staff\n  annotations:\n    nginx.ingress.kubernetes.io/auth-type: basic\n    nginx.ingress.kubernetes.io/auth-secret: staff",
    );
    cluster
        .apply_yaml(
            ns.name(),
            &format!(
                "{}---{}---{}---\n{}",
                ingress_class(&class, &controller),
                external_service("web", web),
                guarded,
                secret("{PLAIN}first"),
            ),
        )
        .expect("apply");
    let proxy = start_proxy(
        cluster.kubeconfig(),
        ns.name(),
        "kubernetes-auth-test",
        logs.path(),
        &[
            "--controller-class",
            &controller,
            "--watch-namespace",
            ns.name(),
        ],
    );
    // `ann:first` and `ann:second`, base64.
    let (first, second) = ("Basic YW5uOmZpcnN0", "Basic YW5uOnNlY29uZA==");
    eventually("staff.test admits ann", Duration::from_secs(30), || {
        let ok = status_with_authorization(&proxy.http, "staff.test", first) == 200;
        async move { ok }
    })
    .await;
    assert_eq!(served_by(&proxy, "staff.test", "/"), Err(401));
    assert_eq!(
        status_with_authorization(&proxy.http, "staff.test", second),
        401
    );

    // A new password applies live; the old one, cached as verified, no longer does.
    cluster
        .apply_yaml(ns.name(), &secret("{PLAIN}second"))
        .expect("change the Secret");
    eventually("the new password applies", Duration::from_secs(10), || {
        let ok = status_with_authorization(&proxy.http, "staff.test", second) == 200;
        async move { ok }
    })
    .await;
    assert_eq!(
        status_with_authorization(&proxy.http, "staff.test", first),
        401
    );

    // The Secret gone: the path fails closed, never open.
    cluster
        .kubectl_ok(&["delete", "secret", "staff", "-n", ns.name()])
        .expect("delete the Secret");
    eventually("staff.test answers 503", Duration::from_secs(10), || {
        let ok = served_by(&proxy, "staff.test", "/") == Err(503);
        async move { ok }
    })
    .await;
    cluster
        .kubectl_ok(&["delete", "ingressclass", &class])
        .expect("delete class");
}
