//! Status conditions: the standard `metav1.Condition`, with the schema markers that make
//! server-side apply merge the list by `type`, and the condition types our resources use.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{Schema, SchemaGenerator};

/// `Ready`: the resource does what it asks for (all kinds).
pub const READY: &str = "Ready";
/// `Progressing`: a RolloutRoute is moving traffic towards a new backend.
pub const PROGRESSING: &str = "Progressing";
/// `Paused`: a RolloutRoute waits (for a timed pause, a promote, or `spec.paused`).
pub const PAUSED: &str = "Paused";
/// `Promoted`: a RolloutRoute's latest backend serves all traffic. False from the moment a
/// rollout starts, so `kubectl wait --for=condition=Promoted` waits for that rollout.
pub const PROMOTED: &str = "Promoted";
/// `Degraded`: a RolloutRoute was aborted or undone and serves its stable backend.
pub const DEGRADED: &str = "Degraded";
/// `Issuing`: a Certificate has an ACME order in flight.
pub const ISSUING: &str = "Issuing";

/// Schema for a `conditions` field: a list of `metav1.Condition` keyed by `type`.
///
/// k8s-openapi's schema for the list has no list-type markers, and without them server-side
/// apply treats the list as atomic: one field manager's patch would replace everyone's
/// conditions. Use as `#[schemars(schema_with = "crate::condition::conditions_schema")]`.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert("x-kubernetes-list-map-keys".into(), vec!["type"].into());
    schema
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], condition_type: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == condition_type)
}

/// Whether the condition of the given type is present with status `"True"`.
pub fn is_true(conditions: &[Condition], condition_type: &str) -> bool {
    find(conditions, condition_type).is_some_and(|c| c.status == "True")
}
