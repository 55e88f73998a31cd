//! Expansion into Ingresses: whole objects compared as JSON (what the apiserver receives).

use serde_json::{Value, json};
use switchyard_crds::{HeaderMatch, PathType, Phase, RoutePath, RouteTls};

use super::*;
use crate::rollout::{ROUTE_LABEL, child_name, label_value, stale_children};

fn status(phase: Phase, stable: &str, desired: &str, weight: Option<u32>) -> RolloutRouteStatus {
    RolloutRouteStatus {
        phase: Some(phase),
        stable_backend: Some(backend(stable)),
        desired_backend: Some(backend(desired)),
        canary_weight: weight,
        ..RolloutRouteStatus::default()
    }
}

/// Two hosts, two paths, TLS, a class, and annotations of every kind.
fn full_route(strategy: RolloutStrategy) -> RolloutRoute {
    let mut route = route(strategy);
    route.spec.hosts = vec!["shop.example.com".into(), "www.shop.example.com".into()];
    route.spec.paths = vec![
        RoutePath {
            path: "/api".into(),
            path_type: None,
        },
        RoutePath {
            path: "/healthz".into(),
            path_type: Some(PathType::Exact),
        },
    ];
    route.spec.tls = Some(RouteTls {
        secret_name: "shop-tls".into(),
        issuer_ref: None,
    });
    route.spec.annotations = [
        ("proxy-body-size", "8m"),
        ("rewrite-target", "/"),
        ("affinity", "cookie"),
        ("session-cookie-name", "route"),
        ("upstream-hash-by", "$request_uri"),
        ("load-balance", "ewma"),
        // Stray: must never make the stable Ingress a canary.
        ("canary", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{NGINX}{k}"), v.to_owned()))
    .chain([("example.com/team".to_owned(), "checkout".to_owned())])
    .collect();
    route
}

fn to_json(ingresses: &[Ingress]) -> Vec<Value> {
    ingresses
        .iter()
        .map(|i| serde_json::to_value(i).expect("ingress serializes"))
        .collect()
}

fn metadata(name: &str, annotations: Value) -> Value {
    json!({
        "name": name,
        "namespace": "shop",
        "labels": {"switchyard.dev/rollout-route": "shop"},
        "annotations": annotations,
        "ownerReferences": [{
            "apiVersion": "switchyard.dev/v1alpha1",
            "kind": "RolloutRoute",
            "name": "shop",
            "uid": "6f1c-uid",
            "controller": true,
            "blockOwnerDeletion": true,
        }],
    })
}

fn rules(hosts: &[&str], service: &str) -> Value {
    let paths = json!([
        {"path": "/api", "pathType": "Prefix",
         "backend": {"service": {"name": service, "port": {"number": 80}}}},
        {"path": "/healthz", "pathType": "Exact",
         "backend": {"service": {"name": service, "port": {"number": 80}}}},
    ]);
    hosts
        .iter()
        .map(|host| json!({"host": host, "http": {"paths": paths}}))
        .collect()
}

fn stable_json(service: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata("shop", json!({
            "example.com/team": "checkout",
            "nginx.ingress.kubernetes.io/affinity": "cookie",
            "nginx.ingress.kubernetes.io/load-balance": "ewma",
            "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
            "nginx.ingress.kubernetes.io/rewrite-target": "/",
            "nginx.ingress.kubernetes.io/session-cookie-name": "route",
            "nginx.ingress.kubernetes.io/upstream-hash-by": "$request_uri",
        })),
        "spec": {
            "ingressClassName": "switchyard",
            "rules": rules(&["shop.example.com", "www.shop.example.com"], service),
            "tls": [{"hosts": ["shop.example.com", "www.shop.example.com"], "secretName": "shop-tls"}],
        },
    })
}

#[test]
fn the_stable_ingress_serves_every_host_and_path_with_tls_and_the_policy_annotations() {
    let route = full_route(example_steps());
    let healthy = status(Phase::Healthy, "shop-v1", "shop-v1", None);
    assert_eq!(
        to_json(&desired_ingresses(&route, &healthy)),
        [stable_json("shop-v1")]
    );
}

