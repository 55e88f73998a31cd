//! Seed 003 (the Kubernetes "Ingress" concepts page), both tables, row by row, through the real
//! proxy on real sockets: the path-matching examples (Kind / Path(s) / Request path(s) /
//! Matches?) and the hostname wildcard table. Every row gets a host of its own and every path of
//! a row a backend of its own, so a row asserts *which* path answered, or that the controller's
//! default backend (404) did when the row says there is no match.

mod manifests_common;

use manifests_common::{
    CONTROLLER, Folder, Proxy, backend, backend_service, get, ingress, ingress_class,
};
use serde_json::Value;

/// Which path of a row should answer.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// The backend of the row's n-th path (0-based).
    Path(usize),
    /// No path matches: the controller's default backend, 404.
    NoMatch,
}
use Expect::{NoMatch, Path};

/// One row of the "Examples" table. `paths` are `(pathType, path)`; a request path list of
/// `(all paths)` is spelled out as a few representative paths.
struct PathRow {
    row: usize,
    paths: &'static [(&'static str, &'static str)],
    requests: &'static [&'static str],
    expect: Expect,
}

const fn r(
    row: usize,
    paths: &'static [(&'static str, &'static str)],
    requests: &'static [&'static str],
    expect: Expect,
) -> PathRow {
    PathRow {
        row,
        paths,
        requests,
        expect,
    }
}

const P: &str = "Prefix";
const E: &str = "Exact";

/// The "Examples" table of seed 003, in its order, one row per line.
#[rustfmt::skip]
const PATH_ROWS: &[PathRow] = &[
    r(1,  &[(P, "/")],                             &["/", "/foo", "/aaa/bbb/", "/x.y?q=1"], Path(0)), // (all paths): yes
    r(2,  &[(E, "/foo")],                          &["/foo"],                   Path(0)), // yes
    r(3,  &[(E, "/foo")],                          &["/bar"],                   NoMatch), // no
    r(4,  &[(E, "/foo")],                          &["/foo/"],                  NoMatch), // no
    r(5,  &[(E, "/foo/")],                         &["/foo"],                   NoMatch), // no
    r(6,  &[(P, "/foo")],                          &["/foo", "/foo/"],          Path(0)), // yes
    r(7,  &[(P, "/foo/")],                         &["/foo", "/foo/"],          Path(0)), // yes
    r(8,  &[(P, "/aaa/bb")],                       &["/aaa/bbb"],               NoMatch), // no
    r(9,  &[(P, "/aaa/bbb")],                      &["/aaa/bbb"],               Path(0)), // yes
    r(10, &[(P, "/aaa/bbb/")],                     &["/aaa/bbb"],               Path(0)), // yes, ignores trailing slash
    r(11, &[(P, "/aaa/bbb")],                      &["/aaa/bbb/"],              Path(0)), // yes, matches trailing slash
    r(12, &[(P, "/aaa/bbb")],                      &["/aaa/bbb/ccc"],           Path(0)), // yes, matches subpath
    r(13, &[(P, "/aaa/bbb")],                      &["/aaa/bbbxyz"],            NoMatch), // no, does not match string prefix
    r(14, &[(P, "/"), (P, "/aaa")],                &["/aaa/ccc"],               Path(1)), // yes, matches /aaa prefix
    r(15, &[(P, "/"), (P, "/aaa"), (P, "/aaa/bbb")], &["/aaa/bbb"],             Path(2)), // yes, matches /aaa/bbb prefix
    r(16, &[(P, "/"), (P, "/aaa"), (P, "/aaa/bbb")], &["/ccc"],                 Path(0)), // yes, matches / prefix
    r(17, &[(P, "/aaa")],                          &["/ccc"],                   NoMatch), // no, uses default backend
    r(18, &[(P, "/foo"), (E, "/foo")],             &["/foo"],                   Path(1)), // Mixed: yes, prefers Exact
];

/// The hostname wildcard table: (rule host, Host header, matches?).
#[rustfmt::skip]
const HOST_ROWS: &[(usize, &str, &str, bool)] = &[
    (1, "*.foo.com", "bar.foo.com",     true),  // matches based on shared suffix
    (2, "*.foo.com", "baz.bar.foo.com", false), // no match, wildcard only covers a single DNS label
    (3, "*.foo.com", "foo.com",         false), // no match, wildcard only covers a single DNS label
];

fn row_host(row: usize) -> String {
    format!("row{row:02}.paths.test")
}

/// The Service (and backend name) of path `index` of `row`.
fn path_service(row: usize, index: usize) -> String {
    format!("row{row:02}-path{index}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003_tables_row_by_row() {
    let folder = Folder::new();
    let mut objects: Vec<Value> = vec![ingress_class("switchyard", CONTROLLER, false)];

    // One Ingress per table; one rule (host) per row; one Service and backend per path.
    let mut paths_ingress = ingress("seed-003-paths").class("switchyard");
    for row in PATH_ROWS {
        let services: Vec<String> = (0..row.paths.len())
            .map(|i| path_service(row.row, i))
            .collect();
        for service in &services {
            let port = backend(service.clone()).await;
            objects.extend(backend_service(service, port));
        }
        let paths: Vec<(&str, &str, &str)> = row
            .paths
            .iter()
            .zip(&services)
            .map(|((kind, path), service)| (*path, *kind, service.as_str()))
            .collect();
        paths_ingress = paths_ingress.rule(&row_host(row.row), &paths);
    }
    objects.push(paths_ingress.build());

    let wildcard = "wildcard-foo-com";
    let port = backend(wildcard).await;
    objects.extend(backend_service(wildcard, port));
    objects.push(
        ingress("seed-003-hosts")
            .class("switchyard")
            .rule("*.foo.com", &[("/", "Prefix", wildcard)])
            .build(),
    );
    folder.write_objects("seed-003.yaml", &objects);

    let proxy = Proxy::start(&folder, &[]).await;

    let mut failures = Vec::new();
    let mut checked = 0;
    for row in PATH_ROWS {
        let host = row_host(row.row);
        let paths = row
            .paths
            .iter()
            .map(|(kind, path)| format!("{path} ({kind})"))
            .collect::<Vec<_>>()
            .join(", ");
        for request in row.requests {
            let reply = get(proxy.http, &host, request).await;
            checked += 1;
            let ok = match row.expect {
                Path(i) => reply.status == 200 && reply.first_line() == path_service(row.row, i),
                NoMatch => reply.status == 404,
            };
            if !ok {
                let expected = match row.expect {
                    Path(i) => format!(
                        "200 from {} (path {})",
                        path_service(row.row, i),
                        row.paths[i].1
                    ),
                    NoMatch => "no match: 404 from the default backend".to_owned(),
                };
                failures.push(format!(
                    "Examples row {}: paths [{paths}], request {request} (Host {host}): expected {expected}, got {}",
                    row.row,
                    reply.describe()
                ));
            }
        }
    }
    for (row, rule_host, request_host, matches) in HOST_ROWS {
        let reply = get(proxy.http, request_host, "/").await;
        checked += 1;
        let ok = if *matches {
            reply.status == 200 && reply.first_line() == wildcard
        } else {
            reply.status == 404
        };
        if !ok {
            let expected = if *matches {
                format!("200 from {wildcard}")
            } else {
                "no match: 404".to_owned()
            };
            failures.push(format!(
                "Hostname wildcard row {row}: host {rule_host}, Host header {request_host}: expected {expected}, got {}",
                reply.describe()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Both tables are here whole: 18 example rows and 3 wildcard rows.
    assert_eq!((PATH_ROWS.len(), HOST_ROWS.len()), (18, 3));
}
