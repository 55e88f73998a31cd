//! `proxy-ssl-*`: TLS to the upstream (client certificate, CA verification, SNI, protocols,
//! suites), parsed and validated at compile time and compiled with the Secret into an
//! [`UpstreamTls`].

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::auth_tls::SecretRef;
use super::canary::PREFIX;
use super::memo::{data, fingerprint};
use super::policy::Finding;
use crate::model::Severity;
use crate::trust::TrustStore;
use crate::upstream_tls::{UpstreamTls, VerifyUpstream};

const NAMES: &[&str] = &[
    "proxy-ssl-secret",
    "proxy-ssl-verify",
    "proxy-ssl-verify-depth",
    "proxy-ssl-name",
    "proxy-ssl-server-name",
    "proxy-ssl-protocols",
    "proxy-ssl-ciphers",
];

pub fn handles(name: &str) -> bool {
    NAMES.contains(&name)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tls12,
    Tls13,
}

/// The `proxy-ssl-*` annotations of one Ingress.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProxySslSpec {
    pub secret: SecretRef,
    pub verify: bool,
    pub depth: u8,
    pub name: Option<String>,
    /// `proxy-ssl-server-name: on`: send the name as SNI.
    pub sni: bool,
    pub protocols: Vec<Protocol>,
    /// TLS 1.2 suites (IANA numbers) the ciphers select; `None`: all of rustls's.
    pub ciphers: Option<Vec<u16>>,
}

/// OpenSSL cipher names rustls implements (TLS 1.2; TLS 1.3 suites are not set by
/// `proxy_ssl_ciphers` in nginx either).
fn suite(name: &str) -> Option<rustls::CipherSuite> {
    use rustls::CipherSuite as S;
    Some(match name {
        "ECDHE-ECDSA-AES128-GCM-SHA256" => S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-ECDSA-AES256-GCM-SHA384" => S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-ECDSA-CHACHA20-POLY1305" => S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "ECDHE-RSA-AES128-GCM-SHA256" => S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-RSA-AES256-GCM-SHA384" => S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-RSA-CHACHA20-POLY1305" => S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        _ => return None,
    })
}

/// The spec, the findings, and why the Ingress's paths must fail closed.
pub fn parse(
    annotations: &BTreeMap<String, String>,
) -> (Option<ProxySslSpec>, Vec<Finding>, Option<String>) {
    let get = |name: &str| {
        annotations
            .get(&format!("{PREFIX}{name}"))
            .map(|v| v.trim())
    };
    let mut findings = Vec::new();
    let mut warn = |name: &str, message: String| {
        findings.push(Finding {
            annotation: format!("{PREFIX}{name}"),
            severity: Severity::Warning,
            reason: "InvalidAnnotation",
            message,
        });
    };
    let verify = match get("proxy-ssl-verify") {
        None | Some("off") => false,
        Some("on") => true,
        Some(v) => {
            warn(
                "proxy-ssl-verify",
                format!("{v:?} is not on or off; using off"),
            );
            false
        }
    };
    let Some(secret) = get("proxy-ssl-secret") else {
        if verify {
            let why = format!(
                "{PREFIX}proxy-ssl-verify is on but there is no proxy-ssl-secret with the CA to verify against"
            );
            return (None, findings, Some(why));
        }
        for name in NAMES.iter().filter(|n| get(n).is_some()) {
            warn(
                name,
                "has no effect without proxy-ssl-secret (as in ingress-nginx); ignored".to_owned(),
            );
        }
        return (None, findings, None);
    };
    let Some(secret) = SecretRef::parse(secret) else {
        let why =
            format!("{PREFIX}proxy-ssl-secret: {secret:?} is not a Secret name or namespace/name");
        return (None, findings, Some(why));
    };
    let depth = match get("proxy-ssl-verify-depth") {
        None => 1,
        Some(v) => match v.parse::<u8>() {
            Ok(0) => 1,
            Ok(d) => d,
            Err(_) => {
                warn(
                    "proxy-ssl-verify-depth",
                    format!("{v:?} is not a depth from 1 to 255; using 1"),
                );
                1
            }
        },
    };
    let name = get("proxy-ssl-name").and_then(|v| match ServerName::try_from(v) {
        Ok(_) if !v.is_empty() => Some(v.to_ascii_lowercase()),
        _ => {
            warn(
                "proxy-ssl-name",
                format!("{v:?} is not a server name; ignored"),
            );
            None
        }
    });
    let sni = match get("proxy-ssl-server-name") {
        None | Some("off") => false,
        Some("on") => true,
        Some(v) => {
            warn(
                "proxy-ssl-server-name",
                format!("{v:?} is not on or off; using off"),
            );
            false
        }
    };
    let mut protocols = Vec::new();
    if let Some(v) = get("proxy-ssl-protocols") {
        for word in v.split_whitespace() {
            match word {
                "TLSv1.2" => protocols.push(Protocol::Tls12),
                "TLSv1.3" => protocols.push(Protocol::Tls13),
                other => warn(
                    "proxy-ssl-protocols",
                    format!("{other:?} is not offered (only TLSv1.2 and TLSv1.3 are); left out"),
                ),
            }
        }
    }
    protocols.sort();
    protocols.dedup();
    if protocols.is_empty() {
        // ingress-nginx's default.
        protocols.push(Protocol::Tls12);
    }
    let ciphers = get("proxy-ssl-ciphers").and_then(|v| ciphers(v, &mut warn));
    let spec = ProxySslSpec {
        secret,
        verify,
        depth,
        name,
        sni,
        protocols,
        ciphers,
    };
    (Some(spec), findings, None)
}

