//! The access phase's authentication, as nginx runs it for ingress-nginx's locations: basic
//! auth (verified on a blocking thread, never on a serving thread; successes cached), external
//! auth (a subrequest to `auth-url` on the pooled clients, answers cached per `auth-cache-key`),
//! and `satisfy any` with the source allowlist.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::body::ProxyBody;
use super::clients::Chosen;
use super::{ConnInfo, LocalBody, Proxy, local, request_host, strip_hop_by_hop};
use crate::auth::digest::{self, Verdict};
use crate::auth::{Auth, Basic, CachedResponse, Digest, External, cached_header};
use crate::compile::policy::Policy;
use crate::normalize::{normalize_host, normalize_path};
use crate::routes::UpstreamProtocol;
use crate::variables::RequestView;

/// Longer Authorization values are refused unread: SHA-crypt's cost grows with the password.
const MAX_AUTHORIZATION: usize = 4096;
/// The most of an auth response's body read (and dropped), so its connection can be reused.
const MAX_AUTH_BODY: usize = 64 << 10;

/// What a granted request carries on: the auth service's cookies for the response.
#[derive(Default)]
pub(super) struct Grant {
    pub cookies: Vec<HeaderValue>,
    /// `auth-always-set-cookie`: on every response, not only on successful ones.
    pub always: bool,
}

/// Where the request is, for templates and cache keys.
pub(super) struct Place<'a> {
    pub conn: &'a ConnInfo,
    /// The client's address (the real IP rules applied).
    pub client: std::net::IpAddr,
    /// The Ingress rule's host (`$server_name`).
    pub server_name: &'a str,
    /// The Ingress path the request matched (auth caches are per location, as in nginx).
    pub route_path: &'a str,
    /// How long the auth service may take to answer.
    pub timeout: Duration,
}

impl Proxy {
    /// Whether the request may proceed. On success the request is ready to go upstream (auth
    /// response headers set, basic credentials removed); otherwise the answer to send.
    pub(super) async fn authorize(
        &self,
        auth: &Auth,
        policy: &Policy,
        place: &Place<'_>,
        req: &mut Request<Incoming>,
    ) -> Result<Grant, Response<LocalBody>> {
        let grant = self.decide(auth, policy, place, req).await?;
        // ingress-nginx never forwards the basic or digest credentials (`proxy_set_header
        // Authorization ""`).
        if auth.basic.is_some() || auth.digest.is_some() {
            req.headers_mut().remove(header::AUTHORIZATION);
        }
        Ok(grant)
    }

    async fn decide(
        &self,
        auth: &Auth,
        policy: &Policy,
        place: &Place<'_>,
        req: &mut Request<Incoming>,
    ) -> Result<Grant, Response<LocalBody>> {
        let ip = place.client;
        let has_sources = !policy.allow.is_empty() || !policy.deny.is_empty();
        if auth.satisfy_any && has_sources && policy.admits(ip) {
            return Ok(Grant::default());
        }
        // nginx: with `satisfy any` the first check that passes admits; when none does, a 401
        // wins over a 403.
        let mut refusal = None;
        if let Some(basic) = &auth.basic {
            if self.basic(basic, req.headers()).await {
                if auth.satisfy_any {
                    return Ok(Grant::default());
                }
            } else {
                let denied = unauthorized(basic);
                if !auth.satisfy_any {
                    return Err(denied);
                }
                refusal = Some(denied);
            }
        }
        if let Some(digest) = &auth.digest {
            match self.digest(digest, req) {
                None if auth.satisfy_any => return Ok(Grant::default()),
                None => {}
                Some(denied) if !auth.satisfy_any => return Err(denied),
                Some(denied) => refusal = Some(denied),
            }
        }
        if let Some(external) = &auth.external {
            match self.external(external, place, req).await {
                Ok(grant) => return Ok(grant),
                Err(answer) => {
                    let status = answer.status();
                    if !auth.satisfy_any || status == StatusCode::INTERNAL_SERVER_ERROR {
                        return Err(answer);
                    }
                    if refusal.is_none() || status != StatusCode::FORBIDDEN {
                        refusal = Some(answer);
                    }
                }
            }
        }
        match refusal {
            Some(answer) => Err(answer),
            // satisfy all, and everything passed.
            None if !auth.satisfy_any => Ok(Grant::default()),
            None => Err(local(StatusCode::FORBIDDEN, "403 Forbidden\n")),
        }
    }

