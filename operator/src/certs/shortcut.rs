//! The Ingress shortcut: an Ingress annotated with an issuer gets one Certificate per
//! `spec.tls` secretName (hosts of entries sharing a secretName merged), named after the
//! secretName and owned by the Ingress. `switchyard.dev/cluster-issuer` and
//! `switchyard.dev/issuer` always count; cert-manager's `cert-manager.io/cluster-issuer` and
//! `cert-manager.io/issuer` too unless turned off (`--cert-manager-annotations=false`, for
//! clusters where cert-manager still runs). Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use switchyard_crds::names::is_valid_host;
use switchyard_crds::{Certificate, CertificateSpec, IssuerKind, IssuerRef};

use crate::rollout::expand::shorten;

pub const CLUSTER_ISSUER: &str = "switchyard.dev/cluster-issuer";
pub const ISSUER: &str = "switchyard.dev/issuer";
pub const CERT_MANAGER_CLUSTER_ISSUER: &str = "cert-manager.io/cluster-issuer";
pub const CERT_MANAGER_ISSUER: &str = "cert-manager.io/issuer";
/// The label on Certificates made for an Ingress: the Ingress's name (shortened with a hash
/// when too long for a label value).
pub const INGRESS_LABEL: &str = "switchyard.dev/ingress";

/// What an Ingress asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expansion {
    /// The Certificates to apply (empty when the Ingress has no issuer annotation).
    pub certificates: Vec<Certificate>,
    /// What could not be honoured, for Warning Events on the Ingress.
    pub problems: Vec<String>,
}

/// The issuer an Ingress's annotations name, and the annotation it came from. Ours win over
/// cert-manager's; naming both an issuer and a cluster issuer under one prefix is a problem.
pub fn issuer_of(
    annotations: &BTreeMap<String, String>,
    cert_manager: bool,
) -> Option<Result<(IssuerRef, &'static str), String>> {
    let mut prefixes = vec![(CLUSTER_ISSUER, ISSUER)];
    if cert_manager {
        prefixes.push((CERT_MANAGER_CLUSTER_ISSUER, CERT_MANAGER_ISSUER));
    }
    for (cluster_key, key) in prefixes {
        let named = |k: &str| {
            annotations
                .get(k)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let found = match (named(cluster_key), named(key)) {
            (Some(_), Some(_)) => {
                return Some(Err(format!(
                    "both {cluster_key} and {key} are set: keep one"
                )));
            }
            (Some(name), None) => Some((IssuerKind::ClusterIssuer, name, cluster_key)),
            (None, Some(name)) => Some((IssuerKind::Issuer, name, key)),
            (None, None) => None,
        };
        if let Some((kind, name, from)) = found {
            return Some(Ok((
                IssuerRef {
                    kind: Some(kind),
                    name: name.to_string(),
                    group: None,
                },
                from,
            )));
        }
    }
    None
}

/// The Certificates an Ingress asks for.
pub fn certificates_for(ingress: &Ingress, cert_manager: bool) -> Expansion {
    let mut out = Expansion::default();
    let empty = BTreeMap::new();
    let annotations = ingress.metadata.annotations.as_ref().unwrap_or(&empty);
    let issuer = match issuer_of(annotations, cert_manager) {
        None => return out,
        Some(Err(problem)) => {
            out.problems.push(problem);
            return out;
        }
        Some(Ok((issuer, _))) => issuer,
    };
    let tls = ingress
        .spec
        .as_ref()
        .and_then(|s| s.tls.as_deref())
        .unwrap_or_default();
    if tls.is_empty() {
        out.problems.push(
            "an issuer is annotated but spec.tls is empty: no certificate to issue".to_string(),
        );
        return out;
    }
    // secretName → hosts, in order of first appearance.
    let mut wanted: Vec<(String, Vec<String>)> = Vec::new();
    for (index, entry) in tls.iter().enumerate() {
        let Some(secret) = entry.secret_name.as_deref().filter(|s| !s.is_empty()) else {
            out.problems
                .push(format!("spec.tls[{index}] has no secretName: skipped"));
            continue;
        };
        let mut hosts = Vec::new();
        for host in entry.hosts.as_deref().unwrap_or_default() {
            let host = host.to_ascii_lowercase();
            if is_valid_host(&host) {
                hosts.push(host);
            } else {
                out.problems.push(format!(
                    "spec.tls[{index}] host {host:?} is not a valid DNS name: left out"
                ));
            }
        }
        if hosts.is_empty() {
            out.problems.push(format!(
                "spec.tls[{index}] ({secret}) names no usable host: skipped"
            ));
            continue;
        }
        match wanted.iter_mut().find(|(s, _)| s == secret) {
            Some((_, existing)) => {
                for h in hosts {
                    if !existing.contains(&h) {
                        existing.push(h);
                    }
                }
            }
            None => wanted.push((secret.to_string(), hosts)),
        }
    }
    let owner = owner_reference(ingress);
    let ingress_name = ingress.metadata.name.clone().unwrap_or_default();
    for (secret, hosts) in wanted {
        let mut cert = Certificate::new(
            &secret,
            CertificateSpec {
                secret_name: secret.clone(),
                dns_names: hosts,
                issuer_ref: issuer.clone(),
                renew_before: None,
                private_key: None,
                secret_policy: None,
            },
        );
        cert.metadata = ObjectMeta {
            name: Some(secret.clone()),
            namespace: ingress.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([(
                INGRESS_LABEL.to_string(),
                ingress_label(&ingress_name),
            )])),
            owner_references: owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        };
        out.certificates.push(cert);
    }
    out
}

