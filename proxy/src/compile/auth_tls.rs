//! `auth-tls-*`: client certificate authentication settings, parsed and validated at compile
//! time, and compiled (with the Secret's `ca.crt` / `ca.crl`) into a [`ClientAuth`].

use std::collections::BTreeMap;

use http::HeaderValue;
use k8s_openapi::api::core::v1::Secret;
use regex::Regex;

use super::canary::PREFIX;
use super::memo::{data, fingerprint};
use super::policy::Finding;
use crate::client_auth::{ClientAuth, VerifyClient};
use crate::model::{ObjectKey, Severity};
use crate::trust::TrustStore;

/// A Secret named by an annotation: `name` (the Ingress's namespace) or `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretRef {
    pub namespace: Option<String>,
    pub name: String,
}

impl SecretRef {
    pub fn parse(value: &str) -> Option<Self> {
        // A DNS subdomain name: lower-case alphanumerics, `-` and `.`, alphanumeric at both ends.
        let label = |s: &str| {
            let edge =
                |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            s.len() <= 253
                && edge(s.as_bytes().first())
                && edge(s.as_bytes().last())
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        match value.split_once('/') {
            Some((ns, name)) if label(ns) && label(name) => Some(Self {
                namespace: Some(ns.to_owned()),
                name: name.to_owned(),
            }),
            None if label(value) => Some(Self {
                namespace: None,
                name: value.to_owned(),
            }),
            _ => None,
        }
    }

    /// The Secret's key, or why it may not be used: like ingress-nginx (without
    /// `allow-cross-namespace-resources`), only the Ingress's own namespace.
    pub fn resolve(&self, ingress_namespace: &str) -> Result<ObjectKey, String> {
        match &self.namespace {
            Some(ns) if ns != ingress_namespace => Err(format!(
                "the Secret {ns}/{} is in another namespace; cross-namespace Secrets are not supported",
                self.name
            )),
            _ => Ok(ObjectKey::new(ingress_namespace, self.name.clone())),
        }
    }
}

/// The `auth-tls-*` annotations of one Ingress.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuthTlsSpec {
    pub secret: SecretRef,
    pub verify: VerifyClient,
    pub depth: u8,
    pub pass_cert: bool,
    /// The `auth-tls-match-cn` pattern (validated).
    pub match_cn: Option<String>,
    /// The `auth-tls-error-page` target (validated).
    pub error_page: Option<String>,
}

const NAMES: &[&str] = &[
    "auth-tls-secret",
    "auth-tls-verify-client",
    "auth-tls-verify-depth",
    "auth-tls-pass-certificate-to-upstream",
    "auth-tls-error-page",
    "auth-tls-match-cn",
];

pub fn handles(name: &str) -> bool {
    NAMES.contains(&name)
}

/// The spec, the findings, and why the Ingress's paths must fail closed (a restriction that
/// cannot be honoured).
pub fn parse(
    annotations: &BTreeMap<String, String>,
) -> (Option<AuthTlsSpec>, Vec<Finding>, Option<String>) {
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
    let Some(secret) = get("auth-tls-secret") else {
        for name in NAMES.iter().filter(|n| get(n).is_some()) {
            warn(
                name,
                "has no effect without auth-tls-secret (as in ingress-nginx); ignored".to_owned(),
            );
        }
        return (None, findings, None);
    };
    let Some(secret) = SecretRef::parse(secret) else {
        let why =
            format!("{PREFIX}auth-tls-secret: {secret:?} is not a Secret name or namespace/name");
        return (None, findings, Some(why));
    };
    let verify = match get("auth-tls-verify-client") {
        None => VerifyClient::On,
        Some(v) => VerifyClient::parse(v).unwrap_or_else(|| {
            warn(
                "auth-tls-verify-client",
                format!("{v:?} is not on, off, optional or optional_no_ca; using on"),
            );
            VerifyClient::On
        }),
    };
    let depth = match get("auth-tls-verify-depth") {
        None => 1,
        Some(v) => match v.parse::<u8>() {
            Ok(0) => 1,
            Ok(d) => d,
            Err(_) => {
                warn(
                    "auth-tls-verify-depth",
                    format!("{v:?} is not a depth from 1 to 255; using 1"),
                );
                1
            }
        },
    };
    let pass_cert = match get("auth-tls-pass-certificate-to-upstream") {
        None => false,
        Some("true" | "True" | "TRUE" | "1") => true,
        Some("false" | "False" | "FALSE" | "0") => false,
        Some(v) => {
            warn(
                "auth-tls-pass-certificate-to-upstream",
                format!("{v:?} is not true or false; the certificate is not passed"),
            );
            false
        }
    };
    let error_page = get("auth-tls-error-page").and_then(|v| match error_page(v) {
        Ok(page) => Some(page.to_owned()),
        Err(why) => {
            warn(
                "auth-tls-error-page",
                format!("{why}; refused clients get a 400"),
            );
            None
        }
    });
    let mut closed = None;
    let match_cn = get("auth-tls-match-cn").and_then(|v| match match_cn(v) {
        Ok(_) => Some(v.to_owned()),
        Err(why) => {
            closed = Some(format!("{PREFIX}auth-tls-match-cn: {why}"));
            None
        }
    });
    let spec = AuthTlsSpec {
        secret,
        verify,
        depth,
        pass_cert,
        match_cn,
        error_page,
    };
    (closed.is_none().then_some(spec), findings, closed)
}

