//! Certificates: ACME issuance and renewal.
//!
//! A pure core and a thin shell, as everywhere in the operator:
//!
//! - [`secret`]: what a `kubernetes.io/tls` Secret holds (owner annotations, the leaf's validity,
//!   names and key), read without IO.
//! - [`decide`]: from the spec, that Secret, the status and `now`, what to do: nothing (ready
//!   until the renewal time), issue (and why), carry on with the one order in flight, wait
//!   (backoff, rate limit), refuse (the Secret is not ours) or stop (until the spec changes).
//! - [`classify`]: what a failure means for the next attempt, and the backoff formula.
//! - [`errors`]: the shell's typed errors, each able to classify itself.
//! - [`http`]: instant-acme's HTTP client, wrapped to keep the status and Retry-After that
//!   instant-acme drops on errors, with a timeout on every request.
//! - [`key`]: certificate keys (ECDSA P-256/P-384, Ed25519; ring generates no RSA), the CSR,
//!   and the P-256 check of ACME account keys.
//! - [`status`]: how the status moves (order created, in progress, failed, issued).
//! - [`children`]: the challenge Ingresses and the tls Secret, built without IO.
//! - [`shortcut`]: the Certificates an annotated Ingress asks for.
//! - [`acme`]: the shell: account, order, HTTP-01 challenges, finalize, download.

pub mod acme;
pub mod children;
pub mod classify;
pub mod decide;
pub mod errors;
pub mod http;
pub mod key;
pub mod secret;
pub mod shortcut;
pub mod status;

pub use acme::{
    AccountSettings, AcmeAccount, AcmeOrder, Http01Challenge, Issued, OrderPhase, connect_account,
    decode_ca_bundle, generate_account_key,
};
pub use classify::{FailureClass, WaitReason, backoff, next_attempt};
pub use decide::{
    Action, CertTimes, ConflictReason, Decision, InFlightOrder, Inputs, IssueReason,
    IssuerCapabilities, PermanentReason, Readiness, decide, renewal_time,
};
pub use errors::{AcmeError, Classified};
pub use key::CertKey;
pub use secret::SecretState;
