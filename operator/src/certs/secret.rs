//! What a `kubernetes.io/tls` Secret holds, read without IO: who owns it (annotations), the
//! leaf certificate's validity and names, and its key. [`decide`](super::decide) works on this.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;

/// The Certificate a Secret belongs to (our ownership mark).
pub const CERTIFICATE_NAME: &str = "switchyard.dev/certificate-name";
/// The issuer that signed the certificate in a Secret.
pub const ISSUER_NAME: &str = "switchyard.dev/issuer-name";
/// `Issuer` or `ClusterIssuer`.
pub const ISSUER_KIND: &str = "switchyard.dev/issuer-kind";
/// Annotations with this prefix mean cert-manager owns the Secret.
pub const CERT_MANAGER_PREFIX: &str = "cert-manager.io/";

/// The key algorithm of a certificate, as read from its public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Ecdsa { bits: u32 },
    Rsa { bits: u32 },
    Ed25519,
    Other,
}

/// The leaf certificate found in `tls.crt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// The DNS names among the subject alternative names, as written in the certificate.
    pub dns_names: Vec<String>,
    pub key_kind: KeyKind,
    /// Whether `tls.key` is the private half of the certificate's public key.
    pub key_matches: bool,
}

/// Why the Secret's certificate cannot be used as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertProblem {
    /// No `tls.crt` (or an empty one).
    Missing,
    /// `tls.crt` is not a readable PEM X.509 certificate.
    Unreadable(String),
}

/// What the Secret holds, as far as the Certificate controller cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretState {
    /// `switchyard.dev/certificate-name`, if present.
    pub certificate_name: Option<String>,
    pub issuer_name: Option<String>,
    pub issuer_kind: Option<String>,
    /// Names of the `cert-manager.io/*` annotations, sorted.
    pub cert_manager_annotations: Vec<String>,
    pub certificate: Result<CertInfo, CertProblem>,
    /// `tls.key` as PEM text, when present and UTF-8 (for `rotationPolicy: Never`).
    pub key_pem: Option<String>,
}

impl SecretState {
    /// Reads a Secret object.
    pub fn from_secret(secret: &Secret) -> Self {
        let empty = BTreeMap::new();
        let annotations = secret.metadata.annotations.as_ref().unwrap_or(&empty);
        let data = secret.data.as_ref();
        let get = |key: &str| data.and_then(|d| d.get(key)).map(|b| b.0.as_slice());
        Self::from_parts(annotations, get("tls.crt"), get("tls.key"))
    }

    /// Reads the parts of a Secret that matter.
    pub fn from_parts(
        annotations: &BTreeMap<String, String>,
        tls_crt: Option<&[u8]>,
        tls_key: Option<&[u8]>,
    ) -> Self {
        let key_pem = tls_key
            .filter(|k| !k.is_empty())
            .and_then(|k| std::str::from_utf8(k).ok())
            .map(str::to_owned);
        SecretState {
            certificate_name: annotations.get(CERTIFICATE_NAME).cloned(),
            issuer_name: annotations.get(ISSUER_NAME).cloned(),
            issuer_kind: annotations.get(ISSUER_KIND).cloned(),
            cert_manager_annotations: annotations
                .keys()
                .filter(|k| k.starts_with(CERT_MANAGER_PREFIX))
                .cloned()
                .collect(),
            certificate: match tls_crt.filter(|c| !c.is_empty()) {
                None => Err(CertProblem::Missing),
                Some(pem) => parse_leaf(pem, key_pem.as_deref()),
            },
            key_pem,
        }
    }
}