#[test]
fn the_canary_ingress_carries_the_weight_the_match_and_only_canary_settings() {
    let route = full_route(example_steps());
    let rolling = status(Phase::Paused, "shop-v1", "shop-v2", Some(10));
    let canary = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata("shop-canary", json!({
            "nginx.ingress.kubernetes.io/affinity": "cookie",
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-by-cookie": "canary",
            "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
            "nginx.ingress.kubernetes.io/canary-by-header-value": "true",
            "nginx.ingress.kubernetes.io/canary-weight": "10",
            "nginx.ingress.kubernetes.io/load-balance": "ewma",
            "nginx.ingress.kubernetes.io/session-cookie-name": "route",
            "nginx.ingress.kubernetes.io/upstream-hash-by": "$request_uri",
        })),
        "spec": {
            "ingressClassName": "switchyard",
            "rules": rules(&["shop.example.com", "www.shop.example.com"], "shop-v2"),
        },
    });
    assert_eq!(
        to_json(&desired_ingresses(&route, &rolling)),
        [stable_json("shop-v1"), canary]
    );
}

#[test]
fn match_variants_become_the_nginx_canary_annotations() {
    let header = |value: Option<&str>, regex: Option<&str>| HeaderMatch {
        name: "X-Canary".into(),
        value: value.map(Into::into),
        regex: regex.map(Into::into),
    };
    let cases: [(Option<CanaryMatch>, u32, &str); 5] = [
        (
            None,
            30,
            "shop-canary -> shop-v2:80 on shop.example.com [canary=true canary-weight=30]",
        ),
        (
            Some(CanaryMatch {
                header: Some(header(None, Some("^(beta|qa)$"))),
                cookie: None,
            }),
            0,
            "shop-canary -> shop-v2:80 on shop.example.com [canary=true \
             canary-by-header=X-Canary canary-by-header-pattern=^(beta|qa)$ canary-weight=0]",
        ),
        (
            Some(CanaryMatch {
                header: Some(header(None, None)),
                cookie: None,
            }),
            5,
            "shop-canary -> shop-v2:80 on shop.example.com [canary=true \
             canary-by-header=X-Canary canary-weight=5]",
        ),
        (
            Some(CanaryMatch {
                header: None,
                cookie: Some("beta".into()),
            }),
            0,
            "shop-canary -> shop-v2:80 on shop.example.com [canary=true \
             canary-by-cookie=beta canary-weight=0]",
        ),
        (
            Some(header_match()),
            100,
            "shop-canary -> shop-v2:80 on shop.example.com [canary=true \
             canary-by-cookie=canary canary-by-header=X-Canary canary-by-header-value=true \
             canary-weight=100]",
        ),
    ];
    for (matching, weight, expected) in cases {
        let route = route(canary(vec![wait_for_promote()], matching));
        let rolling = status(Phase::Progressing, "shop-v1", "shop-v2", Some(weight));
        let summaries: Vec<String> = desired_ingresses(&route, &rolling)
            .iter()
            .map(ingress_summary)
            .collect();
        assert_eq!(
            summaries,
            ["shop -> shop-v1:80 on shop.example.com", expected],
            "weight {weight}"
        );
    }
}

#[test]
fn children_exist_only_while_a_rollout_sends_them_traffic() {
    const STABLE_V1: &str = "shop -> shop-v1:80 on shop.example.com";
    const PREVIEW: &str = "shop-preview -> shop-v2:80 on preview.shop.example.com";
    let no_match = route(canary(vec![weight(10)], None));
    let bg = route(blue_green(None, None));
    let cases: [(&RolloutRoute, RolloutRouteStatus, &[&str]); 7] = [
        // Weight 0 without a match would only be an empty canary.
        (
            &no_match,
            status(Phase::Paused, "shop-v1", "shop-v2", Some(0)),
            &[STABLE_V1],
        ),
        (
            &no_match,
            status(Phase::Degraded, "shop-v1", "shop-v2", Some(0)),
            &[STABLE_V1],
        ),
        (
            &no_match,
            status(Phase::Healthy, "shop-v1", "shop-v1", None),
            &[STABLE_V1],
        ),
        (
            &bg,
            status(Phase::Paused, "shop-v1", "shop-v2", Some(0)),
            &[STABLE_V1, PREVIEW],
        ),
        (
            &bg,
            status(Phase::Progressing, "shop-v1", "shop-v2", Some(0)),
            &[STABLE_V1, PREVIEW],
        ),
        (
            &bg,
            status(Phase::Degraded, "shop-v1", "shop-v2", Some(0)),
            &[STABLE_V1],
        ),
        // Before the first pass: the spec's backend.
        (&bg, RolloutRouteStatus::default(), &[STABLE_V1]),
    ];
    for (index, (route, status, expected)) in cases.into_iter().enumerate() {
        let summaries: Vec<String> = desired_ingresses(route, &status)
            .iter()
            .map(ingress_summary)
            .collect();
        assert_eq!(summaries, expected, "case {index}");
    }
}

