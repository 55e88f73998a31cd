//! The objects a Certificate makes, built without IO: the HTTP-01 challenge Ingresses (the
//! contract with the proxy in DESIGN.md, "Where the operator and the proxy meet") and the
//! `kubernetes.io/tls` Secret.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use switchyard_crds::challenge::{CHALLENGE_LABEL, CHALLENGE_PREFIX, RESPONSE_ANNOTATION};
use switchyard_crds::{Certificate, Http01Ingress};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::secret::{CERTIFICATE_NAME, ISSUER_KIND, ISSUER_NAME};
use crate::rollout::expand::{fnv1a, shorten};

/// The label on every challenge Ingress naming its Certificate (shortened with a hash when too
/// long for a label value), so the controller finds and removes them.
pub const CERTIFICATE_LABEL: &str = "switchyard.dev/certificate";
/// The legacy class annotation, for a solver with `class:` (cert-manager's field).
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The backend of challenge Ingresses: the operator's solver Service (`--acme-solver-service`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SolverBackend {
    pub service: String,
    pub port: u16,
}

impl Default for SolverBackend {
    /// The chart's solver Service name for a release called `switchyard`.
    fn default() -> Self {
        SolverBackend {
            service: "switchyard-acme-solver".into(),
            port: 8089,
        }
    }
}

/// One token to serve: `key_authorization` at `http://<dns_name>/.well-known/acme-challenge/<token>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presented<'a> {
    pub dns_name: &'a str,
    pub token: &'a str,
    pub key_authorization: &'a str,
}

/// The value of [`CERTIFICATE_LABEL`] for a Certificate name.
pub fn certificate_label(name: &str) -> String {
    shorten(name, 63)
}

/// The challenge Ingress name for one DNS name of a Certificate: stable across orders, so a new
/// token replaces the old one in place.
pub fn challenge_ingress_name(certificate: &str, dns_name: &str) -> String {
    shorten(&format!("{certificate}-acme-{:08x}", fnv1a(dns_name)), 253)
}

/// The owner reference that makes `certificate` the controller of a child.
pub fn owner_reference(certificate: &Certificate) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: Certificate::api_version(&()).into_owned(),
        kind: Certificate::kind(&()).into_owned(),
        name: certificate.metadata.name.clone()?,
        uid: certificate.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The challenge Ingress for one token: labelled as a challenge and with the key authorization
