//! Component tests of the serving rules of DESIGN.md that need more than one object to show: the
//! real binary in `--manifests` mode, real backends on loopback, real TLS.
//!
//! - two Ingresses naming one host merge; a conflicting path goes to the oldest (file order
//!   stands in for creationTimestamp);
//! - `spec.defaultBackend` per Ingress, and an Ingress with only a defaultBackend as catch-all;
//! - which Ingresses are ours: `--ingress-class`, `--controller-class`, the legacy annotation,
//!   class-less ones with an is-default-class IngressClass or `--watch-ingress-without-class`;
//! - SNI: the Secret's certificate per `spec.tls` host, wildcard certificates, the default
//!   self-signed certificate for anything else;
//! - named Service ports resolved through the EndpointSlice port of the same name;
//! - ten endpoints of one Service all receiving traffic.
//!
//! Hosts with a `spec.tls` entry are only requested over HTTPS (plain HTTP redirects there).

mod manifests_common;

use std::collections::BTreeMap;
use std::time::Duration;

use manifests_common::{
    CONTROLLER, CertInfo, Folder, Proxy, Trust, backend, backend_service, endpoint_slice, get,
    https_get, ingress, ingress_class, listeners_on_one_port, serve_named, tls_secret,
};
use serde_json::{Value, json};
use switchyard_tests::eventually;
use switchyard_tests::pki::TestCa;

/// Starts a named backend and returns its Service and EndpointSlice.
async fn named_backend(name: &str) -> [Value; 2] {
    backend_service(name, backend(name).await)
}

