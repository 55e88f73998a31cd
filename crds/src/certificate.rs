//! `Certificate`: a TLS certificate kept in a `kubernetes.io/tls` Secret, issued and renewed by
//! an Issuer or ClusterIssuer. Field names follow cert-manager's so its users feel at home.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::{DURATION_PATTERN, DurationError, parse_duration};
use crate::names::{HOST_PATTERN, is_valid_host};

/// The desired state of a Certificate.
// Several printcolumn(...) share `type_ = "string"`, which clippy mistakes for a repeat.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "Certificate",
    plural = "certificates",
    namespaced,
    status = "CertificateStatus",
    shortname = "swcert",
    category = "switchyard",
    derive = "PartialEq",
    doc = "A TLS certificate for a set of DNS names, issued through an Issuer or ClusterIssuer \
           (ACME, e.g. Let's Encrypt, or self-signed) into a kubernetes.io/tls Secret and \
           renewed before it expires.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Secret", type_ = "string", json_path = ".spec.secretName"),
    printcolumn(name = "Issuer", type_ = "string", json_path = ".spec.issuerRef.name"),
    printcolumn(name = "Not After", type_ = "string", json_path = ".status.notAfter"),
    printcolumn(name = "Renewal", type_ = "string", json_path = ".status.renewalTime"),
    printcolumn(
        name = "Status",
        type_ = "string",
        priority = 1,
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// Name of the Secret, in this Certificate's namespace, that receives the certificate as
    /// tls.crt (leaf and chain), tls.key and, when known, ca.crt. Ingresses reference this name.
    /// Switchyard refuses to overwrite a Secret that another Certificate or tool owns.
    pub secret_name: String,

    /// The DNS names the certificate is valid for, e.g. [shop.example.com, www.shop.example.com].
    /// Each must be served through an Ingress for HTTP-01 validation to reach it. Wildcards
    /// (*.example.com) need DNS-01, which Switchyard does not offer: they fail with reason
    /// WildcardNeedsDNS01.
    #[schemars(length(min = 1), inner(pattern(HOST_PATTERN)))]
    pub dns_names: Vec<String>,

    /// The Issuer (in this namespace) or ClusterIssuer that signs the certificate.
    pub issuer_ref: IssuerRef,

    /// How long before expiry to renew, as a duration such as 720h (30 days). Default: at two
    /// thirds of the certificate's lifetime (day 60 of a 90-day certificate). status.renewalTime
    /// shows when that is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub renew_before: Option<String>,

    /// The private key to generate. Default: ECDSA P-256, a new key on every issuance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PrivateKey>,

    /// What happens to the Secret when this Certificate is deleted: Retain (default; Ingresses
    /// keep serving it until it expires) or Delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_policy: Option<SecretPolicy>,
}

/// A reference to the Issuer or ClusterIssuer that signs a certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// Issuer (default; in the same namespace) or ClusterIssuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<IssuerKind>,

    /// Name of the Issuer or ClusterIssuer.
    pub name: String,

    /// API group of the issuer. Only switchyard.dev (the default) is served; the field exists so
    /// that manifests written for cert-manager keep their shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl IssuerRef {
    /// The kind, with its default (`Issuer`) applied.
    pub fn kind(&self) -> IssuerKind {
        self.kind.unwrap_or_default()
    }

    /// Checks what the schema cannot; `field` is the path of this reference, for messages.
    pub fn validate(&self, field: &str) -> Result<(), IssuerRefError> {
        if self.name.is_empty() {
            return Err(IssuerRefError::EmptyName {
                field: field.to_owned(),
            });
        }
        match self.group.as_deref() {
            None | Some(crate::GROUP) => Ok(()),
            Some(group) => Err(IssuerRefError::UnsupportedGroup {
                field: field.to_owned(),
                group: group.to_owned(),
            }),
        }
    }
}

/// The kind of issuer a reference names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum IssuerKind {
    #[default]
    Issuer,
    ClusterIssuer,
}

