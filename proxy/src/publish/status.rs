//! `status.loadBalancer.ingress` of the Ingresses we serve: what it should be (from
//! `--publish-address` or the `--publish-service` Service, as ingress-nginx computes it), and
//! which writes that takes. Writes happen only where the status differs, so the status change
//! coming back through the watch finds nothing to do.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use kube::api::{Api, Patch, PatchParams};

use crate::model::{ObjectKey, Snapshot};

/// Where the addresses come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Publish {
    Service(ObjectKey),
    Addresses(Vec<IngressLoadBalancerIngress>),
}

/// `--publish-address`: comma-separated IPs or hostnames.
pub fn parse_addresses(flag: &str) -> Vec<IngressLoadBalancerIngress> {
    normalized(
        flag.split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(address)
            .collect(),
    )
}

fn address(a: &str) -> IngressLoadBalancerIngress {
    if a.parse::<IpAddr>().is_ok() {
        IngressLoadBalancerIngress {
            ip: Some(a.to_owned()),
            ..Default::default()
        }
    } else {
        IngressLoadBalancerIngress {
            hostname: Some(a.to_owned()),
            ..Default::default()
        }
    }
}

/// The addresses a Service publishes, following ingress-nginx: an ExternalName Service its
/// name; a LoadBalancer its load balancer's addresses and external IPs; a ClusterIP or NodePort
/// Service its external IPs, else its cluster IP (none for a headless Service).
pub fn service_addresses(service: &Service) -> Vec<IngressLoadBalancerIngress> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    let external_ips = spec.external_ips.as_deref().unwrap_or(&[]);
    let mut addresses: Vec<IngressLoadBalancerIngress> = Vec::new();
    match spec.type_.as_deref().unwrap_or("ClusterIP") {
        "ExternalName" => addresses.extend(spec.external_name.as_deref().map(address)),
        "LoadBalancer" => {
            let balancer = service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_deref())
                .unwrap_or(&[]);
            for lb in balancer {
                if let Some(ip) = lb.ip.as_deref().filter(|ip| !ip.is_empty()) {
                    addresses.push(address(ip));
                } else if let Some(host) = lb.hostname.as_deref().filter(|h| !h.is_empty()) {
                    addresses.push(address(host));
                }
            }
            addresses.extend(external_ips.iter().map(|ip| address(ip)));
        }
        _ if !external_ips.is_empty() => {
            addresses.extend(external_ips.iter().map(|ip| address(ip)))
        }
        _ => addresses.extend(
            spec.cluster_ip
                .as_deref()
                .filter(|ip| !ip.is_empty() && *ip != "None")
                .map(address),
        ),
    }
    normalized(addresses)
}

/// Sorted and without duplicates, so that comparing two lists compares their content.
fn normalized(mut addresses: Vec<IngressLoadBalancerIngress>) -> Vec<IngressLoadBalancerIngress> {
    addresses.sort_by(|a, b| (&a.ip, &a.hostname).cmp(&(&b.ip, &b.hostname)));
    addresses.dedup();
    addresses
}

fn current(ingress: &Ingress) -> Vec<IngressLoadBalancerIngress> {
    normalized(
        ingress
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.clone())
            .unwrap_or_default(),
    )
}

/// One status write.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Set(ObjectKey, Vec<IngressLoadBalancerIngress>),
    /// An Ingress we no longer serve still shows our addresses.
    Clear(ObjectKey),
}

/// Remembers which Ingresses we served, to clear the status of those we stop serving.
#[derive(Debug, Default)]
pub struct Tracker {
    served: BTreeSet<ObjectKey>,
    released: BTreeSet<ObjectKey>,
}

impl Tracker {
    /// Takes in the Ingresses we serve now (every replica does, leader or not, so that a new
    /// leader knows what the old one served).
    pub fn observe(&mut self, snapshot: &Snapshot, ours: &BTreeSet<ObjectKey>) {
        self.released.extend(self.served.difference(ours).cloned());
        self.released
            .retain(|k| !ours.contains(k) && snapshot.ingresses.contains_key(k));
        self.served = ours.clone();
    }

