//! A bounded fuzz run (no extra tooling: a seeded generator, so a failure replays): annotation
//! values, snippet text and regex paths, hostile and malformed, through the parsers and a whole
//! compile. Nothing may panic, and every parse either yields a typed value or a reported
//! problem.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use switchyard_proxy::compile::{
    CompileOptions, affinity, canary, compile, config, cors, hash_by, policy, regex_mode, snippet,
};
use switchyard_proxy::manifests::{ManifestFile, parse};
use switchyard_proxy::model::ObjectKey;
use switchyard_proxy::variables::{RequestView, Scope, Template};

/// xorshift64*: small, fast, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A string built from fragments that matter to the parsers, random bytes and repeats.
    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "/",
            "$1",
            "$",
            "(",
            ")",
            "(.*)",
            "[",
            "]",
            "*",
            "+",
            "?",
            "{",
            "}",
            "\\",
            "^",
            "|",
            ";",
            "\"",
            "'",
            ",",
            " ",
            "\t",
            "\n",
            "\r",
            ":",
            "=",
            "%",
            "%2F",
            "..",
            ".",
            "*.",
            "https://",
            "http://",
            "add_header",
            "more_set_headers",
            "proxy_set_header",
            "always",
            "return",
            "deny all",
            "true",
            "false",
            "0",
            "-1",
            "99999999999999999999",
            "1m",
            "k",
            "10.0.0.0/8",
            "::1/128",
            "/33",
            "example.com",
            "x",
            "é",
            "\u{0}",
            "(?<=a)",
            "(?=a)",
            "(?!",
            "(a+)+$",
            "\\1",
            "a{1000}{1000}",
            "((((((((((",
            "*.example.com",
            "$remote_addr",
            "$http_x_a",
            "${host}",
            "${host",
            "$cookie_",
            "$arg_q",
            "$request_uri",
            "rewrite ^/(.*)$ /$1",
            "rewrite",
            "more_clear_headers",
            "more_set_input_headers",
            "more_clear_input_headers",
            "proxy_hide_header",
            "break",
            "last",
            "permanent",
            "redirect",
            "return 302",
            "return 200 ok",
            "#",
            "if (",
            "X-A: b",
            "X-*",
            "default/headers",
        ];
        let mut out = String::new();
        for _ in 0..self.below(12) {
            match self.below(4) {
                0 => out.push(char::from(self.below(128) as u8)),
                1 => out.push_str(&PIECES[self.below(PIECES.len())].repeat(1 + self.below(3))),
                _ => out.push_str(PIECES[self.below(PIECES.len())]),
            }
        }
        out
    }
}

const ANNOTATIONS: &[&str] = &[
    "rewrite-target",
    "use-regex",
    "canary",
    "canary-weight",
    "canary-weight-total",
    "canary-by-header",
    "canary-by-header-value",
    "canary-by-header-pattern",
    "canary-by-cookie",
    "enable-cors",
    "cors-allow-origin",
    "cors-allow-methods",
    "cors-allow-headers",
    "cors-max-age",
    "affinity",
    "session-cookie-name",
    "session-cookie-path",
    "session-cookie-max-age",
    "session-cookie-expires",
    "session-cookie-samesite",
    "whitelist-source-range",
    "denylist-source-range",
    "proxy-body-size",
    "proxy-read-timeout",
    "permanent-redirect",
    "permanent-redirect-code",
    "app-root",
    "backend-protocol",
    "configuration-snippet",
    "limit-rps",
    "limit-rpm",
    "limit-burst-multiplier",
    "limit-allowlist",
    "upstream-vhost",
    "x-forwarded-prefix",
    "server-alias",
    "from-to-www-redirect",
    "default-backend",
    "service-upstream",
    "auth-url",
    "server-snippet",
    "custom-headers",
    "upstream-hash-by",
    "upstream-hash-by-subset",
    "upstream-hash-by-subset-size",
    "unknown-one",
];

/// Controller ConfigMap keys whose values are parsed.
const CONFIG_KEYS: &[&str] = &[
    "ssl-redirect",
    "hsts",
    "hsts-max-age",
    "proxy-read-timeout",
    "proxy-set-headers",
    "add-headers",
    "global-allowed-response-headers",
    "allow-snippet-annotations",
    "annotations-risk-level",
];

