//! The request phase of client certificate authentication (`auth-tls-*`): refuse the request
//! as nginx does, or say which `ssl-client-*` headers go upstream.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::{ConnInfo, LocalBody, local};
use crate::client_auth::{HostClientAuth, PeerCert, Refusal};

const VERIFY: HeaderName = HeaderName::from_static("ssl-client-verify");
const SUBJECT: HeaderName = HeaderName::from_static("ssl-client-subject-dn");
const ISSUER: HeaderName = HeaderName::from_static("ssl-client-issuer-dn");
const CERT: HeaderName = HeaderName::from_static("ssl-client-cert");

/// What the host's client authentication says about a request that may proceed.
#[derive(Clone, Copy)]
pub(super) enum ClientCert<'a> {
    /// The host has none: what the client sent goes upstream untouched.
    Unchecked,
    /// The `ssl-client-*` headers to set (`None`: no certificate, `NONE`).
    Passed(Option<&'a PeerCert>),
}

/// `exempt`: a plain HTTP request answered before any location would be (the HTTPS redirect,
/// an ACME challenge), which nginx never checks.
pub(super) fn check<'a>(
    host: Option<&HostClientAuth>,
    conn: &'a ConnInfo,
    exempt: bool,
) -> Result<ClientCert<'a>, Rejection> {
    let auth = match host {
        None => return Ok(ClientCert::Unchecked),
        Some(HostClientAuth::Unusable(_)) => {
            return Err(Rejection {
                refusal: None,
                page: None,
            });
        }
        Some(HostClientAuth::Ready(auth)) => auth,
    };
    if exempt && !conn.tls {
        return Ok(ClientCert::Unchecked);
    }
    let peer = match (&conn.client, conn.tls) {
        (Some(session), true) if std::sync::Arc::ptr_eq(&session.auth, auth) => Some(&session.peer),
        // The handshake was made for another host (SNI and Host differ): nginx's 421.
        (_, true) if auth.asks_for_certificate() => {
            return Err(Rejection {
                refusal: Some(Refusal::Misdirected),
                page: None,
            });
        }
        _ => None,
    };
    let verdict = match peer {
        Some(peer) => auth.admit(peer),
        None => auth.admit(&PeerCert::none()),
    };
    match verdict {
        Ok(()) => Ok(ClientCert::Passed(peer)),
        Err(refusal) => Err(Rejection {
            refusal: Some(refusal),
            page: auth.error_page.clone(),
        }),
    }
}

/// A refused request: why (`None`: the host's check cannot be made) and the error page.
pub(super) struct Rejection {
    refusal: Option<Refusal>,
    page: Option<HeaderValue>,
}

impl Rejection {
    pub(super) fn response(self) -> Response<LocalBody> {
        match self.refusal {
            Some(refusal) => refuse(refusal, self.page),
            None => local(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable: the client certificate check of this host cannot be made; see the Ingress's Events\n",
            ),
        }
    }
}

fn refuse(refusal: Refusal, error_page: Option<HeaderValue>) -> Response<LocalBody> {
    let (status, body) = match refusal {
        Refusal::NoCertificate => (
            StatusCode::BAD_REQUEST,
            "400 Bad Request: No required SSL certificate was sent\n",
        ),
        Refusal::BadCertificate => (
            StatusCode::BAD_REQUEST,
            "400 Bad Request: The SSL certificate error\n",
        ),
        Refusal::Unauthorized => (StatusCode::FORBIDDEN, "client certificate unauthorized"),
        Refusal::Misdirected => (
            StatusCode::MISDIRECTED_REQUEST,
            "421 Misdirected Request: this host needs a TLS connection of its own\n",
        ),
    };
    // nginx's `error_page 495 496 = <page>`: only certificate errors go there.
    match (refusal, error_page) {
        (Refusal::NoCertificate | Refusal::BadCertificate, Some(page)) => {
            let mut response = local(StatusCode::FOUND, "Redirecting\n");
            response.headers_mut().insert(header::LOCATION, page);
            response
        }
        _ => local(status, body),
    }
}

/// Replaces whatever `ssl-client-*` headers the client sent with the verified ones.
pub(super) fn set_headers(headers: &mut HeaderMap, cert: ClientCert<'_>) {
    let ClientCert::Passed(peer) = cert else {
        return;
    };
    for name in [&VERIFY, &SUBJECT, &ISSUER, &CERT] {
        headers.remove(name);
    }
    let Some(peer) = peer else {
        headers.insert(VERIFY, HeaderValue::from_static("NONE"));
        return;
    };
    headers.insert(VERIFY, peer.verify.clone());
    if let Some(subject) = &peer.subject_header {
        headers.insert(SUBJECT, subject.clone());
    }
    if let Some(issuer) = &peer.issuer_header {
        headers.insert(ISSUER, issuer.clone());
    }
    if let Some(cert) = &peer.escaped {
        headers.insert(CERT, cert.clone());
    }
}
