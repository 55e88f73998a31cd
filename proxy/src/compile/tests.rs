use super::*;
use crate::manifests::{ManifestFile, parse};
use crate::normalize::{normalize_host, normalize_path};

/// A Service named `name` (port 80 named http) with one ready endpoint 10.0.0.1:8080.
fn service(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-x, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints: [{{addresses: [10.0.0.1]}}]\n---\n"
    )
}

const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: switchyard}\nspec: {controller: switchyard.dev/ingress-controller}\n---\n";

/// An Ingress of our class with one rule; `paths` are (path, pathType, service).
fn ingress(name: &str, host: Option<&str>, paths: &[(&str, &str, &str)]) -> String {
    let mut out = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: switchyard\n  rules:\n  - "
    );
    if let Some(host) = host {
        out.push_str(&format!("host: \"{host}\"\n    "));
    }
    out.push_str("http:\n      paths:\n");
    for (path, kind, svc) in paths {
        out.push_str(&format!(
            "      - {{path: \"{path}\", pathType: {kind}, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n"
        ));
    }
    out.push_str("---\n");
    out
}

fn snapshot(files: &[&str]) -> Snapshot {
    let files: Vec<ManifestFile> = files
        .iter()
        .enumerate()
        .map(|(i, contents)| ManifestFile {
            name: format!("{i:02}.yaml"),
            contents: (*contents).to_owned(),
        })
        .collect();
    let parsed = parse(&files);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    parsed.snapshot
}

fn build(files: &[&str]) -> (RouteTable, Vec<Problem>) {
    compile(&snapshot(files), &CompileOptions::default())
}

/// Which Service a request reaches, or the status the proxy answers itself.
fn hit(table: &RouteTable, host: &str, path: &str) -> String {
    let (_, route) = table.route(&normalize_host(host), &normalize_path(path));
    match &route.target {
        Target::Upstream(u) => u.service.name.clone(),
        Target::Respond { status, .. } => status.as_u16().to_string(),
        Target::Answer { body } => format!("answer {body:?}"),
        Target::HostRedirect { host } => format!("redirect to {host}"),
    }
}

fn services(names: &[&str]) -> String {
    names.iter().map(|n| service("default", n)).collect()
}

/// Seed 003's pathType examples, row by row: (pathType, paths, request, matches?).
#[test]
fn seed_003_path_type_examples() {
    let rows: &[(&str, &[&str], &str, bool)] = &[
        ("Prefix", &["/"], "/anything/at/all", true),
        ("Exact", &["/foo"], "/foo", true),
        ("Exact", &["/foo"], "/bar", false),
        ("Exact", &["/foo"], "/foo/", false),
        ("Exact", &["/foo/"], "/foo", false),
        ("Prefix", &["/foo"], "/foo", true),
        ("Prefix", &["/foo"], "/foo/", true),
        ("Prefix", &["/foo/"], "/foo", true),
        ("Prefix", &["/foo/"], "/foo/", true),
        ("Prefix", &["/aaa/bb"], "/aaa/bbb", false),
        ("Prefix", &["/aaa/bbb"], "/aaa/bbb", true),
        ("Prefix", &["/aaa/bbb/"], "/aaa/bbb", true),
        ("Prefix", &["/aaa/bbb"], "/aaa/bbb/", true),
        ("Prefix", &["/aaa/bbb"], "/aaa/bbb/ccc", true),
        ("Prefix", &["/aaa/bbb"], "/aaa/bbbxyz", false),
        ("Prefix", &["/", "/aaa"], "/aaa/ccc", true),
        ("Prefix", &["/", "/aaa", "/aaa/bbb"], "/aaa/bbb", true),
        ("Prefix", &["/", "/aaa", "/aaa/bbb"], "/ccc", true),
        ("Prefix", &["/aaa"], "/ccc", false),
    ];
    for (kind, paths, request, matches) in rows {
        let names: Vec<String> = (0..paths.len()).map(|i| format!("svc{i}")).collect();
        let specs: Vec<(&str, &str, &str)> = paths
            .iter()
            .zip(&names)
            .map(|(p, n)| (*p, *kind, n.as_str()))
            .collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (table, _) = build(&[
            CLASS,
            &services(&name_refs),
            &ingress("i", Some("h.example"), &specs),
        ]);
        let got = hit(&table, "h.example", request);
        if *matches {
            assert_ne!(got, "404", "{kind} {paths:?} should match {request}");
        } else {
            assert_eq!(got, "404", "{kind} {paths:?} should not match {request}");
        }
    }
    // The rows that name which path wins: the longest.
    let (table, _) = build(&[
        CLASS,
        &services(&["root", "aaa", "bbb"]),
        &ingress(
            "i",
            Some("h.example"),
            &[
                ("/", "Prefix", "root"),
                ("/aaa", "Prefix", "aaa"),
                ("/aaa/bbb", "Prefix", "bbb"),
            ],
        ),
    ]);
    assert_eq!(hit(&table, "h.example", "/aaa/ccc"), "aaa");
    assert_eq!(hit(&table, "h.example", "/aaa/bbb"), "bbb");
    assert_eq!(hit(&table, "h.example", "/ccc"), "root");
    // Mixed: /foo (Prefix) and /foo (Exact) for /foo → Exact.
    let (table, _) = build(&[
        CLASS,
        &services(&["prefix", "exact"]),
        &ingress(
            "i",
            Some("h.example"),
            &[("/foo", "Prefix", "prefix"), ("/foo", "Exact", "exact")],
        ),
    ]);
    assert_eq!(hit(&table, "h.example", "/foo"), "exact");
    assert_eq!(hit(&table, "h.example", "/foo/x"), "prefix");
}

