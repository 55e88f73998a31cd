//! Writes the CRD manifests generated from the types into `crds/manifests/` and the Helm
//! chart's `crds/`. Run through `make crds`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::{fs, io};

use switchyard_crds::manifests::{MANIFEST_DIRS, RenderError, render_all};

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let mut message = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("crdgen: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Error> {
    // The crate sits one level below the workspace root; the binary is only ever run from a
    // checkout (`cargo run`), so the compile-time path is the right one.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifests = render_all()?;
    for dir in MANIFEST_DIRS {
        let dir = root.join(dir);
        fs::create_dir_all(&dir).map_err(io_error("creating", &dir))?;
        remove_stale(&root, &dir, &manifests)?;
        for (name, contents) in &manifests {
            let path = dir.join(name);
            let current = fs::read_to_string(&path).ok();
            if current.as_deref() != Some(contents.as_str()) {
                fs::write(&path, contents).map_err(io_error("writing", &path))?;
                println!("wrote {}", display(&root, &path));
            }
        }
    }
    Ok(())
}

/// Removes generated manifests of CRDs that no longer exist, so a renamed kind leaves nothing
/// behind. Only files that look like ours are touched.
fn remove_stale(root: &Path, dir: &Path, manifests: &[(String, String)]) -> Result<(), Error> {
    let entries = fs::read_dir(dir).map_err(io_error("reading", dir))?;
    for entry in entries {
        let path = entry.map_err(io_error("reading", dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let ours = name.ends_with(".switchyard.dev.yaml");
        if ours && !manifests.iter().any(|(wanted, _)| wanted == name) {
            fs::remove_file(&path).map_err(io_error("removing", &path))?;
            println!("removed {}", display(root, &path));
        }
    }
    Ok(())
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

fn display(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
