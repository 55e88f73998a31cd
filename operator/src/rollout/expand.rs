//! Expansion of a RolloutRoute into plain Ingresses carrying ingress-nginx canary annotations,
//! so that any controller that understands them (first of all our proxy) serves the rollout.
//!
//! - `<name>`: every host × path → the stable backend, with TLS when spec.tls is set (and,
//!   with spec.tls.issuerRef, the issuer annotation that makes a Certificate for it).
//! - `<name>-canary`: during a canary rollout that sends it traffic (weight > 0 or a match).
//! - `<name>-preview`: during a blue-green rollout, the preview hosts → the new backend.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use switchyard_crds::{
    Backend, CanaryMatch, IssuerKind, RolloutRoute, RolloutRouteStatus, Strategy,
};

use super::state::rollout_target;

/// The label on every child: the route's name (shortened with a hash when too long for a
/// label value), so the shell can list children and delete stale ones.
pub const ROUTE_LABEL: &str = "switchyard.dev/rollout-route";

const NGINX: &str = "nginx.ingress.kubernetes.io/";

/// Annotations (after the nginx prefix) that ingress-nginx reads on a canary Ingress; every
/// other policy comes from the stable Ingress and applies to both sides.
const CANARY_SETTINGS: [&str; 4] = [
    "affinity",
    "affinity-mode",
    "affinity-canary-behavior",
    "load-balance",
];
const CANARY_SETTING_PREFIXES: [&str; 2] = ["session-cookie-", "upstream-hash-by"];

/// Longest object name the apiserver accepts for an Ingress (a DNS subdomain).
const MAX_NAME: usize = 253;
/// Longest label value.
const MAX_LABEL: usize = 63;

/// The Ingresses `route` should have for `status`; the stable one always comes first.
pub fn desired_ingresses(route: &RolloutRoute, status: &RolloutRouteStatus) -> Vec<Ingress> {
    let spec = &route.spec;
    let name = route_name(route);
    let stable = status.stable_backend.as_ref().unwrap_or(&spec.backend);
    let mut stable_annotations = policy_annotations(&spec.annotations);
    stable_annotations.extend(issuer_annotation(route));
    let mut children = vec![child(
        route,
        name.to_owned(),
        stable_annotations,
        &spec.hosts,
        stable,
        true,
    )];
    let Some(target) = rollout_target(status) else {
        return children;
    };
    match spec.strategy.get() {
        Some(Strategy::Canary(canary)) => {
            let weight = status.canary_weight.unwrap_or(0);
            if weight > 0 || canary.r#match.is_some() {
                let mut annotations = canary_settings(&spec.annotations);
                annotations.extend(canary_annotations(weight, canary.r#match.as_ref()));
                children.push(child(
                    route,
                    child_name(name, "-canary"),
                    annotations,
                    &spec.hosts,
                    target,
                    false,
                ));
            }
        }
        Some(Strategy::BlueGreen(blue_green)) if !blue_green.preview_hosts.is_empty() => {
            children.push(child(
                route,
                child_name(name, "-preview"),
                policy_annotations(&spec.annotations),
                &blue_green.preview_hosts,
                target,
                false,
            ));
        }
        _ => {}
    }
    children
}

/// Existing children (by name) that are not desired any more and should be deleted.
pub fn stale_children(existing_names: &[String], desired: &[Ingress]) -> Vec<String> {
    let keep: BTreeSet<&str> = desired
        .iter()
        .filter_map(|i| i.metadata.name.as_deref())
        .collect();
    let stale: BTreeSet<&String> = existing_names
        .iter()
        .filter(|n| !keep.contains(n.as_str()))
        .collect();
    stale.into_iter().cloned().collect()
}

/// `<name><suffix>`, shortened with a hash of the full name when it would exceed the
/// apiserver's limit, so two long routes never share a child name.
pub fn child_name(name: &str, suffix: &str) -> String {
    shorten(&format!("{name}{suffix}"), MAX_NAME)
}

/// The [`ROUTE_LABEL`] value for a route name.
pub fn label_value(name: &str) -> String {
    shorten(name, MAX_LABEL)
}

fn route_name(route: &RolloutRoute) -> &str {
    route.metadata.name.as_deref().unwrap_or_default()
}

/// Fits `text` into `max` characters: a prefix that ends in an alphanumeric character, a
/// dash, and 8 hex digits of the whole text's hash. Names are ASCII (DNS subdomains).
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let keep = max.saturating_sub(9);
    let prefix = text
        .get(..keep)
        .unwrap_or_default()
        .trim_end_matches(['-', '.']);
    format!("{prefix}-{:08x}", fnv1a(text))
}