/// Seed 003's hostname wildcard table.
#[test]
fn seed_003_wildcard_hosts_cover_exactly_one_label() {
    let (table, _) = build(&[
        CLASS,
        &services(&["w"]),
        &ingress("i", Some("*.foo.com"), &[("/", "Prefix", "w")]),
    ]);
    assert_eq!(hit(&table, "bar.foo.com", "/"), "w");
    assert_eq!(hit(&table, "baz.bar.foo.com", "/"), "404");
    assert_eq!(hit(&table, "foo.com", "/"), "404");
}

#[test]
fn host_matching_ignores_case_and_port_and_exact_beats_wildcard_without_fallthrough() {
    let (table, _) = build(&[
        CLASS,
        &services(&["exact", "wild", "any"]),
        &ingress("a", Some("Bar.Foo.com"), &[("/only", "Prefix", "exact")]),
        &ingress("b", Some("*.foo.com"), &[("/", "Prefix", "wild")]),
        &ingress("c", None, &[("/", "Prefix", "any")]),
    ]);
    assert_eq!(hit(&table, "BAR.foo.COM:8080", "/only/x"), "exact");
    // The exact host names no path for /other: no fall-through to the wildcard or host-less.
    assert_eq!(hit(&table, "bar.foo.com", "/other"), "404");
    assert_eq!(hit(&table, "qux.foo.com", "/other"), "wild");
    assert_eq!(hit(&table, "unnamed.example", "/x"), "any");
    assert_eq!(hit(&table, "127.0.0.1:80", "/"), "any");
}

#[test]
fn normalized_paths_cannot_walk_around_a_rule() {
    let (table, _) = build(&[
        CLASS,
        &services(&["admin", "public"]),
        &ingress(
            "i",
            Some("h"),
            &[("/admin", "Exact", "admin"), ("/", "Prefix", "public")],
        ),
    ]);
    for p in [
        "/admin",
        "/%61dmin",
        "//admin",
        "/x/../admin",
        "/./admin",
        "/%2e%2e/admin",
    ] {
        assert_eq!(hit(&table, "h", p), "admin", "{p}");
    }
    assert_eq!(hit(&table, "h", "/admin/"), "public");
}

#[test]
fn hosts_merge_across_ingresses_and_conflicts_go_to_the_oldest() {
    let older = ingress(
        "older",
        Some("h"),
        &[("/a", "Prefix", "old"), ("/shared", "Prefix", "old")],
    );
    let newer = ingress(
        "newer",
        Some("h"),
        &[("/b", "Prefix", "new"), ("/shared", "Prefix", "new")],
    );
    // File order is age: `older` is in the earlier file although its name sorts later.
    let (table, problems) = build(&[CLASS, &services(&["old", "new"]), &older, &newer]);
    assert_eq!(hit(&table, "h", "/a"), "old");
    assert_eq!(hit(&table, "h", "/b"), "new");
    assert_eq!(hit(&table, "h", "/shared/x"), "old");
    let conflict: Vec<&Problem> = problems.iter().filter(|p| p.reason == "Conflict").collect();
    assert_eq!(conflict.len(), 1, "{problems:?}");
    assert_eq!(conflict[0].object, ObjectKey::new("default", "newer"));
    assert_eq!(conflict[0].severity, Severity::Warning);
    assert!(
        conflict[0].message.contains("default/older"),
        "{}",
        conflict[0].message
    );
}

