//! Client certificate authentication (`auth-tls-*`), as nginx does it for a server: the TLS
//! handshake asks for a certificate (naming the trusted CAs) but does not fail without one; the
//! certificate is checked once per connection after the handshake, and each request is then
//! refused (400, or a redirect to the error page) or passed on with the `ssl-client-*` headers.
//! Everything here is built at compile time, except the per-connection check.

pub mod dn;

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use http::HeaderValue;
use regex::Regex;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, ServerConfig};

use crate::compile::tls_settings::TlsSettings;
use crate::trust::{TrustStore, openssl_reason};

/// `auth-tls-verify-client`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VerifyClient {
    /// A valid certificate is required.
    On,
    /// No certificate is asked for.
    Off,
    /// A certificate is asked for; without one the request passes, an invalid one is refused.
    Optional,
    /// As `Optional`, and a certificate from an unknown CA passes too (verify `FAILED:…`).
    OptionalNoCa,
}

impl VerifyClient {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "on" => Some(Self::On),
            "off" => Some(Self::Off),
            "optional" => Some(Self::Optional),
            "optional_no_ca" => Some(Self::OptionalNoCa),
            _ => None,
        }
    }
}

/// One host's client certificate authentication, compiled.
#[derive(Debug)]
pub struct ClientAuth {
    pub trust: TrustStore,
    pub verify: VerifyClient,
    /// `auth-tls-verify-depth`.
    pub depth: u8,
    /// `auth-tls-pass-certificate-to-upstream`.
    pub pass_cert: bool,
    /// `auth-tls-match-cn`: matched against the subject DN (as nginx's `$ssl_client_s_dn !~`).
    pub match_cn: Option<Regex>,
    /// `auth-tls-error-page`: where a refused client is redirected instead of a 400.
    pub error_page: Option<HeaderValue>,
    verifier: Arc<AskForCertificate>,
    /// The TLS configuration, for the ConfigMap's TLS settings it was made with.
    tls: ArcSwapOption<(TlsSettings, Arc<ServerConfig>)>,
}

/// A host's client authentication as compile found it.
#[derive(Clone, Debug)]
pub enum HostClientAuth {
    Ready(Arc<ClientAuth>),
    /// The Secret or its CA is missing or unusable: the host's requests answer 503.
    Unusable(Arc<str>),
}

impl ClientAuth {
    pub fn new(
        trust: TrustStore,
        verify: VerifyClient,
        depth: u8,
        pass_cert: bool,
        match_cn: Option<Regex>,
        error_page: Option<HeaderValue>,
    ) -> Self {
        let hints = trust
            .subjects
            .iter()
            .map(|s| DistinguishedName::in_sequence(s))
            .collect();
        Self {
            trust,
            verify,
            depth,
            pass_cert,
            match_cn,
            error_page,
            verifier: Arc::new(AskForCertificate::new(hints)),
            tls: ArcSwapOption::empty(),
        }
    }

    /// Whether handshakes for this host ask for a client certificate.
    pub fn asks_for_certificate(&self) -> bool {
        self.verify != VerifyClient::Off
    }

    /// The TLS configuration for this host's handshakes under `settings`, made from `make`
    /// (given the verifier that asks for a certificate) and kept with this authentication, so
    /// that its session cache is this host's alone; made again when the settings change.
    pub fn server_config(
        &self,
        settings: &TlsSettings,
        make: impl FnOnce(Arc<dyn ClientCertVerifier>) -> Option<Arc<ServerConfig>>,
    ) -> Option<Arc<ServerConfig>> {
        if let Some(current) = self.tls.load().as_deref()
            && current.0 == *settings
        {
            return Some(current.1.clone());
        }
        let config = make(self.verifier.clone())?;
        self.tls
            .store(Some(Arc::new((settings.clone(), config.clone()))));
        Some(config)
    }

