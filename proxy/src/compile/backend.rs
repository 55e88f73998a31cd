//! Service backends → endpoints: the Service port (by number or name) selects the EndpointSlice
//! port of the same name; the slice's port number is authoritative; ready (or unset) and not
//! terminating endpoints receive traffic. ExternalName Services resolve to their DNS name. The
//! Service port's `appProtocol` chooses how the proxy speaks to the endpoints.

use std::collections::{BTreeSet, HashMap};

use http::uri::Authority;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceBackendPort;

use crate::model::{ObjectKey, Snapshot};
use crate::routes::{Upstream, UpstreamProtocol};

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    #[error("Service {0} not found")]
    ServiceNotFound(ObjectKey),
    #[error("the backend names no port of Service {0}")]
    NoPort(ObjectKey),
    #[error("Service {service} has no port {port}")]
    PortNotFound { service: ObjectKey, port: String },
    #[error("Service {service} port {port} has no ready endpoints")]
    NoEndpoints { service: ObjectKey, port: String },
    #[error("ExternalName Service {service} has an unusable address {address:?}")]
    BadExternalName { service: ObjectKey, address: String },
}

impl BackendError {
    /// The Event reason a person sees.
    pub fn reason(&self) -> &'static str {
        match self {
            BackendError::ServiceNotFound(_) => "ServiceNotFound",
            BackendError::NoPort(_) | BackendError::PortNotFound { .. } => "PortNotFound",
            BackendError::NoEndpoints { .. } => "NoEndpoints",
            BackendError::BadExternalName { .. } => "InvalidBackend",
        }
    }
}

/// EndpointSlices by the Service they belong to, built once per compile.
pub struct EndpointIndex<'a> {
    /// namespace → service name → slices.
    by_service: HashMap<&'a str, HashMap<&'a str, Vec<&'a EndpointSlice>>>,
}

impl<'a> EndpointIndex<'a> {
    pub fn new(snapshot: &'a Snapshot) -> Self {
        let mut by_service: HashMap<&str, HashMap<&str, Vec<&EndpointSlice>>> = HashMap::new();
        for (key, slice) in &snapshot.endpoint_slices {
            let service = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let Some(service) = service {
                by_service
                    .entry(key.namespace.as_str())
                    .or_default()
                    .entry(service.as_str())
                    .or_default()
                    .push(slice.as_ref());
            }
        }
        Self { by_service }
    }

    fn slices(&self, namespace: &str, service: &str) -> &[&'a EndpointSlice] {
        self.by_service
            .get(namespace)
            .and_then(|services| services.get(service))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// Which port of the Service a backend names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortRef {
    Number(i32),
    Name(String),
    /// The controller default backend: the Service's first port.
    First,
}

impl PortRef {
    pub fn from_backend(port: Option<&ServiceBackendPort>) -> Option<Self> {
        let port = port?;
        match (&port.name, port.number) {
            (Some(name), _) if !name.is_empty() => Some(PortRef::Name(name.clone())),
            (_, Some(number)) => Some(PortRef::Number(number)),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            PortRef::Number(n) => n.to_string(),
            PortRef::Name(name) => format!("{name:?}"),
            PortRef::First => "(first)".to_owned(),
        }
    }
}

/// The Service and the port of it a backend names (`None` when it has no such port).
fn service_port<'s>(
    snapshot: &'s Snapshot,
    service_key: &ObjectKey,
    port: Option<PortRef>,
) -> Result<(&'s Service, PortRef, Option<&'s ServicePort>), BackendError> {
    let service = snapshot
        .services
        .get(service_key)
        .ok_or_else(|| BackendError::ServiceNotFound(service_key.clone()))?;
    let port = port.ok_or_else(|| BackendError::NoPort(service_key.clone()))?;
    let ports: &[ServicePort] = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[]);
    let found = match &port {
        PortRef::Number(n) => ports.iter().find(|p| p.port == *n),
        PortRef::Name(name) => ports.iter().find(|p| p.name.as_deref() == Some(name)),
        PortRef::First => ports.first(),
    };
    Ok((service, port, found))
}