#[test]
fn same_age_conflicts_resolve_by_namespace_and_name() {
    let both = format!(
        "{}{}",
        ingress("b-second", Some("h"), &[("/", "Prefix", "two")]),
        ingress("a-first", Some("h"), &[("/", "Prefix", "one")])
    );
    let (table, problems) = build(&[CLASS, &services(&["one", "two"]), &both]);
    assert_eq!(hit(&table, "h", "/"), "one");
    assert!(
        problems
            .iter()
            .any(|p| p.reason == "Conflict" && p.object.name == "b-second")
    );
}

#[test]
fn default_backends_per_host_catch_all_and_controller_default() {
    let with_default = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: withdef}\nspec:\n  ingressClassName: switchyard\n  defaultBackend: {service: {name: hostdef, port: {number: 80}}}\n  rules:\n  - host: h\n    http:\n      paths:\n      - {path: /app, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}\n---\n";
    let catch_all = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: catchall}\nspec:\n  ingressClassName: switchyard\n  defaultBackend: {service: {name: everything, port: {name: http}}}\n---\n";
    let (table, problems) = build(&[
        CLASS,
        &services(&["hostdef", "app", "everything"]),
        with_default,
        catch_all,
    ]);
    assert!(
        problems.iter().all(|p| p.severity == Severity::Info),
        "{problems:?}"
    );
    assert_eq!(hit(&table, "h", "/app/1"), "app");
    assert_eq!(hit(&table, "h", "/other"), "hostdef");
    assert_eq!(hit(&table, "unknown.example", "/"), "everything");

    let (table, _) = build(&[
        CLASS,
        &services(&["app"]),
        &ingress("i", Some("h"), &[("/app", "Prefix", "app")]),
    ]);
    assert_eq!(hit(&table, "h", "/other"), "404");
    assert_eq!(hit(&table, "unknown.example", "/"), "404");

    let opts = CompileOptions {
        default_backend_service: Some(ObjectKey::new("default", "fallback")),
        ..CompileOptions::default()
    };
    let (table, problems) = compile(&snapshot(&[CLASS, &services(&["fallback"])]), &opts);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(hit(&table, "unknown.example", "/"), "fallback");
}

#[test]
fn class_selection() {
    let annotated = |name: &str, class: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, annotations: {{kubernetes.io/ingress.class: {class}}}}}\nspec: {{rules: [{{host: {name}, http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: s, port: {{number: 80}}}}}}}}]}}}}]}}\n---\n"
        )
    };
    let classless = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: classless}\nspec: {rules: [{host: classless, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}}]}\n---\n";
    let other_class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec: {controller: k8s.io/ingress-nginx}\n---\n";
    let named = |name: &str, class: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\nspec: {{ingressClassName: {class}, rules: [{{host: {name}, http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: s, port: {{number: 80}}}}}}}}]}}}}]}}\n---\n"
        )
    };
    let files = [
        CLASS.to_owned(),
        other_class.to_owned(),
        services(&["s"]),
        annotated("legacy-ours", "switchyard"),
        annotated("legacy-theirs", "nginx"),
        named("named-ours", "switchyard"),
        named("named-theirs", "nginx"),
        named("named-missing", "ghost"),
        classless.to_owned(),
    ];
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let snap = snapshot(&refs);
    let served = |opts: &CompileOptions| {
        let (table, _) = compile(&snap, opts);
        let mut hosts: Vec<String> = table.exact_hosts.keys().cloned().collect();
        hosts.sort();
        hosts
    };
    assert_eq!(
        served(&CompileOptions::default()),
        ["legacy-ours", "named-ours"]
    );
    let without_class = CompileOptions {
        watch_ingress_without_class: true,
        ..CompileOptions::default()
    };
    assert_eq!(
        served(&without_class),
        ["classless", "legacy-ours", "named-ours"]
    );
    // Taking over ingress-nginx's class in place.
    let takeover = CompileOptions {
        controller_class: "k8s.io/ingress-nginx".to_owned(),
        ingress_class: "nginx".to_owned(),
        ..CompileOptions::default()
    };
    assert_eq!(served(&takeover), ["legacy-theirs", "named-theirs"]);

    // Our class marked default picks up class-less Ingresses.
    let default_class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: switchyard, annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}}\nspec: {controller: switchyard.dev/ingress-controller}\n---\n";
    let (table, _) = build(&[default_class, &services(&["s"]), classless]);
    assert_eq!(hit(&table, "classless", "/"), "s");

    // --watch-namespace serves one namespace.
    let ns_opts = CompileOptions {
        watch_namespace: Some("other".to_owned()),
        ..CompileOptions::default()
    };
    assert!(served(&ns_opts).is_empty());
}