    /// Checks what the client presented, once per connection.
    pub fn check(&self, chain: Option<&[CertificateDer<'_>]>, now: UnixTime) -> PeerCert {
        let Some((leaf, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return PeerCert::none();
        };
        let (outcome, verify) = match self.trust.verify(
            leaf,
            intermediates,
            self.depth,
            webpki::KeyUsage::client_auth(),
            now,
        ) {
            Ok(_) => (Outcome::Verified, HeaderValue::from_static("SUCCESS")),
            Err(err) => {
                let (reason, unknown_ca) = openssl_reason(&err);
                let tolerated = unknown_ca && self.verify == VerifyClient::OptionalNoCa;
                let value = HeaderValue::from_str(&format!("FAILED:{reason}"))
                    .unwrap_or_else(|_| HeaderValue::from_static("FAILED"));
                (Outcome::Failed { tolerated }, value)
            }
        };
        let (subject, issuer) = match x509_parser::parse_x509_certificate(leaf) {
            Ok((_, cert)) => (dn::rfc2253(cert.subject()), dn::rfc2253(cert.issuer())),
            Err(_) => (String::new(), String::new()),
        };
        let escaped = self
            .pass_cert
            .then(|| HeaderValue::from_str(&dn::escape_uri_component(&dn::pem(leaf))).ok())
            .flatten();
        PeerCert {
            outcome,
            verify,
            subject_header: header(&subject),
            issuer_header: header(&issuer),
            subject,
            escaped,
        }
    }

    /// Whether a client with this verdict may make requests here, and if not, why.
    pub fn admit(&self, peer: &PeerCert) -> Result<(), Refusal> {
        match (peer.outcome, self.verify) {
            (_, VerifyClient::Off) => {}
            (Outcome::NoCertificate, VerifyClient::On) => return Err(Refusal::NoCertificate),
            (Outcome::Failed { tolerated: false }, _) => return Err(Refusal::BadCertificate),
            _ => {}
        }
        match &self.match_cn {
            Some(regex) if !regex.is_match(&peer.subject) => Err(Refusal::Unauthorized),
            _ => Ok(()),
        }
    }
}

/// An empty DN is not sent at all (nginx leaves out a `proxy_set_header` whose value is empty).
fn header(text: &str) -> Option<HeaderValue> {
    if text.is_empty() {
        return None;
    }
    HeaderValue::from_str(text).ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Verified,
    NoCertificate,
    /// Failed verification; `tolerated` under `optional_no_ca` (unknown CA).
    Failed {
        tolerated: bool,
    },
}

/// What a connection's client certificate says, as the `ssl-client-*` headers carry it.
#[derive(Clone, Debug)]
pub struct PeerCert {
    pub outcome: Outcome,
    /// `ssl-client-verify`: `SUCCESS`, `NONE` or `FAILED:<reason>`.
    pub verify: HeaderValue,
    /// The subject DN (empty without a certificate), for `auth-tls-match-cn`.
    pub subject: String,
    pub subject_header: Option<HeaderValue>,
    pub issuer_header: Option<HeaderValue>,
    /// `ssl-client-cert`: the leaf's PEM, URI-escaped, with pass-certificate-to-upstream.
    pub escaped: Option<HeaderValue>,
}

impl PeerCert {
    pub fn none() -> Self {
        Self {
            outcome: Outcome::NoCertificate,
            verify: HeaderValue::from_static("NONE"),
            subject: String::new(),
            subject_header: None,
            issuer_header: None,
            escaped: None,
        }
    }
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// nginx's 496, answered as 400 "No required SSL certificate was sent".
    NoCertificate,
    /// nginx's 495, answered as 400 "The SSL certificate error".
    BadCertificate,
    /// `auth-tls-match-cn` did not match: 403.
    Unauthorized,
    /// The request names a host with client authentication other than the one the TLS
    /// handshake was made for: nginx's 421.
    Misdirected,
}

/// The handshake's side of client authentication: ask for a certificate, naming the CAs, and
/// accept the handshake with or without one (the handshake signature is still checked, so the
/// client holds the key of what it sent). The certificate itself is judged after the handshake,
/// so that a refusal is an HTTP answer, as in nginx, not a TLS alert.
#[derive(Debug)]
struct AskForCertificate {
    hints: Vec<DistinguishedName>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl AskForCertificate {
    fn new(hints: Vec<DistinguishedName>) -> Self {
        Self {
            hints,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for AskForCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    crate::trust::handshake_signatures!();
}

/// A connection's client authentication: the host's configuration the handshake was made
/// for, and what the client presented.
#[derive(Debug)]
pub struct ClientSession {
    pub auth: Arc<ClientAuth>,
    pub peer: PeerCert,
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
        ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
        RevokedCertParams, SerialNumber, date_time_ymd,
    };

    use super::*;

    fn fail<E: std::fmt::Display, T>(e: E) -> T {
        panic!("{e}")
    }

    struct Ca {
        issuer: Issuer<'static, KeyPair>,
        der: CertificateDer<'static>,
        pem: String,
    }

    fn ca(name: &str, parent: Option<&Ca>) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(fail);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap_or_else(fail);
        let cert = match parent {
            Some(parent) => params.signed_by(&key, &parent.issuer),
            None => params.self_signed(&key),
        }
        .unwrap_or_else(fail);
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn client(name: &str, serial: u64, issuer: &Ca) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(fail);
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap_or_else(fail);
        params
            .signed_by(&key, &issuer.issuer)
            .unwrap_or_else(fail)
            .der()
            .clone()
    }

    fn auth(ca: &Ca, crl: Option<&str>, verify: VerifyClient, depth: u8) -> ClientAuth {
        let trust =
            TrustStore::from_pem(ca.pem.as_bytes(), crl.map(str::as_bytes)).unwrap_or_else(fail);
        let match_cn = Regex::new("CN=alice").ok();
        ClientAuth::new(trust, verify, depth, true, match_cn, None)
    }

    #[test]
    fn chains_depth_unknown_cas_and_revocations_are_judged_as_nginx_does() {
        let root = ca("root", None);
        let intermediate = ca("intermediate", Some(&root));
        let stranger_ca = ca("stranger", None);
        let alice = client("alice", 7, &root);
        let bob = client("bob", 8, &intermediate);
        let stranger = client("alice", 9, &stranger_ca);
        let now = UnixTime::now();

        let on = auth(&root, None, VerifyClient::On, 1);
        let peer = on.check(Some(std::slice::from_ref(&alice)), now);
        assert_eq!(peer.outcome, Outcome::Verified);
        assert_eq!(peer.verify, "SUCCESS");
        assert_eq!(peer.subject, "CN=alice");
        assert_eq!(
            peer.issuer_header.as_ref().map(HeaderValue::as_bytes),
            Some(&b"CN=root"[..])
        );
        assert!(peer.escaped.is_some());
        assert_eq!(on.admit(&peer), Ok(()));
        assert_eq!(on.admit(&PeerCert::none()), Err(Refusal::NoCertificate));

        // One intermediate needs depth 2.
        let chain = [bob.clone(), intermediate.der.clone()];
        let peer = on.check(Some(&chain), now);
        assert_eq!(peer.verify, "FAILED:certificate chain too long");
        assert_eq!(on.admit(&peer), Err(Refusal::BadCertificate));
        let deep = auth(&root, None, VerifyClient::On, 2);
        let peer = deep.check(Some(&chain), now);
        assert_eq!(peer.outcome, Outcome::Verified);
        // Verified, but auth-tls-match-cn wants alice.
        assert_eq!(deep.admit(&peer), Err(Refusal::Unauthorized));

        // An unknown CA: refused by `optional`, tolerated by `optional_no_ca`.
        let optional = auth(&root, None, VerifyClient::Optional, 1);
        let peer = optional.check(Some(std::slice::from_ref(&stranger)), now);
        assert_eq!(peer.verify, "FAILED:unable to get local issuer certificate");
        assert_eq!(optional.admit(&peer), Err(Refusal::BadCertificate));
        assert_eq!(
            optional.admit(&PeerCert::none()),
            Err(Refusal::Unauthorized)
        );
        let no_ca = auth(&root, None, VerifyClient::OptionalNoCa, 1);
        let peer = no_ca.check(Some(std::slice::from_ref(&stranger)), now);
        assert_eq!(peer.outcome, Outcome::Failed { tolerated: true });
        assert_eq!(no_ca.admit(&peer), Ok(()));

        // ca.crl: alice's serial is revoked.
        let crl = CertificateRevocationListParams {
            this_update: date_time_ymd(2020, 1, 1),
            next_update: date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(7),
                revocation_time: date_time_ymd(2021, 1, 1),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&root.issuer)
        .unwrap_or_else(fail)
        .pem()
        .unwrap_or_else(fail);
        let revoking = auth(&root, Some(&crl), VerifyClient::On, 1);
        let peer = revoking.check(Some(std::slice::from_ref(&alice)), now);
        assert_eq!(peer.verify, "FAILED:certificate revoked");
        assert_eq!(revoking.admit(&peer), Err(Refusal::BadCertificate));
    }
}
