//! The example manifests in tests/examples/ read into the types, pass `validate()`, lose no field
//! on the way (serializing the typed value gives back the same document), and survive a YAML
//! round trip.

use std::fs;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard_crds::{
    Certificate, ClusterIssuer, Issuer, IssuerType, RolloutRoute, Strategy, parse_duration,
};

fn read(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/examples")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Parses `name` as `T`, checks that nothing was dropped or changed on the way, and that the
/// typed value's own YAML reads back to the same value.
fn round_trip<T>(name: &str) -> T
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let yaml = read(name);
    let typed: T = serde_saphyr::from_str(&yaml).unwrap_or_else(|err| panic!("{name}: {err}"));
    let generic: serde_json::Value =
        serde_saphyr::from_str(&yaml).unwrap_or_else(|err| panic!("{name}: {err}"));
    let serialized = serde_json::to_value(&typed).unwrap_or_else(|err| panic!("{name}: {err}"));
    assert_eq!(
        numbers_as_floats(serialized),
        numbers_as_floats(generic),
        "{name}: a field was lost or changed"
    );

    let again = serde_saphyr::to_string(&typed).unwrap_or_else(|err| panic!("{name}: {err}"));
    let back: T = serde_saphyr::from_str(&again).unwrap_or_else(|err| panic!("{name}: {err}"));
    assert_eq!(back, typed, "{name}: YAML round trip");
    typed
}

/// `percentile: 99` is read as an integer and written back from an `f64` as 99.0: the same value.
fn numbers_as_floats(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => n.as_f64().map_or(Value::Number(n), Value::from),
        Value::Array(items) => items.into_iter().map(numbers_as_floats).collect(),
        Value::Object(fields) => fields
            .into_iter()
            .map(|(k, v)| (k, numbers_as_floats(v)))
            .collect(),
        other => other,
    }
}

#[test]
fn canary_rollout_route() {
    let route: RolloutRoute = round_trip("rolloutroute-canary.yaml");
    assert_eq!(route.spec.validate(), Ok(()));
    let Some(Strategy::Canary(canary)) = route.spec.strategy.get() else {
        panic!("a canary strategy");
    };
    assert_eq!(canary.steps.len(), 4);
    let status = route.status.expect("status");
    assert_eq!(status.canary_weight, Some(10));
    assert!(switchyard_crds::condition::is_true(
        &status.conditions,
        switchyard_crds::condition::PAUSED
    ));
    assert!(!switchyard_crds::condition::is_true(
        &status.conditions,
        switchyard_crds::condition::PROMOTED
    ));
}

#[test]
fn blue_green_rollout_route() {
    let route: RolloutRoute = round_trip("rolloutroute-bluegreen.yaml");
    assert_eq!(route.spec.validate(), Ok(()));
    assert!(matches!(
        route.spec.strategy.get(),
        Some(Strategy::BlueGreen(_))
    ));
    assert_eq!(route.spec.backend.to_string(), "checkout-v3:http");
}

#[test]
fn certificates() {
    let issued: Certificate = round_trip("certificate.yaml");
    assert_eq!(issued.spec.validate(), Ok(()));
    assert_eq!(
        issued.spec.renew_before(),
        Ok(Some(parse_duration("720h").expect("a duration")))
    );

    let failed: Certificate = round_trip("certificate-failed.yaml");
    assert_eq!(failed.spec.validate(), Ok(()));
    let status = failed.status.expect("status");
    assert_eq!(status.authorizations.len(), 2);
    assert_eq!(
        status.authorizations[1].error_type.as_deref(),
        Some("urn:ietf:params:acme:error:unauthorized")
    );
}

#[test]
fn issuers() {
    let cluster: ClusterIssuer = round_trip("clusterissuer.yaml");
    assert!(matches!(cluster.spec.validate(), Ok(IssuerType::Acme(_))));

    let acme: Issuer = round_trip("issuer-acme.yaml");
    assert!(matches!(acme.spec.validate(), Ok(IssuerType::Acme(_))));

    let local: Issuer = round_trip("issuer-selfsigned.yaml");
    assert!(matches!(
        local.spec.validate(),
        Ok(IssuerType::SelfSigned(_))
    ));
}