#[test]
fn backend_resolution_named_ports_slice_port_and_endpoint_conditions() {
    let objects = "apiVersion: v1\nkind: Service\nmetadata: {name: multi}\nspec: {ports: [{name: http, port: 80, targetPort: 9999}, {name: admin, port: 81}]}\n---\n\
        apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: multi-a, labels: {kubernetes.io/service-name: multi}}\naddressType: IPv4\n\
        ports: [{name: http, port: 8080}, {name: admin, port: 9090}]\n\
        endpoints:\n- {addresses: [10.0.0.1], conditions: {ready: true}}\n- {addresses: [10.0.0.2]}\n- {addresses: [10.0.0.3], conditions: {ready: false}}\n- {addresses: [10.0.0.4], conditions: {ready: true, terminating: true}}\n---\n\
        apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: multi-b, labels: {kubernetes.io/service-name: multi}}\naddressType: IPv6\n\
        ports: [{name: http, port: 8080}]\nendpoints: [{addresses: ['fd00::5']}]\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {type: ExternalName, externalName: api.example.net}\n---\n";
    let ing = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  ingressClassName: switchyard\n  rules:\n  - host: h\n    http:\n      paths:\n      \
        - {path: /by-number, pathType: Prefix, backend: {service: {name: multi, port: {number: 80}}}}\n      \
        - {path: /by-name, pathType: Prefix, backend: {service: {name: multi, port: {name: admin}}}}\n      \
        - {path: /ext, pathType: Prefix, backend: {service: {name: ext, port: {number: 443}}}}\n      \
        - {path: /missing, pathType: Prefix, backend: {service: {name: nope, port: {number: 80}}}}\n      \
        - {path: /badport, pathType: Prefix, backend: {service: {name: multi, port: {number: 1}}}}\n      \
        - {path: /bucket, pathType: Prefix, backend: {resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: icons}}}\n---\n";
    let (table, problems) = build(&[CLASS, objects, ing]);
    let endpoints = |path: &str| match &table.route("h", path).1.target {
        Target::Upstream(u) => u
            .endpoints
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        Target::Respond { status, .. } => vec![status.to_string()],
        Target::Answer { .. } | Target::HostRedirect { .. } => vec!["local".to_owned()],
    };
    assert_eq!(
        endpoints("/by-number"),
        ["10.0.0.1:8080", "10.0.0.2:8080", "[fd00::5]:8080"]
    );
    assert_eq!(endpoints("/by-name"), ["10.0.0.1:9090", "10.0.0.2:9090"]);
    assert_eq!(endpoints("/ext"), ["api.example.net:443"]);
    assert_eq!(endpoints("/missing"), ["503 Service Unavailable"]);
    assert_eq!(endpoints("/badport"), ["503 Service Unavailable"]);
    assert_eq!(endpoints("/bucket"), ["503 Service Unavailable"]);
    let reasons: Vec<&str> = problems.iter().map(|p| p.reason).collect();
    assert_eq!(
        reasons,
        ["ServiceNotFound", "PortNotFound", "UnsupportedBackend"]
    );
    assert!(
        problems
            .iter()
            .all(|p| p.object == ObjectKey::new("default", "i"))
    );
    assert!(
        problems[0]
            .message
            .contains("path /missing: Service default/nope not found")
    );
}

#[test]
fn a_broken_ingress_never_affects_another() {
    let broken = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: broken}\nspec:\n  ingressClassName: switchyard\n  rules:\n  - host: \"bad*host\"\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}\n  - host: h2\n    http: {paths: [{path: relative, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}, {path: /, pathType: Weird, backend: {service: {name: s, port: {number: 80}}}}]}\n---\n";
    let (table, problems) = build(&[
        CLASS,
        &services(&["s"]),
        broken,
        &ingress("good", Some("h"), &[("/", "Prefix", "s")]),
    ]);
    assert_eq!(hit(&table, "h", "/"), "s");
    // No valid rule for h2: the broken Ingress does not claim it.
    assert!(!table.exact_hosts.contains_key("h2"));
    let reasons: Vec<&str> = problems.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, ["InvalidHost", "InvalidPath", "InvalidPath"]);
    assert!(
        problems
            .iter()
            .all(|p| p.object.name == "broken" && p.severity == Severity::Error)
    );
    assert_eq!(table.served_ingresses, 1);
}