/// The value of [`INGRESS_LABEL`] for an Ingress name.
pub fn ingress_label(name: &str) -> String {
    shorten(name, 63)
}

fn owner_reference(ingress: &Ingress) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: Ingress::api_version(&()).into_owned(),
        kind: Ingress::kind(&()).into_owned(),
        name: ingress.metadata.name.clone()?,
        uid: ingress.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The names of Certificates of this Ingress (found by label and owner) that it no longer asks
/// for: delete them.
pub fn stale<'a>(
    existing: &'a [Certificate],
    ingress_uid: &str,
    wanted: &Expansion,
) -> Vec<&'a str> {
    existing
        .iter()
        .filter(|c| {
            c.metadata
                .owner_references
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|o| o.uid == ingress_uid)
        })
        .filter_map(|c| c.metadata.name.as_deref())
        .filter(|name| {
            !wanted
                .certificates
                .iter()
                .any(|w| w.metadata.name.as_deref() == Some(*name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ingress(annotations: serde_json::Value, tls: serde_json::Value) -> Ingress {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "shop", "namespace": "web", "uid": "ing-1",
                         "annotations": annotations},
            "spec": {"tls": tls, "rules": [{"host": "shop.example.com"}]}
        }))
        .expect("valid Ingress")
    }

    /// Name, DNS names, issuer name and kind of one Certificate.
    type Row = (String, Vec<String>, String, IssuerKind);

    fn summary(e: &Expansion) -> Vec<Row> {
        e.certificates
            .iter()
            .map(|c| {
                (
                    c.metadata.name.clone().unwrap_or_default(),
                    c.spec.dns_names.clone(),
                    c.spec.issuer_ref.name.clone(),
                    c.spec.issuer_ref.kind(),
                )
            })
            .collect()
    }

    #[test]
    fn table() {
        let tls = json!([
            {"hosts": ["shop.example.com", "www.shop.example.com"], "secretName": "shop-tls"},
            {"hosts": ["api.example.com"], "secretName": "api-tls"},
            {"hosts": ["Admin.Example.com"], "secretName": "shop-tls"},
        ]);
        let s = |v: &str| v.to_string();
        let cases: Vec<(serde_json::Value, bool, Vec<Row>)> = vec![
            // No annotation: nothing.
            (json!({}), true, vec![]),
            // cert-manager's cluster issuer, honoured by default; hosts merged per secretName.
            (
                json!({CERT_MANAGER_CLUSTER_ISSUER: "letsencrypt"}),
                true,
                vec![
                    (
                        s("shop-tls"),
                        vec![
                            s("shop.example.com"),
                            s("www.shop.example.com"),
                            s("admin.example.com"),
                        ],
                        s("letsencrypt"),
                        IssuerKind::ClusterIssuer,
                    ),
                    (
                        s("api-tls"),
                        vec![s("api.example.com")],
                        s("letsencrypt"),
                        IssuerKind::ClusterIssuer,
                    ),
                ],
            ),
            // …and ignored when turned off.
            (
                json!({CERT_MANAGER_CLUSTER_ISSUER: "letsencrypt"}),
                false,
                vec![],
            ),
            (json!({CERT_MANAGER_ISSUER: "local"}), false, vec![]),
            // Ours always count, and win over cert-manager's.
            (
                json!({ISSUER: "local", CERT_MANAGER_CLUSTER_ISSUER: "letsencrypt"}),
                true,
                vec![
                    (
                        s("shop-tls"),
                        vec![
                            s("shop.example.com"),
                            s("www.shop.example.com"),
                            s("admin.example.com"),
                        ],
                        s("local"),
                        IssuerKind::Issuer,
                    ),
                    (
                        s("api-tls"),
                        vec![s("api.example.com")],
                        s("local"),
                        IssuerKind::Issuer,
                    ),
                ],
            ),
        ];
        for (annotations, cert_manager, expected) in cases {
            let e = certificates_for(&ingress(annotations.clone(), tls.clone()), cert_manager);
            assert_eq!(
                summary(&e),
                expected,
                "{annotations} cert-manager={cert_manager}"
            );
            assert!(e.problems.is_empty(), "{:?}", e.problems);
        }
    }

    #[test]
    fn certificates_are_owned_and_labelled() {
        let e = certificates_for(
            &ingress(
                json!({CLUSTER_ISSUER: "letsencrypt"}),
                json!([{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]),
            ),
            true,
        );
        let c = &e.certificates[0];
        assert_eq!(c.metadata.namespace.as_deref(), Some("web"));
        assert_eq!(c.spec.secret_name, "shop-tls");
        let owner = &c.metadata.owner_references.as_ref().expect("owned")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Ingress", "ing-1")
        );
        assert_eq!(
            c.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(INGRESS_LABEL))
                .map(String::as_str),
            Some("shop")
        );
        let value = serde_json::to_value(c).expect("serializes");
        assert_eq!(value["apiVersion"], "switchyard.dev/v1alpha1");
        assert_eq!(value["kind"], "Certificate");
        assert_eq!(c.spec.validate(), Ok(()));

        // A Certificate it no longer asks for is stale; one it does not own is never touched.
        let mut old = c.clone();
        old.metadata.name = Some("old-tls".into());
        let mut foreign = old.clone();
        foreign.metadata.name = Some("foreign-tls".into());
        foreign.metadata.owner_references = None;
        let existing = vec![c.clone(), old, foreign];
        assert_eq!(stale(&existing, "ing-1", &e), vec!["old-tls"]);
        assert_eq!(
            stale(&existing, "ing-1", &Expansion::default()),
            vec!["shop-tls", "old-tls"]
        );
    }

    #[test]
    fn problems_are_reported() {
        let both = ingress(
            json!({CLUSTER_ISSUER: "a", ISSUER: "b"}),
            json!([{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]),
        );
        let e = certificates_for(&both, true);
        assert!(e.certificates.is_empty());
        assert_eq!(e.problems.len(), 1);
        assert!(e.problems[0].contains("keep one"));

        let partial = ingress(
            json!({CLUSTER_ISSUER: "a"}),
            json!([
                {"hosts": ["shop.example.com"]},
                {"hosts": ["bad_host"], "secretName": "bad-tls"},
                {"hosts": ["ok.example.com"], "secretName": "ok-tls"},
            ]),
        );
        let e = certificates_for(&partial, true);
        assert_eq!(summary(&e).len(), 1);
        assert_eq!(e.certificates[0].metadata.name.as_deref(), Some("ok-tls"));
        assert_eq!(e.problems.len(), 3, "{:?}", e.problems);

        let no_tls = ingress(json!({CLUSTER_ISSUER: "a"}), json!([]));
        assert_eq!(certificates_for(&no_tls, true).problems.len(), 1);
    }
}
