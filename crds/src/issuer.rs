//! `Issuer` (namespaced) and `ClusterIssuer` (cluster-wide): where certificates come from. Both
//! have the same spec and status; field names follow cert-manager's.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The desired state of an Issuer: exactly one of acme or selfSigned.
// Several printcolumn(...) share `type_ = "string"`, which clippy mistakes for a repeat.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "Issuer",
    plural = "issuers",
    namespaced,
    status = "IssuerStatus",
    shortname = "swissuer",
    category = "switchyard",
    derive = "PartialEq",
    doc = "Signs Certificates in its own namespace, through an ACME CA (e.g. Let's Encrypt) or \
           self-signed. See ClusterIssuer for one that serves every namespace.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
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
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.acme) != has(self.selfSigned)",
    "message": "set exactly one of acme or selfSigned",
}]))]
pub struct IssuerSpec {
    /// Issue certificates from an ACME CA such as Let's Encrypt, validating names with HTTP-01
    /// through Switchyard's proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuer>,

    /// Issue self-signed certificates: no CA, nothing to validate. For local work and tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<SelfSignedIssuer>,
}

/// The desired state of a ClusterIssuer: exactly one of acme or selfSigned.
// Several printcolumn(...) share `type_ = "string"`, which clippy mistakes for a repeat.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "ClusterIssuer",
    plural = "clusterissuers",
    status = "IssuerStatus",
    shortname = "swclusterissuer",
    category = "switchyard",
    derive = "PartialEq",
    doc = "Signs Certificates in every namespace, through an ACME CA (e.g. Let's Encrypt) or \
           self-signed. Its Secrets (the ACME account key) live in the operator's \
           cluster-resource namespace.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
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
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.acme) != has(self.selfSigned)",
    "message": "set exactly one of acme or selfSigned",
}]))]
pub struct ClusterIssuerSpec {
    /// Issue certificates from an ACME CA such as Let's Encrypt, validating names with HTTP-01
    /// through Switchyard's proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuer>,

    /// Issue self-signed certificates: no CA, nothing to validate. For local work and tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<SelfSignedIssuer>,
}

/// An ACME issuer: a CA directory, an account, and how to solve challenges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeIssuer {
    /// The CA's ACME directory URL, e.g. `https://acme-v02.api.letsencrypt.org/directory`
    /// (Let's Encrypt staging: `https://acme-staging-v02.api.letsencrypt.org/directory`).
    pub server: String,

    /// Contact address registered with the account; the CA sends expiry warnings here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,

    /// The Secret that holds the ACME account key. Created on first registration and reused
    /// afterwards; a key of another type than ECDSA P-256 is never overwritten. For a
    /// ClusterIssuer the Secret lives in the operator's cluster-resource namespace.
    pub private_key_secret_ref: SecretKeySelector,

    /// Base64-encoded PEM bundle of CA certificates to trust for the ACME server's own TLS
    /// (a private CA, or Pebble in tests). Default: the system's trust roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,

    /// How to prove control of each name. Only HTTP-01 through an Ingress is offered; the first
    /// solver is used.
    #[schemars(length(min = 1))]
    pub solvers: Vec<AcmeSolver>,
}

/// A key in a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Name of the Secret.
    pub name: String,

    /// Key within the Secret. Default: tls.key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl SecretKeySelector {
    /// The key, with its default (`tls.key`) applied.
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("tls.key")
    }
}

/// One way to solve ACME challenges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeSolver {
    /// Answer HTTP-01 challenges: the operator creates a short-lived Ingress per token on
    /// /.well-known/acme-challenge/, which Switchyard's proxy answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http01: Option<Http01Solver>,
}

/// The HTTP-01 solver.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Http01Solver {
    /// The challenge Ingresses to create. Default: with the cluster's default IngressClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Http01Ingress>,
}

/// The challenge Ingresses of the HTTP-01 solver.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!(has(self.ingressClassName) && has(self.class))",
    "message": "set at most one of ingressClassName or class",
}]))]
pub struct Http01Ingress {
    /// The IngressClass of the challenge Ingresses (spec.ingressClassName), e.g. switchyard.
    /// It must route the names' HTTP traffic to a controller that serves the challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class_name: Option<String>,

    /// The same, as the legacy kubernetes.io/ingress.class annotation (cert-manager's class:
    /// field). Set at most one of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

/// The self-signed issuer; it has no settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SelfSignedIssuer {}

/// The observed state of an Issuer or ClusterIssuer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerStatus {
    /// Ready: the issuer can sign (for ACME: the account is registered, reason
    /// AccountRegistered; otherwise the CA's error or why the account Secret is unusable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::condition::conditions_schema")]
    pub conditions: Vec<Condition>,