    /// Basic credentials: a cache hit costs one keyed hash; a miss is verified on a blocking
    /// thread (at most a few at once).
    async fn basic(&self, basic: &Basic, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return false;
        };
        if value.len() > MAX_AUTHORIZATION {
            return false;
        }
        let state = &self.shared.auth;
        let key = state.keyer.key(&[&basic.version, value.as_bytes()]);
        if state.verified.get(&key).is_some() {
            return true;
        }
        let Some((user, password)) = basic_credentials(value.as_bytes()) else {
            return false;
        };
        let Ok(_permit) = state.verifying.acquire().await else {
            return false;
        };
        let users = basic.users.clone();
        let verified = tokio::task::spawn_blocking(move || users.verify(&user, &password))
            .await
            .unwrap_or(false);
        if verified {
            state.verified.insert(key, ());
        }
        verified
    }

    /// Digest credentials: a few MD5s and one lock of the replay record, so checked inline.
    /// `None`: granted; otherwise the 401 with a new challenge.
    fn digest(&self, digest: &Digest, req: &Request<Incoming>) -> Option<Response<LocalBody>> {
        let tracker = &self.shared.auth.digest;
        let now = tracker.now();
        let verdict = match req.headers().get(header::AUTHORIZATION) {
            Some(value) if value.len() <= MAX_AUTHORIZATION => {
                // The module compares `uri` with the request line's target as sent.
                let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
                tracker.check(
                    &digest.users,
                    value.as_bytes(),
                    req.method().as_str(),
                    target,
                    now,
                )
            }
            _ => Verdict::Denied { stale: false },
        };
        let Verdict::Denied { stale } = verdict else {
            return None;
        };
        let nonce = tracker.nonce(now);
        let challenge = digest::challenge(digest.users.realm(), &nonce, stale);
        let mut response = local(StatusCode::UNAUTHORIZED, "401 Authorization Required\n");
        // The realm was checked for header safety at compile time; the nonce is hex.
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        Some(response)
    }

    /// The auth service's verdict (cached when `auth-cache-key` says so), applied: response
    /// headers copied into the request, or the answer for the client.
    async fn external(
        &self,
        external: &External,
        place: &Place<'_>,
        req: &mut Request<Incoming>,
    ) -> Result<Grant, Response<LocalBody>> {
        let request_id = match req.headers().get("x-request-id") {
            Some(id) => id.clone(),
            None => {
                let id = self.ids.next();
                req.headers_mut().insert("x-request-id", id.clone());
                id
            }
        };
        let host_value = request_host(req);
        let raw_host = host_value
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let host = normalize_host(raw_host);
        let path = normalize_path(req.uri().path());
        let view = RequestView {
            method: req.method(),
            uri: req.uri(),
            version: req.version(),
            headers: req.headers(),
            host: &host,
            server_name: place.server_name,
            path: &path,
            client: place.client,
            client_port: place.conn.peer.port(),
            server_port: place.conn.server_port,
            tls: place.conn.tls,
            request_id: Some(&request_id),
            captures: &[],
        };
        let state = &self.shared.auth;
        let cache = external.cache.as_ref().map(|cache| {
            let mut key = Vec::with_capacity(64);
            cache.key.expand_into(&view, &mut key);
            let key = state.keyer.key(&[
                external.identity.as_bytes(),
                place.server_name.as_bytes(),
                place.route_path.as_bytes(),
                &key,
            ]);
            (cache, key)
        });
        let now = Instant::now();
        let cached = cache
            .as_ref()
            .and_then(|(_, key)| state.responses.get(key))
            .filter(|answer| answer.expires > now);
        let answer = match cached {
            Some(answer) => answer,
            None => {
                let (status, headers) = self.ask(external, place, &view, raw_host).await?;
                let kept = cache.as_ref().and_then(|(cache, key)| {
                    cache.lifetime(status.as_u16()).map(|life| (*key, life))
                });
                let answer = Arc::new(CachedResponse {
                    status,
                    headers,
                    expires: now + kept.map_or(Duration::ZERO, |(_, life)| life),
                });
                if let Some((key, _)) = kept {
                    state.responses.insert(key, answer.clone());
                }
                answer
            }
        };
        let cookies: Vec<HeaderValue> = answer
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .cloned()
            .collect();
        let status = answer.status;
        if status.is_success() {
            for name in &external.response_headers {
                // The auth service's value or none at all: a client can't send its own.
                req.headers_mut().remove(name);
                if let Some(value) = answer.headers.get(name) {
                    req.headers_mut().insert(name.clone(), value.clone());
                }
            }
            return Ok(Grant {
                cookies,
                always: external.always_set_cookie,
            });
        }
        let mut response = match status {
            StatusCode::UNAUTHORIZED => match &external.signin {
                Some(signin) => {
                    let Some(location) = signin.header_value(&view) else {
                        return Err(auth_error());
                    };
                    let mut response = local(StatusCode::FOUND, "302 Found\n");
                    response.headers_mut().insert(header::LOCATION, location);
                    // The sign-in redirect carries the auth service's cookies, as in ingress-nginx.
                    for cookie in &cookies {
                        response
                            .headers_mut()
                            .append(header::SET_COOKIE, cookie.clone());
                    }
                    return Err(response);
                }
                None => {
                    let mut response =
                        local(StatusCode::UNAUTHORIZED, "401 Authorization Required\n");
                    if let Some(challenge) = answer.headers.get(header::WWW_AUTHENTICATE) {
                        response
                            .headers_mut()
                            .insert(header::WWW_AUTHENTICATE, challenge.clone());
                    }
                    response
                }
            },
            StatusCode::FORBIDDEN => local(StatusCode::FORBIDDEN, "403 Forbidden\n"),
            _ => return Err(auth_error()),
        };
        if external.always_set_cookie {
            for cookie in cookies {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
        }
        Err(response)
    }

    /// The subrequest: the client's headers (no body) plus what ingress-nginx's auth location
    /// sets. Unreachable, timed out or unusable: 500, as nginx answers.
    async fn ask(
        &self,
        external: &External,
        place: &Place<'_>,
        view: &RequestView<'_>,
        raw_host: &str,
    ) -> Result<(StatusCode, HeaderMap), Response<LocalBody>> {
        let mut url = Vec::with_capacity(128);
        external.url.expand_into(view, &mut url);
        let Ok(uri) = Uri::try_from(url) else {
            tracing::warn!("auth-url expanded to an invalid URL");
            return Err(auth_error());
        };
        let tls = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => return Err(auth_error()),
        };
        let Some(auth_host) = uri.host().and_then(|h| HeaderValue::from_str(h).ok()) else {
            return Err(auth_error());
        };

        let mut headers = view.headers.clone();
        strip_hop_by_hop(&mut headers);
        for name in [header::CONTENT_LENGTH, header::EXPECT] {
            headers.remove(name);
        }
        headers.remove("x-forwarded-proto");
        headers.insert(header::HOST, auth_host);
        let request_uri = view.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let scheme = if place.conn.tls { "https" } else { "http" };
        let set = |headers: &mut HeaderMap, name: &'static str, value: Option<HeaderValue>| {
            if let Some(value) = value {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        set(
            &mut headers,
            "x-original-url",
            HeaderValue::from_str(&format!("{scheme}://{raw_host}{request_uri}")).ok(),
        );
        set(
            &mut headers,
            "x-original-method",
            HeaderValue::from_str(view.method.as_str()).ok(),
        );
        set(
            &mut headers,
            "x-sent-from",
            Some(HeaderValue::from_static("nginx-ingress-controller")),
        );
        let client = crate::compile::forwarding::ip_value(place.client);
        set(&mut headers, "x-real-ip", Some(client.clone()));
        set(&mut headers, "x-forwarded-for", Some(client));
        let redirect = match &external.request_redirect {
            Some(template) => template.header_value(view),
            None => HeaderValue::from_str(request_uri).ok(),
        };
        set(&mut headers, "x-auth-request-redirect", redirect);
        if external.method.is_some() {
            set(
                &mut headers,
                "x-original-uri",
                HeaderValue::from_str(request_uri).ok(),
            );
            set(&mut headers, "x-scheme", Some(place.conn.scheme()));
        }
        for (name, template) in &external.proxy_set_headers {
            match template.header_value(view).filter(|v| !v.is_empty()) {
                Some(value) => {
                    headers.insert(name.clone(), value);
                }
                // nginx sends no header whose value is empty.
                None => {
                    headers.remove(name);
                }
            }
        }

        let mut subrequest = Request::new(ProxyBody::empty());
        *subrequest.method_mut() = external.method.clone().unwrap_or(Method::GET);
        *subrequest.uri_mut() = uri;
        *subrequest.version_mut() = Version::HTTP_11;
        *subrequest.headers_mut() = headers;
        let clients = self.clients.load_full();
        let client = clients.1.get(if tls {
            UpstreamProtocol::Https
        } else {
            UpstreamProtocol::Http1
        });
        let response = match &client {
            Chosen::Plain(client) => client.request(subrequest),
            Chosen::Tls(client) => client.request(subrequest),
        };
        let response = match tokio::time::timeout(place.timeout, response).await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                tracing::warn!(url = %external.identity, "auth request failed: {err}");
                return Err(auth_error());
            }
            Err(_) => {
                tracing::warn!(url = %external.identity, "auth request timed out");
                return Err(auth_error());
            }
        };
        let (parts, body) = response.into_parts();
        // Read (and drop) a small body so the connection goes back to the pool.
        let _ =
            tokio::time::timeout(place.timeout, Limited::new(body, MAX_AUTH_BODY).collect()).await;
        let mut kept = HeaderMap::new();
        for (name, value) in &parts.headers {
            if cached_header(name) || external.response_headers.contains(name) {
                kept.append(name.clone(), value.clone());
            }
        }
        Ok((parts.status, kept))
    }
}

