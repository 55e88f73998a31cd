//! ingress-nginx's authentication annotations through the real binary and real sockets: basic
//! auth against a Secret in every hash format nginx accepts, external auth against a small real
//! auth server (pass with headers, 401, 403, sign-in redirect, unreachable, cached answers), the
//! global auth of the controller ConfigMap, `satisfy any`, and digest auth (RFC 2617) with the
//! response computed here as a client does.

mod manifests_common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use manifests_common::{
    Folder, Proxy, Reply, backend, backend_service, ingress, ingress_class, request,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const NGINX: &str = "nginx.ingress.kubernetes.io";

fn objects_with_web(port: u16) -> Vec<Value> {
    let mut objects = vec![ingress_class(
        "switchyard",
        "switchyard.dev/ingress-controller",
        false,
    )];
    objects.extend(backend_service("web", port));
    objects
}

fn site(name: &str, host: &str, annotations: &[(&str, &str)]) -> Value {
    let mut ingress = ingress(name)
        .class("switchyard")
        .rule(host, &[("/", "Prefix", "web")]);
    for (key, value) in annotations {
        ingress = ingress.annotation(&format!("{NGINX}/{key}"), value);
    }
    ingress.build()
}

fn opaque_secret(name: &str, data: &[(&str, &str)]) -> Value {
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": data,
    })
}