/// The suites an OpenSSL cipher list names; keywords (`HIGH`, `!aNULL`, …) cannot be mapped
/// and are reported, leaving rustls's own (modern) suites.
fn ciphers(value: &str, warn: &mut impl FnMut(&str, String)) -> Option<Vec<u16>> {
    let mut chosen = Vec::new();
    let mut unmapped = Vec::new();
    for word in value.split([':', ',', ' ']).filter(|w| !w.is_empty()) {
        match suite(word) {
            Some(s) => chosen.push(u16::from(s)),
            None if word == "DEFAULT" => {}
            None => unmapped.push(word),
        }
    }
    if !unmapped.is_empty() {
        warn(
            "proxy-ssl-ciphers",
            format!(
                "{} cannot be mapped to a rustls suite; {}",
                unmapped.join(", "),
                if chosen.is_empty() {
                    "rustls's default suites are used"
                } else {
                    "only the named suites rustls has are used"
                }
            ),
        );
    }
    (!chosen.is_empty()).then_some(chosen)
}

/// The Secret's client certificate (`tls.crt`/`tls.key`, when present) and CA (`ca.crt`,
/// required with `proxy-ssl-verify: on`), with the settings, compiled.
pub fn build(spec: &ProxySslSpec, secret: &Secret) -> Result<UpstreamTls, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(chosen) = &spec.ciphers {
        provider.cipher_suites.retain(|s| {
            s.version() == &rustls::version::TLS13 || chosen.contains(&u16::from(s.suite()))
        });
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = spec
        .protocols
        .iter()
        .map(|p| match p {
            Protocol::Tls12 => &rustls::version::TLS12,
            Protocol::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)
        .map_err(|err| format!("the protocols and ciphers leave nothing usable: {err}"))?;
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = if spec.verify {
        let ca =
            data(secret, "ca.crt").ok_or("proxy-ssl-verify is on but the Secret has no ca.crt")?;
        let trust = TrustStore::from_pem(ca, None).map_err(|err| err.to_string())?;
        Arc::new(VerifyUpstream::new(trust, spec.depth))
    } else {
        Arc::new(crate::proxy::AnyServerCertificate::new())
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (data(secret, "tls.crt"), data(secret, "tls.key")) {
        (Some(crt), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(crt)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| format!("tls.crt is not valid PEM: {err}"))?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|err| format!("tls.key is not valid PEM: {err}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| format!("the client certificate is unusable: {err}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.enable_sni = spec.sni;
    let name = spec
        .name
        .as_deref()
        .map(|n| ServerName::try_from(n.to_owned()))
        .transpose()
        .map_err(|err| format!("proxy-ssl-name: {err}"))?;
    Ok(UpstreamTls::new(config, name))
}

pub fn secret_fingerprint(secret: &Secret) -> u64 {
    fingerprint(secret, &["tls.crt", "tls.key", "ca.crt"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn settings_parse_with_ingress_nginx_defaults() {
        let (spec, findings, closed) = parse(&annotations(&[
            ("proxy-ssl-secret", "shop/upstream"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-verify-depth", "2"),
            ("proxy-ssl-name", "api.internal"),
            ("proxy-ssl-server-name", "on"),
            ("proxy-ssl-protocols", "TLSv1.3 TLSv1.2 TLSv1.1"),
            (
                "proxy-ssl-ciphers",
                "ECDHE-RSA-AES128-GCM-SHA256:HIGH:!aNULL",
            ),
        ]));
        assert!(closed.is_none());
        let spec = spec.unwrap_or_else(|| panic!("a spec"));
        assert!(spec.verify && spec.sni && spec.depth == 2);
        assert_eq!(spec.name.as_deref(), Some("api.internal"));
        assert_eq!(spec.protocols, [Protocol::Tls12, Protocol::Tls13]);
        assert_eq!(spec.ciphers.as_ref().map(Vec::len), Some(1));
        let named: Vec<&str> = findings.iter().map(|f| f.annotation.as_str()).collect();
        assert_eq!(
            named,
            [
                "nginx.ingress.kubernetes.io/proxy-ssl-protocols",
                "nginx.ingress.kubernetes.io/proxy-ssl-ciphers"
            ]
        );

        let (spec, findings, _) = parse(&annotations(&[("proxy-ssl-secret", "upstream")]));
        let spec = spec.unwrap_or_else(|| panic!("a spec"));
        assert!(findings.is_empty());
        assert!(!spec.verify && !spec.sni && spec.depth == 1 && spec.ciphers.is_none());
        assert_eq!(spec.protocols, [Protocol::Tls12]);
    }

    #[test]
    fn verification_that_cannot_happen_closes_the_paths() {
        let (spec, _, closed) = parse(&annotations(&[("proxy-ssl-verify", "on")]));
        assert!(spec.is_none() && closed.is_some_and(|c| c.contains("proxy-ssl-verify")));
        let (_, findings, closed) = parse(&annotations(&[("proxy-ssl-name", "x.internal")]));
        assert!(closed.is_none() && findings.len() == 1);
    }
}
