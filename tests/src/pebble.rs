//! A real ACME server: Debian's Pebble with pebble-challtestsrv as its DNS server, answering
//! every name with 127.0.0.1, so Pebble really fetches HTTP-01 tokens from a port on this
//! machine that the test chooses (where the proxy under test listens).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::binaries::binary;
use crate::pki::{self, TestCa};
use crate::ports::free_ports;
use crate::process::{Supervised, log_tail};
use crate::{Error, write_file};

pub struct PebbleOptions {
    /// The port Pebble connects to on 127.0.0.1 to validate HTTP-01 challenges.
    pub http01_port: u16,
    /// Lifetime of issued certificates (Pebble's `certificateValidityPeriod`); short values
    /// make renewal testable.
    pub certificate_validity: Duration,
}

pub struct Pebble {
    directory_url: String,
    management_url: String,
    server_ca_pem: String,
    // Pebble first, so it stops before its DNS server.
    processes: Vec<Supervised>,
    _dir: tempfile::TempDir,
}

impl Pebble {
    pub fn start(options: PebbleOptions) -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-pebble-")
            .tempdir()
            .map_err(Error::io("create a temporary directory"))?;
        let root = dir.path();
        let ca = TestCa::new("switchyard-pebble-listener-ca")?;
        let listener = pki::write_pair(root, "pebble", &ca.serving("pebble", &["pebble"])?)?;

        let ports = free_ports(4)?;
        let (acme, management, dns, challtest_mgmt) = (ports[0], ports[1], ports[2], ports[3]);

        let mut challtest = Command::new(binary("pebble-challtestsrv")?);
        challtest.args([
            "-dns01",
            &format!("127.0.0.1:{dns}"),
            "-defaultIPv4",
            "127.0.0.1",
            // No AAAA answers: the proxy under test listens on IPv4 loopback only.
            "-defaultIPv6",
            "",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{challtest_mgmt}"),
        ]);
        let challtest = Supervised::spawn(
            "pebble-challtestsrv",
            challtest,
            &root.join("challtestsrv.log"),
        )?;

        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": listener.cert,
                "privateKey": listener.key,
                "httpPort": options.http01_port,
                "tlsPort": 0,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": options.certificate_validity.as_secs(),
                "retryAfter": { "authz": 1, "order": 1 },
            }
        });
        let config_path = root.join("pebble-config.json");
        write_file(&config_path, &config.to_string())?;
        let mut pebble = Command::new(binary("pebble")?);
        pebble
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{dns}"))
            // No artificial waits and no random nonce rejections: tests stay fast and exact.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0");
        let pebble = Supervised::spawn("pebble", pebble, &root.join("pebble.log"))?;

        let mut this = Pebble {
            directory_url: format!("https://127.0.0.1:{acme}/dir"),
            management_url: format!("127.0.0.1:{management}"),
            server_ca_pem: ca.cert_pem().to_string(),
            processes: vec![pebble, challtest],
            _dir: dir,
        };
        this.wait_ready(acme, Duration::from_secs(30))?;
        Ok(this)
    }

    /// The ACME directory URL.
    pub fn directory_url(&self) -> &str {
        &self.directory_url
    }

    /// The CA that signed Pebble's own HTTPS listener (an Issuer's `caBundle`).
    pub fn server_ca_pem(&self) -> &str {
        &self.server_ca_pem
    }

    /// The root that Pebble signs issued certificates with, from its management endpoint.
    pub fn issuing_root_pem(&self) -> Result<String, Error> {
        https_get(&self.management_url, "/roots/0", &self.server_ca_pem)
    }

    pub fn log_paths(&self) -> Vec<PathBuf> {
        self.processes
            .iter()
            .map(|p| p.log_path().to_path_buf())
            .collect()
    }

    fn wait_ready(&mut self, port: u16, limit: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        while Instant::now() < deadline {
            for p in &mut self.processes {
                p.check_running()?;
            }
            match https_get(&format!("127.0.0.1:{port}"), "/dir", &self.server_ca_pem) {
                Ok(body) if body.contains("newOrder") => return Ok(()),
                Ok(body) => last = format!("unexpected directory: {body}"),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let logs = self
            .processes
            .iter()
            .map(|p| log_tail(p.log_path(), 20))
            .collect::<Vec<_>>()
            .join("\n");
        Err(Error::Timeout {
            what: "pebble".into(),
            seconds: limit.as_secs(),
            detail: format!("{last}\n{logs}"),
        })
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for p in &mut self.processes {
            p.stop();
        }
    }
}

/// A one-shot HTTPS GET over HTTP/1.0 that trusts only `ca_pem`; returns the body of a 200.
pub fn https_get(addr: &str, path: &str, ca_pem: &str) -> Result<String, Error> {
    let invalid = |detail: String| Error::Invalid {
        context: format!("GET https://{addr}{path}"),
        detail,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| invalid(format!("CA PEM: {e}")))?;
        roots.add(cert).map_err(|e| invalid(format!("CA: {e}")))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    let name = ServerName::try_from(host.to_string()).map_err(|e| invalid(e.to_string()))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| invalid(e.to_string()))?;
    let sock = TcpStream::connect(addr).map_err(Error::io(format!("connect {addr}")))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(Error::io("set timeout"))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    write!(
        tls,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(Error::io(format!("send to {addr}")))?;
    let mut response = Vec::new();
    // Pebble closes without close_notify at times; what was read until then is the answer.
    let _ = tls.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| invalid(format!("no HTTP response: {text}")))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(invalid(head.lines().next().unwrap_or_default().to_string()));
    }
    Ok(body.to_string())
}
