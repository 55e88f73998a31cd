//! The controller ConfigMap's access log keys: `log-format-upstream` with its escaping,
//! `skip-access-log-urls`, `enable-access-log-for-default-backend`, and the keys that name log
//! files or the TCP/UDP log, which do not apply to a proxy that logs to stdout and stderr and
//! proxies no TCP/UDP services.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::config::{ConfigProblem, invalid, parse_bool};
use crate::access_log::{Escape, LogFormat, LogSettings, SkipUrls};

/// The keys read here.
pub(super) const KEYS: &[&str] = &[
    "log-format-upstream",
    "log-format-escape-json",
    "log-format-escape-none",
    "log-format-stream",
    "skip-access-log-urls",
    "enable-access-log-for-default-backend",
    "access-log-path",
    "http-access-log-path",
    "stream-access-log-path",
    "error-log-path",
];

/// Paths that are stdout in ingress-nginx's image (its default is a symlink to it) or anywhere.
const STDOUT: &[&str] = &[
    "/var/log/nginx/access.log",
    "/dev/stdout",
    "/proc/self/fd/1",
    "/dev/fd/1",
];
const STDERR: &[&str] = &[
    "/var/log/nginx/error.log",
    "/dev/stderr",
    "/proc/self/fd/2",
    "/dev/fd/2",
];

pub(super) fn parse(
    data: &BTreeMap<String, String>,
    problems: &mut Vec<ConfigProblem>,
) -> LogSettings {
    let bool_key = |key: &str, problems: &mut Vec<ConfigProblem>| match data.get(key) {
        None => false,
        Some(value) => parse_bool(value).unwrap_or_else(|| {
            problems.push(invalid(key, value, "true or false", "false"));
            false
        }),
    };
    // As ingress-nginx's template: `escape=none` wins over `escape=json`.
    let json = bool_key("log-format-escape-json", problems);
    let escape = if bool_key("log-format-escape-none", problems) {
        Escape::None
    } else if json {
        Escape::Json
    } else {
        Escape::Default
    };
    let default_backend = bool_key("enable-access-log-for-default-backend", problems);
    let custom = data
        .get("log-format-upstream")
        .filter(|text| !text.trim().is_empty());
    let format = match custom {
        Some(text) => match LogFormat::parse(text, escape) {
            Ok(format) => Some(format),
            Err(err) => {
                // Never half a format: the default, with the escaping asked for.
                problems.push(ConfigProblem {
                    key: "log-format-upstream".to_owned(),
                    reason: "InvalidConfigValue",
                    message: format!(
                        "ConfigMap key \"log-format-upstream\": {err}; using ingress-nginx's default format"
                    ),
                });
                (escape != Escape::Default).then(|| LogFormat::ingress_nginx_default(escape))
            }
        },
        // The escaping applies to the default format too, as in ingress-nginx.
        None => (escape != Escape::Default).then(|| LogFormat::ingress_nginx_default(escape)),
    };
    let skip = match data.get("skip-access-log-urls") {
        None => SkipUrls::default(),
        Some(list) => {
            let (skip, errors) = SkipUrls::parse(list);
            for err in errors {
                problems.push(ConfigProblem {
                    key: "skip-access-log-urls".to_owned(),
                    reason: "InvalidConfigValue",
                    message: format!(
                        "ConfigMap key \"skip-access-log-urls\": {err}; that entry is ignored (those requests are logged)"
                    ),
                });
            }
            skip
        }
    };
    for key in ["access-log-path", "http-access-log-path"] {
        path_key(data, key, STDOUT, "stdout", problems);
    }
    path_key(data, "error-log-path", STDERR, "stderr", problems);
    for key in ["log-format-stream", "stream-access-log-path"] {
        if data.contains_key(key) {
            problems.push(ConfigProblem {
                key: key.to_owned(),
                reason: "UnsupportedConfigKey",
                message: format!(
                    "ConfigMap key {key:?} has no effect: Switchyard does not proxy TCP/UDP services, so there is no stream access log"
                ),
            });
        }
    }
    LogSettings {
        format: format.map(Arc::new),
        skip,
        default_backend,
    }
}

