//! ingress-nginx's TLS annotations through the real binary, real sockets and real TLS: client
//! certificate authentication (`auth-tls-*`), TLS to upstreams (`proxy-ssl-*`) against a rustls
//! backend that requires a client certificate, and `ssl-passthrough`.

mod manifests_common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use manifests_common::{
    Folder, Proxy, Reply, Trust, backend, backend_service, cert_info, get, https_get, ingress,
    ingress_class, parse_reply, request,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use switchyard_tests::pki::TestCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NGINX: &str = "nginx.ingress.kubernetes.io";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn chain(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM chain")
}

fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("PEM key")
}

fn ca_secret(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data})
}

/// HTTPS to the proxy with SNI `sni` and Host `host`, presenting `cert` when given, with extra
/// request header lines. The proxy's own certificate is not checked here (that is not what
/// these tests are about).
async fn mtls_get(
    port: u16,
    sni: &str,
    host: &str,
    cert: Option<&(String, String)>,
    extra: &str,
) -> Result<Reply, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(
            switchyard_proxy::proxy::AnyServerCertificate::new(),
        ));
    let config = match cert {
        Some((crt, k)) => builder
            .with_client_auth_cert(chain(crt), key(k))
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| format!("handshake: {e}"))?;
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut raw)).await;
    Ok(parse_reply(&raw))
}

/// The value of a header line the echo backend reported.
fn echoed<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

/// An HTTP/1.1-over-TLS echo backend presenting `serving`, asking for a client certificate
/// from `client_ca` when given (and refusing the handshake without one). It answers like the
/// plain echo backends, with `x-peer-cn` (the client certificate's CN) and `x-sni` added.
async fn tls_backend(name: &str, serving: &(String, String), client_ca: Option<&str>) -> u16 {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in chain(ca) {
                roots.add(cert).expect("client CA");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.into(),
                provider(),
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain(&serving.0), key(&serving.1))
        .expect("backend cert");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let name: Arc<str> = name.into();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, name) = (acceptor.clone(), name.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let connection = tls.get_ref().1;
                let peer_cn = connection
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| cert_info(c).subject_cn)
                    .unwrap_or_default();
                let sni = connection.server_name().unwrap_or("").to_owned();
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let mut body = format!("{name}\n{} {}\n", req.method(), req.uri());
                    for (key, value) in req.headers() {
                        body.push_str(&format!("{key}: {}\n", value.to_str().unwrap_or("?")));
                    }
                    body.push_str(&format!("x-peer-cn: {peer_cn}\nx-sni: {sni}\n"));
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

fn class() -> Value {
    ingress_class("switchyard", "switchyard.dev/ingress-controller", false)
}

