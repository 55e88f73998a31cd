//! The controller ConfigMap (`--configmap NS/NAME`): ingress-nginx's global settings, parsed
//! into typed values. A bad value is reported naming the key and keeps the default; a key we do
//! not implement is reported once, so nobody believes a setting took effect when it did not.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::risk::{Admit, Risk};
use crate::access_log::LogSettings;

use super::serving_config::{self, ServingConfig};

/// The settings that shape the route table and the hot path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `ssl-redirect`: plain HTTP to a TLS host gets a 308 to HTTPS.
    pub ssl_redirect: bool,
    /// `hsts`, `hsts-max-age`, `hsts-include-subdomains`, `hsts-preload`; `None` when off.
    pub hsts: Option<HeaderValue>,
    /// Not `disable-access-log`.
    pub access_log: bool,
    /// The access log's format and filters (see `config_log`).
    pub log: LogSettings,
    /// `proxy-read-timeout`: how long an upstream may take to send its response headers.
    pub upstream_timeout: Duration,
    /// `proxy-set-headers` and `add-headers`: the ConfigMaps (`NS/NAME`, or `NAME` next to this
    /// one) whose data are headers for every upstream request and every response.
    pub proxy_set_headers: Option<String>,
    pub add_headers: Option<String>,
    /// `global-allowed-response-headers`: the names `custom-headers` annotations may set.
    pub allowed_response_headers: Vec<HeaderName>,
    /// `allow-snippet-annotations` and `annotations-risk-level`.
    pub admit: Admit,
    /// `custom-http-errors`: upstream statuses every Ingress without its own annotation
    /// replaces with the default backend's answer.
    pub custom_http_errors: Vec<http::StatusCode>,
    /// `proxy-send-timeout`, when the ConfigMap sets it: for Ingresses without the annotation.
    pub proxy_send_timeout: Option<Duration>,
    /// `no-auth-locations`: Ingress paths starting with one of these are not authenticated.
    pub no_auth_locations: Vec<String>,
    /// Forwarded headers and client addresses, TLS, connections, global defaults.
    pub serving: ServingConfig,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            ssl_redirect: true,
            hsts: Some(hsts_value(HSTS_MAX_AGE, true, false)),
            access_log: true,
            log: LogSettings::default(),
            upstream_timeout: Duration::from_secs(60),
            proxy_set_headers: None,
            add_headers: None,
            allowed_response_headers: Vec::new(),
            admit: Admit::default(),
            custom_http_errors: Vec::new(),
            proxy_send_timeout: None,
            no_auth_locations: vec!["/.well-known/acme-challenge".to_owned()],
            serving: ServingConfig::default(),
        }
    }
}

/// ingress-nginx's `hsts-max-age` default: one year.
const HSTS_MAX_AGE: u64 = 31_536_000;

/// One thing wrong with the ConfigMap: the key and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub reason: &'static str,
    pub message: String,
}

/// Keys ingress-nginx has that Switchyard does not implement (yet). Listed so that a user
/// learns which of their settings are ignored, rather than guessing.
fn unsupported(key: &str) -> bool {
    !serving_config::KEYS.contains(&key)
        && !matches!(
            key,
            "ssl-redirect"
                | "hsts"
                | "hsts-max-age"
                | "hsts-include-subdomains"
                | "hsts-preload"
                | "disable-access-log"
                | "proxy-read-timeout"
                | "proxy-set-headers"
                | "add-headers"
                | "global-allowed-response-headers"
                | "allow-snippet-annotations"
                | "annotations-risk-level"
                | "custom-http-errors"
                | "proxy-send-timeout"
                | "no-auth-locations"
        )
        // global-auth-*: read by compile::auth.
        && !super::auth::is_global_auth_key(key)
}

