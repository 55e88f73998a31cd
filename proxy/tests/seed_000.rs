//! Seed 000's Ingress manifests (copied unchanged into `tests/seed_000/`), compiled one scenario
//! at a time as the proxy serves them with `--ingress-class nginx`: what each scenario asks for
//! is what the route table does, and the manifests the apiserver itself refuses are refused.

use std::path::Path;

use switchyard_proxy::compile::{CompileOptions, compile};
use switchyard_proxy::manifests::{ManifestFile, Parsed, parse};
use switchyard_proxy::model::{Problem, Severity};
use switchyard_proxy::routes::{RouteTable, Target};

/// The cluster around the scenarios: an `nginx` IngressClass that is ours, and the Services
/// the manifests name, each with one ready endpoint.
fn cluster() -> String {
    let mut out = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec: {controller: switchyard.dev/ingress-controller}\n".to_owned();
    for service in [
        "app1-service",
        "app2-service",
        "app-stable-service",
        "app-canary-service",
        "app-blue-service",
        "app-green-service",
    ] {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {service}}}\nspec: {{ports: [{{port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {service}-1, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nports: [{{port: 8080}}]\nendpoints: [{{addresses: [10.0.0.1]}}]\n"
        ));
    }
    out
}

fn scenario(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/seed_000")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn parsed(manifests: &str) -> Parsed {
    parse(&[
        ManifestFile {
            name: "cluster.yaml".into(),
            contents: cluster(),
        },
        ManifestFile {
            name: "scenario.yaml".into(),
            contents: manifests.to_owned(),
        },
    ])
}

fn options() -> CompileOptions {
    CompileOptions {
        ingress_class: "nginx".into(),
        ..CompileOptions::default()
    }
}

/// Compiles a scenario that must be accepted whole; returns the table and its warnings.
fn serve(file: &str) -> (RouteTable, Vec<Problem>) {
    let parsed = parsed(&scenario(file));
    assert!(parsed.errors.is_empty(), "{file}: {:?}", parsed.errors);
    let (table, problems) = compile(&parsed.snapshot, &options());
    let errors: Vec<&Problem> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{file}: {errors:?}");
    let warnings = problems
        .into_iter()
        .filter(|p| p.severity == Severity::Warning)
        .collect();
    (table, warnings)
}

fn service(table: &RouteTable, host: &str, path: &str) -> String {
    match &table.route(host, path).1.target {
        Target::Upstream(u) => u.service.name.clone(),
        other => format!("{other:?}"),
    }
}

#[test]
fn basic_path_host_and_regex_routing() {
    let (table, warnings) = serve("03-path-based-ingress.yaml");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(service(&table, "any.example", "/app2/x"), "app2-service");
    assert_eq!(service(&table, "any.example", "/elsewhere"), "app1-service");
    let rewritten = table.route("any.example", "/app1/page").1.rewrite.as_ref();
    assert_eq!(
        rewritten.and_then(|r| r.apply("/app1/page", None).ok().flatten()),
        Some("/".into())
    );

    let (table, warnings) = serve("04-host-based-ingress.yaml");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(service(&table, "app1.local", "/"), "app1-service");
    assert_eq!(service(&table, "app2.local", "/"), "app2-service");

    let (table, warnings) = serve("05-regex-ingress.yaml");
    let reasons: Vec<&str> = warnings.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, ["RegexInTypedPath", "RegexInTypedPath"]);
    let route = table.route("any.example", "/api/v2/users");
    assert_eq!(
        service(&table, "any.example", "/api/v2/users"),
        "app2-service"
    );
    assert_eq!(
        route
            .1
            .rewrite
            .as_ref()
            .and_then(|r| r.apply("/api/v2/users", None).ok().flatten()),
        Some("/users".into())
    );
}

