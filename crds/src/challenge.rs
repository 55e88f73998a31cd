//! The HTTP-01 challenge Ingress contract between the operator and the proxy (DESIGN.md,
//! "Where the operator and the proxy meet"): which Ingress is a challenge, and the answers it
//! provides. The operator's solver and the proxy validate challenges with this one code.

use k8s_openapi::api::networking::v1::Ingress;

/// The label that marks a challenge Ingress.
pub const CHALLENGE_LABEL: &str = "switchyard.dev/acme-challenge";
/// The annotation that carries the key authorization.
pub const RESPONSE_ANNOTATION: &str = "switchyard.dev/acme-http01-response";
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Why a challenge Ingress cannot be answered from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("it lacks the label {CHALLENGE_LABEL}: \"true\"")]
    NotLabelled,
    #[error("it has no {RESPONSE_ANNOTATION} annotation")]
    NoResponse,
    #[error("its {RESPONSE_ANNOTATION} annotation is not of the form <token>.<thumbprint>")]
    MalformedResponse,
    #[error("its key authorization is for token {annotated:?}, but its path is for {path:?}")]
    TokenMismatch { annotated: String, path: String },
}

/// One answer: a request for `host` and `token` gets `key_authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeAnswer {
    pub host: String,
    pub token: String,
    pub key_authorization: String,
}

/// The answers a challenge Ingress provides: one per host rule with a challenge path, all
/// validated against the key authorization (its token must be the path's last segment).
pub fn answers(ingress: &Ingress) -> Result<Vec<ChallengeAnswer>, ChallengeError> {
    let labelled = ingress
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CHALLENGE_LABEL))
        .is_some_and(|v| v == "true");
    if !labelled {
        return Err(ChallengeError::NotLabelled);
    }
    let key_authorization = ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RESPONSE_ANNOTATION))
        .ok_or(ChallengeError::NoResponse)?;
    let annotated = token_of(key_authorization).ok_or(ChallengeError::MalformedResponse)?;
    let mut out = Vec::new();
    let rules = ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    for rule in rules {
        let Some(host) = rule.host.as_deref() else {
            continue;
        };
        let paths = rule
            .http
            .as_ref()
            .map(|h| h.paths.as_slice())
            .unwrap_or_default();
        for path in paths {
            let Some(token) = path
                .path
                .as_deref()
                .and_then(|p| p.strip_prefix(CHALLENGE_PREFIX))
            else {
                continue;
            };
            if token != annotated {
                return Err(ChallengeError::TokenMismatch {
                    annotated: annotated.to_string(),
                    path: token.to_string(),
                });
            }
            out.push(ChallengeAnswer {
                host: host.to_ascii_lowercase(),
                token: token.to_string(),
                key_authorization: key_authorization.clone(),
            });
        }
    }
    Ok(out)
}

/// The token of a key authorization `<token>.<thumbprint>`, both base64url and non-empty.
pub fn token_of(key_authorization: &str) -> Option<&str> {
    let (token, thumbprint) = key_authorization.split_once('.')?;
    let base64url = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (base64url(token) && base64url(thumbprint)).then_some(token)
}
