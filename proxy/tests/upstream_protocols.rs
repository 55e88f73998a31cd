//! Component test of the upstream protocols a Service port's `appProtocol` selects, through
//! real sockets: gRPC end to end over HTTP/2 (h2c downstream and HTTP/2 over TLS by ALPN, h2c
//! upstream, request body streamed in, response trailers carried back), and an HTTPS upstream.

use std::convert::Infallible;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use switchyard_tests::eventually;
use switchyard_tests::http as plain_http;
use switchyard_tests::pki::TestCa;
use switchyard_tests::ports::free_ports;
use switchyard_tests::process::{Supervised, log_tail};
use tokio::net::{TcpListener, TcpStream};

type StreamedBody =
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// A gRPC-shaped unary handler: echoes the request message with the protocol it saw, then
/// ends with `grpc-status: 0` in the trailers, as every gRPC server does.
async fn grpc_echo(req: Request<Incoming>) -> Result<Response<StreamedBody>, Infallible> {
    let version = req.version();
    let te = req
        .headers()
        .get("te")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let message = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut body = format!("{version:?} te={te} ").into_bytes();
    body.extend_from_slice(&message);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("grpc-message", HeaderValue::from_static("echoed"));
    let frames = vec![
        Ok(Frame::data(Bytes::from(body))),
        Ok(Frame::trailers(trailers)),
    ];
    let mut response = Response::new(StreamBody::new(futures::stream::iter(frames)));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    Ok(response)
}

/// An HTTP/2-only (prior knowledge) backend, as gRPC servers are.
async fn start_h2c_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service_fn(grpc_echo))
                    .await;
            });
        }
    });
    port
}

/// An HTTP/1.1 backend behind TLS, answering with the protocol it saw.
async fn start_tls_backend(ca: &TestCa) -> u16 {
    let (cert, key) = ca.serving("backend", &[]).expect("backend cert");
    let certs = rustls_pemfile_certs(&cert);
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(|req: Request<Incoming>| async move {
                    let text = format!("tls-backend {:?} {}\n", req.version(), req.uri());
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

fn rustls_pemfile_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates")
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn manifests(grpc_port: u16, tls_port: u16, cert: &str, key: &str) -> String {
    let service = |name: &str, port: u16, app_protocol: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{name: main, port: 80, appProtocol: {app_protocol}}}]}}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-1, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nports: [{{name: main, port: {port}}}]\nendpoints: [{{addresses: [127.0.0.1]}}]\n---\n"
        )
    };
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: switchyard}}\nspec: {{controller: switchyard.dev/ingress-controller}}\n---\n\
         {grpc}{tls}\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: grpc-tls}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{cert}\n  tls.key: |\n{key}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: apis}}\nspec:\n  ingressClassName: switchyard\n  tls: [{{hosts: [grpc-tls.example], secretName: grpc-tls}}]\n  rules:\n\
         {ind}- host: grpc.example\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: grpc, port: {{name: main}}}}}}}}]}}\n\
         {ind}- host: grpc-tls.example\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: grpc, port: {{name: main}}}}}}}}]}}\n\
         {ind}- host: secure-backend.example\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: tls-backend, port: {{number: 80}}}}}}}}]}}\n",
        grpc = service("grpc", grpc_port, "kubernetes.io/h2c"),
        tls = service("tls-backend", tls_port, "https"),
        cert = indent(cert),
        key = indent(key),
        ind = "  ",
    )
}

/// One gRPC-shaped call over an HTTP/2 connection: (response body, trailers).
async fn call<T>(io: T, authority: &str) -> (String, HeaderMap)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(io),
    )
    .await
    .expect("HTTP/2 handshake with the proxy");
    tokio::spawn(conn);
    // A gRPC message: compressed flag, 4-byte length, payload.
    let mut message = vec![0, 0, 0, 0, 5];
    message.extend_from_slice(b"hello");
    let req = Request::post(format!("http://{authority}/echo.Echo/Say"))
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(message)))
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("response within 10 s")
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/grpc"[..])
    );
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let body = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
    (body, trailers)
}

/// The proxy process; a failing test shows what it logged.
struct Proxy(Supervised);

impl Drop for Proxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- proxy log ---\n{}", log_tail(self.0.log_path(), 60));
        }
    }
}

fn start_proxy(folder: &Path, logs: &Path) -> (Proxy, Vec<u16>) {
    let ports = free_ports(3).expect("ports");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard-proxy"));
    cmd.arg("--manifests")
        .arg(folder)
        .args(["--http-addr", &format!("127.0.0.1:{}", ports[0])])
        .args(["--https-addr", &format!("127.0.0.1:{}", ports[1])])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", ports[2])])
        .env("RUST_LOG", "info");
    let proxy = Supervised::spawn("proxy", cmd, &logs.join("proxy.log")).expect("start proxy");
    (Proxy(proxy), ports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_http2_and_https_upstreams_work_end_to_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new("upstream protocols CA").expect("CA");
    let grpc_port = start_h2c_backend().await;
    let tls_port = start_tls_backend(&ca).await;
    let (cert, key) = ca
        .serving("grpc-tls.example", &["grpc-tls.example"])
        .expect("cert");
    let folder = dir.path().join("manifests");
    std::fs::create_dir(&folder).expect("folder");
    std::fs::write(
        folder.join("all.yaml"),
        manifests(grpc_port, tls_port, &cert, &key),
    )
    .expect("manifests");
    let (_proxy, ports) = start_proxy(&folder, dir.path());
    let http_addr = format!("127.0.0.1:{}", ports[0]);

    // HTTPS upstream (appProtocol: https): the proxy speaks TLS to it.
    let addr = http_addr.clone();
    eventually(
        "the HTTPS upstream answers",
        Duration::from_secs(20),
        || {
            let addr = addr.clone();
            async move {
                plain_http::get(&addr, "secure-backend.example", "/over-tls")
                    .is_ok_and(|r| r.status == 200 && r.body == "tls-backend HTTP/1.1 /over-tls\n")
            }
        },
    )
    .await;

    // gRPC over h2c (prior knowledge) downstream, h2c upstream.
    let stream = TcpStream::connect(&http_addr).await.expect("connect");
    let (body, trailers) = call(stream, "grpc.example").await;
    assert_eq!(body, "HTTP/2.0 te=trailers \0\0\0\0\x05hello");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    assert_eq!(
        trailers.get("grpc-message").map(|v| v.as_bytes()),
        Some(&b"echoed"[..])
    );

    // gRPC over TLS, HTTP/2 chosen by ALPN; the Secret's certificate is verified.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(ca.cert_pem()) {
        roots.add(cert).expect("CA root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", ports[1]))
        .await
        .expect("connect https");
    let name = rustls::pki_types::ServerName::try_from("grpc-tls.example").expect("name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (body, trailers) = call(tls, "grpc-tls.example").await;
    assert!(body.starts_with("HTTP/2.0 te=trailers "), "{body:?}");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
}
