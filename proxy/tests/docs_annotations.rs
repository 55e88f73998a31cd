//! docs/annotations.md says, for every ingress-nginx annotation, whether the proxy supports it,
//! fails closed on it or ignores it (and says so). This checks each row against the proxy.

use std::collections::BTreeMap;

use switchyard_proxy::compile::policy;

const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// A value the annotation accepts, where an arbitrary one would be refused in a way that
/// changes the verdict.
fn sample(name: &str) -> &'static str {
    match name {
        "configuration-snippet" | "server-snippet" => "add_header X-Checked yes;",
        "whitelist-source-range" | "allowlist-source-range" | "denylist-source-range" => {
            "10.0.0.0/8"
        }
        "auth-type" => "basic",
        "auth-url" => "https://auth.example/check",
        "auth-tls-match-cn" => "CN=client",
        _ => "x",
    }
}

/// Annotations a row's annotation needs beside it to be honoured.
fn companions(name: &str) -> &'static [(&'static str, &'static str)] {
    match name {
        "auth-type" => &[("auth-secret", "htpasswd")],
        _ => &[],
    }
}

#[test]
fn every_row_of_the_annotation_table_matches_the_proxy() {
    let page = std::fs::read_to_string(switchyard_tests::repo_root().join("docs/annotations.md"))
        .expect("read docs/annotations.md");
    let mut rows = 0;
    for line in page.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (name, status) = (cells[1].trim_matches('`'), cells[2]);
        let annotation = format!("{PREFIX}{name}");
        let mut map = BTreeMap::from([(annotation.clone(), sample(name).to_owned())]);
        for (other, value) in companions(name) {
            map.insert(format!("{PREFIX}{other}"), (*value).to_owned());
        }
        let (parsed, findings) = policy::parse(&map);
        let reported = |reason: &str| {
            findings
                .iter()
                .any(|f| f.annotation == annotation && f.reason == reason)
        };
        let closed = parsed.closed.as_deref().unwrap_or("");
        match status {
            "supported" | "supported, differs" | "accepted, no effect" => {
                assert!(
                    !reported("UnsupportedAnnotation") && !reported("NotAnAnnotation"),
                    "{name} is documented as {status} but reported as ignored"
                );
                assert!(
                    closed.is_empty(),
                    "{name} is documented as {status}: {closed}"
                );
            }
            "fails closed" => {
                assert!(closed.contains(&annotation), "{name} must fail closed");
            }
            "ignored" => {
                assert!(
                    reported("UnsupportedAnnotation"),
                    "{name} must be reported as ignored"
                );
                assert!(closed.is_empty(), "{name} is ignored, not failed closed");
            }
            other => panic!("{name}: unknown status {other:?}"),
        }
        rows += 1;
    }
    assert!(rows > 100, "only {rows} rows read");
}