impl IssuerKind {
    /// The kind's name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerKind::Issuer => "Issuer",
            IssuerKind::ClusterIssuer => "ClusterIssuer",
        }
    }
}

/// Why an issuer reference is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerRefError {
    #[error("{field}.name must not be empty")]
    EmptyName { field: String },
    #[error(
        "{field}.group {group:?} is not served by Switchyard: leave it out or use switchyard.dev"
    )]
    UnsupportedGroup { field: String, group: String },
}

/// The private key of a certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivateKey {
    /// Key algorithm: ECDSA (default), RSA or Ed25519.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<KeyAlgorithm>,

    /// Key size in bits. ECDSA: 256 (default), 384 or 521. RSA: 2048 (default), 3072 or 4096.
    /// Ignored for Ed25519.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,

    /// Always (default): a new key for every issuance, including renewals. Never: keep the key
    /// found in the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_policy: Option<RotationPolicy>,
}

impl PrivateKey {
    /// The algorithm, with its default applied.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm.unwrap_or_default()
    }

    /// The size in bits, with the algorithm's default applied (`None` for Ed25519).
    pub fn size(&self) -> Option<u32> {
        match self.algorithm() {
            KeyAlgorithm::Ecdsa => Some(self.size.unwrap_or(256)),
            KeyAlgorithm::Rsa => Some(self.size.unwrap_or(2048)),
            KeyAlgorithm::Ed25519 => None,
        }
    }

    /// The rotation policy, with its default applied.
    pub fn rotation_policy(&self) -> RotationPolicy {
        self.rotation_policy.unwrap_or_default()
    }
}

/// A private key algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum KeyAlgorithm {
    #[default]
    #[serde(rename = "ECDSA")]
    Ecdsa,
    #[serde(rename = "RSA")]
    Rsa,
    Ed25519,
}

/// When to generate a new private key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RotationPolicy {
    #[default]
    Always,
    Never,
}

/// What happens to the Secret when its Certificate is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SecretPolicy {
    #[default]
    Retain,
    Delete,
}

/// The observed state of a Certificate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// Ready: the Secret holds a valid certificate for the current spec (turns False the moment
    /// it expires). Issuing: an ACME order is in flight. The reason says why, e.g. Issued,
    /// RateLimited, WildcardNeedsDNS01, SecretConflict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::condition::conditions_schema")]
    pub conditions: Vec<Condition>,

    /// Start of the validity of the certificate in the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Time>,

    /// End of the validity of the certificate in the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,

    /// When the certificate will be renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<Time>,

    /// When the last issuance attempt failed; cleared by a successful issuance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,

    /// Failed issuance attempts in a row; the wait before the next one grows with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_issuance_attempts: Option<u32>,

    /// When the next issuance attempt is due after a failure (backoff, or the CA's Retry-After).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_time: Option<Time>,

    /// The ACME order in flight, recorded before anything else is done with it, so that a
    /// restarted operator carries it on instead of starting another. Cleared when the order
    /// ends (issued, failed or abandoned for a newer spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderReference>,

    /// The ACME authorizations of the current or last order, one per DNS name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["dnsName"]))]
    pub authorizations: Vec<AuthorizationStatus>,
}

/// The ACME order a Certificate has in flight (at most one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderReference {
    /// The order's URL at the CA.
    pub url: String,

    /// The Certificate's metadata.generation the order was created for; an order for an older
    /// generation is abandoned and a new one started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,

    /// When the order was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<Time>,
}

/// The state of the ACME authorization of one DNS name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationStatus {
    /// The DNS name being validated.
    pub dns_name: String,

    /// The authorization's state at the CA: Pending (the challenge is presented or being
    /// validated), Valid, Invalid, Deactivated, Expired or Revoked.
    pub state: AuthorizationState,

    /// The CA's error type when validation failed, e.g.
    /// urn:ietf:params:acme:error:unauthorized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,

    /// The CA's explanation of the failure, as it sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<String>,

    /// When this name was last presented to the CA for validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_time: Option<Time>,

    /// When this name will be tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_time: Option<Time>,
}