    /// The ACME account, once registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuerStatus>,
}

/// The registered ACME account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeIssuerStatus {
    /// The account's URL at the CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,

    /// The contact address the account was registered (or last updated) with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_registered_email: Option<String>,
}

/// The kind of issuer a spec describes, once validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuerType<'a> {
    Acme(&'a AcmeIssuer),
    SelfSigned(&'a SelfSignedIssuer),
}

/// Why an Issuer or ClusterIssuer spec is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    #[error("spec must set exactly one of acme or selfSigned, not both")]
    BothTypes,
    #[error("spec must set one of acme or selfSigned")]
    NoType,
    #[error("spec.acme.server {server:?} must be an https:// URL of an ACME directory")]
    ServerNotHttps { server: String },
    #[error("spec.acme.email {email:?} is not an email address")]
    InvalidEmail { email: String },
    #[error("spec.acme.privateKeySecretRef.name must not be empty")]
    EmptyAccountSecret,
    #[error("spec.acme.solvers must list at least one solver")]
    NoSolvers,
    #[error("spec.acme.solvers[{index}] has no http01 solver (the only kind Switchyard offers)")]
    UnsupportedSolver { index: usize },
    #[error("spec.acme.solvers[{index}].http01.ingress sets both ingressClassName and class")]
    BothClasses { index: usize },
}

impl IssuerSpec {
    /// Checks the spec; on success says which kind of issuer it is.
    pub fn validate(&self) -> Result<IssuerType<'_>, IssuerError> {
        validate(self.acme.as_ref(), self.self_signed.as_ref())
    }
}

impl ClusterIssuerSpec {
    /// Checks the spec; on success says which kind of issuer it is.
    pub fn validate(&self) -> Result<IssuerType<'_>, IssuerError> {
        validate(self.acme.as_ref(), self.self_signed.as_ref())
    }
}

impl From<ClusterIssuerSpec> for IssuerSpec {
    fn from(spec: ClusterIssuerSpec) -> Self {
        IssuerSpec {
            acme: spec.acme,
            self_signed: spec.self_signed,
        }
    }
}

impl From<IssuerSpec> for ClusterIssuerSpec {
    fn from(spec: IssuerSpec) -> Self {
        ClusterIssuerSpec {
            acme: spec.acme,
            self_signed: spec.self_signed,
        }
    }
}

fn validate<'a>(
    acme: Option<&'a AcmeIssuer>,
    self_signed: Option<&'a SelfSignedIssuer>,
) -> Result<IssuerType<'a>, IssuerError> {
    match (acme, self_signed) {
        (Some(_), Some(_)) => Err(IssuerError::BothTypes),
        (None, None) => Err(IssuerError::NoType),
        (None, Some(self_signed)) => Ok(IssuerType::SelfSigned(self_signed)),
        (Some(acme), None) => acme.validate().map(|()| IssuerType::Acme(acme)),
    }
}

impl AcmeIssuer {
    /// Checks what the schema cannot: the URL scheme, the email's shape, the solvers.
    pub fn validate(&self) -> Result<(), IssuerError> {
        // RFC 8555 requires HTTPS for every ACME request.
        let host = self.server.strip_prefix("https://").unwrap_or_default();
        if host.is_empty() || host.starts_with('/') {
            return Err(IssuerError::ServerNotHttps {
                server: self.server.clone(),
            });
        }
        if let Some(email) = &self.email {
            let valid = email
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
                && !email.chars().any(char::is_whitespace);
            if !valid {
                return Err(IssuerError::InvalidEmail {
                    email: email.clone(),
                });
            }
        }
        if self.private_key_secret_ref.name.is_empty() {
            return Err(IssuerError::EmptyAccountSecret);
        }
        if self.solvers.is_empty() {
            return Err(IssuerError::NoSolvers);
        }
        for (index, solver) in self.solvers.iter().enumerate() {
            let http01 = solver
                .http01
                .as_ref()
                .ok_or(IssuerError::UnsupportedSolver { index })?;
            if let Some(Http01Ingress {
                ingress_class_name: Some(_),
                class: Some(_),
            }) = &http01.ingress
            {
                return Err(IssuerError::BothClasses { index });
            }
        }
        Ok(())
    }

    /// The HTTP-01 solver in use: the first one.
    pub fn http01(&self) -> Option<&Http01Solver> {
        self.solvers.iter().find_map(|s| s.http01.as_ref())
    }
}

