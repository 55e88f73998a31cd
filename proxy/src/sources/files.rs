//! `--manifests DIR`: reads the folder's *.yaml, *.yml and *.json files in name order and polls
//! their modification times and sizes so that an edit is served within a poll interval. Only
//! the files that changed are read and parsed again: a one-line edit in a folder of thousands
//! of Ingresses costs one file's parse, not the folder's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::manifests::{self, ManifestFile, Parsed};
use crate::sources::SnapshotSender;

/// A `stat` of each file per poll is cheap, even for a large folder.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

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

/// Each file's parse, valid while its modification time, size and place in the folder's
/// order (its stand-in age) stay the same.
#[derive(Default)]
struct ParseCache {
    files: HashMap<PathBuf, (Option<SystemTime>, u64, usize, Arc<Parsed>)>,
}

/// Polls the folder forever, sending a new snapshot after each change.
pub async fn run(dir: PathBuf, tx: SnapshotSender) {
    let mut last: Option<Fingerprint> = None;
    let mut cache = Some(ParseCache::default());
    loop {
        let scan_dir = dir.clone();
        let previous = last.clone();
        let mut taken = cache.take().unwrap_or_default();
        let scanned = tokio::task::spawn_blocking(move || {
            let result = scan(&scan_dir, previous, &mut taken);
            (result, taken)
        })
        .await;
        let scanned = scanned.map(|(result, returned)| {
            cache = Some(returned);
            result
        });
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
    cache: &mut ParseCache,
) -> Result<Option<(Fingerprint, Parsed)>, FilesError> {
    let print = fingerprint(dir)?;
    if previous.as_ref() == Some(&print) {
        return Ok(None);
    }
    let mut fresh = HashMap::with_capacity(print.len());
    let mut merged = Parsed::default();
    for (index, (path, modified, len)) in print.iter().enumerate() {
        let cached = cache
            .files
            .remove(path)
            .filter(|(m, l, i, _)| m == modified && l == len && *i == index)
            .map(|(_, _, _, parsed)| parsed);
        let parsed = match cached {
            Some(parsed) => parsed,
            None => match std::fs::read_to_string(path) {
                Ok(contents) => {
                    let file = ManifestFile {
                        name: path.display().to_string(),
                        contents,
                    };
                    Arc::new(manifests::parse_file(&file, index))
                }
                Err(source) => {
                    let err = FilesError::File {
                        path: path.clone(),
                        source,
                    };
                    tracing::warn!("{err}");
                    continue;
                }
            },
        };
        merged.merge(&parsed);
        fresh.insert(path.clone(), (*modified, *len, index, parsed));
    }
    cache.files = fresh;
    Ok(Some((print, merged)))
}
