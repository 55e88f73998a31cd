//! The per-host TLS settings ingress-nginx keeps per server rather than per location: client
//! certificate authentication (the oldest Ingress naming the host with `auth-tls-secret` sets
//! it for the whole host, as the first one does for an nginx server) and `ssl-passthrough`
//! (the host's TLS connections go untouched to the backend of its `/` path).

use std::collections::HashMap;
use std::sync::Arc;

use super::auth_tls::{self, AuthTlsSpec};
use super::policy::Policy;
use super::proxy_ssl::{self, ProxySslSpec};
use super::{Compiler, HostKey, INGRESS};
use crate::client_auth::{ClientAuth, HostClientAuth};
use crate::model::{ObjectKey, Severity};
use crate::routes::{HostRoutes, Target, Upstream};
use crate::upstream_tls::UpstreamTls;

/// Built from Secrets by earlier compiles (see `memo`).
#[derive(Debug, Default)]
pub struct TlsMemo {
    client_auth: super::memo::Memo<(ObjectKey, AuthTlsSpec), ClientAuth>,
    upstream_tls: super::memo::Memo<(ObjectKey, ProxySslSpec), UpstreamTls>,
}

/// Resolves an Ingress's `auth-tls-secret` and `proxy-ssl-secret` into compiled
/// configurations; what cannot be used closes the Ingress's paths (`proxy-ssl-*`) or its
/// hosts (`auth-tls-*`), reported.
pub(super) fn resolve(c: &mut Compiler<'_>, key: &ObjectKey, policy: &mut Policy) {
    if let Some(spec) = policy.auth_tls.clone() {
        let resolved = secret(c, key, &spec.secret, "auth-tls-secret").and_then(|(k, s)| {
            let fingerprint = auth_tls::secret_fingerprint(&s);
            let memo_key = (k.clone(), spec.clone());
            c.certs_before
                .tls
                .client_auth
                .get(
                    &mut c.certs_after.tls.client_auth,
                    &memo_key,
                    fingerprint,
                    || auth_tls::build(&spec, &s),
                )
                .map_err(|why| format!("auth-tls-secret {k}: {why}"))
        });
        policy.client_auth = Some(match resolved {
            Ok(auth) => HostClientAuth::Ready(auth),
            Err(why) => {
                let message = format!(
                    "{why}; the hosts of this Ingress answer 503 rather than serve without the client certificate check"
                );
                c.problem(INGRESS, key, Severity::Error, "FailedClosed", message);
                HostClientAuth::Unusable(Arc::from(why))
            }
        });
    }
    if let Some(spec) = policy.proxy_ssl.clone() {
        let resolved = secret(c, key, &spec.secret, "proxy-ssl-secret").and_then(|(k, s)| {
            let fingerprint = proxy_ssl::secret_fingerprint(&s);
            let memo_key = (k.clone(), spec.clone());
            c.certs_before
                .tls
                .upstream_tls
                .get(
                    &mut c.certs_after.tls.upstream_tls,
                    &memo_key,
                    fingerprint,
                    || proxy_ssl::build(&spec, &s),
                )
                .map_err(|why| format!("proxy-ssl-secret {k}: {why}"))
        });
        match resolved {
            Ok(tls) => policy.upstream_tls = Some(tls),
            Err(why) => {
                let message = format!("its paths answer 503 instead of being served open: {why}");
                c.problem(INGRESS, key, Severity::Error, "FailedClosed", message);
                policy.closed = Some(match policy.closed.take() {
                    Some(earlier) => format!("{earlier}; {why}"),
                    None => why,
                });
            }
        }
    }
    if policy.ssl_passthrough && !c.ssl_passthrough {
        let message = "nginx.ingress.kubernetes.io/ssl-passthrough needs the flag --enable-ssl-passthrough (as in ingress-nginx); without it TLS is terminated here as for any host".to_owned();
        c.problem(
            INGRESS,
            key,
            Severity::Warning,
            "SSLPassthroughDisabled",
            message,
        );
    }
}