impl Http01Ingress {
    /// The class named by either field, and whether it is the legacy annotation form.
    pub fn class(&self) -> Option<(&str, ClassField)> {
        match (&self.ingress_class_name, &self.class) {
            (Some(name), _) => Some((name, ClassField::IngressClassName)),
            (None, Some(name)) => Some((name, ClassField::Annotation)),
            (None, None) => None,
        }
    }
}

/// Where a challenge Ingress names its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassField {
    /// `spec.ingressClassName`.
    IngressClassName,
    /// The `kubernetes.io/ingress.class` annotation.
    Annotation,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> AcmeIssuer {
        AcmeIssuer {
            server: "https://acme-v02.api.letsencrypt.org/directory".into(),
            email: Some("ops@example.com".into()),
            private_key_secret_ref: SecretKeySelector {
                name: "letsencrypt-account".into(),
                key: None,
            },
            ca_bundle: None,
            solvers: vec![AcmeSolver {
                http01: Some(Http01Solver {
                    ingress: Some(Http01Ingress {
                        ingress_class_name: Some("switchyard".into()),
                        class: None,
                    }),
                }),
            }],
        }
    }

    fn with_acme(acme: AcmeIssuer) -> IssuerSpec {
        IssuerSpec {
            acme: Some(acme),
            self_signed: None,
        }
    }

    #[test]
    fn exactly_one_type() {
        let spec = with_acme(acme());
        assert!(matches!(spec.validate(), Ok(IssuerType::Acme(_))));

        let self_signed = IssuerSpec {
            acme: None,
            self_signed: Some(SelfSignedIssuer {}),
        };
        assert!(matches!(
            self_signed.validate(),
            Ok(IssuerType::SelfSigned(_))
        ));

        let both = IssuerSpec {
            acme: Some(acme()),
            self_signed: Some(SelfSignedIssuer {}),
        };
        assert_eq!(both.validate(), Err(IssuerError::BothTypes));

        let neither = ClusterIssuerSpec {
            acme: None,
            self_signed: None,
        };
        assert_eq!(neither.validate(), Err(IssuerError::NoType));
    }

    #[test]
    fn refuses_bad_acme_settings() {
        let cases = [
            (
                AcmeIssuer {
                    server: "http://acme.example.com/directory".into(),
                    ..acme()
                },
                IssuerError::ServerNotHttps {
                    server: "http://acme.example.com/directory".into(),
                },
            ),
            (
                AcmeIssuer {
                    server: "https://".into(),
                    ..acme()
                },
                IssuerError::ServerNotHttps {
                    server: "https://".into(),
                },
            ),
            (
                AcmeIssuer {
                    email: Some("ops".into()),
                    ..acme()
                },
                IssuerError::InvalidEmail {
                    email: "ops".into(),
                },
            ),
            (
                AcmeIssuer {
                    private_key_secret_ref: SecretKeySelector {
                        name: String::new(),
                        key: None,
                    },
                    ..acme()
                },
                IssuerError::EmptyAccountSecret,
            ),
            (
                AcmeIssuer {
                    solvers: vec![],
                    ..acme()
                },
                IssuerError::NoSolvers,
            ),
            (
                AcmeIssuer {
                    solvers: vec![acme().solvers[0].clone(), AcmeSolver { http01: None }],
                    ..acme()
                },
                IssuerError::UnsupportedSolver { index: 1 },
            ),
            (
                AcmeIssuer {
                    solvers: vec![AcmeSolver {
                        http01: Some(Http01Solver {
                            ingress: Some(Http01Ingress {
                                ingress_class_name: Some("switchyard".into()),
                                class: Some("nginx".into()),
                            }),
                        }),
                    }],
                    ..acme()
                },
                IssuerError::BothClasses { index: 0 },
            ),
        ];
        for (acme, expected) in cases {
            assert_eq!(with_acme(acme).validate(), Err(expected));
        }
    }

    #[test]
    fn defaults_and_accessors() {
        let acme = acme();
        assert_eq!(acme.private_key_secret_ref.key(), "tls.key");
        let class = acme.http01().and_then(|h| h.ingress.as_ref()?.class());
        assert_eq!(class, Some(("switchyard", ClassField::IngressClassName)));
        let legacy = Http01Ingress {
            ingress_class_name: None,
            class: Some("nginx".into()),
        };
        assert_eq!(legacy.class(), Some(("nginx", ClassField::Annotation)));
        let cluster: ClusterIssuerSpec = with_acme(acme.clone()).into();
        assert_eq!(IssuerSpec::from(cluster), with_acme(acme));
    }
}
