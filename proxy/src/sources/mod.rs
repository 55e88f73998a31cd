//! Where snapshots come from: the Kubernetes API or a folder of manifests. Both send whole
//! snapshots into a `watch` channel that the compile loop reads (the latest wins).

pub mod files;
pub mod kube;

use std::sync::Arc;

use tokio::sync::watch;

use crate::model::Snapshot;

pub type SnapshotSender = watch::Sender<Option<Arc<Snapshot>>>;
