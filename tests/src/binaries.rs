//! Where the control plane's binaries are: built once by `tests/controlplane/build.sh` and
//! cached outside `target/`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::{Error, repo_root};

/// The directory holding etcd, kube-apiserver, kube-controller-manager, kubectl, helm, pebble
/// and pebble-challtestsrv. `SWITCHYARD_BIN_DIR` overrides; otherwise the build script is run,
/// which builds whatever is missing (minutes, once per machine) and prints the directory.
pub fn bin_dir() -> Result<PathBuf, Error> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SWITCHYARD_BIN_DIR") {
            return Ok(PathBuf::from(dir));
        }
        let script = repo_root().join("tests/controlplane/build.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!("{} failed ({})", script.display(), out.status));
        }
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(PathBuf::from(dir))
    })
    .clone()
    .map_err(Error::Binaries)
}

/// The path of one binary, checked to exist.
pub fn binary(name: &str) -> Result<PathBuf, Error> {
    let path = bin_dir()?.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::Binaries(format!(
            "{} is missing; run tests/controlplane/build.sh",
            path.display()
        )))
    }
}