#[test]
fn missing_tls_secret_is_a_problem_and_valid_ones_are_indexed_by_host() {
    let secret = tls_secret("secure.example");
    let ing = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: t}\nspec:\n  ingressClassName: switchyard\n  tls:\n  - {hosts: [secure.example, '*.wild.example'], secretName: good}\n  - {hosts: [other.example], secretName: absent}\n  rules:\n  - host: secure.example\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}\n---\n";
    let (table, problems) = build(&[CLASS, &services(&["s"]), &secret, ing]);
    assert!(table.certs.lookup("secure.example").is_some());
    assert!(table.certs.lookup("a.wild.example").is_some());
    assert!(table.certs.lookup("other.example").is_none());
    let reasons: Vec<&str> = problems.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, ["MissingSecret"]);
}

/// ingress-nginx's `ssl-redirect` default: hosts whose TLS is usable redirect plain HTTP; a
/// host whose Secret is missing does not (HTTPS would present the wrong certificate).
#[test]
fn hosts_with_usable_tls_are_marked_for_the_https_redirect() {
    let secret = tls_secret("secure.example");
    let ing = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: t}\nspec:\n  ingressClassName: switchyard\n  tls:\n  - {hosts: [secure.example], secretName: good}\n  - {hosts: [broken.example], secretName: absent}\n  - {hosts: [default-cert.example]}\n  rules:\n  - host: secure.example\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}\n  - host: broken.example\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}\n  - host: default-cert.example\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}\n  - host: plain.example\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}\n---\n";
    let (table, _) = build(&[CLASS, &services(&["s"]), &secret, ing]);
    let redirects = |host: &str| table.route(host, "/").0.tls_redirect;
    assert!(redirects("secure.example"));
    assert!(redirects("default-cert.example"));
    assert!(!redirects("broken.example"));
    assert!(!redirects("plain.example"));
    assert!(table.hsts.is_some());
}