fn annotations(rng: &mut Rng) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for _ in 0..1 + rng.below(6) {
        let name = ANNOTATIONS[rng.below(ANNOTATIONS.len())];
        // Mostly plausible values, sometimes garbage.
        let value = if rng.below(3) == 0 {
            "true".to_owned()
        } else {
            rng.text()
        };
        map.insert(format!("nginx.ingress.kubernetes.io/{name}"), value);
    }
    if rng.below(4) == 0 {
        map.insert(regex_mode::REGEX_SCOPE.to_owned(), rng.text());
    }
    map
}

#[test]
fn hostile_annotation_values_snippets_and_regex_paths_never_panic() {
    let mut rng = Rng(0x005e_ed0f_5717_c4a2);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut rounds = 0u32;
    while Instant::now() < deadline && rounds < 4000 {
        rounds += 1;
        let map = annotations(&mut rng);
        let path = format!("/{}", rng.text());
        let _ = policy::parse(&map);
        let _ = canary::parse(&map);
        let _ = cors::parse(&map);
        let _ = affinity::parse(&map, &path);
        let (regex, _) = regex_mode::parse(&map);
        if let (Some(target), Ok(location)) =
            (&regex.rewrite_target, regex_mode::location_regex(&path))
        {
            let _ = target.apply(&location, &path);
        }
        // Regex paths on both engines, against the path and a hostile one: an answer or a
        // bounded give-up, never a hang or a panic.
        if let Ok(location) = regex_mode::location_regex(&path) {
            let _ = location.is_match(&path);
            let _ = location.is_match(&format!("{path}{}!", "a".repeat(rng.below(3000))));
        }

        let _ = hash_by::parse(&map);
        // Snippet text and variable templates on their own, expanded for a hostile request.
        let text = rng.text();
        let _ = snippet::parse(&text);
        if let Ok(template) = Template::parse(&text, Scope::Rewrite) {
            let uri: http::Uri = format!(
                "/{}",
                rng.text().replace(|c: char| !c.is_ascii_graphic(), "")
            )
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("/"));
            let mut headers = http::HeaderMap::new();
            if let Ok(value) = http::HeaderValue::from_str(&rng.text()) {
                headers.insert("x-a", value.clone());
                headers.insert(http::header::COOKIE, value);
            }
            let captures = [Some(path.as_str()), None];
            let view = RequestView {
                method: &http::Method::GET,
                uri: &uri,
                version: http::Version::HTTP_11,
                headers: &headers,
                host: "fuzz.example",
                server_name: "fuzz.example",
                path: &path,
                client: std::net::IpAddr::from([10, 0, 0, 1]),
                client_port: 1234,
                server_port: 80,
                tls: rng.below(2) == 0,
                request_id: None,
                captures: &captures,
            };
            let _ = template.header_value(&view);
        }
        let data: BTreeMap<String, String> = (0..rng.below(4))
            .map(|_| {
                (
                    CONFIG_KEYS[rng.below(CONFIG_KEYS.len())].to_owned(),
                    rng.text(),
                )
            })
            .collect();
        let _ = config::parse(&data);

        // And a whole compile of an Ingress carrying them on a random path.
        if rounds.is_multiple_of(8) {
            let kind = ["Exact", "Prefix", "ImplementationSpecific"][rng.below(3)];
            let ingress = serde_json::json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": "fuzz", "annotations": map},
                "spec": {"ingressClassName": "switchyard", "rules": [{
                    "host": "fuzz.example",
                    "http": {"paths": [{
                        "path": path,
                        "pathType": kind,
                        "backend": {"service": {"name": "web", "port": {"number": 80}}},
                    }]},
                }]},
            });
            let files = [
                ManifestFile {
                    name: "class.yaml".into(),
                    contents: "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: switchyard}\nspec: {controller: switchyard.dev/ingress-controller}\n".into(),
                },
                ManifestFile {
                    name: "fuzz.json".into(),
                    contents: ingress.to_string(),
                },
            ];
            let mut parsed = parse(&files);
            // Sometimes with a controller ConfigMap of random settings and header maps.
            let options = if rng.below(2) == 0 {
                let map = k8s_openapi::api::core::v1::ConfigMap {
                    data: Some(data),
                    ..Default::default()
                };
                for name in ["switchyard-controller", "headers"] {
                    parsed
                        .snapshot
                        .config_maps
                        .insert(ObjectKey::new("default", name), map.clone().into());
                }
                CompileOptions {
                    configmap: Some(ObjectKey::new("default", "switchyard-controller")),
                    ..CompileOptions::default()
                }
            } else {
                CompileOptions::default()
            };
            let (table, _) = compile(&parsed.snapshot, &options);
            let _ = table.route("fuzz.example", &path);
        }
    }
    assert!(rounds > 100, "only {rounds} rounds ran");
}