/// An Ingress for `host` → Service `service` with these `nginx.ingress.kubernetes.io/*`
/// annotations.
fn site(name: &str, host: &str, service: &str, annotations: &[(&str, &str)]) -> Value {
    let mut builder = ingress(name)
        .class("switchyard")
        .rule(host, &[("/", "Prefix", service)]);
    for (key, value) in annotations {
        builder = builder.annotation(&format!("{NGINX}/{key}"), value);
    }
    builder.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_asked_for_checked_and_passed_upstream() {
    let folder = Folder::new();
    let web = backend("web").await;
    let ca = TestCa::new("clients CA").expect("CA");
    let other_ca = TestCa::new("someone else's CA").expect("CA");
    let alice = ca.client("alice", Some("dev")).expect("cert");
    let bob = ca.client("bob", None).expect("cert");
    let stranger = other_ca.client("alice", Some("dev")).expect("cert");

    let mut objects = vec![class()];
    objects.extend(backend_service("web", web));
    objects.push(ca_secret("client-ca", &[("ca.crt", ca.cert_pem())]));
    objects.push(ca_secret("no-ca", &[("other", "x")]));
    objects.push(site(
        "mtls",
        "mtls.example",
        "web",
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-pass-certificate-to-upstream", "true"),
        ],
    ));
    objects.push(site(
        "optional",
        "optional.example",
        "web",
        &[
            ("auth-tls-secret", "default/client-ca"),
            ("auth-tls-verify-client", "optional"),
        ],
    ));
    objects.push(site(
        "only-alice",
        "cn.example",
        "web",
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-match-cn", "CN=alice"),
        ],
    ));
    objects.push(site(
        "with-page",
        "page.example",
        "web",
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-error-page", "https://help.example/certificates"),
        ],
    ));
    objects.push(site(
        "typo",
        "typo.example",
        "web",
        &[
            ("auth-tls-secret", "client-ca"),
            ("auth-tls-verify-client", "maybe"),
        ],
    ));
    objects.push(site(
        "missing",
        "missing.example",
        "web",
        &[("auth-tls-secret", "not-there")],
    ));
    objects.push(site(
        "no-ca",
        "noca.example",
        "web",
        &[("auth-tls-secret", "no-ca")],
    ));
    objects.push(site("open", "open.example", "web", &[]));
    folder.write_objects("mtls.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;
    let https = proxy.https;

    // A certificate from the CA: the backend gets ingress-nginx's headers.
    let ok = mtls_get(https, "mtls.example", "mtls.example", Some(&alice), "")
        .await
        .expect("handshake");
    assert_eq!(ok.status, 200, "{}", ok.describe());
    assert_eq!(echoed(&ok, "ssl-client-verify"), Some("SUCCESS"));
    assert_eq!(echoed(&ok, "ssl-client-subject-dn"), Some("O=dev,CN=alice"));
    assert_eq!(echoed(&ok, "ssl-client-issuer-dn"), Some("CN=clients CA"));
    let escaped = echoed(&ok, "ssl-client-cert").unwrap_or("");
    assert!(
        escaped.starts_with("-----BEGIN%20CERTIFICATE-----%0AMI") && escaped.ends_with("%0A"),
        "{escaped}"
    );
    let unescaped = escaped.replace("%0A", "\n").replace("%20", " ");
    assert!(unescaped.contains("-----END CERTIFICATE-----"));

    // No certificate, or one from another CA: nginx's 400s.
    let none = mtls_get(https, "mtls.example", "mtls.example", None, "")
        .await
        .expect("handshake without a certificate");
    assert_eq!(none.status, 400, "{}", none.describe());
    assert!(none.body.contains("No required SSL certificate was sent"));
    let wrong = mtls_get(https, "mtls.example", "mtls.example", Some(&stranger), "")
        .await
        .expect("handshake");
    assert_eq!(wrong.status, 400, "{}", wrong.describe());
    assert!(wrong.body.contains("The SSL certificate error"));

    // Plain HTTP never reaches the backend of a host that requires a certificate.
    let plain = get(proxy.http, "mtls.example", "/").await;
    assert_eq!(plain.status, 400, "{}", plain.describe());

    // A handshake made for another host does not carry over to this one (nginx's 421).
    let misdirected = mtls_get(https, "open.example", "mtls.example", Some(&alice), "")
        .await
        .expect("handshake");
    assert_eq!(misdirected.status, 421, "{}", misdirected.describe());

    // optional: no certificate passes as NONE (a forged header is replaced); a bad one does not.
    let optional = mtls_get(
        https,
        "optional.example",
        "optional.example",
        None,
        "ssl-client-verify: SUCCESS\r\nssl-client-subject-dn: CN=admin\r\n",
    )
    .await
    .expect("handshake");
    assert_eq!(optional.status, 200, "{}", optional.describe());
    assert_eq!(echoed(&optional, "ssl-client-verify"), Some("NONE"));
    assert_eq!(echoed(&optional, "ssl-client-subject-dn"), None);
    assert_eq!(echoed(&optional, "ssl-client-cert"), None);
    let optional_bad = mtls_get(
        https,
        "optional.example",
        "optional.example",
        Some(&stranger),
        "",
    )
    .await
    .expect("handshake");
    assert_eq!(optional_bad.status, 400, "{}", optional_bad.describe());
    // On a host without client authentication, what the client sends is its own business.
    let open = mtls_get(
        https,
        "open.example",
        "open.example",
        None,
        "ssl-client-verify: x\r\n",
    )
    .await
    .expect("handshake");
    assert_eq!(echoed(&open, "ssl-client-verify"), Some("x"));

    // auth-tls-match-cn.
    let alice_in = mtls_get(https, "cn.example", "cn.example", Some(&alice), "")
        .await
        .expect("handshake");
    assert_eq!(alice_in.status, 200, "{}", alice_in.describe());
    let bob_out = mtls_get(https, "cn.example", "cn.example", Some(&bob), "")
        .await
        .expect("handshake");
    assert_eq!(bob_out.status, 403, "{}", bob_out.describe());

    // auth-tls-error-page.
    let page = mtls_get(https, "page.example", "page.example", None, "")
        .await
        .expect("handshake");
    assert_eq!(page.status, 302, "{}", page.describe());
    assert_eq!(
        page.header("location"),
        Some("https://help.example/certificates")
    );

    // An invalid verify-client value is reported and the check stays on.
    let typo = mtls_get(https, "typo.example", "typo.example", None, "")
        .await
        .expect("handshake");
    assert_eq!(typo.status, 400, "{}", typo.describe());

    // A missing Secret, or one without ca.crt: the host fails closed.
    for host in ["missing.example", "noca.example"] {
        let closed = mtls_get(https, host, host, Some(&alice), "")
            .await
            .expect("handshake");
        assert_eq!(closed.status, 503, "{host}: {}", closed.describe());
        assert_eq!(get(proxy.http, host, "/").await.status, 503, "{host}");
    }
    let log = proxy.log();
    for expected in [
        "auth-tls-secret: Secret default/not-there not found",
        "auth-tls-secret default/no-ca: the Secret has no ca.crt",
        "auth-tls-verify-client: \\\"maybe\\\" is not on, off, optional or optional_no_ca",
    ] {
        assert!(
            log.contains(expected) || log.contains(&expected.replace("\\\"", "\"")),
            "{expected}\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_presents_a_client_certificate_and_verifies_the_backend() {
    let folder = Folder::new();
    let backend_ca = TestCa::new("backends CA").expect("CA");
    let proxy_ca = TestCa::new("proxies CA").expect("CA");
    let other_ca = TestCa::new("unrelated CA").expect("CA");
    let serving = backend_ca
        .serving("api backend", &["api.internal"])
        .expect("cert");
    let client = proxy_ca.client("switchyard", None).expect("cert");
    let port = tls_backend("api", &serving, Some(proxy_ca.cert_pem())).await;

    let mut objects = vec![class()];
    objects.extend(backend_service("api", port));
    objects.push(ca_secret(
        "upstream",
        &[
            ("tls.crt", &client.0),
            ("tls.key", &client.1),
            ("ca.crt", backend_ca.cert_pem()),
        ],
    ));
    objects.push(ca_secret(
        "upstream-wrong-ca",
        &[
            ("tls.crt", &client.0),
            ("tls.key", &client.1),
            ("ca.crt", other_ca.cert_pem()),
        ],
    ));
    objects.push(ca_secret(
        "upstream-no-ca",
        &[("tls.crt", &client.0), ("tls.key", &client.1)],
    ));
    let https_site = |name: &str, host: &str, extra: &[(&str, &str)]| {
        let mut annotations = vec![("backend-protocol", "HTTPS")];
        annotations.extend_from_slice(extra);
        site(name, host, "api", &annotations)
    };
    objects.push(https_site(
        "verified",
        "verified.example",
        &[
            ("proxy-ssl-secret", "default/upstream"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-name", "api.internal"),
            ("proxy-ssl-server-name", "on"),
            ("proxy-ssl-protocols", "TLSv1.2 TLSv1.3"),
        ],
    ));
    objects.push(https_site(
        "wrong-name",
        "wrongname.example",
        &[
            ("proxy-ssl-secret", "upstream"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-name", "other.internal"),
        ],
    ));
    objects.push(https_site(
        "wrong-ca",
        "wrongca.example",
        &[
            ("proxy-ssl-secret", "upstream-wrong-ca"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-name", "api.internal"),
        ],
    ));
    objects.push(https_site(
        "unverified",
        "unverified.example",
        &[
            ("proxy-ssl-secret", "upstream-wrong-ca"),
            ("proxy-ssl-verify", "off"),
        ],
    ));
    objects.push(https_site("no-client-cert", "plain.example", &[]));
    objects.push(https_site(
        "verify-without-ca",
        "noca.example",
        &[
            ("proxy-ssl-secret", "upstream-no-ca"),
            ("proxy-ssl-verify", "on"),
        ],
    ));
    objects.push(https_site(
        "verify-without-secret",
        "nosecret.example",
        &[("proxy-ssl-verify", "on")],
    ));
    folder.write_objects("upstream-tls.json", &objects);
    let proxy = Proxy::start(&folder, &[]).await;

    let verified = get(proxy.http, "verified.example", "/v").await;
    assert_eq!(verified.status, 200, "{}", verified.describe());
    assert_eq!(verified.first_line(), "api");
    assert_eq!(echoed(&verified, "x-peer-cn"), Some("switchyard"));
    assert_eq!(echoed(&verified, "x-sni"), Some("api.internal"));

    // The backend's certificate does not name other.internal, nor chain to the unrelated CA.
    for host in ["wrongname.example", "wrongca.example"] {
        let refused = get(proxy.http, host, "/").await;
        assert_eq!(refused.status, 502, "{host}: {}", refused.describe());
    }
    // proxy-ssl-verify off: the certificate is presented, the backend's is not checked, and
    // no SNI is sent (proxy-ssl-server-name's default).
    let unverified = get(proxy.http, "unverified.example", "/").await;
    assert_eq!(unverified.status, 200, "{}", unverified.describe());
    assert_eq!(echoed(&unverified, "x-peer-cn"), Some("switchyard"));
    assert_eq!(echoed(&unverified, "x-sni"), Some(""));
    // Without proxy-ssl-secret there is no client certificate: this backend refuses.
    let plain = get(proxy.http, "plain.example", "/").await;
    assert_eq!(plain.status, 502, "{}", plain.describe());
    // Verification asked for but impossible: never sent unverified.
    for host in ["noca.example", "nosecret.example"] {
        let closed = get(proxy.http, host, "/").await;
        assert_eq!(closed.status, 503, "{host}: {}", closed.describe());
    }
    let log = proxy.log();
    assert!(
        log.contains("proxy-ssl-verify is on but the Secret has no ca.crt"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_passthrough_splices_tls_to_the_backend_and_other_hosts_still_terminate() {
    let folder = Folder::new();
    let web = backend("web").await;
    let backend_ca = TestCa::new("passthrough CA").expect("CA");
    let serving = backend_ca
        .serving("pass backend", &["pass.example"])
        .expect("cert");
    let pass = tls_backend("pass", &serving, None).await;

    let mut objects = vec![class()];
    objects.extend(backend_service("web", web));
    objects.extend(backend_service("pass", pass));
    objects.push(site(
        "pass",
        "pass.example",
        "pass",
        &[("ssl-passthrough", "true")],
    ));
    objects.push(site("web", "web.example", "web", &[]));
    folder.write_objects("passthrough.json", &objects);
    let proxy = Proxy::start(&folder, &["--enable-ssl-passthrough"]).await;

    // The client verifies the backend's own certificate for pass.example: TLS went through.
    let passed = https_get(
        proxy.https,
        Some("pass.example"),
        "pass.example",
        "/through",
        &Trust::pem(backend_ca.cert_pem()),
    )
    .await
    .expect("handshake with the backend itself");
    assert_eq!(passed.leaf().subject_cn.as_deref(), Some("pass backend"));
    assert_eq!(passed.reply.status, 200, "{}", passed.reply.describe());
    assert_eq!(passed.reply.first_line(), "pass");
    assert_eq!(echoed(&passed.reply, "x-sni"), Some("pass.example"));
    // No forwarding headers: the proxy never saw the request.
    assert_eq!(echoed(&passed.reply, "x-forwarded-for"), None);

    // Another host on the same listener is terminated by the proxy.
    let terminated = https_get(
        proxy.https,
        Some("web.example"),
        "web.example",
        "/",
        &Trust::Anything,
    )
    .await
    .expect("handshake with the proxy");
    assert_ne!(
        terminated.leaf().subject_cn.as_deref(),
        Some("pass backend")
    );
    assert_eq!(
        terminated.reply.status,
        200,
        "{}",
        terminated.reply.describe()
    );
    assert_eq!(terminated.reply.first_line(), "web");
    assert_eq!(
        echoed(&terminated.reply, "x-forwarded-proto"),
        Some("https")
    );

    // Peeking at the ClientHello leaves ALPN alone: HTTP/2 is still negotiated with the proxy.
    let curl = std::process::Command::new("curl")
        .args(["-sk", "--http2", "-o", "/dev/null", "-w", "%{http_version}"])
        .arg("--resolve")
        .arg(format!("web.example:{}:127.0.0.1", proxy.https))
        .arg(format!("https://web.example:{}/", proxy.https))
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "2");

    // Plain HTTP to the passthrough host is still served by the proxy, as in ingress-nginx.
    assert_eq!(get(proxy.http, "pass.example", "/").await.status, 502);

    // Without the flag: a Warning, and the host is terminated like any other.
    let without = Proxy::start(&folder, &[]).await;
    let terminated = https_get(
        without.https,
        Some("pass.example"),
        "pass.example",
        "/",
        &Trust::Anything,
    )
    .await
    .expect("handshake with the proxy");
    assert_ne!(
        terminated.leaf().subject_cn.as_deref(),
        Some("pass backend")
    );
    assert!(
        without
            .log()
            .contains("needs the flag --enable-ssl-passthrough"),
        "{}",
        without.log()
    );
}

/// Garbage on the TLS listener with passthrough on does not hang or crash anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_peeking_gives_up_on_what_is_not_a_client_hello() {
    let folder = Folder::new();
    let web = backend("web").await;
    let mut objects = vec![class()];
    objects.extend(backend_service("web", web));
    objects.push(site("web", "web.example", "web", &[]));
    folder.write_objects("web.json", &objects);
    let proxy = Proxy::start(&folder, &["--enable-ssl-passthrough"]).await;
    let reply = request(proxy.https, "GET / HTTP/1.1\r\nHost: web.example\r\n").await;
    assert_eq!(
        reply.status, 0,
        "plain HTTP on the TLS port gets no HTTP answer"
    );
    let after = https_get(
        proxy.https,
        Some("web.example"),
        "web.example",
        "/",
        &Trust::Anything,
    )
    .await
    .expect("handshake");
    assert_eq!(after.reply.status, 200);
}