fn challenge_ingress(labelled: bool, response: &str, token: &str) -> String {
    let labels = if labelled {
        "labels: {switchyard.dev/acme-challenge: \"true\"}, "
    } else {
        ""
    };
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: acme, {labels}annotations: {{switchyard.dev/acme-http01-response: \"{response}\"}}}}\nspec:\n  ingressClassName: switchyard\n  rules:\n  - host: shop.example\n    http: {{paths: [{{path: /.well-known/acme-challenge/{token}, pathType: Exact, backend: {{service: {{name: solver, port: {{number: 80}}}}}}}}]}}\n---\n"
    )
}

#[test]
fn challenge_ingresses_are_answered_by_the_proxy_itself() {
    let site = ingress("site", Some("shop.example"), &[("/", "Prefix", "s")]);
    let acme = challenge_ingress(true, "tok_1.thumb-print_", "tok_1");
    let (table, problems) = build(&[CLASS, &services(&["s", "solver"]), &site, &acme]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        hit(
            &table,
            "shop.example:80",
            "/.well-known/acme-challenge/tok_1"
        ),
        "answer b\"tok_1.thumb-print_\""
    );
    // Other tokens and paths are not answered.
    assert_eq!(
        hit(&table, "shop.example", "/.well-known/acme-challenge/other"),
        "s"
    );
}

#[test]
fn malformed_challenges_are_reported_and_go_to_their_backend() {
    let cases = [
        (true, "other.thumb", "tok_1"),
        (true, "no-thumbprint", "tok_1"),
        (false, "tok_1.thumb", "tok_1"),
    ];
    for (labelled, response, token) in cases {
        let acme = challenge_ingress(labelled, response, token);
        let (table, problems) = build(&[CLASS, &services(&["solver"]), &acme]);
        let reasons: Vec<&str> = problems.iter().map(|p| p.reason).collect();
        assert_eq!(
            reasons,
            ["InvalidChallenge"],
            "{response} labelled={labelled}"
        );
        assert_eq!(
            hit(
                &table,
                "shop.example",
                &format!("/.well-known/acme-challenge/{token}")
            ),
            "solver",
            "{response}"
        );
    }
}

/// A `kubernetes.io/tls` Secret named `good` with a fresh self-signed certificate for `name`.
fn tls_secret(name: &str) -> String {
    let Ok(cert) = rcgen::generate_simple_self_signed(vec![name.to_owned()]) else {
        panic!("rcgen failed");
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: good}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}\n  tls.key: |\n{}\n---\n",
        indent(&cert.cert.pem()),
        indent(&cert.signing_key.serialize_pem())
    )
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn canary_ingress(name: &str, host: &str, path: &str, svc: &str, annotations: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  annotations: {{nginx.ingress.kubernetes.io/canary: \"true\", {annotations}}}\nspec:\n  ingressClassName: switchyard\n  rules:\n  - host: {host}\n    http: {{paths: [{{path: \"{path}\", pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}]}}\n---\n"
    )
}

#[test]
fn a_canary_attaches_to_the_route_with_the_same_host_path_and_type() {
    let main = ingress(
        "shop",
        Some("shop.example"),
        &[("/", "Prefix", "v1"), ("/api", "Prefix", "api")],
    );
    let canary = canary_ingress(
        "shop-canary",
        "shop.example",
        "/",
        "v2",
        "nginx.ingress.kubernetes.io/canary-weight: \"10\"",
    );
    let (table, problems) = build(&[CLASS, &services(&["v1", "v2", "api"]), &main, &canary]);
    assert!(
        problems.iter().all(|p| p.severity == Severity::Info),
        "{problems:?}"
    );
    let (_, root) = table.route("shop.example", "/");
    let attached = root.canary.as_ref().map(|c| {
        let service = match &c.target {
            Target::Upstream(u) => u.service.name.clone(),
            _ => String::new(),
        };
        (
            c.ingress.name.clone(),
            service,
            c.policy.weight,
            c.label.clone(),
        )
    });
    assert_eq!(
        attached,
        Some((
            "shop-canary".into(),
            "v2".into(),
            10,
            "default-v2-80".into()
        ))
    );
    // Only that route: /api keeps no canary (ingress-nginx would split every route of v1).
    assert!(table.route("shop.example", "/api").1.canary.is_none());
    // The canary Ingress is never a route of its own.
    assert_eq!(hit(&table, "shop.example", "/"), "v1");
}

#[test]
fn a_canary_without_its_main_ingress_serves_nothing_and_says_so() {
    let canary = canary_ingress(
        "lonely",
        "lonely.example",
        "/",
        "v2",
        "nginx.ingress.kubernetes.io/canary-weight: \"50\"",
    );
    let (table, problems) = build(&[CLASS, &services(&["v2"]), &canary]);
    let reasons: Vec<&str> = problems.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, ["CanaryWithoutMainIngress"]);
    assert_eq!(hit(&table, "lonely.example", "/"), "404");
}

#[test]
fn invalid_canary_annotations_are_reported() {
    let main = ingress("shop", Some("shop.example"), &[("/", "Prefix", "v1")]);
    let canary = canary_ingress(
        "c",
        "shop.example",
        "/",
        "v2",
        "nginx.ingress.kubernetes.io/canary-weight: \"lots\"",
    );
    let (table, problems) = build(&[CLASS, &services(&["v1", "v2"]), &main, &canary]);
    let reasons: Vec<&str> = problems.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, ["InvalidAnnotation"]);
    assert!(problems[0].message.contains("canary-weight"));
    assert_eq!(
        table
            .route("shop.example", "/")
            .1
            .canary
            .as_ref()
            .map(|c| c.policy.weight),
        Some(0)
    );
}

#[test]
fn certificates_are_parsed_again_only_when_their_secret_changes() {
    let ing = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: t}\nspec:\n  ingressClassName: switchyard\n  tls:\n  - {hosts: [secure.example], secretName: good}\n  rules:\n  - host: secure.example\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}\n---\n";
    let first = tls_secret("secure.example");
    let snapshot = snapshot(&[CLASS, &services(&["s"]), &first, ing]);
    let options = CompileOptions::default();
    let (one, _, cache) = compile_cached(&snapshot, &options, &CertCache::default());
    let (two, _, cache) = compile_cached(&snapshot, &options, &cache);
    let cert = |t: &RouteTable| t.certs.lookup("secure.example").cloned();
    let (Some(a), Some(b)) = (cert(&one), cert(&two)) else {
        panic!("no certificate");
    };
    assert!(Arc::ptr_eq(&a, &b), "the unchanged Secret was parsed again");
    assert_eq!(cache.len(), 1);

    let changed = snapshot_with_secret(&tls_secret("secure.example"), ing);
    let (three, _, _) = compile_cached(&changed, &options, &cache);
    let Some(c) = cert(&three) else {
        panic!("no certificate");
    };
    assert!(
        !Arc::ptr_eq(&b, &c),
        "a changed Secret must be parsed again"
    );
}