    /// The writes that bring every Ingress to `desired`. Released Ingresses whose status is
    /// not (or no longer) ours to clear are forgotten.
    pub fn plan(
        &mut self,
        snapshot: &Snapshot,
        desired: &[IngressLoadBalancerIngress],
    ) -> Vec<Write> {
        let mut writes = Vec::new();
        for key in &self.served {
            if let Some(ingress) = snapshot.ingresses.get(key)
                && current(ingress) != desired
            {
                writes.push(Write::Set(key.clone(), desired.to_vec()));
            }
        }
        self.released.retain(|key| {
            // Another controller may have written its own addresses by now: leave those alone.
            let ours = snapshot
                .ingresses
                .get(key)
                .is_some_and(|i| !desired.is_empty() && current(i) == desired);
            if ours {
                writes.push(Write::Clear(key.clone()));
            }
            ours
        });
        writes
    }

    /// After a successful clear.
    pub fn cleared(&mut self, key: &ObjectKey) {
        self.released.remove(key);
    }
}

/// The merge patch of a write (an empty list removes the field).
pub fn patch_body(addresses: &[IngressLoadBalancerIngress]) -> serde_json::Value {
    let ingress = if addresses.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::json!(addresses)
    };
    serde_json::json!({ "status": { "loadBalancer": { "ingress": ingress } } })
}