/// ingress-nginx's rule: `CN=` then a regular expression; the whole value is matched against
/// the subject DN.
fn match_cn(value: &str) -> Result<Regex, String> {
    if !value.starts_with("CN=") {
        return Err(format!("{value:?} does not start with CN="));
    }
    Regex::new(value).map_err(|err| format!("{value:?} is not a valid regular expression: {err}"))
}

/// ingress-nginx accepts an http(s) URL, a host with an optional path, or a path; a named
/// nginx location (`@name`) means nothing here.
fn error_page(value: &str) -> Result<&str, String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .unwrap_or(value);
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'/' | b':');
    if value.starts_with('@') {
        return Err(format!(
            "{value:?} names an nginx location, which Switchyard has not"
        ));
    }
    if rest.is_empty() || !rest.bytes().all(allowed) || HeaderValue::from_str(value).is_err() {
        return Err(format!("{value:?} is not a URL or a path"));
    }
    Ok(value)
}

/// The Secret's CA (and CRL) with the settings, compiled.
pub fn build(spec: &AuthTlsSpec, secret: &Secret) -> Result<ClientAuth, String> {
    let ca = data(secret, "ca.crt").ok_or("the Secret has no ca.crt")?;
    let trust = TrustStore::from_pem(ca, data(secret, "ca.crl")).map_err(|err| err.to_string())?;
    let match_cn = spec.match_cn.as_deref().map(match_cn).transpose()?;
    let error_page = spec
        .error_page
        .as_deref()
        .and_then(|p| HeaderValue::from_str(p).ok());
    Ok(ClientAuth::new(
        trust,
        spec.verify,
        spec.depth,
        spec.pass_cert,
        match_cn,
        error_page,
    ))
}

pub fn secret_fingerprint(secret: &Secret) -> u64 {
    fingerprint(secret, &["ca.crt", "ca.crl"])
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
    fn defaults_are_ingress_nginx_s() {
        let (spec, findings, closed) = parse(&annotations(&[("auth-tls-secret", "ns/ca")]));
        assert!(findings.is_empty() && closed.is_none());
        let spec = spec.unwrap_or_else(|| panic!("a spec"));
        assert_eq!(spec.verify, VerifyClient::On);
        assert_eq!(spec.depth, 1);
        assert!(!spec.pass_cert && spec.match_cn.is_none() && spec.error_page.is_none());
        assert_eq!(
            spec.secret
                .resolve("other")
                .map_err(|e| e.contains("cross-namespace")),
            Err(true)
        );
        assert_eq!(spec.secret.resolve("ns"), Ok(ObjectKey::new("ns", "ca")));
    }

    #[test]
    fn invalid_values_fall_back_safely_or_close() {
        let (spec, findings, closed) = parse(&annotations(&[
            ("auth-tls-secret", "ca"),
            ("auth-tls-verify-client", "maybe"),
            ("auth-tls-verify-depth", "-1"),
            ("auth-tls-error-page", "javascript:alert(1)"),
            ("auth-tls-pass-certificate-to-upstream", "yes"),
        ]));
        assert!(closed.is_none());
        assert_eq!(findings.len(), 4, "{findings:?}");
        let spec = spec.unwrap_or_else(|| panic!("a spec"));
        assert_eq!(
            (spec.verify, spec.depth, spec.pass_cert, spec.error_page),
            (VerifyClient::On, 1, false, None)
        );
        for (name, value) in [
            ("auth-tls-match-cn", "client"),
            ("auth-tls-match-cn", "CN=(unclosed"),
            ("auth-tls-secret", "../etc"),
        ] {
            let mut pairs = vec![("auth-tls-secret", "ca")];
            pairs.retain(|(n, _)| *n != name);
            pairs.push((name, value));
            let (spec, _, closed) = parse(&annotations(&pairs));
            assert!(spec.is_none(), "{name}: {value}");
            assert!(closed.unwrap_or_default().contains(name), "{name}");
        }
        let (spec, findings, closed) = parse(&annotations(&[("auth-tls-verify-client", "on")]));
        assert!(spec.is_none() && closed.is_none() && findings.len() == 1);
    }

    #[test]
    fn error_pages_are_urls_or_paths() {
        assert!(error_page("https://login.example/cert-help").is_ok());
        assert!(error_page("/errors/cert").is_ok());
        assert!(error_page("@named").is_err());
        assert!(error_page("https://x/\"><script>").is_err());
    }
}
