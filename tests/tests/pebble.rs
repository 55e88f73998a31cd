//! The ACME test server starts on free ports, serves its directory over TLS signed by the CA
//! the test generated, and hands out the root it signs certificates with.

use std::time::Duration;

use switchyard_tests::pebble::{Pebble, PebbleOptions, https_get};
use switchyard_tests::ports::free_port;

#[test]
fn pebble_serves_a_directory_and_its_issuing_root() {
    let pebble = Pebble::start(PebbleOptions {
        http01_port: free_port().expect("port"),
        certificate_validity: Duration::from_secs(3600),
    })
    .expect("pebble starts");

    let url = pebble.directory_url();
    let addr = url
        .trim_start_matches("https://")
        .trim_end_matches("/dir")
        .to_string();
    let directory = https_get(&addr, "/dir", pebble.server_ca_pem()).expect("directory");
    let directory: serde_json::Value = serde_json::from_str(&directory).expect("JSON directory");
    for key in ["newAccount", "newNonce", "newOrder"] {
        assert!(
            directory[key]
                .as_str()
                .is_some_and(|u| u.starts_with("https://127.0.0.1:")),
            "{key} in {directory}"
        );
    }

    let root = pebble.issuing_root_pem().expect("issuing root");
    assert!(root.starts_with("-----BEGIN CERTIFICATE-----"), "{root}");
    // A client that trusts only our test CA must not trust Pebble's issuing root by accident.
    assert_ne!(root.trim(), pebble.server_ca_pem().trim());
}