/// A log path: the proxy writes to its standard streams, which the container runtime collects;
/// a path that means the same is accepted, any other is reported.
fn path_key(
    data: &BTreeMap<String, String>,
    key: &str,
    accepted: &[&str],
    stream: &str,
    problems: &mut Vec<ConfigProblem>,
) {
    let Some(value) = data.get(key) else {
        return;
    };
    let value = value.trim();
    if value.is_empty() || accepted.contains(&value) {
        return;
    }
    let expected = format!(
        "{stream} (Switchyard writes this log to {stream}, for the container runtime to collect)"
    );
    problems.push(invalid(key, value, &expected, stream));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_pairs(pairs: &[(&str, &str)]) -> (LogSettings, Vec<ConfigProblem>) {
        let data = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut problems = Vec::new();
        let settings = parse(&data, &mut problems);
        (settings, problems)
    }

    #[test]
    fn without_keys_the_flag_format_and_ingress_nginx_defaults_apply() {
        let (settings, problems) = parse_pairs(&[]);
        assert!(problems.is_empty());
        assert_eq!(settings, LogSettings::default());
        assert!(!settings.default_backend && settings.skip.is_empty());
    }

    #[test]
    fn a_custom_format_is_parsed_with_its_escaping() {
        let (settings, problems) = parse_pairs(&[
            ("log-format-upstream", "{\"status\": $status}"),
            ("log-format-escape-json", "true"),
            ("skip-access-log-urls", "/healthz"),
            ("enable-access-log-for-default-backend", "True"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let format = settings.format.as_deref().map(LogFormat::escape);
        assert_eq!(format, Some(Escape::Json));
        assert!(settings.skip.matches("/healthz") && settings.default_backend);
        // none wins over json, as ingress-nginx's template has it.
        let (settings, _) = parse_pairs(&[
            ("log-format-escape-json", "true"),
            ("log-format-escape-none", "true"),
        ]);
        assert_eq!(
            settings.format.as_deref(),
            Some(&LogFormat::ingress_nginx_default(Escape::None))
        );
    }

    #[test]
    fn an_unknown_variable_keeps_the_whole_default_format() {
        let (settings, problems) =
            parse_pairs(&[("log-format-upstream", "$remote_addr $upstream_connect_time")]);
        assert_eq!(settings.format, None);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "log-format-upstream");
        assert_eq!(problems[0].reason, "InvalidConfigValue");
        assert_eq!(
            problems[0].message,
            "ConfigMap key \"log-format-upstream\": unknown log variable $upstream_connect_time; using ingress-nginx's default format"
        );
    }

    #[test]
    fn log_paths_that_are_the_standard_streams_are_accepted_others_reported() {
        let (_, problems) = parse_pairs(&[
            ("access-log-path", "/var/log/nginx/access.log"),
            ("http-access-log-path", "/dev/stdout"),
            ("error-log-path", "/var/log/nginx/error.log"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let (_, problems) = parse_pairs(&[
            ("access-log-path", "/var/log/app/access.log"),
            ("error-log-path", "/dev/stdout"),
        ]);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["access-log-path", "error-log-path"]);
        assert!(
            problems[0]
                .message
                .contains("\"/var/log/app/access.log\" is not stdout")
        );
    }

    #[test]
    fn stream_keys_are_accepted_and_reported_as_not_applicable() {
        let (settings, problems) = parse_pairs(&[
            ("log-format-stream", "[$remote_addr] $protocol"),
            ("skip-access-log-urls", "~["),
            ("log-format-escape-json", "maybe"),
        ]);
        assert_eq!(settings.format, None);
        let reasons: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("log-format-escape-json", "InvalidConfigValue"),
                ("skip-access-log-urls", "InvalidConfigValue"),
                ("log-format-stream", "UnsupportedConfigKey"),
            ]
        );
        assert!(
            problems[2]
                .message
                .contains("does not proxy TCP/UDP services")
        );
    }
}
