//! Command line: the flags DESIGN.md fixes, with their defaults, and the `check` subcommand.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::compile::CompileOptions;
use crate::model::ObjectKey;

/// Switchyard's ingress controller data plane.
///
/// Serves networking.k8s.io/v1 Ingresses of its class, live from the Kubernetes API (found via
/// --kubeconfig, then $KUBECONFIG, then the in-cluster service account) or from a folder of
/// manifests (--manifests, no cluster needed). Every change compiles into a new route table
/// that replaces the old one atomically: no reloads, no dropped connections.
#[derive(Debug, Parser)]
#[command(name = "switchyard-proxy", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub flags: Flags,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile manifest files as the proxy would and print every problem, per object.
    ///
    /// Exits non-zero when a document is malformed or any object has an error (for CI).
    /// The class flags (--ingress-class, --controller-class, --watch-ingress-without-class,
    /// --watch-namespace) decide which Ingresses are checked, as when serving.
    Check {
        /// Manifest files (YAML, multi-document allowed, or JSON), read in the order given.
        #[arg(short = 'f', long = "filename", value_name = "FILE", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct Flags {
    /// Plain HTTP listener (HTTP/1.1 and prior-knowledge HTTP/2).
    #[arg(
        long,
        global = true,
        value_name = "ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub http_addr: SocketAddr,

    /// TLS listener (SNI picks the certificate; ALPN h2 and http/1.1).
    #[arg(
        long,
        global = true,
        value_name = "ADDR",
        default_value = "0.0.0.0:8443"
    )]
    pub https_addr: SocketAddr,

    /// Operations listener serving /healthz, /readyz and /metrics.
    #[arg(
        long,
        global = true,
        value_name = "ADDR",
        default_value = "0.0.0.0:10254"
    )]
    pub metrics_addr: SocketAddr,

    /// Serve Ingresses whose legacy kubernetes.io/ingress.class annotation has this value.
    #[arg(long, global = true, value_name = "NAME", default_value = "switchyard")]
    pub ingress_class: String,

    /// Serve Ingresses whose IngressClass has this spec.controller. To take over ingress-nginx's
    /// class in place: --controller-class k8s.io/ingress-nginx --ingress-class nginx.
    #[arg(
        long,
        global = true,
        value_name = "CONTROLLER",
        default_value = "switchyard.dev/ingress-controller"
    )]
    pub controller_class: String,

    /// Also serve Ingresses that name no class at all (otherwise only when one of our
    /// IngressClasses is annotated ingressclass.kubernetes.io/is-default-class: "true").
    #[arg(long, global = true)]
    pub watch_ingress_without_class: bool,

    /// Serve only this namespace (default: all namespaces).
    #[arg(long, global = true, value_name = "NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// The controller ConfigMap (NS/NAME): ingress-nginx's global settings (ssl-redirect, hsts*,
    /// disable-access-log, proxy-read-timeout), watched and applied live.
    #[arg(long, global = true, value_name = "NS/NAME", value_parser = parse_key)]
    pub configmap: Option<ObjectKey>,

    /// The kubernetes.io/tls Secret (NS/NAME) served for unknown SNI names; without it a
    /// self-signed certificate made at start is served.
    #[arg(long, global = true, value_name = "NS/NAME", value_parser = parse_key)]
    pub default_ssl_certificate: Option<ObjectKey>,

    /// The Service (NS/NAME, its first port) that answers requests no rule matches; without it
    /// the proxy answers 404 itself.
    #[arg(long, global = true, value_name = "NS/NAME", value_parser = parse_key)]
    pub default_backend_service: Option<ObjectKey>,

    /// Write this Service's addresses into status.loadBalancer of served Ingresses (NS/NAME):
    /// its load balancer's addresses, else its external IPs, else its cluster IP. Without this
    /// or --publish-address no Ingress status is written.
    #[arg(long, global = true, value_name = "NS/NAME", value_parser = parse_key, conflicts_with = "publish_address")]
    pub publish_service: Option<ObjectKey>,

    /// Write these addresses (comma-separated IPs or hostnames) into status.loadBalancer of
    /// served Ingresses.
    #[arg(long, global = true, value_name = "ADDR")]
    pub publish_address: Option<String>,

    /// Serve the Ingresses, IngressClasses, Services, EndpointSlices, Secrets and ConfigMaps in
    /// this folder's *.yaml, *.yml and *.json files instead of a cluster; changes apply live.
    /// Objects without a namespace are in `default`; file order then namespace/name stands in
    /// for creationTimestamp.
    #[arg(long, global = true, value_name = "DIR")]
    pub manifests: Option<PathBuf>,

    /// Kubeconfig file for the cluster (default: $KUBECONFIG, then in-cluster configuration).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Write one access log line per request to stdout (the controller ConfigMap's
    /// `disable-access-log: "true"` also turns it off).
    #[arg(long, global = true, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub access_log: bool,

    /// Access log format: ingress-nginx's default line, or one JSON object per line. The
    /// controller ConfigMap's `log-format-upstream` (or `log-format-escape-*`) replaces it.
    #[arg(long, global = true, value_name = "FORMAT", value_enum, default_value_t = crate::access_log::Format::Text)]
    pub access_log_format: crate::access_log::Format,

    /// Serving threads, each with its own event loop and upstream connection pools, like
    /// nginx's worker processes (default: one per CPU).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,

    /// Honour the ssl-passthrough annotation: on the TLS listener, connections whose SNI names
    /// such a host go to its backend untouched (TLS is not terminated). Off by default, as in
    /// ingress-nginx.
    #[arg(long, global = true)]
    pub enable_ssl_passthrough: bool,
}

impl Flags {
    pub fn compile_options(&self) -> CompileOptions {
        CompileOptions {
            ingress_class: self.ingress_class.clone(),
            controller_class: self.controller_class.clone(),
            watch_ingress_without_class: self.watch_ingress_without_class,
            watch_namespace: self.watch_namespace.clone(),
            default_backend_service: self.default_backend_service.clone(),
            default_ssl_certificate: self.default_ssl_certificate.clone(),
            configmap: self.configmap.clone(),
            enable_ssl_passthrough: self.enable_ssl_passthrough,
        }
    }
}

fn parse_key(s: &str) -> Result<ObjectKey, String> {
    ObjectKey::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn defaults_match_design() {
        let cli = Cli::try_parse_from(["switchyard-proxy"]).expect("no flags parse");
        let f = &cli.flags;
        assert_eq!(f.http_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(f.https_addr.to_string(), "0.0.0.0:8443");
        assert_eq!(f.metrics_addr.to_string(), "0.0.0.0:10254");
        assert_eq!(f.ingress_class, "switchyard");
        assert_eq!(f.controller_class, "switchyard.dev/ingress-controller");
        assert!(!f.watch_ingress_without_class);
        assert!(f.watch_namespace.is_none() && f.manifests.is_none());
        Cli::command().debug_assert();
    }

    #[test]
    fn check_takes_files_and_global_flags() {
        let cli = Cli::try_parse_from([
            "switchyard-proxy",
            "check",
            "-f",
            "a.yaml",
            "b.yaml",
            "--ingress-class",
            "nginx",
        ])
        .expect("check parses");
        assert_eq!(cli.flags.ingress_class, "nginx");
        assert!(matches!(cli.command, Some(Command::Check { files }) if files.len() == 2));
        assert!(
            Cli::try_parse_from(["switchyard-proxy", "--default-backend-service", "x"]).is_err()
        );
    }
}
