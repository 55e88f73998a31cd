//! What the certificate tests share: the real proxy and operator processes, a test's own
//! IngressClass, Events, and HTTPS through the proxy.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::ListParams;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use switchyard_crds::{Certificate, condition};
use switchyard_tests::pebble::{Pebble, PebbleOptions};
use switchyard_tests::ports::free_ports;
use switchyard_tests::process::{Supervised, log_tail};
use switchyard_tests::{eventually, shared_cluster};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// A supervised process that shows the end of its log when a test fails.
pub struct Logged(pub Supervised);

impl Drop for Logged {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ---\n{}",
                self.0.name(),
                log_tail(self.0.log_path(), 80)
            );
        }
    }
}

/// The `switchyard-proxy` binary of this workspace. It is another package's binary, so Cargo
/// does not build it for this one's tests: build it here (a no-op when fresh) and find it next
/// to this test's own target directory.
pub fn proxy_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            // target/<profile>/deps/<test> → target/<profile>
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>")
                .to_path_buf();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .current_dir(switchyard_tests::repo_root())
                .args(["build", "--quiet", "-p", "switchyard-proxy", "--bin"])
                .arg("switchyard-proxy");
            if profile_dir.file_name().is_some_and(|p| p == "release") {
                build.arg("--release");
            }
            if let Some(target) = profile_dir.parent() {
                build.env("CARGO_TARGET_DIR", target);
            }
            let status = build.status().expect("run cargo build");
            let binary = profile_dir.join("switchyard-proxy");
            assert!(
                status.success() || binary.exists(),
                "building switchyard-proxy failed ({status})"
            );
            binary
        })
        .clone()
}

/// A running `switchyard-proxy`.
pub struct Proxy {
    pub process: Logged,
    pub http_port: u16,
    pub https_port: u16,
}

/// Starts the proxy against `kubeconfig`, serving only `namespace` and the IngressClasses of
/// `controller` (so proxies of concurrent tests never serve each other's Ingresses), on
/// `http_port` (Pebble's HTTP-01 port, say) and free ports for HTTPS and metrics.
pub fn start_proxy(
    kubeconfig: &Path,
    namespace: &str,
    controller: &str,
    http_port: u16,
    logs: &Path,
    pod: &str,
) -> Proxy {
    let ports = free_ports(2).expect("ports");
    let mut cmd = Command::new(proxy_binary());
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--watch-namespace", namespace])
        .args(["--controller-class", controller])
        .args(["--http-addr", &format!("127.0.0.1:{http_port}")])
        .args(["--https-addr", &format!("127.0.0.1:{}", ports[0])])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", ports[1])])
        .env("POD_NAMESPACE", namespace)
        .env("POD_NAME", pod)
        .env("RUST_LOG", "info");
    let process = Supervised::spawn(pod, cmd, &logs.join(format!("{pod}.log"))).expect("proxy");
    Proxy {
        process: Logged(process),
        http_port,
        https_port: ports[0],
    }
}

/// Starts the operator against `kubeconfig`, watching only `namespace` (its Lease and its
/// ClusterIssuer Secrets live there too), self-checking tokens through `proxy_http_urls`.
pub fn start_operator(
    kubeconfig: &Path,
    namespace: &str,
    proxy_http_urls: &[String],
    logs: &Path,
) -> Logged {
    let ports = free_ports(2).expect("ports");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard-operator"));
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--watch-namespace", namespace])
        .args(["--leader-election-namespace", namespace])
        .args(["--cluster-resource-namespace", namespace])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", ports[0])])
        .args(["--acme-solver-addr", &format!("127.0.0.1:{}", ports[1])])
        .args(["--acme-solver-service", &format!("{namespace}/solver:8089")])
        .env("POD_NAME", format!("operator-{namespace}"))
        .env("RUST_LOG", "info,kube=warn");
    for url in proxy_http_urls {
        cmd.args(["--proxy-http-url", url]);
    }
    Logged(
        Supervised::spawn("switchyard-operator", cmd, &logs.join("operator.log"))
            .expect("operator"),
    )
}

/// An IngressClass served by proxies started with `--controller-class controller`.
pub fn ingress_class(class: &str, controller: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: {class}}}\nspec: {{controller: {controller}}}\n"
    )
}

/// An ExternalName Service for a backend on this machine (the apiserver refuses loopback
/// endpoints).
pub fn external_service(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: ExternalName\n  externalName: localhost\n  ports: [{{name: http, port: {port}}}]\n"
    )
}

/// The Events with `reason` about the object `name` in `namespace`, counting repeats.
pub async fn events(client: &kube::Client, namespace: &str, name: &str, reason: &str) -> usize {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let list = api.list(&ListParams::default()).await.expect("list Events");
    list.items
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .map(|e| {
            e.series
                .as_ref()
                .map_or(1, |s| usize::try_from(s.count).unwrap_or(1).max(1))
        })
        .sum()
}