async fn get_with(port: u16, host: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    request(port, &head).await
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// The header lines the echo backend reports.
fn upstream_header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.body.lines().skip(2).find_map(|line| {
        let (n, v) = line.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_accepts_every_supported_hash_format_and_refuses_the_rest() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = objects_with_web(web);
    let bcrypt = bcrypt::hash_with_salt("b-pass", 4, [3u8; 16])
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoY);
    let mut salted = ring_sha1(b"ssha-pass", b"pepper").to_vec();
    salted.extend_from_slice(b"pepper");
    // Vectors from `openssl passwd -1`, `-apr1`, `-5`, `-6` and `openssl sha1 -binary | base64`.
    let file = format!(
        "# staff\n\
         bcrypt:{bcrypt}\n\
         apr1:$apr1$abcdefgh$UkZoB0qp2g9KE9.krwnMP0\n\
         md5:$1$saltsalt$9xy1btjgzLYfb7hivXtC//\n\
         sha256:$5$saltstring$C3o4O1TC6aRHF4FI.QSZMXtHbaj2gSXr4sUc/3NcUi.\n\
         sha512:$6$saltstring$AIsRs/Ee56G/tC8MEHhvReZTfx8u3rXXMl6eYrjCG9ibix19DxoMBLogdTET5Ukw9Sf7eZTITsuk0Ry5qulYz.\n\
         sha1:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ=\n\
         ssha:{{SSHA}}{}\n\
         plain:{{PLAIN}}plain-pass\n\
         des:abJnggxhB/yWI\n",
        STANDARD.encode(&salted)
    );
    objects.push(opaque_secret("staff", &[("auth", &file)]));
    objects.push(opaque_secret(
        "team",
        &[
            ("carol", "{PLAIN}carol-pass"),
            ("dave", "$1$saltsalt$9xy1btjgzLYfb7hivXtC//"),
        ],
    ));
    objects.push(opaque_secret(
        "nobody-usable",
        &[("auth", "des:abJnggxhB/yWI\n")],
    ));
    objects.push(site(
        "staff",
        "staff.example",
        &[
            ("auth-type", "basic"),
            ("auth-secret", "staff"),
            ("auth-realm", "Staff only"),
        ],
    ));
    objects.push(site(
        "team",
        "team.example",
        &[
            ("auth-type", "basic"),
            ("auth-secret", "default/team"),
            ("auth-secret-type", "auth-map"),
        ],
    ));
    objects.push(site(
        "missing",
        "missing.example",
        &[("auth-type", "basic"), ("auth-secret", "no-such-secret")],
    ));
    objects.push(site(
        "unusable",
        "unusable.example",
        &[("auth-type", "basic"), ("auth-secret", "nobody-usable")],
    ));
    objects.push(site(
        "digest",
        "digest.example",
        &[("auth-type", "digest"), ("auth-secret", "staff")],
    ));
    folder.write_objects("basic.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    for (user, password) in [
        ("bcrypt", "b-pass"),
        ("apr1", "p@ss w0rd"),
        ("md5", "secret"),
        ("sha256", "secret"),
        ("sha512", "secret"),
        ("sha1", "secret"),
        ("ssha", "ssha-pass"),
        ("plain", "plain-pass"),
    ] {
        let reply = get_with(
            proxy.http,
            "staff.example",
            "/",
            &[("Authorization", &basic(user, password))],
        )
        .await;
        assert_eq!(reply.status, 200, "{user}: {}", reply.describe());
        assert_eq!(reply.first_line(), "web");
        // ingress-nginx never forwards the credentials.
        assert_eq!(upstream_header(&reply, "authorization"), None, "{user}");

        let wrong = get_with(
            proxy.http,
            "staff.example",
            "/",
            &[("Authorization", &basic(user, &format!("{password}x")))],
        )
        .await;
        assert_eq!(wrong.status, 401, "{user} with a wrong password");
        assert_eq!(
            wrong.header("www-authenticate"),
            Some("Basic realm=\"Staff only\"")
        );
    }
    // A logged-in client is answered from the cache, still correctly.
    let again = get_with(
        proxy.http,
        "staff.example",
        "/",
        &[("Authorization", &basic("bcrypt", "b-pass"))],
    )
    .await;
    assert_eq!(again.status, 200);

    let anonymous = get_with(proxy.http, "staff.example", "/", &[]).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("Basic realm=\"Staff only\"")
    );
    for refused in [
        basic("des", "anything"),
        basic("nobody", "secret"),
        "Bearer x".to_owned(),
    ] {
        let reply = get_with(
            proxy.http,
            "staff.example",
            "/",
            &[("Authorization", &refused)],
        )
        .await;
        assert_eq!(reply.status, 401, "{refused}");
    }

    // auth-map: one user per key.
    let carol = get_with(
        proxy.http,
        "team.example",
        "/",
        &[("Authorization", &basic("carol", "carol-pass"))],
    )
    .await;
    assert_eq!(carol.status, 200, "{}", carol.describe());
    assert_eq!(carol.header("www-authenticate"), None);
    let dave = get_with(
        proxy.http,
        "team.example",
        "/",
        &[("Authorization", &basic("dave", "secret"))],
    )
    .await;
    assert_eq!(dave.status, 200);
    let team_anonymous = get_with(proxy.http, "team.example", "/", &[]).await;
    assert_eq!(
        team_anonymous.header("www-authenticate"),
        Some("Basic realm=\"\"")
    );

    // Never served open: a missing Secret, a Secret without a usable line (for digest: none of
    // its realm).
    for host in ["missing.example", "unusable.example", "digest.example"] {
        let reply = get_with(
            proxy.http,
            host,
            "/",
            &[("Authorization", &basic("plain", "plain-pass"))],
        )
        .await;
        assert_eq!(reply.status, 503, "{host}: {}", reply.describe());
    }
    let log = proxy.log();
    for expected in [
        "Secret default/no-such-secret not found",
        "Secret default/nobody-usable has no usable user",
        "Secret default/staff has no usable user in realm",
        "line 10 (user \\\"des\\\"): DES crypt hashes are not supported",
    ] {
        assert!(log.contains(expected), "{expected} not in the log:\n{log}");
    }
    assert!(log.contains("FailedClosed") && log.contains("InvalidAuthSecret"));
    assert!(!log.contains("abJnggxhB"), "a hash was logged");
}

