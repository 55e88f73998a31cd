//! The examples in docs/proxy.md do what the page says: its manifests compile without problems
//! and route as described, its ConfigMap sets what it claims, and `check` prints exactly the
//! output shown.

use std::process::Command;
use std::time::Duration;

use switchyard_proxy::compile::{CompileOptions, compile};
use switchyard_proxy::manifests::{ManifestFile, parse};
use switchyard_proxy::model::{ObjectKey, Severity};
use switchyard_proxy::routes::Target;

/// A fenced block: its language, its text, and the last non-empty line before it.
struct Block {
    lang: String,
    text: String,
    caption: String,
}

fn blocks() -> Vec<Block> {
    let page = std::fs::read_to_string(switchyard_tests::repo_root().join("docs/proxy.md"))
        .expect("read docs/proxy.md");
    let mut blocks = Vec::new();
    let mut caption = String::new();
    let mut open: Option<Block> = None;
    for line in page.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    lang: lang.trim().to_owned(),
                    text: String::new(),
                    caption: caption.clone(),
                })
            }
            (Some(_), Some("")) => blocks.extend(open.take()),
            (Some(block), _) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) if !line.trim().is_empty() => caption = line.to_owned(),
            (None, None) => {}
        }
    }
    blocks
}

fn yaml_containing(needle: &str) -> String {
    blocks()
        .into_iter()
        .find(|b| b.lang == "yaml" && b.text.contains(needle))
        .map(|b| b.text)
        .unwrap_or_else(|| panic!("docs/proxy.md has no yaml example containing {needle:?}"))
}

fn files(texts: &[&str]) -> Vec<ManifestFile> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| ManifestFile {
            name: format!("{i}.yaml"),
            contents: (*text).to_owned(),
        })
        .collect()
}

#[test]
fn the_routing_example_compiles_cleanly_and_routes_as_described() {
    let example = yaml_containing("name: everything-else");
    let parsed = parse(&files(&[&example]));
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let (table, problems) = compile(&parsed.snapshot, &CompileOptions::default());
    let faults: Vec<_> = problems
        .iter()
        .filter(|p| p.severity > Severity::Info)
        .collect();
    assert!(faults.is_empty(), "{faults:?}");
    let service = |host: &str, path: &str| match &table.route(host, path).1.target {
        Target::Upstream(u) => u.service.name.clone(),
        other => format!("{other:?}"),
    };
    assert_eq!(service("shop.example.com", "/api/orders"), "shop-api");
    assert_eq!(service("shop.example.com", "/apiary"), "shop-web");
    assert_eq!(service("shop.example.com", "/"), "shop-web");
    assert_eq!(service("elsewhere.example.org", "/"), "shop-web");
    // Both EndpointSlice addresses, on the slice's port.
    match &table.route("shop.example.com", "/api").1.target {
        Target::Upstream(u) => {
            let endpoints: Vec<String> = u.endpoints.iter().map(ToString::to_string).collect();
            assert_eq!(endpoints, ["10.0.0.11:8080", "10.0.0.12:8080"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_configmap_example_sets_what_the_page_says() {
    let example = yaml_containing("kind: ConfigMap");
    let parsed = parse(&files(&[&example]));
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let options = CompileOptions {
        configmap: Some(ObjectKey::new("switchyard", "switchyard-controller")),
        ..CompileOptions::default()
    };
    let (table, problems) = compile(&parsed.snapshot, &options);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        table.hsts.as_ref().map(|v| v.as_bytes()),
        Some(&b"max-age=600"[..])
    );
    assert_eq!(table.upstream_timeout, Duration::from_secs(120));
}

#[test]
fn the_access_log_example_is_a_valid_format() {
    let example = yaml_containing("log-format-upstream");
    let parsed = parse(&files(&[&example]));
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let options = CompileOptions {
        configmap: Some(ObjectKey::new("switchyard", "switchyard-controller")),
        ..CompileOptions::default()
    };
    let (table, problems) = compile(&parsed.snapshot, &options);
    assert!(problems.is_empty(), "{problems:?}");
    let format = table.log.format.as_deref().map(|f| f.escape());
    assert_eq!(format, Some(switchyard_proxy::access_log::Escape::Json));
    assert!(table.log.skip.matches("/healthz") && table.log.skip.matches("/metrics/x"));
}

#[test]
fn check_prints_what_the_page_shows() {
    let all = blocks();
    let file = |name: &str| {
        all.iter()
            .find(|b| b.lang == "yaml" && b.caption.starts_with(&format!("`{name}`")))
            .map(|b| b.text.clone())
            .unwrap_or_else(|| panic!("no example captioned {name}"))
    };
    let expected = all
        .iter()
        .find(|b| b.lang == "text" && b.caption.starts_with("prints"))
        .map(|b| b.text.clone())
        .expect("the documented check output");
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["class.yaml", "shop.yaml"] {
        std::fs::write(dir.path().join(name), file(name)).expect("write example");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard-proxy"))
        .current_dir(dir.path())
        .args(["check", "-f", "class.yaml", "-f", "shop.yaml"])
        .output()
        .expect("run check");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert!(out.status.success(), "warnings only: exit 0");
}

#[test]
fn the_snippet_example_is_translated_as_the_page_says() {
    let example = yaml_containing("configuration-snippet: |");
    let class = yaml_containing("kind: IngressClass");
    let parsed = parse(&files(&[&class, &example]));
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let (table, problems) = compile(&parsed.snapshot, &CompileOptions::default());
    // The example names a Service it does not define; nothing else may be reported.
    let other: Vec<_> = problems
        .iter()
        .filter(|p| p.severity > Severity::Info && p.reason != "ServiceNotFound")
        .collect();
    assert!(other.is_empty(), "{other:?}");
    let route = table.route("shop.example.com", "/old/page").1;
    let snippet = &route.policy.snippet;
    assert!(route.policy.closed.is_none());
    assert_eq!(snippet.response_headers.len(), 1, "{route:?} {problems:?}");
    assert_eq!(snippet.upstream_headers.len(), 1);
    assert_eq!(snippet.steps.len(), 1);
}

#[test]
fn the_auth_example_guards_its_paths_as_described() {
    let example = yaml_containing("auth-type: basic");
    let class = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: switchyard}\nspec: {controller: switchyard.dev/ingress-controller}\n";
    let parsed = parse(&files(&[class, &example]));
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let (table, problems) = compile(&parsed.snapshot, &CompileOptions::default());
    let auth_faults: Vec<_> = problems
        .iter()
        .filter(|p| p.severity > Severity::Info && p.reason != "ServiceNotFound")
        .collect();
    assert!(auth_faults.is_empty(), "{auth_faults:?}");
    let staff = table.route("admin.example.com", "/").1.policy.clone();
    let basic = staff
        .auth
        .as_ref()
        .and_then(|a| a.basic.as_ref())
        .expect("basic auth on admin.example.com");
    assert_eq!(basic.challenge, "Basic realm=\"Staff only\"");
    assert!(
        basic.users.verify("admin", b"change-me"),
        "the password the page gives"
    );
    let app = table.route("app.example.com", "/").1.policy.clone();
    let external = app
        .auth
        .as_ref()
        .and_then(|a| a.external.as_ref())
        .expect("external auth on app.example.com");
    assert_eq!(external.response_headers.len(), 2);
    assert!(external.signin.is_some());
}