pub async fn write(
    client: &kube::Client,
    key: &ObjectKey,
    addresses: &[IngressLoadBalancerIngress],
) -> Result<(), kube::Error> {
    let api: Api<Ingress> = Api::namespaced(client.clone(), &key.namespace);
    api.patch_status(
        &key.name,
        &PatchParams::default(),
        &Patch::Merge(patch_body(addresses)),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::api::networking::v1::{IngressLoadBalancerStatus, IngressStatus};

    fn ip(a: &str) -> IngressLoadBalancerIngress {
        address(a)
    }

    fn service(type_: &str, f: impl FnOnce(&mut ServiceSpec)) -> Service {
        let mut spec = ServiceSpec {
            type_: Some(type_.to_owned()),
            cluster_ip: Some("10.0.0.7".to_owned()),
            ..Default::default()
        };
        f(&mut spec);
        Service {
            spec: Some(spec),
            ..Default::default()
        }
    }

    fn ingress_with(addresses: &[IngressLoadBalancerIngress]) -> Arc<Ingress> {
        Arc::new(Ingress {
            status: Some(IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(addresses.to_vec()).filter(|a| !a.is_empty()),
                }),
            }),
            ..Default::default()
        })
    }

    fn snapshot(ingresses: &[(&str, &[IngressLoadBalancerIngress])]) -> Snapshot {
        let mut s = Snapshot::default();
        for (name, addresses) in ingresses {
            s.ingresses
                .insert(ObjectKey::new("ns", *name), ingress_with(addresses));
        }
        s
    }

    fn keys(names: &[&str]) -> BTreeSet<ObjectKey> {
        names.iter().map(|n| ObjectKey::new("ns", *n)).collect()
    }

    #[test]
    fn publish_address_takes_ips_and_hostnames() {
        assert_eq!(
            parse_addresses(" 203.0.113.10, lb.example.com,,2001:db8::1,203.0.113.10"),
            vec![
                IngressLoadBalancerIngress {
                    hostname: Some("lb.example.com".into()),
                    ..Default::default()
                },
                ip("2001:db8::1"),
                ip("203.0.113.10"),
            ]
        );
    }

    #[test]
    fn service_addresses_follow_ingress_nginx() {
        assert_eq!(
            service_addresses(&service("ClusterIP", |_| {})),
            vec![ip("10.0.0.7")]
        );
        assert!(
            service_addresses(&service("ClusterIP", |s| s.cluster_ip = Some("None".into())))
                .is_empty()
        );
        assert_eq!(
            service_addresses(&service("NodePort", |s| s.external_ips =
                Some(vec!["198.51.100.1".into()]))),
            vec![ip("198.51.100.1")]
        );
        assert_eq!(
            service_addresses(&service("ExternalName", |s| s.external_name =
                Some("lb.example.com".into()))),
            vec![address("lb.example.com")]
        );
        let mut lb = service("LoadBalancer", |s| {
            s.external_ips = Some(vec!["198.51.100.2".into()])
        });
        lb.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![
                    LoadBalancerIngress {
                        ip: Some("203.0.113.5".into()),
                        ..Default::default()
                    },
                    LoadBalancerIngress {
                        hostname: Some("elb.example.com".into()),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        });
        assert_eq!(
            service_addresses(&lb),
            vec![
                address("elb.example.com"),
                ip("198.51.100.2"),
                ip("203.0.113.5"),
            ]
        );
        // A LoadBalancer still pending: nothing yet (the cluster IP is not reachable from outside).
        assert!(service_addresses(&service("LoadBalancer", |_| {})).is_empty());
    }

    #[test]
    fn only_differing_statuses_are_written() {
        let desired = vec![ip("203.0.113.10")];
        let snap = snapshot(&[("a", &desired), ("b", &[]), ("c", &[ip("192.0.2.1")])]);
        let mut t = Tracker::default();
        t.observe(&snap, &keys(&["a", "b", "c"]));
        assert_eq!(
            t.plan(&snap, &desired),
            vec![
                Write::Set(ObjectKey::new("ns", "b"), desired.clone()),
                Write::Set(ObjectKey::new("ns", "c"), desired.clone()),
            ]
        );
        // Once the watch shows the writes, there is nothing left to do: no write loop.
        let snap = snapshot(&[("a", &desired), ("b", &desired), ("c", &desired)]);
        t.observe(&snap, &keys(&["a", "b", "c"]));
        assert!(t.plan(&snap, &desired).is_empty());
        // Order and duplicates do not count as a difference.
        let two = parse_addresses("203.0.113.10,lb.example.com");
        let snap = snapshot(&[("a", &[address("lb.example.com"), ip("203.0.113.10")])]);
        t.observe(&snap, &keys(&["a"]));
        assert!(t.plan(&snap, &two).is_empty());
    }

    #[test]
    fn ingresses_we_stop_serving_are_cleared_only_while_they_show_our_addresses() {
        let desired = vec![ip("203.0.113.10")];
        let mut t = Tracker::default();
        let snap = snapshot(&[("a", &desired), ("b", &desired)]);
        t.observe(&snap, &keys(&["a", "b"]));
        assert!(t.plan(&snap, &desired).is_empty());

        // Both change class; b's new controller already wrote its own address.
        let snap = snapshot(&[("a", &desired), ("b", &[ip("192.0.2.9")])]);
        t.observe(&snap, &keys(&[]));
        assert_eq!(
            t.plan(&snap, &desired),
            vec![Write::Clear(ObjectKey::new("ns", "a"))]
        );
        // Not cleared yet (the write failed): tried again.
        assert_eq!(
            t.plan(&snap, &desired),
            vec![Write::Clear(ObjectKey::new("ns", "a"))]
        );
        t.cleared(&ObjectKey::new("ns", "a"));
        assert!(t.plan(&snap, &desired).is_empty());
    }

    #[test]
    fn the_patch_removes_the_field_for_no_addresses() {
        assert_eq!(
            patch_body(&[]),
            serde_json::json!({"status": {"loadBalancer": {"ingress": null}}})
        );
        assert_eq!(
            patch_body(&[ip("203.0.113.10")]),
            serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}})
        );
    }
}