/// nginx's answer when the auth subrequest fails or answers anything but 2xx, 401 or 403.
fn auth_error() -> Response<LocalBody> {
    local(
        StatusCode::INTERNAL_SERVER_ERROR,
        "500 Internal Server Error\n",
    )
}

fn unauthorized(basic: &Basic) -> Response<LocalBody> {
    let mut response = local(StatusCode::UNAUTHORIZED, "401 Authorization Required\n");
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, basic.challenge.clone());
    response
}

/// `Basic base64(user:password)`; padding optional, as nginx decodes it.
fn basic_credentials(value: &[u8]) -> Option<(String, Vec<u8>)> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let encoded = rest.trim_ascii();
    let decoded = LENIENT.decode(encoded).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).unwrap_or_default();
    Some((user, decoded[colon + 1..].to_vec()))
}

/// The auth service's cookies on the client's response: on the statuses nginx's `add_header`
/// covers, or on every one with `auth-always-set-cookie`.
pub(super) fn add_cookies(headers: &mut HeaderMap, grant: Grant, applies: bool) {
    if grant.always || applies {
        for cookie in grant.cookies {
            headers.append(header::SET_COOKIE, cookie);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_split_at_the_first_colon() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("ann:pa:ss");
        assert_eq!(
            basic_credentials(format!("Basic {encoded}").as_bytes()),
            Some(("ann".to_owned(), b"pa:ss".to_vec()))
        );
        assert_eq!(
            basic_credentials(format!("bAsIc   {}", encoded.trim_end_matches('=')).as_bytes()),
            Some(("ann".to_owned(), b"pa:ss".to_vec()))
        );
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
        let no_colon = base64::engine::general_purpose::STANDARD.encode("ann");
        assert_eq!(
            basic_credentials(format!("Basic {no_colon}").as_bytes()),
            None
        );
    }
}
