//! The plain data the compile step works on: object keys, the snapshot of watched objects, and
//! the problems compile reports per object.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

/// `namespace/name` of an object; cluster-scoped objects have an empty namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Parses the `NS/NAME` form the flags take.
    pub fn parse(s: &str) -> Result<Self, InvalidObjectKey> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Self::new(ns, name))
            }
            _ => Err(InvalidObjectKey(s.to_owned())),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("expected NAMESPACE/NAME, got {0:?}")]
pub struct InvalidObjectKey(pub String);

/// Everything compile reads, keyed by namespace/name. Sources (reflectors or the manifests
/// folder) build one of these; compile never does IO.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub ingresses: BTreeMap<ObjectKey, Arc<Ingress>>,
    /// Cluster-scoped: keyed by name.
    pub ingress_classes: BTreeMap<String, Arc<IngressClass>>,
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    pub endpoint_slices: BTreeMap<ObjectKey, Arc<EndpointSlice>>,
    pub secrets: BTreeMap<ObjectKey, Arc<Secret>>,
    /// ConfigMaps: the controller's (`--configmap`) and those annotations and its keys name.
    pub config_maps: BTreeMap<ObjectKey, Arc<ConfigMap>>,
}

impl Snapshot {
    /// Adds `other`'s objects; on the same key, `other`'s wins.
    pub fn extend_from(&mut self, other: &Snapshot) {
        fn extend<K: Ord + Clone, V>(to: &mut BTreeMap<K, Arc<V>>, from: &BTreeMap<K, Arc<V>>) {
            to.extend(from.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        extend(&mut self.ingresses, &other.ingresses);
        extend(&mut self.ingress_classes, &other.ingress_classes);
        extend(&mut self.services, &other.services);
        extend(&mut self.endpoint_slices, &other.endpoint_slices);
        extend(&mut self.secrets, &other.secrets);
        extend(&mut self.config_maps, &other.config_maps);
    }

    pub fn object_count(&self) -> usize {
        self.ingresses.len()
            + self.ingress_classes.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.secrets.len()
            + self.config_maps.len()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Not a fault; explains a decision (e.g. an Ingress of another class is ignored).
    Info,
    /// Part of the object is not served as written, the rest is.
    Warning,
    /// The object (or a part of it) is invalid and skipped.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "Info",
            Severity::Warning => "Warning",
            Severity::Error => "Error",
        })
    }
}

/// One thing a person should know about one object, with a Kubernetes-Event-like reason.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Problem {
    pub kind: &'static str,
    pub object: ObjectKey,
    pub severity: Severity,
    pub reason: &'static str,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}: {}: {}",
            self.severity, self.kind, self.object, self.reason, self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_key_parses_ns_name_and_rejects_other_shapes() {
        assert_eq!(
            ObjectKey::parse("ns/name").ok(),
            Some(ObjectKey::new("ns", "name"))
        );
        for bad in ["name", "/name", "ns/", "a/b/c", ""] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ObjectKey::new("", "cls").to_string(), "cls");
    }
}