/// Parses the first certificate of a PEM chain (the leaf); `key_pem` is checked against it.
pub fn parse_leaf(chain_pem: &[u8], key_pem: Option<&str>) -> Result<CertInfo, CertProblem> {
    let unreadable = |what: String| CertProblem::Unreadable(what);
    let der: CertificateDer<'static> = CertificateDer::pem_slice_iter(chain_pem)
        .next()
        .ok_or_else(|| unreadable("no PEM CERTIFICATE block".into()))?
        .map_err(|e| unreadable(format!("PEM: {e}")))?;
    let (_, cert) =
        X509Certificate::from_der(der.as_ref()).map_err(|e| unreadable(format!("X.509: {e}")))?;
    let time = |t: i64| Timestamp::from_second(t).map_err(|e| unreadable(format!("time: {e}")));
    let not_before = time(cert.validity().not_before.timestamp())?;
    let not_after = time(cert.validity().not_after.timestamp())?;
    let dns_names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_string()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(unreadable(format!("subjectAltName: {e}"))),
    };
    let spki = cert.public_key();
    let key_kind = if spki.algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ED25519 {
        KeyKind::Ed25519
    } else {
        match spki.parsed() {
            Ok(PublicKey::EC(point)) => KeyKind::Ecdsa {
                bits: u32::try_from(point.key_size()).unwrap_or(0),
            },
            Ok(PublicKey::RSA(rsa)) => KeyKind::Rsa {
                bits: u32::try_from(rsa.key_size()).unwrap_or(0),
            },
            _ => KeyKind::Other,
        }
    };
    // The raw public key in the certificate equals rcgen's raw public key for EC, Ed25519 and
    // RSA alike (the BIT STRING contents), so one comparison covers all three.
    let key_matches = key_pem
        .and_then(|pem| rcgen::KeyPair::from_pem(pem).ok())
        .is_some_and(|pair| pair.public_key_raw() == spki.subject_public_key.data.as_ref());
    Ok(CertInfo {
        not_before,
        not_after,
        dns_names,
        key_kind,
        key_matches,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::certs::key::CertKey;
    use switchyard_crds::{KeyAlgorithm, PrivateKey};

    /// A self-signed certificate for tests, with its key.
    pub(crate) fn self_signed(
        names: &[&str],
        not_before: Timestamp,
        not_after: Timestamp,
        key: &PrivateKey,
    ) -> (String, String) {
        let key = CertKey::generate(key).expect("key");
        let pem = key.to_pem();
        let pair = rcgen::KeyPair::from_pem(&pem).expect("pair");
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let t = |ts: Timestamp| {
            rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(ts.as_second() as u64)
        };
        params.not_before = t(not_before);
        params.not_after = t(not_after);
        let cert = params.self_signed(&pair).expect("cert");
        (cert.pem(), pem)
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn reads_validity_names_and_key() {
        let (crt, key) = self_signed(
            &["a.example.com", "b.example.com"],
            ts("2026-01-01T00:00:00Z"),
            ts("2026-04-01T00:00:00Z"),
            &PrivateKey::default(),
        );
        let mut annotations = BTreeMap::new();
        annotations.insert(CERTIFICATE_NAME.to_string(), "shop".to_string());
        annotations.insert("cert-manager.io/issuer-name".to_string(), "x".to_string());
        let state =
            SecretState::from_parts(&annotations, Some(crt.as_bytes()), Some(key.as_bytes()));
        assert_eq!(state.certificate_name.as_deref(), Some("shop"));
        assert_eq!(
            state.cert_manager_annotations,
            ["cert-manager.io/issuer-name"]
        );
        let info = state.certificate.expect("parsed");
        assert_eq!(info.not_before, ts("2026-01-01T00:00:00Z"));
        assert_eq!(info.not_after, ts("2026-04-01T00:00:00Z"));
        assert_eq!(info.dns_names, ["a.example.com", "b.example.com"]);
        assert_eq!(info.key_kind, KeyKind::Ecdsa { bits: 256 });
        assert!(info.key_matches);
    }

    #[test]
    fn notices_a_foreign_key_and_other_algorithms() {
        let window = (ts("2026-01-01T00:00:00Z"), ts("2026-04-01T00:00:00Z"));
        let p384 = PrivateKey {
            algorithm: Some(KeyAlgorithm::Ecdsa),
            size: Some(384),
            rotation_policy: None,
        };
        let (crt, _) = self_signed(&["a.example.com"], window.0, window.1, &p384);
        let (_, other_key) = self_signed(&["a.example.com"], window.0, window.1, &p384);
        let info = parse_leaf(crt.as_bytes(), Some(&other_key)).expect("parsed");
        assert_eq!(info.key_kind, KeyKind::Ecdsa { bits: 384 });
        assert!(!info.key_matches);

        let ed = PrivateKey {
            algorithm: Some(KeyAlgorithm::Ed25519),
            ..PrivateKey::default()
        };
        let (crt, key) = self_signed(&["a.example.com"], window.0, window.1, &ed);
        let info = parse_leaf(crt.as_bytes(), Some(&key)).expect("parsed");
        assert_eq!(info.key_kind, KeyKind::Ed25519);
        assert!(info.key_matches);
    }

    #[test]
    fn missing_and_garbage() {
        let none = BTreeMap::new();
        assert_eq!(
            SecretState::from_parts(&none, None, None).certificate,
            Err(CertProblem::Missing)
        );
        assert!(matches!(
            SecretState::from_parts(&none, Some(b"junk"), None).certificate,
            Err(CertProblem::Unreadable(_))
        ));
    }
}
