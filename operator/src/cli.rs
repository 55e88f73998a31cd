//! The operator's command line (DESIGN.md, "switchyard-operator flags").

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Parser};

/// Switchyard's operator: expands RolloutRoute resources into Ingresses (blue-green, canary
/// steps, analysis and rollback) and issues ACME certificates for Certificate, Issuer and
/// ClusterIssuer resources. Runs its controllers only while it holds the leader Lease, so
/// several replicas are safe.
#[derive(Debug, Clone, Parser)]
#[command(name = "switchyard-operator", version, about, long_about = None)]
pub struct Cli {
    /// Kubeconfig to use; otherwise KUBECONFIG, then the in-cluster service account.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Namespace where ClusterIssuer account Secrets live [default: the operator's namespace].
    #[arg(long, value_name = "NS")]
    pub cluster_resource_namespace: Option<String>,

    /// Namespace of the leader-election Lease [default: the operator's namespace].
    #[arg(long, value_name = "NS")]
    pub leader_election_namespace: Option<String>,

    /// The proxy Service whose endpoints are scraped for analysis metrics and through which
    /// HTTP-01 answers are self-checked.
    #[arg(long, value_name = "NS/NAME", value_parser = parse_namespaced)]
    pub proxy_service: Option<Namespaced>,

    /// A proxy metrics URL to scrape instead of the proxy Service's endpoints (repeatable; for
    /// local runs).
    #[arg(long, value_name = "URL", action = ArgAction::Append)]
    pub proxy_metrics_url: Vec<String>,

    /// A proxy HTTP URL for HTTP-01 self-checks instead of the proxy Service (repeatable; for
    /// local runs).
    #[arg(long, value_name = "URL", action = ArgAction::Append)]
    pub proxy_http_url: Vec<String>,

    /// The Service that challenge Ingresses point at (the operator serves HTTP-01 answers
    /// behind it, so a foreign ingress controller can route them too).
    #[arg(long, value_name = "NS/NAME:PORT", value_parser = parse_solver_service)]
    pub acme_solver_service: Option<SolverService>,

    /// Honour cert-manager.io/* annotations on Ingresses. Turn off while cert-manager still
    /// runs beside Switchyard.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = ArgAction::Set)]
    pub cert_manager_annotations: bool,

    /// Watch RolloutRoutes, Certificates, Issuers and Ingresses in this namespace only
    /// [default: all namespaces]. ClusterIssuers are cluster-wide either way.
    #[arg(long, value_name = "NS")]
    pub watch_namespace: Option<String>,

    /// Address of the ACME HTTP-01 solver (the backend of challenge Ingresses).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8089")]
    pub acme_solver_addr: SocketAddr,

    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
}

/// A `namespace/name` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaced {
    pub namespace: String,
    pub name: String,
}

/// `namespace/name:port` of the ACME solver Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolverService {
    pub service: Namespaced,
    pub port: u16,
}

fn parse_namespaced(s: &str) -> Result<Namespaced, String> {
    let (namespace, name) = s
        .split_once('/')
        .ok_or_else(|| format!("expected NAMESPACE/NAME, got {s:?}"))?;
    for (what, part) in [("namespace", namespace), ("name", name)] {
        if !is_dns_label(part) {
            return Err(format!(
                "{what} {part:?} is not a valid Kubernetes name (lower-case letters, digits and '-', at most 63)"
            ));
        }
    }
    Ok(Namespaced {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

fn parse_solver_service(s: &str) -> Result<SolverService, String> {
    let (svc, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected NAMESPACE/NAME:PORT, got {s:?}"))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port {port:?} is not a number between 1 and 65535"))?;
    Ok(SolverService {
        service: parse_namespaced(svc)?,
        port,
    })
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_flags() {
        let cli = Cli::try_parse_from([
            "switchyard-operator",
            "--proxy-service",
            "ingress/switchyard-proxy",
            "--acme-solver-service",
            "ingress/switchyard-solver:8089",
            "--cert-manager-annotations=false",
            "--proxy-metrics-url",
            "http://127.0.0.1:10254/metrics",
            "--proxy-metrics-url",
            "http://127.0.0.1:10255/metrics",
        ])
        .expect("valid flags");
        assert_eq!(
            cli.proxy_service,
            Some(Namespaced {
                namespace: "ingress".into(),
                name: "switchyard-proxy".into()
            })
        );
        assert_eq!(cli.acme_solver_service.map(|s| s.port), Some(8089));
        assert!(!cli.cert_manager_annotations);
        assert_eq!(cli.proxy_metrics_url.len(), 2);
    }

    #[test]
    fn cert_manager_annotations_default_on() {
        let cli = Cli::try_parse_from(["switchyard-operator"]).expect("no flags");
        assert!(cli.cert_manager_annotations);
        assert_eq!(cli.metrics_addr.port(), 9090);
    }

    #[test]
    fn rejects_malformed_references_with_a_reason() {
        let err = Cli::try_parse_from(["switchyard-operator", "--proxy-service", "just-a-name"])
            .expect_err("no namespace");
        assert!(err.to_string().contains("NAMESPACE/NAME"), "{err}");
        let err = Cli::try_parse_from([
            "switchyard-operator",
            "--acme-solver-service",
            "ns/solver:http",
        ])
        .expect_err("named port");
        assert!(err.to_string().contains("not a number"), "{err}");
        let err = Cli::try_parse_from(["switchyard-operator", "--proxy-service", "NS/Upper"])
            .expect_err("upper case");
        assert!(
            err.to_string().contains("not a valid Kubernetes name"),
            "{err}"
        );
    }
}