/// `header-ingress` and `limit-ingress` are annotation fragments without a spec, which the
/// apiserver refuses: so does `--manifests`. Their annotations, on an Ingress with a spec, do
/// what the guide says or are reported.
#[test]
fn the_annotation_fragments_are_refused_and_their_annotations_work_on_an_ingress() {
    let spec = "spec:\n  ingressClassName: nginx\n  rules:\n  - host: frag.example\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: app1-service\n            port:\n              number: 80\n";
    for file in ["06-header-ingress.yaml", "07-limit-ingress.yaml"] {
        let text = scenario(file);
        assert!(!parsed(&text).errors.is_empty(), "{file} must be refused");
        // The Ingress is the first document; give it a spec.
        let (ingress, rest) = text.split_once("\n---\n").unwrap_or((&text, ""));
        let with_spec = format!("{ingress}\n{spec}---\n{rest}");
        let (table, warnings) = serve_text(&with_spec);
        let policy = &table.route("frag.example", "/").1.policy;
        let reasons: Vec<(&str, &str)> = warnings
            .iter()
            .map(|p| (p.reason, p.message.split(':').next().unwrap_or("")))
            .collect();
        if file.starts_with("06") {
            assert_eq!(policy.snippet.response_headers.len(), 3);
            assert_eq!(
                reasons,
                [(
                    "NotAnAnnotation",
                    "nginx.ingress.kubernetes.io/proxy-set-headers"
                )]
            );
        } else {
            assert_eq!(policy.body_limit, Some(10 << 20));
            assert_eq!(policy.rates.len(), 2);
            assert_eq!(
                policy.read_timeout,
                Some(std::time::Duration::from_secs(60))
            );
            let mut names: Vec<&str> = reasons.iter().map(|(_, n)| *n).collect();
            names.sort_unstable();
            assert_eq!(names, ["nginx.ingress.kubernetes.io/limit-burst"]);
            let upstream = policy.upstream.as_deref();
            assert_eq!(
                upstream.map(|u| (u.connect_timeout, u.send_timeout)),
                Some((
                    Some(std::time::Duration::from_secs(10)),
                    Some(std::time::Duration::from_secs(60))
                ))
            );
        }
    }
}

fn serve_text(manifests: &str) -> (RouteTable, Vec<Problem>) {
    let parsed = parsed(manifests);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let (table, problems) = compile(&parsed.snapshot, &options());
    assert!(
        problems.iter().all(|p| p.severity != Severity::Error),
        "{problems:?}"
    );
    let warnings = problems
        .into_iter()
        .filter(|p| p.severity == Severity::Warning)
        .collect();
    (table, warnings)
}

#[test]
fn sticky_cors_tls_canary_and_blue_green() {
    let (table, warnings) = serve("08-sticky-ingress.yaml");
    assert!(warnings.is_empty(), "{warnings:?}");
    let sticky = table.route("any.example", "/").1;
    assert_eq!(
        sticky.affinity.as_ref().map(|a| a.name.as_str()),
        Some("route")
    );

    let (table, warnings) = serve("09-cors-ingress.yaml");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(table.route("any.example", "/").1.policy.cors.is_some());

    // The guide's TLS Secret holds placeholder text where base64 belongs: the apiserver refuses
    // that Secret, and so does `--manifests`; the Ingress is served, its hosts with the default
    // certificate (reported).
    let tls = parsed(&scenario("10-tls-ingress.yaml"));
    let refused: Vec<&str> = tls.errors.iter().map(|e| e.message.as_str()).collect();
    assert!(
        refused.len() == 1 && refused[0].contains("not a valid Secret"),
        "{refused:?}"
    );
    let (table, problems) = compile(&tls.snapshot, &options());
    let reasons: Vec<&str> = problems
        .iter()
        .filter(|p| p.severity > Severity::Info)
        .map(|p| p.reason)
        .collect();
    assert_eq!(reasons, ["MissingSecret"], "{problems:?}");
    assert_eq!(service(&table, "app1.local", "/"), "app1-service");

    let (table, _) = serve("12-main-ingress.yaml");
    let canary = table.route("api.example.com", "/").1.canary.as_ref();
    assert_eq!(canary.map(|c| c.policy.weight), Some(10));
    assert_eq!(
        service(&table, "api.example.com", "/"),
        "app-stable-service"
    );

    let both = format!(
        "{}\n---\n{}",
        scenario("12-main-ingress.yaml"),
        scenario("13-weighted-canary-ingress.yaml")
    );
    let (table, warnings) = serve_text(&both);
    let reasons: Vec<&str> = warnings.iter().map(|p| p.reason).collect();
    assert_eq!(reasons, ["Conflict"], "one canary per route");
    assert_eq!(
        table
            .route("api.example.com", "/")
            .1
            .canary
            .as_ref()
            .map(|c| c.ingress.name.as_str()),
        Some("canary-ingress")
    );

    let (table, warnings) = serve("14-blue-ingress.yaml");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(service(&table, "api.example.com", "/"), "app-blue-service");
    assert_eq!(
        service(&table, "api-staging.example.com", "/"),
        "app-green-service"
    );
}

/// `auto-tls-ingress` has a backend without `service:`, which the apiserver refuses.
#[test]
fn the_auto_tls_ingress_is_refused_as_the_apiserver_refuses_it() {
    let parsed = parsed(&scenario("11-auto-tls-ingress.yaml"));
    assert!(
        parsed
            .errors
            .iter()
            .any(|e| e.message.contains("auto-tls-ingress")),
        "{:?}",
        parsed.errors
    );
}