fn snapshot_with_secret(secret: &str, ing: &str) -> Snapshot {
    snapshot(&[CLASS, &services(&["s"]), secret, ing])
}

fn annotated(
    name: &str,
    host: Option<&str>,
    annotations: &str,
    paths: &[(&str, &str, &str)],
) -> String {
    let plain = ingress(name, host, paths);
    plain.replacen(
        &format!("metadata: {{name: {name}}}"),
        &format!("metadata: {{name: {name}, annotations: {{{annotations}}}}}"),
        1,
    )
}

/// Where a request goes and what path the upstream sees.
fn hit_rewritten(table: &RouteTable, host: &str, path: &str) -> (String, String) {
    let normalized = normalize_path(path);
    let (_, route) = table.route(&normalize_host(host), &normalized);
    let upstream_path = route
        .rewrite
        .as_ref()
        .and_then(|r| r.apply(&normalized, None).ok().flatten())
        .unwrap_or_else(|| path.to_owned());
    (hit(table, host, path), upstream_path)
}

/// Seed 000's path-based Ingress: `rewrite-target: /` puts the host in regex mode; every
/// matched path is rewritten to `/` (ingress-nginx's behaviour, documented).
#[test]
fn seed_000_rewrite_target_slash() {
    let ing = annotated(
        "path-based-ingress",
        None,
        "nginx.ingress.kubernetes.io/rewrite-target: /",
        &[
            ("/app1", "Prefix", "app1"),
            ("/app2", "Prefix", "app2"),
            ("/", "Prefix", "web"),
        ],
    );
    let (table, problems) = build(&[CLASS, &services(&["app1", "app2", "web"]), &ing]);
    assert!(
        problems.iter().all(|p| p.severity == Severity::Info),
        "{problems:?}"
    );
    assert_eq!(
        hit_rewritten(&table, "any.example", "/app1/page"),
        ("app1".into(), "/".into())
    );
    assert_eq!(
        hit_rewritten(&table, "any.example", "/APP2"),
        ("app2".into(), "/".into())
    );
    // Regex locations are prefixes of the path string, not of path elements.
    assert_eq!(hit(&table, "any.example", "/app10"), "app1");
    assert_eq!(
        hit_rewritten(&table, "any.example", "/elsewhere"),
        ("web".into(), "/".into())
    );
}

/// Seed 000's regex Ingress: `use-regex` with captures in Prefix paths.
#[test]
fn seed_000_use_regex_with_captures() {
    let ing = annotated(
        "regex-ingress",
        None,
        "nginx.ingress.kubernetes.io/use-regex: \"true\", nginx.ingress.kubernetes.io/rewrite-target: /$1",
        &[
            ("/api/v1/?(.*)", "Prefix", "app1"),
            ("/api/v2/?(.*)", "Prefix", "app2"),
        ],
    );
    let (table, problems) = build(&[CLASS, &services(&["app1", "app2"]), &ing]);
    let reasons: Vec<&str> = problems.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, ["RegexInTypedPath", "RegexInTypedPath"]);
    assert_eq!(
        hit_rewritten(&table, "h", "/api/v1/users/7"),
        ("app1".into(), "/users/7".into())
    );
    assert_eq!(
        hit_rewritten(&table, "h", "/api/v2"),
        ("app2".into(), "/".into())
    );
    assert_eq!(hit(&table, "h", "/api/v3"), "404");
}