/// Waits until there are exactly `count` Events with `reason` about `name` (Events are
/// published after the status that tells the same is written).
pub async fn expect_events(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    reason: &str,
    count: usize,
) {
    eventually(
        &format!("{count} Event(s) {reason} about {name}"),
        Duration::from_secs(10),
        || async { events(client, namespace, name, reason).await == count },
    )
    .await;
}

/// The certificate chain the server at `127.0.0.1:port` presents for SNI `host`, verified
/// against `root_pem`, and the status line of `GET /` over that connection.
/// A TLS client trusting only the roots in `root_pem`.
fn client_config(root_pem: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

pub fn https_get(
    port: u16,
    host: &str,
    root_pem: &str,
) -> Result<(Vec<CertificateDer<'static>>, String), String> {
    let config = client_config(root_pem)?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    write!(
        tls,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("TLS to {host}: {e}"))?;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    let chain = tls
        .conn
        .peer_certificates()
        .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&response);
    Ok((chain, text.lines().next().unwrap_or_default().to_string()))
}

/// An HTTPS keep-alive connection through the proxy, kept open across a certificate change:
/// each `get` sends one request on it and reads one response.
pub struct KeptConnection {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    host: String,
}

impl KeptConnection {
    pub fn open(port: u16, host: &str, root_pem: &str) -> Result<Self, String> {
        let config = client_config(root_pem)?;
        let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            tls: rustls::StreamOwned::new(conn, sock),
            host: host.to_owned(),
        })
    }

    /// One request on the open connection: its status line.
    pub fn get(&mut self) -> Result<String, String> {
        write!(self.tls, "GET / HTTP/1.1\r\nHost: {}\r\n\r\n", self.host)
            .map_err(|e| format!("send on the kept connection: {e}"))?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.tls
                .read_exact(&mut byte)
                .map_err(|e| format!("read on the kept connection: {e}"))?;
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .ok_or("a response without Content-Length")?;
        let mut body = vec![0u8; length];
        self.tls
            .read_exact(&mut body)
            .map_err(|e| format!("read the body on the kept connection: {e}"))?;
        Ok(head.lines().next().unwrap_or_default().to_owned())
    }

    /// The certificate the connection was set up with.
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.clone().into_owned())
    }
}

/// Runs a closure when dropped (cleanup that must happen when a test fails too).
pub struct Defer<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

pub const ISSUE_WITHIN: Duration = Duration::from_secs(40);

pub fn ready_of(cert: &Certificate) -> Option<(String, String, String)> {
    let status = cert.status.as_ref()?;
    condition::find(&status.conditions, condition::READY)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn is_ready(cert: &Certificate) -> bool {
    ready_of(cert).is_some_and(|(s, _, _)| s == "True")
}

pub fn acme_issuer(kind: &str, name: &str, pebble: &Pebble, class: &str) -> String {
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(pebble.server_ca_pem());
    format!(
        r#"
apiVersion: switchyard.dev/v1alpha1
kind: {kind}
metadata: {{name: {name}}}
spec:
  acme:
    server: {server}
    email: ops@example.com
    privateKeySecretRef: {{name: {name}-account}}
    caBundle: {ca_bundle}
    solvers: [{{http01: {{ingress: {{ingressClassName: {class}}}}}}}]
"#,
        server = pebble.directory_url(),
    )
}

pub fn certificate(name: &str, secret: &str, names: &[&str], issuer: &str) -> String {
    format!(
        r#"
apiVersion: switchyard.dev/v1alpha1
kind: Certificate
metadata: {{name: {name}}}
spec:
  secretName: {secret}
  dnsNames: [{}]
  issuerRef: {{kind: Issuer, name: {issuer}}}
"#,
        names.join(", ")
    )
}

/// An Ingress of `class` serving `hosts` over TLS from `secret`, to Service `web`.
pub fn tls_ingress(
    name: &str,
    class: &str,
    hosts: &[&str],
    secret: &str,
    annotations: &str,
) -> String {
    let rules: String = hosts
        .iter()
        .map(|h| {
            format!(
                "  - host: {h}\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{name: http}}}}}}}}]}}\n"
            )
        })
        .collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, annotations: {{{annotations}}}}}\nspec:\n  ingressClassName: {class}\n  tls: [{{hosts: [{}], secretName: {secret}}}]\n  rules:\n{rules}",
        hosts.join(", ")
    )
}

pub fn parse<'a>(der: &'a CertificateDer<'_>) -> X509Certificate<'a> {
    X509Certificate::from_der(der.as_ref())
        .map(|(_, c)| c)
        .expect("X.509")
}

