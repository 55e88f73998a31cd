//! docs/configmap.md says, for every ingress-nginx controller ConfigMap key, whether the proxy
//! supports it. This checks each row against the proxy's ConfigMap parser: a key documented as
//! supported must not be reported as unsupported, and every other one must be.

use std::collections::BTreeMap;

use switchyard_proxy::compile::{config, serving_config};

#[test]
fn every_row_of_the_configmap_table_matches_the_proxy() {
    let page = std::fs::read_to_string(switchyard_tests::repo_root().join("docs/configmap.md"))
        .expect("read docs/configmap.md");
    let mut rows = 0;
    let mut keys = Vec::new();
    for line in page.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (key, status) = (cells[1].trim_matches('`'), cells[2]);
        // Any value: the status is about the key, not about whether the value parses.
        let data = BTreeMap::from([(key.to_owned(), "x".to_owned())]);
        let (_, problems) = config::parse(&data);
        let unsupported = problems
            .iter()
            .any(|p| p.key == key && p.reason == "UnsupportedConfigKey");
        match status {
            "supported" | "supported, differs" => {
                assert!(
                    !unsupported,
                    "{key} is documented as {status} but reported as unsupported"
                )
            }
            "not supported" | "not supported yet" => {
                assert!(
                    unsupported,
                    "{key} is documented as {status} but not reported as such"
                )
            }
            other => panic!("{key}: unknown status {other:?}"),
        }
        keys.push(key.to_owned());
        rows += 1;
    }
    // ingress-nginx documents 192 keys; each has its row, once.
    assert!(rows >= 192, "only {rows} rows read");
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "a key has two rows");
    // And the other way round: every key the serving settings read has a row.
    for key in serving_config::KEYS {
        assert!(keys.iter().any(|k| k == key), "{key} has no row");
    }
}
