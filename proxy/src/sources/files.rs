//! `--manifests DIR`: reads the folder's *.yaml, *.yml and *.json files in name order and polls
//! their modification times and sizes so that an edit is served within a poll interval.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::manifests::{self, ManifestFile};
use crate::sources::SnapshotSender;

const POLL_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("cannot read the manifests folder {dir}: {source}")]
    Folder {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Name, modification time and size of every manifest file: a change in any means re-read.
type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn fingerprint(dir: &Path) -> Result<Fingerprint, FilesError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FilesError::Folder {
        dir: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !is_manifest(&path) {
            continue;
        }
        // A file that vanished between listing and stat is simply not there this round.
        if let Ok(meta) = entry.metadata()
            && meta.is_file()
        {
            files.push((path, meta.modified().ok(), meta.len()));
        }
    }
    files.sort();
    Ok(files)
}

/// Reads the given files; unreadable ones are reported and skipped.
pub fn read_files(paths: &[PathBuf]) -> (Vec<ManifestFile>, Vec<FilesError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match std::fs::read_to_string(path) {
            Ok(contents) => files.push(ManifestFile {
                name: path.display().to_string(),
                contents,
            }),
            Err(source) => errors.push(FilesError::File {
                path: path.clone(),
                source,
            }),
        }
    }
    (files, errors)
}

/// Checks that the folder is readable before anything listens.
pub fn check_folder(dir: &Path) -> Result<(), FilesError> {
    fingerprint(dir).map(|_| ())
}

/// Polls the folder forever, sending a new snapshot after each change.
pub async fn run(dir: PathBuf, tx: SnapshotSender) {
    let mut last: Option<Fingerprint> = None;
    loop {
        let scan_dir = dir.clone();
        let previous = last.clone();
        let scanned = tokio::task::spawn_blocking(move || scan(&scan_dir, previous)).await;
        match scanned {
            Ok(Ok(Some((print, parsed)))) => {
                last = Some(print);
                for error in &parsed.errors {
                    tracing::warn!(file = %error.file, document = error.document, "manifest document skipped: {}", error.message);
                }
                tracing::info!(
                    dir = %dir.display(),
                    objects = parsed.snapshot.object_count(),
                    skipped = parsed.errors.len(),
                    ignored_kinds = parsed.ignored,
                    "manifests read"
                );
                if tx.send(Some(Arc::new(parsed.snapshot))).is_err() {
                    return;
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(err)) => tracing::warn!("{err}; serving the last good configuration"),
            Err(err) => tracing::error!("manifests scan failed: {err}"),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// `None` when nothing changed since `previous`.
fn scan(
    dir: &Path,
    previous: Option<Fingerprint>,
) -> Result<Option<(Fingerprint, manifests::Parsed)>, FilesError> {
    let print = fingerprint(dir)?;
    if previous.as_ref() == Some(&print) {
        return Ok(None);
    }
    let paths: Vec<PathBuf> = print.iter().map(|(p, _, _)| p.clone()).collect();
    let (files, errors) = read_files(&paths);
    for err in errors {
        tracing::warn!("{err}");
    }
    Ok(Some((print, manifests::parse(&files))))
}