#[test]
fn regex_mode_takes_the_whole_host_unless_scoped_to_the_path() {
    let regex = annotated(
        "a",
        Some("shop.example"),
        "nginx.ingress.kubernetes.io/use-regex: \"true\"",
        &[("/items/[0-9]+", "ImplementationSpecific", "items")],
    );
    let plain = ingress(
        "b",
        Some("shop.example"),
        &[
            ("/cart", "Exact", "cart"),
            ("/cart/checkout", "Prefix", "checkout"),
        ],
    );
    let (table, _) = build(&[
        CLASS,
        &services(&["items", "cart", "checkout"]),
        &regex,
        &plain,
    ]);
    assert_eq!(hit(&table, "shop.example", "/items/42"), "items");
    assert_eq!(hit(&table, "shop.example", "/items/x"), "404");
    // The other Ingress's Exact path is now a case-insensitive prefix regex...
    assert_eq!(hit(&table, "shop.example", "/CART/more"), "cart");
    // ...and the longest pattern is tried first.
    assert_eq!(
        hit(&table, "shop.example", "/cart/checkout/now"),
        "checkout"
    );

    let scoped = regex.replacen(
        "nginx.ingress.kubernetes.io/use-regex: \"true\"",
        "nginx.ingress.kubernetes.io/use-regex: \"true\", switchyard.dev/regex-scope: path",
        1,
    );
    let (table, _) = build(&[
        CLASS,
        &services(&["items", "cart", "checkout"]),
        &scoped,
        &plain,
    ]);
    assert_eq!(hit(&table, "shop.example", "/items/42"), "items");
    assert_eq!(
        hit(&table, "shop.example", "/cart/more"),
        "404",
        "Exact stays exact"
    );
    assert_eq!(
        hit(&table, "shop.example", "/cart/checkout/now"),
        "checkout"
    );
}

#[test]
fn a_regex_neither_engine_takes_is_not_served_and_reported() {
    let ing = annotated(
        "lookaround",
        Some("h.example"),
        "nginx.ingress.kubernetes.io/use-regex: \"true\"",
        &[
            ("/(unclosed", "ImplementationSpecific", "s"),
            ("/ok", "ImplementationSpecific", "s"),
        ],
    );
    let (table, problems) = build(&[CLASS, &services(&["s"]), &ing]);
    let reasons: Vec<&str> = problems.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, ["InvalidRegex"]);
    assert_eq!(hit(&table, "h.example", "/ok"), "s");
    assert_eq!(hit(&table, "h.example", "/(unclosed"), "404");
}

#[test]
fn server_aliases_and_www_redirects_add_hosts_that_no_rule_names() {
    let ing = annotated(
        "site",
        Some("example.com"),
        "nginx.ingress.kubernetes.io/server-alias: \"example.net, taken.example\", nginx.ingress.kubernetes.io/from-to-www-redirect: \"true\"",
        &[("/", "Prefix", "web")],
    );
    let taken = ingress("other", Some("taken.example"), &[("/", "Prefix", "other")]);
    let (table, problems) = build(&[CLASS, &services(&["web", "other"]), &ing, &taken]);
    assert_eq!(hit(&table, "example.net", "/x"), "web");
    assert_eq!(hit(&table, "taken.example", "/x"), "other");
    assert_eq!(
        hit(&table, "www.example.com", "/x"),
        "redirect to example.com"
    );
    let reasons: Vec<&str> = problems.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, ["Conflict"]);
}

#[test]
fn default_backend_answers_for_services_without_endpoints_and_service_upstream_uses_the_cluster_ip()
{
    let ing = annotated(
        "site",
        Some("site.example"),
        "nginx.ingress.kubernetes.io/default-backend: fallback",
        &[("/", "Prefix", "missing"), ("/ok", "Prefix", "web")],
    );
    let (table, _) = build(&[CLASS, &services(&["web", "fallback"]), &ing]);
    assert_eq!(hit(&table, "site.example", "/"), "fallback");
    assert_eq!(hit(&table, "site.example", "/ok"), "web");

    let cluster_ip = "apiVersion: v1\nkind: Service\nmetadata: {name: vip}\nspec: {clusterIP: 10.96.0.7, ports: [{name: http, port: 80}]}\n---\n";
    let ing = annotated(
        "vip",
        Some("vip.example"),
        "nginx.ingress.kubernetes.io/service-upstream: \"true\"",
        &[("/", "Prefix", "vip")],
    );
    let (table, problems) = build(&[CLASS, cluster_ip, &ing]);
    assert!(
        problems.iter().all(|p| p.severity == Severity::Info),
        "{problems:?}"
    );
    match &table.route("vip.example", "/").1.target {
        Target::Upstream(u) => {
            let endpoints: Vec<String> = u.endpoints.iter().map(ToString::to_string).collect();
            assert_eq!(endpoints, ["10.96.0.7:80"]);
        }
        other => panic!("{other:?}"),
    }
}
