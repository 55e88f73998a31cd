//! What the proxy's tests against a real apiserver share: the proxy process and the manifests
//! they apply.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use switchyard_tests::ports::free_ports;
use switchyard_tests::process::{Supervised, log_tail};

/// A running `switchyard-proxy`; a failing test shows what it logged.
pub struct Proxy {
    pub process: Supervised,
    pub http: String,
    pub metrics: String,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ---\n{}",
                self.process.name(),
                log_tail(self.process.log_path(), 60)
            );
        }
    }
}

/// Starts the proxy against `kubeconfig` on free loopback ports, as pod `pod` in `namespace`
/// (where its Lease lives), with `args` added.
pub fn start_proxy(
    kubeconfig: &Path,
    namespace: &str,
    pod: &str,
    logs: &Path,
    args: &[&str],
) -> Proxy {
    let ports = free_ports(3).expect("ports");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard-proxy"));
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .args(["--http-addr", &format!("127.0.0.1:{}", ports[0])])
        .args(["--https-addr", &format!("127.0.0.1:{}", ports[1])])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", ports[2])])
        .env("POD_NAMESPACE", namespace)
        .env("POD_NAME", pod)
        .env("RUST_LOG", "info");
    Proxy {
        process: Supervised::spawn(pod, cmd, &logs.join(format!("{pod}.log")))
            .expect("spawn proxy"),
        http: format!("127.0.0.1:{}", ports[0]),
        metrics: format!("127.0.0.1:{}", ports[2]),
    }
}

pub fn ingress_class(class: &str, controller: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: {class}}}\nspec: {{controller: {controller}}}\n"
    )
}

/// An Ingress of `class` sending `host` / to `service`:`port`.
pub fn ingress(name: &str, class: &str, host: &str, service: &str, port: u16) -> String {
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}}}
spec:
  ingressClassName: {class}
  rules:
  - host: {host}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {{name: {service}, port: {{number: {port}}}}}
"#
    )
}

/// A Service for a backend on this machine. No kubelet, and the apiserver refuses loopback
/// endpoints: ExternalName stands in.
pub fn external_service(name: &str, port: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{{name: http, port: {port}}}]
"#
    )
}
