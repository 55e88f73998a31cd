//! The TLS keys of the controller ConfigMap: `ssl-protocols`, `ssl-ciphers` (OpenSSL names,
//! mapped to what rustls implements), `ssl-prefer-server-ciphers` and `use-http2` (ALPN).
//! rustls has no SSLv3, TLS 1.0 or 1.1 and no DHE or CBC suites: those are reported, never
//! silently dropped.

use rustls::CipherSuite;

/// A TLS protocol version rustls implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// How the listeners handshake; the default is ingress-nginx's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub versions: Vec<TlsVersion>,
    /// The TLS 1.2 suites in server preference order (OpenSSL's `ssl_ciphers` does not govern
    /// TLS 1.3, whose suites are always all on, as in nginx).
    pub tls12_suites: Vec<CipherSuite>,
    /// `ssl-prefer-server-ciphers` (ingress-nginx has it on).
    pub prefer_server_ciphers: bool,
    /// `use-http2`: offer `h2` by ALPN.
    pub http2: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            versions: vec![TlsVersion::Tls13, TlsVersion::Tls12],
            tls12_suites: OPENSSL_NAMES.iter().map(|(_, suite)| *suite).collect(),
            prefer_server_ciphers: true,
            http2: true,
        }
    }
}

/// The OpenSSL names of the TLS 1.2 suites rustls has, in ingress-nginx's default order.
const OPENSSL_NAMES: &[(&str, CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// `ssl-protocols`: space-separated, e.g. `TLSv1.2 TLSv1.3`. Versions rustls lacks are
/// returned as the second value; `Err` when no usable version is left.
pub fn parse_protocols(value: &str) -> Result<(Vec<TlsVersion>, Vec<String>), String> {
    let mut versions = Vec::new();
    let mut unsupported = Vec::new();
    for word in value.split_whitespace() {
        match word {
            "TLSv1.3" => versions.push(TlsVersion::Tls13),
            "TLSv1.2" => versions.push(TlsVersion::Tls12),
            "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => unsupported.push(word.to_owned()),
            other => return Err(format!("{other:?} is not an SSL/TLS protocol name")),
        }
    }
    versions.sort_by_key(|v| *v == TlsVersion::Tls12);
    versions.dedup();
    if versions.is_empty() {
        return Err("names neither TLSv1.2 nor TLSv1.3, the versions rustls implements".into());
    }
    Ok((versions, unsupported))
}

/// `ssl-ciphers`: an OpenSSL cipher list separated by `:`. The names of suites rustls has are
/// taken in order; everything else (other suites, keywords such as `HIGH`, `!` exclusions) is
/// returned as the second value. `Err` when no usable suite is left.
pub fn parse_ciphers(value: &str) -> Result<(Vec<CipherSuite>, Vec<String>), String> {
    let mut suites = Vec::new();
    let mut unsupported = Vec::new();
    for name in value.split([':', ',', ' ']).filter(|n| !n.is_empty()) {
        match OPENSSL_NAMES.iter().find(|(known, _)| *known == name) {
            Some((_, suite)) if !suites.contains(suite) => suites.push(*suite),
            Some(_) => {}
            None => unsupported.push(name.to_owned()),
        }
    }
    if suites.is_empty() {
        return Err(format!(
            "names none of the TLS 1.2 suites rustls implements ({})",
            OPENSSL_NAMES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(":")
        ));
    }
    Ok((suites, unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_rustls_lacks_are_reported_and_the_rest_kept() {
        assert_eq!(
            parse_protocols("TLSv1.2 TLSv1.3"),
            Ok((vec![TlsVersion::Tls13, TlsVersion::Tls12], vec![]))
        );
        assert_eq!(
            parse_protocols("TLSv1 TLSv1.1 TLSv1.2"),
            Ok((
                vec![TlsVersion::Tls12],
                vec!["TLSv1".into(), "TLSv1.1".into()]
            ))
        );
        assert!(parse_protocols("TLSv1.1").is_err());
        assert!(parse_protocols("TLSv9").is_err());
    }

    #[test]
    fn openssl_cipher_names_map_to_rustls_suites() {
        let (suites, unsupported) = parse_ciphers(
            "ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:!aNULL",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            suites,
            [
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            ]
        );
        assert_eq!(unsupported, ["DHE-RSA-AES128-GCM-SHA256", "!aNULL"]);
        assert!(parse_ciphers("HIGH:!aNULL:!MD5").is_err());
    }
}