/// An ACME authorization state (RFC 8555, section 7.1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AuthorizationState {
    Pending,
    Valid,
    Invalid,
    Deactivated,
    Expired,
    Revoked,
}

/// Why a Certificate spec is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("spec.secretName must not be empty")]
    EmptySecretName,
    #[error("spec.dnsNames must name at least one DNS name")]
    NoDnsNames,
    #[error(
        "spec.dnsNames[{index}] {name:?} is not a valid DNS name (lower case, optionally *. in front)"
    )]
    InvalidDnsName { index: usize, name: String },
    #[error(transparent)]
    IssuerRef(#[from] IssuerRefError),
    #[error("spec.renewBefore: {0}")]
    RenewBefore(#[source] DurationError),
    #[error("spec.renewBefore must be longer than 0s")]
    ZeroRenewBefore,
    #[error("spec.privateKey.size {size} is not offered for {algorithm}: use {allowed}")]
    KeySize {
        algorithm: &'static str,
        size: u32,
        allowed: &'static str,
    },
}

impl CertificateSpec {
    /// Checks what the schema cannot say (or what a client may have skipped): the names, the
    /// issuer reference, the renewal duration and the key size.
    pub fn validate(&self) -> Result<(), CertificateError> {
        if self.secret_name.is_empty() {
            return Err(CertificateError::EmptySecretName);
        }
        if self.dns_names.is_empty() {
            return Err(CertificateError::NoDnsNames);
        }
        if let Some((index, name)) = self
            .dns_names
            .iter()
            .enumerate()
            .find(|(_, name)| !is_valid_host(name))
        {
            return Err(CertificateError::InvalidDnsName {
                index,
                name: name.clone(),
            });
        }
        self.issuer_ref.validate("spec.issuerRef")?;
        if self.renew_before()?.is_some_and(|d| d.is_zero()) {
            return Err(CertificateError::ZeroRenewBefore);
        }
        if let Some(key) = &self.private_key {
            let (algorithm, allowed, sizes): (_, _, &[u32]) = match key.algorithm() {
                KeyAlgorithm::Ecdsa => ("ECDSA", "256, 384 or 521", &[256, 384, 521]),
                KeyAlgorithm::Rsa => ("RSA", "2048, 3072 or 4096", &[2048, 3072, 4096]),
                KeyAlgorithm::Ed25519 => ("Ed25519", "", &[]),
            };
            if let Some(size) = key.size().filter(|size| !sizes.contains(size)) {
                return Err(CertificateError::KeySize {
                    algorithm,
                    size,
                    allowed,
                });
            }
        }
        Ok(())
    }

    /// `renewBefore` parsed; `None` when unset (renew at two thirds of the lifetime).
    pub fn renew_before(&self) -> Result<Option<std::time::Duration>, CertificateError> {
        self.renew_before
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(CertificateError::RenewBefore)
    }

    /// The private key settings, defaults applied where the spec has none.
    pub fn private_key(&self) -> PrivateKey {
        self.private_key.clone().unwrap_or_default()
    }

    /// The Secret policy, with its default (`Retain`) applied.
    pub fn secret_policy(&self) -> SecretPolicy {
        self.secret_policy.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CertificateSpec {
        CertificateSpec {
            secret_name: "shop-tls".into(),
            dns_names: vec!["shop.example.com".into(), "www.shop.example.com".into()],
            issuer_ref: IssuerRef {
                kind: Some(IssuerKind::ClusterIssuer),
                name: "letsencrypt".into(),
                group: None,
            },
            renew_before: Some("720h".into()),
            private_key: Some(PrivateKey {
                algorithm: Some(KeyAlgorithm::Ecdsa),
                size: Some(256),
                rotation_policy: Some(RotationPolicy::Always),
            }),
            secret_policy: Some(SecretPolicy::Retain),
        }
    }

    #[test]
    fn a_complete_spec_is_valid() {
        assert_eq!(spec().validate(), Ok(()));
        let minimal = CertificateSpec {
            renew_before: None,
            private_key: None,
            secret_policy: None,
            ..spec()
        };
        assert_eq!(minimal.validate(), Ok(()));
        assert_eq!(minimal.secret_policy(), SecretPolicy::Retain);
        assert_eq!(minimal.private_key().algorithm(), KeyAlgorithm::Ecdsa);
        assert_eq!(minimal.private_key().size(), Some(256));
        assert_eq!(minimal.renew_before(), Ok(None));
    }

    #[test]
    fn wildcards_are_names_too() {
        // Refusing them is the operator's job (it depends on the solvers), with its own reason.
        let wildcard = CertificateSpec {
            dns_names: vec!["*.example.com".into()],
            ..spec()
        };
        assert_eq!(wildcard.validate(), Ok(()));
    }

    #[test]
    fn refuses_bad_specs() {
        let cases = [
            (
                CertificateSpec {
                    secret_name: String::new(),
                    ..spec()
                },
                CertificateError::EmptySecretName,
            ),
            (
                CertificateSpec {
                    dns_names: vec![],
                    ..spec()
                },
                CertificateError::NoDnsNames,
            ),
            (
                CertificateSpec {
                    dns_names: vec!["ok.example.com".into(), "Bad.example.com".into()],
                    ..spec()
                },
                CertificateError::InvalidDnsName {
                    index: 1,
                    name: "Bad.example.com".into(),
                },
            ),
            (
                CertificateSpec {
                    renew_before: Some("0s".into()),
                    ..spec()
                },
                CertificateError::ZeroRenewBefore,
            ),
            (
                CertificateSpec {
                    private_key: Some(PrivateKey {
                        algorithm: Some(KeyAlgorithm::Rsa),
                        size: Some(1024),
                        rotation_policy: None,
                    }),
                    ..spec()
                },
                CertificateError::KeySize {
                    algorithm: "RSA",
                    size: 1024,
                    allowed: "2048, 3072 or 4096",
                },
            ),
            (
                CertificateSpec {
                    private_key: Some(PrivateKey {
                        algorithm: None,
                        size: Some(2048),
                        rotation_policy: None,
                    }),
                    ..spec()
                },
                CertificateError::KeySize {
                    algorithm: "ECDSA",
                    size: 2048,
                    allowed: "256, 384 or 521",
                },
            ),
        ];
        for (spec, expected) in cases {
            assert_eq!(spec.validate(), Err(expected));
        }
    }

    #[test]
    fn refuses_bad_durations_and_issuer_refs() {
        let bad_duration = CertificateSpec {
            renew_before: Some("30d".into()),
            ..spec()
        };
        assert!(matches!(
            bad_duration.validate(),
            Err(CertificateError::RenewBefore(
                DurationError::UnknownUnit { .. }
            ))
        ));

        let foreign = CertificateSpec {
            issuer_ref: IssuerRef {
                group: Some("cert-manager.io".into()),
                ..spec().issuer_ref
            },
            ..spec()
        };
        let err = foreign.validate().map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err(
                "spec.issuerRef.group \"cert-manager.io\" is not served by Switchyard: \
                 leave it out or use switchyard.dev"
                    .into()
            )
        );

        let unnamed = CertificateSpec {
            issuer_ref: IssuerRef {
                name: String::new(),
                ..spec().issuer_ref
            },
            ..spec()
        };
        assert_eq!(
            unnamed.validate(),
            Err(CertificateError::IssuerRef(IssuerRefError::EmptyName {
                field: "spec.issuerRef".into()
            }))
        );
    }

    #[test]
    fn ed25519_ignores_size() {
        let key = PrivateKey {
            algorithm: Some(KeyAlgorithm::Ed25519),
            size: Some(4096),
            rotation_policy: Some(RotationPolicy::Never),
        };
        assert_eq!(key.size(), None);
        let ed = CertificateSpec {
            private_key: Some(key),
            ..spec()
        };
        assert_eq!(ed.validate(), Ok(()));
    }
}