pub fn parse(data: &BTreeMap<String, String>) -> (ControllerConfig, Vec<ConfigProblem>) {
    let mut problems = Vec::new();
    let mut config = ControllerConfig::default();
    let bool_key = |key: &str, default: bool, problems: &mut Vec<ConfigProblem>| -> bool {
        match data.get(key) {
            None => default,
            Some(value) => parse_bool(value).unwrap_or_else(|| {
                problems.push(invalid(key, value, "true or false", &default.to_string()));
                default
            }),
        }
    };
    config.ssl_redirect = bool_key("ssl-redirect", true, &mut problems);
    config.access_log = !bool_key("disable-access-log", false, &mut problems);
    let hsts = bool_key("hsts", true, &mut problems);
    let include_subdomains = bool_key("hsts-include-subdomains", true, &mut problems);
    let preload = bool_key("hsts-preload", false, &mut problems);
    let max_age = match data.get("hsts-max-age") {
        None => HSTS_MAX_AGE,
        Some(value) => value.trim().parse::<u64>().unwrap_or_else(|_| {
            problems.push(invalid(
                "hsts-max-age",
                value,
                "a number of seconds",
                &HSTS_MAX_AGE.to_string(),
            ));
            HSTS_MAX_AGE
        }),
    };
    config.hsts = hsts.then(|| hsts_value(max_age, include_subdomains, preload));
    if let Some(value) = data.get("proxy-read-timeout") {
        match value.trim().parse::<u64>() {
            Ok(seconds) if seconds > 0 => config.upstream_timeout = Duration::from_secs(seconds),
            _ => problems.push(invalid(
                "proxy-read-timeout",
                value,
                "a positive number of seconds",
                "60",
            )),
        }
    }
    config.admit.snippets = bool_key("allow-snippet-annotations", true, &mut problems);
    parse_headers_and_risk(data, &mut config, &mut problems);
    config.serving = serving_config::parse(data, &mut problems);
    config.log = super::config_log::parse(data, &mut problems);
    // The access log's keys are read by `config_log`.
    let access_log_key = |key: &str| super::config_log::KEYS.contains(&key);
    for key in data.keys().filter(|k| unsupported(k) && !access_log_key(k)) {
        problems.push(ConfigProblem {
            key: key.clone(),
            reason: "UnsupportedConfigKey",
            message: format!("ConfigMap key {key:?} is not supported by Switchyard; ignored"),
        });
    }
    (config, problems)
}

/// The header ConfigMaps, the names `custom-headers` may set, and the annotation risk level.
fn parse_headers_and_risk(
    data: &BTreeMap<String, String>,
    config: &mut ControllerConfig,
    problems: &mut Vec<ConfigProblem>,
) {
    let reference = |key: &str, problems: &mut Vec<ConfigProblem>| {
        let value = data.get(key)?.trim();
        match super::headers::config_map_key(value, "default") {
            Ok(_) => Some(value.to_owned()),
            Err(_) if value.is_empty() => None,
            Err(_) => {
                problems.push(invalid(
                    key,
                    value,
                    "a ConfigMap name (NAMESPACE/NAME)",
                    "none",
                ));
                None
            }
        }
    };
    config.proxy_set_headers = reference("proxy-set-headers", problems);
    config.add_headers = reference("add-headers", problems);
    if let Some(value) = data.get("global-allowed-response-headers") {
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(header) => config.allowed_response_headers.push(header),
                Err(_) => problems.push(invalid(
                    "global-allowed-response-headers",
                    name,
                    "a header name",
                    "not allowed",
                )),
            }
        }
    }
    if let Some(value) = data.get("custom-http-errors") {
        // The annotation's parser, on the same text.
        let as_annotation = BTreeMap::from([(
            format!("{}custom-http-errors", super::canary::PREFIX),
            value.clone(),
        )]);
        match super::custom_errors::parse(&as_annotation) {
            (codes, None) => config.custom_http_errors = codes,
            (_, Some(_)) => problems.push(invalid(
                "custom-http-errors",
                value,
                "a comma-separated list of statuses from 400 to 599",
                "none",
            )),
        }
    }
    if let Some(value) = data.get("no-auth-locations") {
        config.no_auth_locations = value
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(value) = data.get("proxy-send-timeout") {
        match value.trim().parse::<u64>() {
            Ok(seconds) if seconds > 0 => {
                config.proxy_send_timeout = Some(Duration::from_secs(seconds));
            }
            _ => problems.push(invalid(
                "proxy-send-timeout",
                value,
                "a positive number of seconds",
                "no send timeout",
            )),
        }
    }
    if let Some(value) = data.get("annotations-risk-level") {
        match Risk::parse(value) {
            Some(risk) => config.admit.max_risk = risk,
            None => {
                // ingress-nginx reads an unknown level as Low; so do we, and say so.
                config.admit.max_risk = Risk::Low;
                problems.push(invalid(
                    "annotations-risk-level",
                    value,
                    "Low, Medium, High or Critical",
                    "Low, as ingress-nginx does",
                ));
            }
        }
    }
}