/// FNV-1a (32 bits): tiny, stable across releases and platforms, which a child name needs.
pub(crate) fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// spec.annotations minus any canary ones: a user's stray `canary: "true"` must never turn
/// the stable Ingress into a canary.
fn policy_annotations(annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    annotations
        .iter()
        .filter(|(key, _)| !key.starts_with(&format!("{NGINX}canary")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `spec.tls.issuerRef` becomes the Ingress shortcut's annotation on the stable Ingress (the
/// one with the TLS section): the certificate controller then keeps a Certificate for the
/// hosts in `spec.tls.secretName`, owned by that Ingress.
fn issuer_annotation(route: &RolloutRoute) -> Option<(String, String)> {
    let issuer = route.spec.tls.as_ref()?.issuer_ref.as_ref()?;
    let key = match issuer.kind() {
        IssuerKind::ClusterIssuer => crate::certs::shortcut::CLUSTER_ISSUER,
        IssuerKind::Issuer => crate::certs::shortcut::ISSUER,
    };
    Some((key.to_owned(), issuer.name.clone()))
}

fn canary_settings(annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    annotations
        .iter()
        .filter(|(key, _)| {
            key.strip_prefix(NGINX).is_some_and(|setting| {
                CANARY_SETTINGS.contains(&setting)
                    || CANARY_SETTING_PREFIXES
                        .iter()
                        .any(|prefix| setting.starts_with(prefix))
            })
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn canary_annotations(weight: u32, matching: Option<&CanaryMatch>) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::new();
    let mut put = |key: &str, value: &str| {
        annotations.insert(format!("{NGINX}{key}"), value.to_owned());
    };
    put("canary", "true");
    put("canary-weight", &weight.to_string());
    if let Some(header) = matching.and_then(|m| m.header.as_ref()) {
        put("canary-by-header", &header.name);
        if let Some(value) = &header.value {
            put("canary-by-header-value", value);
        }
        if let Some(regex) = &header.regex {
            put("canary-by-header-pattern", regex);
        }
    }
    if let Some(cookie) = matching.and_then(|m| m.cookie.as_ref()) {
        put("canary-by-cookie", cookie);
    }
    annotations
}

fn child(
    route: &RolloutRoute,
    name: String,
    annotations: BTreeMap<String, String>,
    hosts: &[String],
    backend: &Backend,
    with_tls: bool,
) -> Ingress {
    let spec = &route.spec;
    // The canary attaches to the stable Ingress's server and the preview hosts may not be in
    // the certificate, so only the stable Ingress names the TLS Secret.
    let tls = spec.tls.as_ref().filter(|_| with_tls).map(|tls| {
        vec![IngressTLS {
            hosts: Some(hosts.to_vec()),
            secret_name: Some(tls.secret_name.clone()),
        }]
    });
    Ingress {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: route.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([(
                ROUTE_LABEL.to_owned(),
                label_value(route_name(route)),
            )])),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: owner_reference(route).map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(IngressSpec {
            ingress_class_name: spec.ingress_class_name.clone(),
            rules: Some(rules(route, hosts, backend)),
            tls,
            ..IngressSpec::default()
        }),
        status: None,
    }
}

fn rules(route: &RolloutRoute, hosts: &[String], backend: &Backend) -> Vec<IngressRule> {
    let paths: Vec<HTTPIngressPath> = route
        .spec
        .paths()
        .into_iter()
        .map(|path| HTTPIngressPath {
            path_type: path.path_type().as_str().to_owned(),
            path: Some(path.path),
            backend: IngressBackend {
                service: Some(IngressServiceBackend {
                    name: backend.service.clone(),
                    port: Some(backend.service_backend_port()),
                }),
                resource: None,
            },
        })
        .collect();
    hosts
        .iter()
        .map(|host| IngressRule {
            host: Some(host.clone()),
            http: Some(HTTPIngressRuleValue {
                paths: paths.clone(),
            }),
        })
        .collect()
}

/// Without a uid (a route rendered from a file) there is nothing to own the children.
fn owner_reference(route: &RolloutRoute) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: RolloutRoute::api_version(&()).into_owned(),
        kind: RolloutRoute::kind(&()).into_owned(),
        name: route.metadata.name.clone()?,
        uid: route.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}