pub fn resolve(
    snapshot: &Snapshot,
    endpoints: &EndpointIndex<'_>,
    service_key: &ObjectKey,
    port: Option<PortRef>,
) -> Result<Upstream, BackendError> {
    let (service, port, service_port) = service_port(snapshot, service_key, port)?;
    let spec = service.spec.as_ref();

    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return external_name(service_key, service, service_port, &port);
    }

    let service_port = service_port.ok_or_else(|| BackendError::PortNotFound {
        service: service_key.clone(),
        port: port.describe(),
    })?;
    let port_name = service_port.name.as_deref().unwrap_or("");
    let mut addresses = BTreeSet::new();
    for slice in endpoints.slices(&service_key.namespace, &service_key.name) {
        let slice_port = slice
            .ports
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok());
        let Some(slice_port) = slice_port else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let conditions = endpoint.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            if !ready || terminating {
                continue;
            }
            for address in &endpoint.addresses {
                if let Some(authority) =
                    endpoint_authority(&slice.address_type, address, slice_port)
                {
                    addresses.insert(authority);
                }
            }
        }
    }
    if addresses.is_empty() {
        return Err(BackendError::NoEndpoints {
            service: service_key.clone(),
            port: port.describe(),
        });
    }
    let endpoints = addresses
        .into_iter()
        .filter_map(|a| Authority::try_from(a).ok())
        .collect();
    let protocol = UpstreamProtocol::from_app_protocol(service_port.app_protocol.as_deref());
    Ok(
        Upstream::new(service_key.clone(), endpoints, protocol)
            .with_service_port(service_port.port),
    )
}

/// `service-upstream`: the Service's cluster IP and port, one upstream address that the
/// cluster's own load balancing spreads (no per-endpoint balancing or retries here).
pub fn resolve_cluster_ip(
    snapshot: &Snapshot,
    service_key: &ObjectKey,
    port: Option<PortRef>,
) -> Result<Upstream, BackendError> {
    let (service, port, service_port) = service_port(snapshot, service_key, port)?;
    let service_port = service_port.ok_or_else(|| BackendError::PortNotFound {
        service: service_key.clone(),
        port: port.describe(),
    })?;
    let spec = service.spec.as_ref();
    let ip = spec
        .and_then(|s| s.cluster_ip.as_deref())
        .filter(|ip| !ip.is_empty() && *ip != "None");
    let authority = ip
        .and_then(|ip| u16::try_from(service_port.port).ok().map(|p| (ip, p)))
        .and_then(|(ip, p)| {
            endpoint_authority(if ip.contains(':') { "IPv6" } else { "IPv4" }, ip, p)
        })
        .and_then(|a| Authority::try_from(a).ok())
        .ok_or_else(|| BackendError::NoEndpoints {
            service: service_key.clone(),
            port: format!("{} (service-upstream: no cluster IP)", port.describe()),
        })?;
    let protocol = UpstreamProtocol::from_app_protocol(service_port.app_protocol.as_deref());
    Ok(Upstream::new(
        service_key.clone(),
        vec![authority],
        protocol,
    ))
}

fn endpoint_authority(address_type: &str, address: &str, port: u16) -> Option<String> {
    match address_type {
        "IPv4" => address
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(|ip| format!("{ip}:{port}")),
        "IPv6" => address
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| format!("[{ip}]:{port}")),
        "FQDN" => Some(format!("{address}:{port}")),
        _ => None,
    }
}

fn external_name(
    key: &ObjectKey,
    service: &Service,
    service_port: Option<&ServicePort>,
    port: &PortRef,
) -> Result<Upstream, BackendError> {
    let host = service
        .spec
        .as_ref()
        .and_then(|s| s.external_name.as_deref())
        .unwrap_or("");
    // An ExternalName Service need not list ports: a port number in the backend is used as is.
    let number = match (service_port, port) {
        (Some(p), _) => p.port,
        (None, PortRef::Number(n)) => *n,
        _ => {
            return Err(BackendError::PortNotFound {
                service: key.clone(),
                port: port.describe(),
            });
        }
    };
    let authority = u16::try_from(number)
        .ok()
        .filter(|_| !host.is_empty())
        .and_then(|n| Authority::try_from(format!("{host}:{n}")).ok())
        .ok_or_else(|| BackendError::BadExternalName {
            service: key.clone(),
            address: format!("{host}:{number}"),
        })?;
    let protocol =
        UpstreamProtocol::from_app_protocol(service_port.and_then(|p| p.app_protocol.as_deref()));
    Ok(Upstream::new(key.clone(), vec![authority], protocol))
}