pub(crate) fn invalid(key: &str, value: &str, expected: &str, default: &str) -> ConfigProblem {
    ConfigProblem {
        key: key.to_owned(),
        reason: "InvalidConfigValue",
        message: format!("ConfigMap key {key:?}: {value:?} is not {expected}; using {default}"),
    }
}

/// Go's `strconv.ParseBool`, which ingress-nginx uses for its ConfigMap.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn hsts_value(max_age: u64, include_subdomains: bool, preload: bool) -> HeaderValue {
    let mut value = format!("max-age={max_age}");
    if include_subdomains {
        value.push_str("; includeSubDomains");
    }
    if preload {
        value.push_str("; preload");
    }
    // Digits and fixed words only: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("max-age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_ingress_nginx_defaults() {
        let (config, problems) = parse(&BTreeMap::new());
        assert!(problems.is_empty());
        assert!(config.ssl_redirect && config.access_log);
        assert_eq!(
            config.hsts,
            Some(HeaderValue::from_static(
                "max-age=31536000; includeSubDomains"
            ))
        );
        assert_eq!(config.upstream_timeout, Duration::from_secs(60));
    }

    #[test]
    fn settings_are_typed() {
        let (config, problems) = parse(&data(&[
            ("ssl-redirect", "false"),
            ("hsts-max-age", "600"),
            ("hsts-include-subdomains", "False"),
            ("hsts-preload", "1"),
            ("disable-access-log", "true"),
            ("proxy-read-timeout", "5"),
        ]));
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!config.ssl_redirect && !config.access_log);
        assert_eq!(
            config.hsts,
            Some(HeaderValue::from_static("max-age=600; preload"))
        );
        assert_eq!(config.upstream_timeout, Duration::from_secs(5));
        let (config, _) = parse(&data(&[("hsts", "false")]));
        assert_eq!(config.hsts, None);
    }

    #[test]
    fn bad_values_keep_the_default_and_name_the_key() {
        let (config, problems) = parse(&data(&[
            ("ssl-redirect", "yes please"),
            ("hsts-max-age", "1y"),
            ("proxy-read-timeout", "0"),
        ]));
        assert!(config.ssl_redirect);
        assert_eq!(config.upstream_timeout, Duration::from_secs(60));
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["ssl-redirect", "hsts-max-age", "proxy-read-timeout"]);
        assert!(problems.iter().all(|p| p.reason == "InvalidConfigValue"));
        assert!(
            problems[1]
                .message
                .contains("\"1y\" is not a number of seconds")
        );
    }

    #[test]
    fn unknown_keys_are_reported_not_silently_ignored() {
        let (_, problems) = parse(&data(&[("use-gzip", "true"), ("hsts", "true")]));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].reason, "UnsupportedConfigKey");
        assert_eq!(problems[0].key, "use-gzip");
    }
}