/// `(host, path, expected)` where expected is a backend name or `"404"`; all failures are
/// collected and reported together, each naming its row.
async fn check_rows(proxy: &Proxy, what: &str, rows: &[(&str, &str, &str)]) {
    let mut failures = Vec::new();
    for (host, path, expected) in rows {
        let reply = get(proxy.http, host, path).await;
        let ok = match *expected {
            "404" => reply.status == 404,
            name => reply.status == 200 && reply.first_line() == name,
        };
        if !ok {
            failures.push(format!(
                "{what}: GET http://{host}{path}: expected {expected}, got {}",
                reply.describe()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Waits until every row answers as expected (after a live change), then checks them once more.
async fn eventually_rows(proxy: &Proxy, what: &str, rows: &[(&str, &str, &str)]) {
    eventually(what, Duration::from_secs(10), || async {
        for (host, path, expected) in rows {
            let reply = get(proxy.http, host, path).await;
            let ok = match *expected {
                "404" => reply.status == 404,
                name => reply.status == 200 && reply.first_line() == name,
            };
            if !ok {
                return false;
            }
        }
        true
    })
    .await;
    check_rows(proxy, what, rows).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingresses_naming_one_host_merge_and_the_oldest_wins_a_conflict() {
    let folder = Folder::new();
    let mut backends = vec![ingress_class("switchyard", CONTROLLER, false)];
    for name in [
        "older-only",
        "older-shared",
        "older-default",
        "newer-only",
        "newer-shared",
        "newer-exact",
        "newer-default",
    ] {
        backends.extend(named_backend(name).await);
    }
    folder.write_objects("00-backends.json", &backends);
    // Named against their age, so that sorting by name would pick the wrong one.
    let older = ingress("zz-older")
        .class("switchyard")
        .default_backend("older-default")
        .rule(
            "merge.test",
            &[
                ("/older", "Prefix", "older-only"),
                ("/shared", "Prefix", "older-shared"),
            ],
        )
        .build();
    let newer = ingress("aa-newer")
        .class("switchyard")
        .default_backend("newer-default")
        .rule(
            "merge.test",
            &[
                ("/newer", "Prefix", "newer-only"),
                ("/shared", "Prefix", "newer-shared"),
                ("/shared", "Exact", "newer-exact"),
            ],
        )
        .build();
    folder.write_objects("10-older.yaml", &[older]);
    folder.write_objects("20-newer.yaml", &[newer]);
    let proxy = Proxy::start(&folder, &[]).await;

    check_rows(
        &proxy,
        "10-older.yaml before 20-newer.yaml",
        &[
            ("merge.test", "/older/x", "older-only"),
            ("merge.test", "/newer/x", "newer-only"),
            // Same host, path and pathType in both: the older Ingress keeps it.
            ("merge.test", "/shared/x", "older-shared"),
            // Same path, other pathType: no conflict; on a tie Exact beats Prefix.
            ("merge.test", "/shared", "newer-exact"),
            // No path matches: the defaultBackend of the oldest Ingress naming the host.
            ("merge.test", "/elsewhere", "older-default"),
        ],
    )
    .await;

    // Reorder the files: now zz-older is the newer one, and the conflict goes the other way.
    folder.rename("10-older.yaml", "30-older.yaml");
    eventually_rows(
        &proxy,
        "20-newer.yaml before 30-older.yaml",
        &[
            ("merge.test", "/shared/x", "newer-shared"),
            ("merge.test", "/elsewhere", "newer-default"),
            ("merge.test", "/older/x", "older-only"),
            ("merge.test", "/newer/x", "newer-only"),
            ("merge.test", "/shared", "newer-exact"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_backends_per_ingress_and_the_catch_all() {
    let folder = Folder::new();
    let mut objects = vec![ingress_class("switchyard", CONTROLLER, false)];
    for name in [
        "app",
        "with-default",
        "host-only-default",
        "catch-all",
        "late-catch-all",
    ] {
        objects.extend(named_backend(name).await);
    }
    objects.push(
        ingress("with-default")
            .class("switchyard")
            .default_backend("with-default")
            .rule("with-default.test", &[("/app", "Prefix", "app")])
            .build(),
    );
    objects.push(
        ingress("without-default")
            .class("switchyard")
            .rule("without-default.test", &[("/app", "Prefix", "app")])
            .build(),
    );
    // A rule with a host and no paths: the host is named, the defaultBackend answers it.
    objects.push(
        ingress("host-only-default")
            .class("switchyard")
            .default_backend("host-only-default")
            .rule("host-only-default.test", &[])
            .build(),
    );
    // No rules at all: the catch-all for hosts no rule names.
    objects.push(
        ingress("catch-all")
            .class("switchyard")
            .default_backend("catch-all")
            .build(),
    );
    folder.write_objects("10-objects.yaml", &objects);
    // A second catch-all in a later file is the newer one and loses.
    folder.write_objects(
        "20-late.yaml",
        &[ingress("a-late-catch-all")
            .class("switchyard")
            .default_backend("late-catch-all")
            .build()],
    );
    let proxy = Proxy::start(&folder, &[]).await;

    check_rows(
        &proxy,
        "default backends",
        &[
            ("with-default.test", "/app/x", "app"),
            ("with-default.test", "/other", "with-default"),
            ("with-default.test", "/", "with-default"),
            // A named host never falls through to the catch-all: the controller's 404.
            ("without-default.test", "/app", "app"),
            ("without-default.test", "/other", "404"),
            ("host-only-default.test", "/anything", "host-only-default"),
            ("unknown.test", "/", "catch-all"),
            ("unknown.test", "/deep/path?q=1", "catch-all"),
            ("127.0.0.1", "/", "catch-all"),
        ],
    )
    .await;

    // Without the older catch-all, the later one takes over.
    folder.write_objects(
        "10-objects.yaml",
        &objects
            .iter()
            .filter(|o| o["metadata"]["name"] != "catch-all" || o["kind"] != "Ingress")
            .cloned()
            .collect::<Vec<_>>(),
    );
    eventually_rows(
        &proxy,
        "the later catch-all after the older one is gone",
        &[
            ("unknown.test", "/", "late-catch-all"),
            ("with-default.test", "/other", "with-default"),
        ],
    )
    .await;
}

/// Ingresses of every kind of class reference, each on its own host with its own backend.
const CLASS_INGRESSES: &[&str] = &[
    "spec-switchyard",
    "legacy-switchyard",
    "spec-nginx",
    "legacy-nginx",
    "class-less",
    "spec-missing",
];

async fn class_objects() -> Vec<Value> {
    let mut objects = Vec::new();
    for name in CLASS_INGRESSES {
        objects.extend(named_backend(name).await);
        let host = format!("{name}.test");
        let base = ingress(name);
        let base = match *name {
            "spec-switchyard" => base.class("switchyard"),
            "legacy-switchyard" => base.annotation("kubernetes.io/ingress.class", "switchyard"),
            "spec-nginx" => base.class("nginx"),
            "legacy-nginx" => base.annotation("kubernetes.io/ingress.class", "nginx"),
            "spec-missing" => base.class("no-such-class"),
            _ => base,
        };
        objects.push(base.rule(&host, &[("/", "Prefix", name)]).build());
    }
    objects
}

/// Which of `CLASS_INGRESSES` the proxy serves (200 from its backend) and which not (404).
async fn served_ingresses(proxy: &Proxy) -> Vec<&'static str> {
    let mut served = Vec::new();
    for name in CLASS_INGRESSES {
        let reply = get(proxy.http, &format!("{name}.test"), "/").await;
        match reply.status {
            200 if reply.first_line() == *name => served.push(*name),
            404 => {}
            _ => panic!(
                "{name}.test: neither its backend nor 404: {}",
                reply.describe()
            ),
        }
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_selection_by_flags_annotation_and_default_class() {
    let folder = Folder::new();
    let classes = |switchyard_default: bool, nginx_default: bool| {
        vec![
            ingress_class("switchyard", CONTROLLER, switchyard_default),
            ingress_class("nginx", "k8s.io/ingress-nginx", nginx_default),
        ]
    };
    // nginx's class is the cluster default: class-less Ingresses are nginx's, not ours.
    folder.write_objects("00-classes.yaml", &classes(false, true));
    folder.write_objects("10-ingresses.yaml", &class_objects().await);

    let flag_sets: [&[&str]; 4] = [
        &[],
        &["--watch-ingress-without-class"],
        &["--ingress-class", "nginx"],
        &[
            "--controller-class",
            "k8s.io/ingress-nginx",
            "--ingress-class",
            "nginx",
        ],
    ];
    let mut proxies = Vec::new();
    for flags in flag_sets {
        proxies.push(Proxy::start(&folder, flags).await);
    }

    // (flags, served while nginx is the default class, served once switchyard is)
    #[rustfmt::skip]
    let expected: [(&[&str], &[&str], &[&str]); 4] = [
        (flag_sets[0],
         &["spec-switchyard", "legacy-switchyard"],
         &["spec-switchyard", "legacy-switchyard", "class-less"]),
        (flag_sets[1],
         &["spec-switchyard", "legacy-switchyard", "class-less"],
         &["spec-switchyard", "legacy-switchyard", "class-less"]),
        // The annotation follows --ingress-class, ingressClassName follows --controller-class.
        (flag_sets[2],
         &["spec-switchyard", "legacy-nginx"],
         &["spec-switchyard", "legacy-nginx", "class-less"]),
        // Taking over ingress-nginx's class in place: its default class makes class-less ours.
        (flag_sets[3],
         &["spec-nginx", "legacy-nginx", "class-less"],
         &["spec-nginx", "legacy-nginx"]),
    ];

    let mut failures = Vec::new();
    for (proxy, (flags, before, _)) in proxies.iter().zip(&expected) {
        let served = served_ingresses(proxy).await;
        if served != *before {
            failures.push(format!(
                "flags {flags:?}, nginx the default class: served {served:?}, expected {before:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Move the default-class annotation from nginx's class to ours, live.
    folder.write_objects("00-classes.yaml", &classes(true, false));
    for (proxy, (flags, _, after)) in proxies.iter().zip(&expected) {
        let mut last = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            last = served_ingresses(proxy).await;
            if last == *after {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if last != *after {
            failures.push(format!(
                "flags {flags:?}, switchyard the default class: served {last:?}, expected {after:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Served {
    /// The certificate of this Secret.
    Secret(&'static str),
    /// The proxy's default (self-signed) certificate.
    Default,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_secret_certificate_and_unknown_names_get_the_default() {
    let ca = TestCa::new("switchyard test CA").expect("CA");
    let secure = ca.serving("secure.test", &["secure.test"]).expect("cert");
    let wild = ca.serving("*.wild.test", &["*.wild.test"]).expect("cert");
    let folder = Folder::new();
    let mut objects = vec![
        ingress_class("switchyard", CONTROLLER, false),
        tls_secret("secure-tls", &secure),
        tls_secret("wild-tls", &wild),
    ];
    for name in ["secure", "wild", "no-secret"] {
        objects.extend(named_backend(name).await);
    }
    objects.push(
        ingress("secure")
            .class("switchyard")
            .tls(&["secure.test"], "secure-tls")
            .rule("secure.test", &[("/", "Prefix", "secure")])
            .build(),
    );
    objects.push(
        ingress("wild")
            .class("switchyard")
            .tls(&["*.wild.test"], "wild-tls")
            .rule("*.wild.test", &[("/", "Prefix", "wild")])
            .build(),
    );
    // A tls entry whose Secret does not exist: the host is served with the default certificate.
    objects.push(
        ingress("no-secret")
            .class("switchyard")
            .tls(&["no-secret.test"], "missing-tls")
            .rule("no-secret.test", &[("/", "Prefix", "no-secret")])
            .build(),
    );
    folder.write_objects("tls.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let certs: BTreeMap<&str, CertInfo> = [("secure-tls", &secure), ("wild-tls", &wild)]
        .into_iter()
        .map(|(name, (pem, _))| {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM");
            (name, manifests_common::cert_info(&der))
        })
        .collect();
    assert_eq!(
        certs["secure-tls"].subject_cn.as_deref(),
        Some("secure.test")
    );
    assert!(
        certs["wild-tls"]
            .dns_names
            .contains(&"*.wild.test".to_owned())
    );

    // (SNI, Host header, certificate served, backend or "404")
    #[rustfmt::skip]
    let rows: &[(Option<&str>, &str, Served, &str)] = &[
        (Some("secure.test"),    "secure.test",    Served::Secret("secure-tls"), "secure"),
        (Some("a.wild.test"),    "a.wild.test",    Served::Secret("wild-tls"),   "wild"),
        (Some("b.wild.test"),    "b.wild.test",    Served::Secret("wild-tls"),   "wild"),
        // A wildcard covers one label, for certificates as for rules.
        (Some("x.a.wild.test"),  "x.a.wild.test",  Served::Default,              "404"),
        (Some("wild.test"),      "wild.test",      Served::Default,              "404"),
        (Some("unknown.test"),   "unknown.test",   Served::Default,              "404"),
        (Some("no-secret.test"), "no-secret.test", Served::Default,              "no-secret"),
        (None,                   "unknown.test",   Served::Default,              "404"),
    ];

    let ca_trust = Trust::pem(ca.cert_pem());
    let mut default_cert: Option<Vec<u8>> = None;
    let mut failures = Vec::new();
    for (sni, host, served, expected) in rows {
        let row = format!("SNI {sni:?}, Host {host}");
        // Certificates from the Secrets must verify against the CA for the SNI name (which
        // checks their SAN); anything else is looked at with a client that accepts all.
        let trust = match served {
            Served::Secret(_) => &ca_trust,
            Served::Default => &Trust::Anything,
        };
        let exchange = match https_get(proxy.https, *sni, host, "/", trust).await {
            Ok(exchange) => exchange,
            Err(err) => {
                failures.push(format!("{row}: expected {served:?}, TLS failed: {err}"));
                continue;
            }
        };
        let leaf = exchange.leaf();
        match served {
            Served::Secret(secret) => {
                if leaf != certs[secret] {
                    failures.push(format!("{row}: expected {secret}, got {leaf:?}"));
                }
            }
            Served::Default => {
                let der = exchange
                    .chain
                    .first()
                    .map(|c| c.to_vec())
                    .unwrap_or_default();
                // Self-signed, not from our CA, and the same certificate for every such name.
                let self_signed = leaf.subject_cn.is_some() && leaf.issuer_cn == leaf.subject_cn;
                if !self_signed || certs.values().any(|c| *c == leaf) {
                    failures.push(format!(
                        "{row}: expected the default self-signed certificate, got {leaf:?}"
                    ));
                } else {
                    match &default_cert {
                        None => default_cert = Some(der),
                        Some(first) if *first != der => failures.push(format!(
                            "{row}: another self-signed certificate ({leaf:?}) than for the \
                             first name that got the default one"
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
        let reply = &exchange.reply;
        let ok = match *expected {
            "404" => reply.status == 404,
            name => {
                reply.status == 200
                    && reply.first_line() == name
                    && reply.body.contains("\nx-forwarded-proto: https\n")
            }
        };
        if !ok {
            failures.push(format!(
                "{row}: GET / over TLS: expected {expected} (with X-Forwarded-Proto https), got {}",
                reply.describe()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_service_ports_resolve_through_the_endpoint_slice_port_of_that_name() {
    let folder = Folder::new();
    let web = backend("web").await;
    let admin = backend("admin").await;
    let single = backend("single").await;
    let port = |name: &str, number: u16| json!({"name": name, "port": number});
    let objects = vec![
        ingress_class("switchyard", CONTROLLER, false),
        // targetPort is not consulted: the slice's port of the same name is authoritative.
        json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "multi"},
            "spec": {"ports": [
                {"name": "web", "port": 80, "targetPort": 1},
                {"name": "admin", "port": 8080, "targetPort": "web"},
                {"name": "metrics", "port": 9090},
            ]},
        }),
        // Listed in another order than the Service's, and without `metrics`.
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "multi-abcde", "labels": {"kubernetes.io/service-name": "multi"}},
            "addressType": "IPv4",
            "ports": [port("admin", admin), port("web", web)],
            "endpoints": [{"addresses": ["127.0.0.1"]}],
        }),
        // One unnamed port on both sides.
        json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "single"},
            "spec": {"ports": [{"port": 80}]},
        }),
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "single-abcde", "labels": {"kubernetes.io/service-name": "single"}},
            "addressType": "IPv4",
            "ports": [{"port": single}],
            "endpoints": [{"addresses": ["127.0.0.1"]}],
        }),
    ];
    let path = |path: &str, service: &str, port: Value| {
        json!({"path": path, "pathType": "Prefix",
               "backend": {"service": {"name": service, "port": port}}})
    };
    let ing = ingress("ports")
        .class("switchyard")
        .rule_with(
            "ports.test",
            vec![
                path("/name-web", "multi", json!({"name": "web"})),
                path("/name-admin", "multi", json!({"name": "admin"})),
                path("/number-80", "multi", json!({"number": 80})),
                path("/number-8080", "multi", json!({"number": 8080})),
                path("/name-metrics", "multi", json!({"name": "metrics"})),
                path("/name-missing", "multi", json!({"name": "nope"})),
                path("/single", "single", json!({"number": 80})),
            ],
        )
        .build();
    let mut all = objects;
    all.push(ing);
    folder.write_objects("ports.json", &all);
    let proxy = Proxy::start(&folder, &[]).await;

    // (path, expected backend or status)
    #[rustfmt::skip]
    let rows: &[(&str, &str)] = &[
        ("/name-web",     "web"),
        ("/name-admin",   "admin"),
        ("/number-80",    "web"),   // port 80 is named web
        ("/number-8080",  "admin"), // port 8080 is named admin
        ("/name-metrics", "503"),   // the slice has no port named metrics: no endpoints
        ("/name-missing", "503"),   // the Service has no such port
        ("/single",       "single"),
    ];
    let mut failures = Vec::new();
    for (path, expected) in rows {
        let reply = get(proxy.http, "ports.test", path).await;
        let ok = match *expected {
            "503" => reply.status == 503,
            name => reply.status == 200 && reply.first_line() == name,
        };
        if !ok {
            failures.push(format!(
                "GET ports.test{path}: expected {expected}, got {}",
                reply.describe()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_endpoints_of_one_service_all_receive_traffic() {
    const NAMES: [&str; 10] = [
        "ep-01", "ep-02", "ep-03", "ep-04", "ep-05", "ep-06", "ep-07", "ep-08", "ep-09", "ep-10",
    ];
    let (port, listeners) = listeners_on_one_port(10).await;
    for (name, listener) in NAMES.iter().zip(listeners) {
        serve_named((*name).to_owned(), listener);
    }
    let addresses: Vec<String> = (1..=10).map(|i| format!("127.0.0.{i}")).collect();
    let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let folder = Folder::new();
    folder.write_objects(
        "ten.yaml",
        &[
            ingress_class("switchyard", CONTROLLER, false),
            json!({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "ten"},
                "spec": {"ports": [{"name": "http", "port": 80}]},
            }),
            endpoint_slice("ten-abcde", "ten", "http", port, &addresses),
            ingress("ten")
                .class("switchyard")
                .rule("ten.test", &[("/", "Prefix", "ten")])
                .build(),
        ],
    );
    let proxy = Proxy::start(&folder, &[]).await;

    let mut seen: BTreeMap<String, usize> = NAMES.iter().map(|n| ((*n).to_owned(), 0)).collect();
    for i in 0..100 {
        let reply = get(proxy.http, "ten.test", &format!("/request/{i}")).await;
        assert_eq!(reply.status, 200, "request {i}: {}", reply.describe());
        let name = reply.first_line().to_owned();
        // The backend bound to 127.0.0.N answers as ep-N: the address reached is the one named.
        *seen
            .get_mut(&name)
            .unwrap_or_else(|| panic!("request {i}: unknown backend {name:?}")) += 1;
    }
    let idle: Vec<&String> = seen
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| k)
        .collect();
    assert!(
        idle.is_empty(),
        "endpoints that got no request out of 100: {idle:?}; distribution {seen:?}"
    );
}
