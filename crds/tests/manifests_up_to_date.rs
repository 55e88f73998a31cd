//! The committed CRD manifests (crds/manifests/ and the chart's crds/) must be exactly what the
//! Rust types generate; otherwise the cluster would run a schema the code does not match.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use switchyard_crds::manifests::{MANIFEST_DIRS, render_all};

const HOW_TO_FIX: &str = "run `make crds` and commit the result";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn committed_manifests_match_the_types() {
    let manifests = render_all().expect("the CRDs render to YAML");
    let mut stale = Vec::new();
    for dir in MANIFEST_DIRS {
        for (name, expected) in &manifests {
            let path = format!("{dir}/{name}");
            match fs::read_to_string(workspace_root().join(&path)) {
                Ok(committed) if committed == *expected => {}
                Ok(_) => stale.push(format!("{path} differs from the types")),
                Err(err) => stale.push(format!("{path} cannot be read: {err}")),
            }
        }
    }
    assert!(
        stale.is_empty(),
        "CRD manifests are out of date ({HOW_TO_FIX}):\n  {}",
        stale.join("\n  ")
    );
}

#[test]
fn no_manifests_of_removed_kinds() {
    let wanted: BTreeSet<String> = render_all()
        .expect("the CRDs render to YAML")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for dir in MANIFEST_DIRS {
        let entries = fs::read_dir(workspace_root().join(dir))
            .unwrap_or_else(|err| panic!("{dir} cannot be read ({HOW_TO_FIX}): {err}"));
        let present: BTreeSet<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
            .collect();
        let extra: Vec<_> = present.difference(&wanted).collect();
        assert!(
            extra.is_empty(),
            "{dir} holds manifests no type generates: {extra:?} ({HOW_TO_FIX})"
        );
    }
}
