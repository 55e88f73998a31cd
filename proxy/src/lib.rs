//! switchyard-proxy: an Ingress controller data plane.
//!
//! Pure core: [`model`], [`normalize`], [`manifests`], [`compile`], [`routes`].
//! IO shell: [`sources`] (Kubernetes reflectors, a manifests folder), [`apply`] (compile and
//! swap), [`publish`] (Events and Ingress status, written by the Lease holder), [`server`] /
//! [`proxy`] / [`tls`] (the hot path), [`admin`], [`metrics`] and [`access_log`], and
//! [`run`] which wires them together.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod apply;
pub mod auth;
pub mod balance;
pub mod check;
pub mod cli;
pub mod client_auth;
pub mod compile;
pub mod limits;
pub mod manifests;
pub mod metrics;
pub mod model;
pub mod normalize;
pub mod passthrough;
pub mod proxy;
pub mod proxy_protocol;
pub mod publish;
pub mod routes;
pub mod run;
pub mod server;
pub mod sources;
pub mod tls;
pub mod trust;
pub mod upstream_tls;
pub mod variables;
pub mod workers;