#[test]
fn the_preview_ingress_serves_the_preview_hosts_without_tls() {
    let route = full_route(blue_green(Some(300), None));
    let rolling = status(Phase::Paused, "shop-v1", "shop-v2", Some(0));
    let children = to_json(&desired_ingresses(&route, &rolling));
    let mut annotations = stable_json("shop-v1")["metadata"]["annotations"].clone();
    if let Some(map) = annotations.as_object_mut() {
        map.remove("nginx.ingress.kubernetes.io/canary");
    }
    let preview = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata("shop-preview", annotations),
        "spec": {
            "ingressClassName": "switchyard",
            "rules": rules(&["preview.shop.example.com"], "shop-v2"),
        },
    });
    assert_eq!(children, [stable_json("shop-v1"), preview]);
}

#[test]
fn a_named_port_and_a_route_without_uid() {
    let mut route = route(example_steps());
    route.metadata.uid = None;
    route.spec.backend.port = IntOrString::String("http".into());
    let ingresses = desired_ingresses(&route, &RolloutRouteStatus::default());
    assert_eq!(ingresses[0].metadata.owner_references, None);
    assert_eq!(
        ingress_summary(&ingresses[0]),
        "shop -> shop-v1:http on shop.example.com"
    );
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[test]
fn long_route_names_give_valid_distinct_child_names_and_labels() {
    // 253 characters: the longest RolloutRoute name the apiserver accepts.
    let long_a = format!("{}.{}", "a".repeat(61), vec!["b".repeat(63); 3].join("."));
    let long_b = format!("{}c", &long_a[..252]);
    assert_eq!(long_a.len(), 253);
    let names = [
        child_name(&long_a, "-canary"),
        child_name(&long_b, "-canary"),
        child_name(&long_a, "-preview"),
        child_name("shop", "-canary"),
    ];
    for name in &names {
        assert!(is_dns_subdomain(name), "{name} ({} chars)", name.len());
    }
    assert_eq!(names[3], "shop-canary");
    assert_ne!(names[0], names[1]);
    assert_ne!(names[0], names[2]);
    let label = label_value(&long_a);
    assert!(label.len() <= 63 && label.starts_with("aaaa"), "{label}");
    assert_ne!(label, label_value(&long_b));
    assert_eq!(label_value("shop"), "shop");

    let mut route = route(example_steps());
    route.metadata.name = Some(long_a.clone());
    let rolling = status(Phase::Paused, "shop-v1", "shop-v2", Some(10));
    let ingresses = desired_ingresses(&route, &rolling);
    assert_eq!(ingresses[0].metadata.name.as_deref(), Some(long_a.as_str()));
    assert_eq!(ingresses[1].metadata.name, Some(names[0].clone()));
    let labels = ingresses[1].metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(ROUTE_LABEL), Some(&label));
}

#[test]
fn stale_children_are_those_no_longer_desired() {
    let route = route(example_steps());
    let healthy = desired_ingresses(&route, &status(Phase::Healthy, "shop-v2", "shop-v2", None));
    let existing = ["shop-preview", "shop", "shop-canary"].map(String::from);
    assert_eq!(
        stale_children(&existing, &healthy),
        ["shop-canary", "shop-preview"]
    );
    let rolling = desired_ingresses(
        &route,
        &status(Phase::Paused, "shop-v1", "shop-v2", Some(10)),
    );
    assert_eq!(stale_children(&existing, &rolling), ["shop-preview"]);
}

#[test]
fn an_issuer_ref_asks_for_a_certificate_on_the_stable_ingress_only() {
    use switchyard_crds::{IssuerKind, IssuerRef};
    let mut route = full_route(example_steps());
    route.spec.tls = Some(RouteTls {
        secret_name: "shop-tls".into(),
        issuer_ref: Some(IssuerRef {
            kind: Some(IssuerKind::ClusterIssuer),
            name: "letsencrypt".into(),
            group: None,
        }),
    });
    let children = desired_ingresses(
        &route,
        &status(Phase::Progressing, "shop-v1", "shop-v2", Some(10)),
    );
    let annotation = |i: &Ingress, key: &str| {
        i.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
    };
    assert_eq!(
        annotation(&children[0], "switchyard.dev/cluster-issuer").as_deref(),
        Some("letsencrypt")
    );
    assert_eq!(
        annotation(&children[1], "switchyard.dev/cluster-issuer"),
        None
    );
    if let Some(issuer) = route.spec.tls.as_mut().and_then(|t| t.issuer_ref.as_mut()) {
        issuer.kind = Some(IssuerKind::Issuer);
    }
    let children = desired_ingresses(&route, &RolloutRouteStatus::default());
    assert_eq!(
        annotation(&children[0], "switchyard.dev/issuer").as_deref(),
        Some("letsencrypt")
    );
}