fn ring_sha1(password: &[u8], salt: &[u8]) -> [u8; 20] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(password);
    context.update(salt);
    let mut out = [0u8; 20];
    out.copy_from_slice(context.finish().as_ref());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn satisfy_any_admits_the_allowlist_or_the_authenticated() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = objects_with_web(web);
    objects.push(opaque_secret("staff", &[("auth", "ann:{PLAIN}pw\n")]));
    let guarded = |name: &str, host: &str, range: &str, satisfy: &str| {
        site(
            name,
            host,
            &[
                ("auth-type", "basic"),
                ("auth-secret", "staff"),
                ("whitelist-source-range", range),
                ("satisfy", satisfy),
            ],
        )
    };
    // Our client is 127.0.0.1.
    objects.push(guarded("inside", "inside.example", "127.0.0.0/8", "any"));
    objects.push(guarded("outside", "outside.example", "10.0.0.0/8", "any"));
    objects.push(guarded("both", "both.example", "127.0.0.0/8", "all"));
    objects.push(guarded("neither", "neither.example", "10.0.0.0/8", "all"));
    folder.write_objects("satisfy.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;
    let login = basic("ann", "pw");

    assert_eq!(
        get_with(proxy.http, "inside.example", "/", &[])
            .await
            .status,
        200
    );
    let outside = get_with(proxy.http, "outside.example", "/", &[]).await;
    assert_eq!(outside.status, 401, "{}", outside.describe());
    let outside = get_with(
        proxy.http,
        "outside.example",
        "/",
        &[("Authorization", &login)],
    )
    .await;
    assert_eq!(outside.status, 200, "{}", outside.describe());
    assert_eq!(
        get_with(proxy.http, "both.example", "/", &[]).await.status,
        401
    );
    assert_eq!(
        get_with(
            proxy.http,
            "both.example",
            "/",
            &[("Authorization", &login)]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        get_with(
            proxy.http,
            "neither.example",
            "/",
            &[("Authorization", &login)]
        )
        .await
        .status,
        403
    );
}

/// A small auth service: `Bearer good` passes (with user headers and a cookie), `Bearer
/// forbidden` gets 403, anything else 401 with a challenge. It counts and records requests.
struct AuthServer {
    port: u16,
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl AuthServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind auth");
        let port = listener.local_addr().expect("address").port();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (counter, recorder) = (calls.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counter, recorder) = (counter.clone(), recorder.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let mut text = format!("{} {}\n", req.method(), req.uri());
                        for (name, value) in req.headers() {
                            text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
                        }
                        if let Ok(mut seen) = recorder.lock() {
                            seen.push(text);
                        }
                        let token = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        async move {
                            let builder = Response::builder();
                            let response = match token.as_str() {
                                "Bearer good" => builder
                                    .status(200)
                                    .header("X-Auth-Request-User", "alice")
                                    .header("X-Auth-Request-Email", "alice@example.com")
                                    .header("Set-Cookie", "session=fresh; Path=/"),
                                "Bearer forbidden" => builder.status(403),
                                "Bearer teapot" => builder.status(418),
                                _ => builder
                                    .status(401)
                                    .header("WWW-Authenticate", "Bearer realm=\"sso\"")
                                    .header("Set-Cookie", "csrf=1; Path=/"),
                            };
                            Ok::<_, Infallible>(
                                response
                                    .body(Full::new(Bytes::from_static(b"auth says so\n")))
                                    .unwrap_or_default(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { port, calls, seen }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn last(&self) -> String {
        self.seen
            .lock()
            .ok()
            .and_then(|seen| seen.last().cloned())
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_auth_decides_by_subrequest() {
    let folder = Folder::new();
    let web = backend("web").await;
    let auth = AuthServer::start().await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let url = format!("http://127.0.0.1:{}/check?host=$host", auth.port);
    let mut objects = objects_with_web(web);
    objects.push(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "switchyard-controller"},
        "data": {
            "global-auth-url": format!("http://127.0.0.1:{}/global", auth.port),
            "global-auth-response-headers": "X-Auth-Request-User",
        },
    }));
    objects.push(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "auth-headers"},
        "data": {"X-Tenant": "shop-$host"},
    }));
    objects.push(site(
        "sso",
        "sso.example",
        &[
            ("auth-url", &url),
            (
                "auth-response-headers",
                "X-Auth-Request-User, X-Auth-Request-Email",
            ),
            ("auth-proxy-set-headers", "auth-headers"),
        ],
    ));
    objects.push(site(
        "signin",
        "signin.example",
        &[
            ("auth-url", &url),
            ("auth-signin", "https://login.example/start"),
        ],
    ));
    objects.push(site(
        "cached",
        "cached.example",
        &[
            ("auth-url", &url),
            ("auth-cache-key", "$http_authorization"),
            ("auth-cache-duration", "200 401 1m"),
            ("auth-method", "POST"),
        ],
    ));
    objects.push(site(
        "down",
        "down.example",
        &[("auth-url", &format!("http://127.0.0.1:{closed_port}/check"))],
    ));
    objects.push(site(
        "broken",
        "broken.example",
        &[("auth-url", "http://127.0.0.1/check?u=$upstream_addr")],
    ));
    objects.push(site("everyone", "global.example", &[]));
    objects.push(site(
        "public",
        "public.example",
        &[("enable-global-auth", "false")],
    ));
    folder.write_objects("external.json", &objects);
    let proxy = Proxy::start(&folder, &["--configmap", "default/switchyard-controller"]).await;
    let good = [("Authorization", "Bearer good")];

    // 2xx: the upstream gets the auth service's headers (never the client's own).
    let reply = get_with(
        proxy.http,
        "sso.example",
        "/orders?id=7",
        &[
            ("Authorization", "Bearer good"),
            ("X-Auth-Request-User", "mallory"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.describe());
    assert_eq!(
        upstream_header(&reply, "x-auth-request-user"),
        Some("alice")
    );
    assert_eq!(
        upstream_header(&reply, "x-auth-request-email"),
        Some("alice@example.com")
    );
    assert_eq!(reply.header("set-cookie"), Some("session=fresh; Path=/"));
    let seen = auth.last();
    for expected in [
        "GET /check?host=sso.example\n",
        "authorization: Bearer good\n",
        "host: 127.0.0.1\n",
        "x-original-url: http://sso.example/orders?id=7\n",
        "x-original-method: GET\n",
        "x-sent-from: nginx-ingress-controller\n",
        "x-real-ip: 127.0.0.1\n",
        "x-forwarded-for: 127.0.0.1\n",
        "x-auth-request-redirect: /orders?id=7\n",
        "x-tenant: shop-sso.example\n",
        "x-request-id: ",
    ] {
        assert!(
            seen.contains(expected),
            "{expected:?} not sent to the auth service:\n{seen}"
        );
    }
    let request_id = seen
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_default();
    assert_eq!(upstream_header(&reply, "x-request-id"), Some(request_id));

    // 401 (the service's challenge passed on), 403, anything else 500.
    let denied = get_with(proxy.http, "sso.example", "/", &[]).await;
    assert_eq!(denied.status, 401, "{}", denied.describe());
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Bearer realm=\"sso\"")
    );
    let forbidden = get_with(
        proxy.http,
        "sso.example",
        "/",
        &[("Authorization", "Bearer forbidden")],
    )
    .await;
    assert_eq!(forbidden.status, 403);
    let teapot = get_with(
        proxy.http,
        "sso.example",
        "/",
        &[("Authorization", "Bearer teapot")],
    )
    .await;
    assert_eq!(teapot.status, 500);

    // auth-signin: a 401 becomes a redirect with the original URL in `rd`.
    let redirect = get_with(proxy.http, "signin.example", "/cart?item=1", &[]).await;
    assert_eq!(redirect.status, 302, "{}", redirect.describe());
    assert_eq!(
        redirect.header("location"),
        Some("https://login.example/start?rd=http://signin.example%2Fcart%3Fitem%3D1")
    );
    assert_eq!(redirect.header("set-cookie"), Some("csrf=1; Path=/"));
    let passed = get_with(proxy.http, "signin.example", "/cart", &good).await;
    assert_eq!(passed.status, 200);

    // Unreachable auth service: 500; an auth-url that does not parse: never served open.
    let down = get_with(proxy.http, "down.example", "/", &good).await;
    assert_eq!(down.status, 500, "{}", down.describe());
    let broken = get_with(proxy.http, "broken.example", "/", &good).await;
    assert_eq!(broken.status, 503, "{}", broken.describe());
    assert!(
        proxy
            .log()
            .contains("unknown nginx variable $upstream_addr"),
        "{}",
        proxy.log()
    );

    // auth-cache-key: the second identical request is answered from the cache.
    let before = auth.calls();
    for _ in 0..3 {
        let reply = get_with(proxy.http, "cached.example", "/", &good).await;
        assert_eq!(reply.status, 200, "{}", reply.describe());
        assert_eq!(reply.header("set-cookie"), Some("session=fresh; Path=/"));
    }
    assert_eq!(auth.calls(), before + 1, "one call, then cache hits");
    let seen = auth.last();
    assert!(seen.starts_with("POST /check"), "{seen}");
    assert!(
        seen.contains("x-original-uri: /\n") && seen.contains("x-scheme: http\n"),
        "{seen}"
    );
    for _ in 0..2 {
        assert_eq!(
            get_with(proxy.http, "cached.example", "/", &[])
                .await
                .status,
            401
        );
    }
    assert_eq!(auth.calls(), before + 2, "another key, one more call");
    let forbidden = [("Authorization", "Bearer forbidden")];
    for _ in 0..2 {
        assert_eq!(
            get_with(proxy.http, "cached.example", "/", &forbidden)
                .await
                .status,
            403
        );
    }
    assert_eq!(
        auth.calls(),
        before + 4,
        "403 is not in auth-cache-duration"
    );

    // The global auth guards an Ingress without annotations, not one that opts out.
    let before = auth.calls();
    let global = get_with(proxy.http, "global.example", "/", &[]).await;
    assert_eq!(global.status, 401, "{}", global.describe());
    assert!(auth.last().starts_with("GET /global"), "{}", auth.last());
    let global = get_with(proxy.http, "global.example", "/", &good).await;
    assert_eq!(global.status, 200);
    assert_eq!(
        upstream_header(&global, "x-auth-request-user"),
        Some("alice")
    );
    let public = get_with(proxy.http, "public.example", "/", &[]).await;
    assert_eq!(public.status, 200, "{}", public.describe());
    assert_eq!(auth.calls(), before + 2);
}

/// The controller ConfigMap's `no-auth-locations`: Ingress paths starting with one of them are
/// served without authentication; the others still ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_auth_locations_are_served_without_authentication() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = objects_with_web(web);
    objects.push(opaque_secret("staff", &[("auth", "admin:{PLAIN}secret\n")]));
    objects.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "switchyard-controller"},
        "data": {"no-auth-locations": "/.well-known/acme-challenge, /public"},
    }));
    let mut guarded = ingress("guarded").class("switchyard").rule(
        "staff.example",
        &[("/", "Prefix", "web"), ("/public", "Prefix", "web")],
    );
    for (key, value) in [("auth-type", "basic"), ("auth-secret", "staff")] {
        guarded = guarded.annotation(&format!("{NGINX}/{key}"), value);
    }
    objects.push(guarded.build());
    folder.write_objects("objects.json", &objects);
    let proxy = Proxy::start(&folder, &["--configmap", "default/switchyard-controller"]).await;

    assert_eq!(
        get_with(proxy.http, "staff.example", "/public/logo.png", &[])
            .await
            .status,
        200
    );
    assert_eq!(
        get_with(proxy.http, "staff.example", "/private", &[])
            .await
            .status,
        401
    );
    let authorization = basic("admin", "secret");
    let reply = get_with(
        proxy.http,
        "staff.example",
        "/private",
        &[("authorization", &authorization)],
    )
    .await;
    assert_eq!(reply.status, 200);
}

