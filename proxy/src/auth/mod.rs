//! Authentication of requests: ingress-nginx's `auth-*` annotations (basic auth from a Secret,
//! external auth by a subrequest to `auth-url`), `satisfy`, and the controller ConfigMap's
//! global external auth. Here: the typed configuration compile builds (`compile::auth`) and the
//! state the hot path keeps across route tables (`proxy::auth` uses both).

pub mod cache;
pub mod digest;
pub mod htpasswd;
mod md5_crypt;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::variables::Template;

/// How the paths of an Ingress authenticate requests.
#[derive(Debug)]
pub struct Auth {
    /// `auth-type: basic`.
    pub basic: Option<Basic>,
    /// `auth-type: digest`.
    pub digest: Option<Digest>,
    /// `auth-url`, or the global external auth.
    pub external: Option<Arc<External>>,
    /// `satisfy: any`: the source allowlist or any authentication admits.
    pub satisfy_any: bool,
}

/// Basic authentication against the users of a Secret.
#[derive(Debug)]
pub struct Basic {
    /// The `WWW-Authenticate` value of a 401: `Basic realm="…"`.
    pub challenge: HeaderValue,
    pub users: Arc<htpasswd::Users>,
    /// A digest of the Secret's entries: verified credentials are cached under it, so a changed
    /// Secret never accepts a password it no longer lists.
    pub version: [u8; 32],
}

/// Digest authentication against the htdigest users of a Secret, in `auth-realm`.
#[derive(Debug)]
pub struct Digest {
    pub users: Arc<digest::Users>,
}

/// External authentication: a subrequest to `auth-url` decides.
#[derive(Clone, Debug)]
pub struct External {
    /// `auth-url`, with nginx variables.
    pub url: Template,
    /// `auth-method`; GET when unset.
    pub method: Option<Method>,
    /// `auth-signin` with its redirect parameter: where a 401 is redirected to.
    pub signin: Option<Template>,
    /// `auth-response-headers`: copied from the auth response into the upstream request.
    pub response_headers: Vec<HeaderName>,
    /// `auth-request-redirect`: the `X-Auth-Request-Redirect` value (default `$request_uri`).
    pub request_redirect: Option<Template>,
    /// `auth-proxy-set-headers`: more headers for the auth service.
    pub proxy_set_headers: Vec<(HeaderName, Template)>,
    /// `auth-cache-key` with `auth-cache-duration`.
    pub cache: Option<CachePolicy>,
    /// `auth-always-set-cookie`: the auth response's cookies go on every response.
    pub always_set_cookie: bool,
    /// The configuration as written: cache keys start with it, so a changed `auth-url` never
    /// hits entries of the old one.
    pub identity: Box<str>,
}

/// `auth-cache-key` and the lifetimes of `auth-cache-duration` (`200 202 401 5m`, entries
/// separated by commas, as nginx's `proxy_cache_valid`).
#[derive(Clone, Debug)]
pub struct CachePolicy {
    pub key: Template,
    pub valid: Vec<(Codes, Duration)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Codes {
    Any,
    Listed(Vec<u16>),
}

impl CachePolicy {
    /// How long an auth response with `status` is kept; `None`: not cached.
    pub fn lifetime(&self, status: u16) -> Option<Duration> {
        self.valid
            .iter()
            .find(|(codes, _)| match codes {
                Codes::Any => true,
                Codes::Listed(codes) => codes.contains(&status),
            })
            .map(|(_, lifetime)| *lifetime)
            .filter(|lifetime| !lifetime.is_zero())
    }
}

/// An auth service's answer, kept for `auth-cache-duration`.
#[derive(Debug)]
pub struct CachedResponse {
    pub status: StatusCode,
    /// The headers the proxy uses: the `auth-response-headers`, `Set-Cookie`, and
    /// `WWW-Authenticate`.
    pub headers: HeaderMap,
    pub expires: Instant,
}

/// Verified basic credentials kept, at most.
const VERIFIED_CAPACITY: usize = 16_384;
/// Cached auth responses kept, at most.
const RESPONSES_CAPACITY: usize = 16_384;

/// What authentication keeps across requests and route tables.
#[derive(Debug)]
pub struct State {
    pub keyer: cache::Keyer,
    /// Keys of (Secret version, Authorization value) that verified.
    pub verified: cache::Bounded<()>,
    /// Auth responses by key.
    pub responses: cache::Bounded<Arc<CachedResponse>>,
    /// Password verifications running at once: beyond, requests wait, so a flood of wrong
    /// passwords cannot take every blocking thread.
    pub verifying: tokio::sync::Semaphore,
    /// Digest nonces and the nc values used with them.
    pub digest: digest::Tracker,
}

impl State {
    pub fn new() -> Self {
        let parallel = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            // The system's random number generator failing leaves nothing secure to do.
            #[allow(clippy::expect_used)]
            keyer: cache::Keyer::random().expect("the system random number generator works"),
            verified: cache::Bounded::new(VERIFIED_CAPACITY),
            responses: cache::Bounded::new(RESPONSES_CAPACITY),
            verifying: tokio::sync::Semaphore::new(parallel * 2),
            #[allow(clippy::expect_used)]
            digest: digest::Tracker::random().expect("the system random number generator works"),
        }
    }
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

/// Header names the auth service's answer may set (besides `auth-response-headers`).
pub fn cached_header(name: &HeaderName) -> bool {
    name == http::header::SET_COOKIE || name == http::header::WWW_AUTHENTICATE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lifetimes_follow_the_first_matching_entry() {
        let policy = CachePolicy {
            key: Template::parse("$remote_addr", crate::variables::Scope::Value).expect("valid"),
            valid: vec![
                (Codes::Listed(vec![200, 202]), Duration::from_secs(300)),
                (Codes::Any, Duration::from_secs(10)),
            ],
        };
        assert_eq!(policy.lifetime(202), Some(Duration::from_secs(300)));
        assert_eq!(policy.lifetime(401), Some(Duration::from_secs(10)));
    }
}