/// in its annotation (our proxy answers from these), one Exact path on that one host, the
/// solver's class, the solver Service as backend (for any other controller), owned by the
/// Certificate.
pub fn challenge_ingress(
    certificate: &Certificate,
    challenge: &Presented<'_>,
    solver: Option<&Http01Ingress>,
    backend: &SolverBackend,
) -> Ingress {
    let name = certificate.metadata.name.clone().unwrap_or_default();
    let mut annotations = BTreeMap::from([(
        RESPONSE_ANNOTATION.to_string(),
        challenge.key_authorization.to_string(),
    )]);
    if let Some(class) = solver.and_then(|s| s.class.clone()) {
        annotations.insert(LEGACY_CLASS_ANNOTATION.to_string(), class);
    }
    Ingress {
        metadata: ObjectMeta {
            name: Some(challenge_ingress_name(&name, challenge.dns_name)),
            namespace: certificate.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([
                (CHALLENGE_LABEL.to_string(), "true".to_string()),
                (CERTIFICATE_LABEL.to_string(), certificate_label(&name)),
            ])),
            annotations: Some(annotations),
            owner_references: owner_reference(certificate).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(IngressSpec {
            ingress_class_name: solver.and_then(|s| s.ingress_class_name.clone()),
            rules: Some(vec![IngressRule {
                host: Some(challenge.dns_name.to_string()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(format!("{CHALLENGE_PREFIX}{}", challenge.token)),
                        path_type: "Exact".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: backend.service.clone(),
                                port: Some(ServiceBackendPort {
                                    number: Some(i32::from(backend.port)),
                                    name: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        status: None,
    }
}

/// What goes into the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsData<'a> {
    /// Leaf then intermediates, PEM.
    pub chain_pem: &'a str,
    pub key_pem: &'a str,
    /// The root, when known.
    pub ca_pem: Option<&'a str>,
}

/// The `kubernetes.io/tls` Secret of a Certificate with our ownership annotations. No owner
/// reference: `secretPolicy` is applied on its own (see [`secret_owner_patch`]).
pub fn tls_secret(certificate: &Certificate, data: &TlsData<'_>) -> Secret {
    let spec = &certificate.spec;
    let annotations = BTreeMap::from([
        (
            CERTIFICATE_NAME.to_string(),
            certificate.metadata.name.clone().unwrap_or_default(),
        ),
        (ISSUER_NAME.to_string(), spec.issuer_ref.name.clone()),
        (
            ISSUER_KIND.to_string(),
            spec.issuer_ref.kind().as_str().to_string(),
        ),
    ]);
    let mut entries = BTreeMap::from([
        (
            "tls.crt".to_string(),
            ByteString(data.chain_pem.as_bytes().to_vec()),
        ),
        (
            "tls.key".to_string(),
            ByteString(data.key_pem.as_bytes().to_vec()),
        ),
    ]);
    if let Some(ca) = data.ca_pem {
        entries.insert("ca.crt".to_string(), ByteString(ca.as_bytes().to_vec()));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(spec.secret_name.clone()),
            namespace: certificate.metadata.namespace.clone(),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(entries),
        ..Secret::default()
    }
}

/// The Secret's owner references as `secretPolicy` wants them: with `Delete`, the Certificate
/// owns it (garbage collection removes it with the Certificate); with `Retain`, it does not.
/// Others' references are kept. `None`: already as wanted.
pub fn secret_owner_patch(
    secret_owners: &[OwnerReference],
    certificate: &Certificate,
    delete_with_certificate: bool,
) -> Option<Vec<OwnerReference>> {
    let ours = owner_reference(certificate)?;
    let has = secret_owners.iter().any(|o| o.uid == ours.uid);
    match (delete_with_certificate, has) {
        (true, false) => {
            let mut owners = secret_owners.to_vec();
            owners.push(OwnerReference {
                // The Secret is not the Certificate's child in the controller sense: another
                // controller's owner reference may be there, and only one may be the controller.
                controller: None,
                block_owner_deletion: None,
                ..ours
            });
            Some(owners)
        }
        (false, true) => Some(
            secret_owners
                .iter()
                .filter(|o| o.uid != ours.uid)
                .cloned()
                .collect(),
        ),
        _ => None,
    }
}

/// The root of a chain when the chain itself ends with it (a self-signed last certificate),
/// PEM: `ca.crt`. ACME CAs send no root, so this is `None` for them.
pub fn root_of_chain(chain_pem: &str) -> Option<String> {
    let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .ok()?;
    let last = ders.last()?;
    let (_, cert) = X509Certificate::from_der(last.as_ref()).ok()?;
    if cert.issuer() != cert.subject() || cert.verify_signature(None).is_err() {
        return None;
    }
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, last);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    Some(pem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::secret::tests::self_signed;
    use serde_json::json;
    use switchyard_crds::challenge::answers;

    fn certificate(name: &str) -> Certificate {
        serde_json::from_value(json!({
            "apiVersion": "switchyard.dev/v1alpha1",
            "kind": "Certificate",
            "metadata": {"name": name, "namespace": "shop", "uid": "u-1"},
            "spec": {
                "secretName": "shop-tls",
                "dnsNames": ["shop.example.com"],
                "issuerRef": {"kind": "ClusterIssuer", "name": "letsencrypt"}
            }
        }))
        .expect("valid Certificate")
    }

    #[test]
    fn a_challenge_ingress_follows_the_contract_the_proxy_reads() {
        let cert = certificate("shop");
        let presented = Presented {
            dns_name: "shop.example.com",
            token: "tok_1",
            key_authorization: "tok_1.thumb",
        };
        let solver = Http01Ingress {
            ingress_class_name: Some("switchyard".into()),
            class: None,
        };
        let ing = challenge_ingress(&cert, &presented, Some(&solver), &SolverBackend::default());
        // The proxy's own reading of it (shared code) finds exactly this answer.
        let found = answers(&ing).expect("a valid challenge");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].host, "shop.example.com");
        assert_eq!(found[0].token, "tok_1");
        assert_eq!(found[0].key_authorization, "tok_1.thumb");
        let value = serde_json::to_value(&ing).expect("serializes");
        assert_eq!(value["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(value["spec"]["ingressClassName"], "switchyard");
        assert_eq!(
            value["spec"]["rules"][0]["http"]["paths"][0],
            json!({
                "path": "/.well-known/acme-challenge/tok_1",
                "pathType": "Exact",
                "backend": {"service": {"name": "switchyard-acme-solver", "port": {"number": 8089}}}
            })
        );
        assert_eq!(value["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(value["metadata"]["labels"][CERTIFICATE_LABEL], "shop");

        // cert-manager's `class:` becomes the legacy annotation.
        let legacy = Http01Ingress {
            ingress_class_name: None,
            class: Some("nginx".into()),
        };
        let ing = challenge_ingress(&cert, &presented, Some(&legacy), &SolverBackend::default());
        let spec = ing.spec.as_ref().expect("spec");
        assert_eq!(spec.ingress_class_name, None);
        assert_eq!(
            ing.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
                .map(String::as_str),
            Some("nginx")
        );
    }

    #[test]
    fn names_are_stable_per_dns_name_and_fit() {
        let a = challenge_ingress_name("shop", "shop.example.com");
        assert_eq!(a, challenge_ingress_name("shop", "shop.example.com"));
        assert_ne!(a, challenge_ingress_name("shop", "www.shop.example.com"));
        assert!(a.starts_with("shop-acme-"));
        let long = "c".repeat(250);
        assert!(challenge_ingress_name(&long, "a.example.com").len() <= 253);
        assert!(certificate_label(&long).len() <= 63);
    }

    #[test]
    fn the_secret_carries_our_marks_and_the_policy_sets_owners() {
        let cert = certificate("shop");
        let secret = tls_secret(
            &cert,
            &TlsData {
                chain_pem: "CHAIN",
                key_pem: "KEY",
                ca_pem: None,
            },
        );
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        let annotations = secret.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations[CERTIFICATE_NAME], "shop");
        assert_eq!(annotations[ISSUER_NAME], "letsencrypt");
        assert_eq!(annotations[ISSUER_KIND], "ClusterIssuer");
        let data = secret.data.clone().unwrap_or_default();
        assert_eq!(data["tls.crt"].0, b"CHAIN");
        assert!(!data.contains_key("ca.crt"));
        assert_eq!(secret.metadata.owner_references, None);

        let added = secret_owner_patch(&[], &cert, true).expect("an owner to add");
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].uid, "u-1");
        assert_eq!(secret_owner_patch(&added, &cert, true), None);
        assert_eq!(secret_owner_patch(&added, &cert, false), Some(vec![]));
        assert_eq!(secret_owner_patch(&[], &cert, false), None);
    }

    #[test]
    fn a_self_signed_chain_names_its_root() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().expect("time");
        let (crt, _) = self_signed(
            &["a.example.com"],
            t("2026-01-01T00:00:00Z"),
            t("2026-04-01T00:00:00Z"),
            &switchyard_crds::PrivateKey::default(),
        );
        let root = root_of_chain(&crt).expect("self-signed");
        assert_eq!(
            CertificateDer::from_pem_slice(root.as_bytes()).ok(),
            CertificateDer::from_pem_slice(crt.as_bytes()).ok()
        );
        assert_eq!(root_of_chain("junk"), None);
    }
}