/// The challenge's `name="value"` parameter.
fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    let len = challenge[start..].find('"')?;
    Some(challenge[start..start + len].to_owned())
}

/// An `Authorization: Digest` value, computed as a client does (qop auth, MD5).
fn digest_authorization(user: &str, password: &str, nonce: &str, nc: &str, uri: &str) -> String {
    use switchyard_proxy::auth::digest::{ha1, response};
    let ha1 = ha1(user, "Staff only", password);
    let response = response(ha1.as_bytes(), nonce, nc, "0a4f,113b", "auth", "GET", uri);
    format!(
        "Digest username=\"{user}\", realm=\"Staff only\", nonce=\"{nonce}\", uri=\"{uri}\", \
         algorithm=MD5, qop=auth, nc={nc}, cnonce=\"0a4f,113b\", response=\"{response}\""
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_answers_challenges_once_per_nonce_count() {
    use switchyard_proxy::auth::digest::ha1;
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = objects_with_web(web);
    let file = format!(
        "ann:Staff only:{}\nbob:Elsewhere:{}\nbad:Staff only:nothex\n",
        ha1("ann", "Staff only", "s3cret"),
        ha1("bob", "Elsewhere", "s3cret"),
    );
    objects.push(opaque_secret("htdigest", &[("auth", &file)]));
    objects.push(opaque_secret(
        "other-realm",
        &[(
            "auth",
            &format!("bob:Elsewhere:{}\n", ha1("bob", "Elsewhere", "x")),
        )],
    ));
    let digest = [
        ("auth-type", "digest"),
        ("auth-secret", "htdigest"),
        ("auth-realm", "Staff only"),
    ];
    objects.push(site("staff", "staff.example", &digest));
    objects.push(site(
        "closed",
        "closed.example",
        &[
            ("auth-type", "digest"),
            ("auth-secret", "other-realm"),
            ("auth-realm", "Staff only"),
        ],
    ));
    folder.write_objects("digest.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let anonymous = get_with(proxy.http, "staff.example", "/a?b=c", &[]).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.describe());
    let challenge = anonymous.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge
            .starts_with("Digest algorithm=\"MD5\", qop=\"auth\", realm=\"Staff only\", nonce=\""),
        "{challenge}"
    );
    assert!(!challenge.contains("stale"));
    let nonce = challenge_param(challenge, "nonce").expect("a nonce");

    let good = digest_authorization("ann", "s3cret", &nonce, "00000001", "/a?b=c");
    let reply = get_with(
        proxy.http,
        "staff.example",
        "/a?b=c",
        &[("Authorization", &good)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.describe());
    assert_eq!(reply.first_line(), "web");
    assert_eq!(upstream_header(&reply, "authorization"), None);

    // The same nonce count again is a replay; the next one is fine.
    let replay = get_with(
        proxy.http,
        "staff.example",
        "/a?b=c",
        &[("Authorization", &good)],
    )
    .await;
    assert_eq!(replay.status, 401, "{}", replay.describe());
    assert!(
        replay
            .header("www-authenticate")
            .is_some_and(|c| c.starts_with("Digest "))
    );
    let next = digest_authorization("ann", "s3cret", &nonce, "00000002", "/a?b=c");
    let reply = get_with(
        proxy.http,
        "staff.example",
        "/a?b=c",
        &[("Authorization", &next)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.describe());

    for (what, authorization, path) in [
        (
            "wrong password",
            digest_authorization("ann", "guess", &nonce, "00000003", "/a"),
            "/a",
        ),
        (
            "uri of another request",
            digest_authorization("ann", "s3cret", &nonce, "00000004", "/other"),
            "/a",
        ),
        (
            "user of another realm",
            digest_authorization("bob", "s3cret", &nonce, "00000005", "/a"),
            "/a",
        ),
        (
            "forged nonce",
            digest_authorization("ann", "s3cret", &"0".repeat(64), "00000001", "/a"),
            "/a",
        ),
        ("basic credentials", basic("ann", "s3cret"), "/a"),
    ] {
        let reply = get_with(
            proxy.http,
            "staff.example",
            path,
            &[("Authorization", &authorization)],
        )
        .await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.describe());
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|c| c.starts_with("Digest ")),
            "{what}"
        );
    }

    // No usable user of the realm: closed, never open.
    let closed = get_with(proxy.http, "closed.example", "/", &[]).await;
    assert_eq!(closed.status, 503, "{}", closed.describe());
    let log = proxy.log();
    for expected in [
        "Secret default/other-realm has no usable user in realm",
        "line 3 (user \\\"bad\\\"): the HA1 is not 32 hexadecimal digits",
        "FailedClosed",
    ] {
        assert!(log.contains(expected), "{expected} not in the log:\n{log}");
    }
}
