//! Switchyard's API types (`switchyard.dev/v1alpha1`) and the CRD manifests generated from them.
//!
//! - [`RolloutRoute`] (`rr`): progressive delivery at the routing layer.
//! - [`Certificate`] (`swcert`), [`Issuer`] (`swissuer`), [`ClusterIssuer`]
//!   (`swclusterissuer`): ACME and self-signed TLS certificates, cert-manager's field names.
//!
//! All four are in the category `switchyard` (`kubectl get switchyard`). Each spec has a pure
//! `validate()` for what the schema cannot express; durations are Go duration strings, parsed
//! with [`parse_duration`].
#![forbid(unsafe_code)]

pub mod certificate;
pub mod challenge;
pub mod condition;
pub mod duration;
pub mod issuer;
pub mod manifests;
pub mod names;
pub mod rollout;

pub use certificate::{
    AuthorizationState, AuthorizationStatus, Certificate, CertificateError, CertificateSpec,
    CertificateStatus, IssuerKind, IssuerRef, IssuerRefError, KeyAlgorithm, OrderReference,
    PrivateKey, RotationPolicy, SecretPolicy,
};
pub use duration::{DurationError, format_duration, parse_duration};
pub use issuer::{
    AcmeIssuer, AcmeIssuerStatus, AcmeSolver, ClusterIssuer, ClusterIssuerSpec, Http01Ingress,
    Http01Solver, Issuer, IssuerError, IssuerSpec, IssuerStatus, IssuerType, SecretKeySelector,
    SelfSignedIssuer,
};
pub use manifests::{all_crds, render_yaml};
pub use rollout::{
    AnalysisRun, AnalysisSpec, AnalysisStatus, Backend, BlueGreenStrategy, CanaryMatch, CanaryStep,
    CanaryStrategy, HeaderMatch, LatencyCheck, PathType, PauseStep, Phase, RolloutRoute,
    RolloutRouteError, RolloutRouteSpec, RolloutRouteStatus, RolloutStrategy, RoutePath, RouteTls,
    Strategy, SuccessRateCheck, Verdict,
};

/// The API group of every Switchyard resource.
pub const GROUP: &str = "switchyard.dev";
/// The API version of the resources in this crate.
pub const VERSION: &str = "v1alpha1";
/// The category all Switchyard resources are in: `kubectl get switchyard` lists them.
pub const CATEGORY: &str = "switchyard";