/// Leaf → intermediates → Pebble's root, each signature checked; the leaf names `names`.
pub fn verify_chain(chain: &[CertificateDer<'_>], root_pem: &str, names: &[&str]) {
    assert!(chain.len() >= 2, "leaf and at least one intermediate");
    let root_der = CertificateDer::from_pem_slice(root_pem.as_bytes()).expect("root PEM");
    let root = parse(&root_der);
    let certs: Vec<X509Certificate<'_>> = chain.iter().map(parse).collect();
    for pair in certs.windows(2) {
        assert_eq!(pair[0].issuer(), pair[1].subject());
        pair[0]
            .verify_signature(Some(pair[1].public_key()))
            .expect("signed by the next in the chain");
    }
    let top = certs.last().expect("non-empty");
    assert_eq!(top.issuer(), root.subject());
    top.verify_signature(Some(root.public_key()))
        .expect("signed by Pebble's root");
    let sans: Vec<String> = certs[0]
        .subject_alternative_name()
        .expect("SAN")
        .expect("has SAN")
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    for name in names {
        assert!(sans.iter().any(|s| s == name), "{name} in {sans:?}");
    }
    assert!(certs[0].validity().is_valid(), "the leaf is valid now");
}

pub fn chain_of(secret: &Secret) -> Vec<CertificateDer<'static>> {
    let crt = secret
        .data
        .as_ref()
        .and_then(|d| d.get("tls.crt"))
        .expect("tls.crt");
    CertificateDer::pem_slice_iter(&crt.0)
        .collect::<Result<_, _>>()
        .expect("PEM chain")
}

/// Everything a test needs: its namespace, its Pebble and proxy (on Pebble's HTTP-01 port), its
/// IngressClass, a backend behind Service `web`, and its operator.
pub struct Setup {
    pub cluster: &'static switchyard_tests::Cluster,
    pub ns: switchyard_tests::TestNamespace,
    pub client: kube::Client,
    pub pebble: Pebble,
    pub class: String,
    pub proxy: Proxy,
    pub _operator: Option<Logged>,
    pub logs: tempfile::TempDir,
}

pub async fn setup(
    prefix: &str,
    validity: Duration,
    self_check_urls: Option<Vec<String>>,
) -> Setup {
    let cluster = shared_cluster().expect("control plane");
    let ns = cluster.namespace(prefix).expect("namespace");
    let logs = tempfile::tempdir().expect("tempdir");
    let http_port = free_ports(1).expect("port")[0];
    let pebble = Pebble::start(PebbleOptions {
        http01_port: http_port,
        certificate_validity: validity,
    })
    .expect("pebble");
    let class = format!("sw-{}", ns.name());
    let controller = format!("switchyard.dev/{}", ns.name());
    let backend = switchyard_tests::backend::spawn("web")
        .await
        .expect("backend");
    cluster
        .apply_yaml(
            ns.name(),
            &format!(
                "{}---\n{}",
                ingress_class(&class, &controller),
                external_service("web", backend)
            ),
        )
        .expect("class and service");
    let proxy = start_proxy(
        cluster.kubeconfig(),
        ns.name(),
        &controller,
        http_port,
        logs.path(),
        "proxy",
    );
    let urls = self_check_urls.unwrap_or_else(|| vec![format!("http://127.0.0.1:{http_port}")]);
    let operator = start_operator(cluster.kubeconfig(), ns.name(), &urls, logs.path());
    let client = cluster.client().await.expect("client");
    Setup {
        cluster,
        ns,
        client,
        pebble,
        class,
        proxy,
        _operator: Some(operator),
        logs,
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // Cluster-scoped: not removed with the namespace.
        let _ = self
            .cluster
            .kubectl_ok(&["delete", "ingressclass", &self.class, "--wait=false"]);
    }
}

impl Setup {
    pub fn certs(&self) -> Api<Certificate> {
        Api::namespaced(self.client.clone(), self.ns.name())
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), self.ns.name())
    }

    pub fn apply(&self, yaml: &str) {
        self.cluster
            .apply_yaml(self.ns.name(), yaml)
            .expect("apply");
    }

    pub async fn wait_ready(&self, name: &str, within: Duration) -> Certificate {
        let certs = self.certs();
        eventually(&format!("Certificate {name} is Ready"), within, || async {
            certs
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .is_some_and(|c| is_ready(&c))
        })
        .await;
        certs.get(name).await.expect("Certificate")
    }

    pub async fn challenge_ingresses(&self) -> usize {
        Api::<Ingress>::namespaced(self.client.clone(), self.ns.name())
            .list(&ListParams::default().labels("switchyard.dev/acme-challenge=true"))
            .await
            .expect("list Ingresses")
            .items
            .len()
    }

    /// HTTPS through the proxy for `host` presents the chain in `secret`, verified against
    /// Pebble's root, and routes to the backend.
    pub async fn serves_over_https(&self, host: &str, secret: &Secret, root: &str) {
        let want = chain_of(secret);
        let port = self.proxy.https_port;
        let mut last = String::new();
        for _ in 0..100 {
            match https_get(port, host, root) {
                Ok((chain, status)) if chain.first() == want.first() => {
                    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
                    verify_chain(&chain, root, &[host]);
                    return;
                }
                Ok((_, status)) => last = format!("another certificate ({status})"),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the proxy never presented the new certificate for {host}: {last}");
    }
}
