//! Switchyard's operator: controllers for RolloutRoute and Certificate/Issuer/ClusterIssuer,
//! run only while this replica holds the leader Lease.
#![forbid(unsafe_code)]

pub mod certs;
pub mod cli;
pub mod controllers;
pub mod health;
pub mod kubeenv;
pub mod leader;
pub mod logging;
pub mod plugin;
pub mod render;
pub mod rollout;
pub mod solver;
pub mod view;