fn secret(
    c: &Compiler<'_>,
    ingress: &ObjectKey,
    secret: &auth_tls::SecretRef,
    annotation: &str,
) -> Result<(ObjectKey, Arc<k8s_openapi::api::core::v1::Secret>), String> {
    let key = secret
        .resolve(&ingress.namespace)
        .map_err(|why| format!("{annotation}: {why}"))?;
    match c.snapshot.secrets.get(&key) {
        Some(found) => Ok((key, found.clone())),
        None => Err(format!("{annotation}: Secret {key} not found")),
    }
}

/// What one Ingress asks of one of its hosts.
pub(super) struct HostTls {
    pub host: HostKey,
    pub ingress: ObjectKey,
    pub policy: Arc<Policy>,
}

impl HostTls {
    pub fn wanted(policy: &Policy) -> bool {
        policy.client_auth.is_some() || policy.ssl_passthrough
    }
}

/// The client authentication of `host`: the oldest Ingress's that asks for one.
pub(super) fn client_auth(requests: &[HostTls], host: &HostKey) -> Option<HostClientAuth> {
    requests
        .iter()
        .filter(|r| r.host == *host)
        .find_map(|r| r.policy.client_auth.clone())
}

/// The passthrough hosts (exact names only, as ingress-nginx matches the SNI) and the backend
/// each goes to: the host's `/` path, else its default backend.
pub(super) fn passthrough(
    c: &mut Compiler<'_>,
    requests: &[HostTls],
    exact_hosts: &HashMap<String, HostRoutes>,
) -> HashMap<String, Arc<Upstream>> {
    let mut out = HashMap::new();
    if !c.ssl_passthrough {
        return out;
    }
    for request in requests.iter().filter(|r| r.policy.ssl_passthrough) {
        let HostKey::Exact(name) = &request.host else {
            let message = format!(
                "ssl-passthrough: host {} is not an exact name; not passed through",
                request.host.describe()
            );
            c.problem(
                INGRESS,
                &request.ingress,
                Severity::Warning,
                "SSLPassthroughIgnored",
                message,
            );
            continue;
        };
        if out.contains_key(name) {
            continue;
        }
        let root = exact_hosts.get(name).and_then(|routes| {
            routes
                .match_path("/")
                .ok()
                .flatten()
                .filter(|route| route.path == "/")
                .or(routes.default.as_ref())
        });
        match root.map(|route| &route.target) {
            Some(Target::Upstream(upstream)) => {
                out.insert(name.clone(), upstream.clone());
            }
            _ => {
                let message = format!(
                    "ssl-passthrough: host {name} has no Service backend for the path / (nor a defaultBackend); not passed through"
                );
                c.problem(
                    INGRESS,
                    &request.ingress,
                    Severity::Warning,
                    "SSLPassthroughIgnored",
                    message,
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{CompileOptions, compile_cached};
    use super::*;
    use crate::compile::tls::CertCache;
    use crate::manifests::{ManifestFile, parse};
    use crate::model::Snapshot;

    const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: switchyard}\nspec: {controller: switchyard.dev/ingress-controller}\n";

    fn service(name: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-x, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints: [{{addresses: [10.0.0.1]}}]\n"
        )
    }

    /// An Ingress for `host`, path `path` → `svc`, with `nginx.ingress.kubernetes.io/*`
    /// annotations.
    fn ingress(
        name: &str,
        host: &str,
        path: &str,
        svc: &str,
        annotations: &[(&str, &str)],
    ) -> String {
        let annotations: Vec<String> = annotations
            .iter()
            .map(|(k, v)| format!("nginx.ingress.kubernetes.io/{k}: \"{v}\""))
            .collect();
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, annotations: {{{}}}}}\n\
             spec: {{ingressClassName: switchyard, rules: [{{host: {host}, http: {{paths: [{{path: {path}, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}]}}}}]}}\n",
            annotations.join(", ")
        )
    }

    fn ca_secret(name: &str, ca: &str) -> String {
        let ca = ca.lines().map(|l| format!("    {l}\n")).collect::<String>();
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData:\n  ca.crt: |\n{ca}"
        )
    }

    fn ca_pem() -> String {
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        params
            .self_signed(&key)
            .unwrap_or_else(|e| panic!("{e}"))
            .pem()
    }

    fn snapshot(docs: &[String]) -> Snapshot {
        let files: Vec<ManifestFile> = docs
            .iter()
            .enumerate()
            .map(|(i, contents)| ManifestFile {
                name: format!("{i:02}.yaml"),
                contents: contents.clone(),
            })
            .collect();
        let parsed = parse(&files);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        parsed.snapshot
    }

    fn ready(table: &crate::routes::RouteTable, host: &str) -> Option<Arc<ClientAuth>> {
        match &table.host_routes(host).client_auth {
            Some(HostClientAuth::Ready(auth)) => Some(auth.clone()),
            _ => None,
        }
    }

    #[test]
    fn the_oldest_ingress_sets_a_hosts_client_auth_and_unchanged_ones_are_reused() {
        let docs = [
            CLASS.to_owned(),
            service("web"),
            ca_secret("ca-a", &ca_pem()),
            ca_secret("ca-b", &ca_pem()),
            ingress(
                "first",
                "h.example",
                "/a",
                "web",
                &[("auth-tls-secret", "ca-a")],
            ),
            ingress(
                "second",
                "h.example",
                "/b",
                "web",
                &[
                    ("auth-tls-secret", "ca-b"),
                    ("auth-tls-verify-client", "optional"),
                ],
            ),
            ingress(
                "broken",
                "x.example",
                "/",
                "web",
                &[("auth-tls-secret", "nope")],
            ),
            ingress(
                "bad-cn",
                "y.example",
                "/a",
                "web",
                &[("auth-tls-secret", "ca-a"), ("auth-tls-match-cn", "alice")],
            ),
            ingress("same-host", "y.example", "/b", "web", &[]),
            ingress("open", "o.example", "/", "web", &[]),
        ];
        let snapshot = snapshot(&docs);
        let opts = CompileOptions::default();
        let (table, problems, memo) = compile_cached(&snapshot, &opts, &CertCache::default());
        let auth =
            ready(&table, "h.example").unwrap_or_else(|| panic!("h.example has client auth"));
        assert_eq!(auth.verify, crate::client_auth::VerifyClient::On);
        assert!(matches!(
            table.host_routes("x.example").client_auth,
            Some(HostClientAuth::Unusable(_))
        ));
        assert!(table.host_routes("o.example").client_auth.is_none());
        // An invalid auth-tls value closes the whole host, not only its own Ingress's paths.
        assert!(matches!(
            table.host_routes("y.example").client_auth,
            Some(HostClientAuth::Unusable(_))
        ));
        assert!(problems.iter().any(|p| p.reason == "FailedClosed"
            && p.object.name == "broken"
            && p.message.contains("default/nope not found")));

        // A recompile keeps the compiled CA (and its TLS configuration) when nothing changed.
        let (again, _, _) = compile_cached(&snapshot, &opts, &memo);
        let same = ready(&again, "h.example").unwrap_or_else(|| panic!("still there"));
        assert!(Arc::ptr_eq(&auth, &same));
    }

    #[test]
    fn passthrough_goes_to_the_root_path_backend_only_with_the_flag() {
        let docs = [
            CLASS.to_owned(),
            service("tls-app"),
            ingress(
                "pass",
                "p.example",
                "/",
                "tls-app",
                &[("ssl-passthrough", "true")],
            ),
            ingress(
                "no-root",
                "q.example",
                "/api",
                "tls-app",
                &[("ssl-passthrough", "true")],
            ),
        ];
        let snapshot = snapshot(&docs);
        let (table, problems, _) =
            compile_cached(&snapshot, &CompileOptions::default(), &CertCache::default());
        assert!(table.passthrough.is_empty());
        assert!(
            problems
                .iter()
                .any(|p| p.reason == "SSLPassthroughDisabled")
        );

        let opts = CompileOptions {
            enable_ssl_passthrough: true,
            ..CompileOptions::default()
        };
        let (table, problems, _) = compile_cached(&snapshot, &opts, &CertCache::default());
        let upstream = table
            .passthrough
            .get("p.example")
            .unwrap_or_else(|| panic!("p.example"));
        assert_eq!(upstream.service.name, "tls-app");
        assert!(!table.passthrough.contains_key("q.example"));
        assert!(
            problems
                .iter()
                .any(|p| p.reason == "SSLPassthroughIgnored" && p.object.name == "no-root")
        );
    }
}
