//! Which requests the access log shows, and in which format: the controller ConfigMap's
//! `log-format-upstream`, `skip-access-log-urls` and `enable-access-log-for-default-backend`,
//! compiled into the route table so that a ConfigMap change takes effect with the next table.

use std::sync::Arc;

use http::Uri;
use regex::{RegexSet, RegexSetBuilder};

use super::format::LogFormat;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// `log-format-upstream` and its `log-format-escape-*`; `None`: `--access-log-format`.
    pub format: Option<Arc<LogFormat>>,
    /// `skip-access-log-urls`.
    pub skip: SkipUrls,
    /// `enable-access-log-for-default-backend`: ingress-nginx leaves requests its default
    /// server answers (hosts no rule names) out of the log unless this is true.
    pub default_backend: bool,
}

impl LogSettings {
    /// Whether a request with this URI is logged; `default_server`: the controller's default
    /// backend answers it for a host that no rule names.
    pub fn logs(&self, uri: &Uri, default_server: bool) -> bool {
        (self.default_backend || !default_server) && !self.skip.matches(request_uri(uri))
    }
}

fn request_uri(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |pq| pq.as_str())
}

/// ingress-nginx's `map $request_uri $loggable`: each entry is matched against the request URI
/// as sent (path and query), as nginx's map does: a plain entry exactly and ignoring case, an
/// entry starting with `~` (`~*`: ignoring case) as a regex found anywhere in it.
#[derive(Clone, Debug, Default)]
pub struct SkipUrls {
    /// Lower-cased.
    exact: Box<[Box<str>]>,
    regexes: Option<RegexSet>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is not a regex Switchyard can run: {reason}")]
pub struct SkipUrlError {
    pub entry: String,
    pub reason: String,
}

impl SkipUrls {
    /// Reads the comma-separated list; an entry whose regex does not compile is left out and
    /// returned (logging more than asked is the safe side).
    pub fn parse(list: &str) -> (Self, Vec<SkipUrlError>) {
        let mut exact = Vec::new();
        let mut patterns = Vec::new();
        let mut errors = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let pattern = match entry.strip_prefix('~') {
                Some(rest) => match rest.strip_prefix('*') {
                    Some(rest) => format!("(?i){rest}"),
                    None => rest.to_owned(),
                },
                None => {
                    // `\~` is nginx's way to write a plain entry that starts with `~`.
                    let plain = entry.strip_prefix('\\').unwrap_or(entry);
                    exact.push(plain.to_ascii_lowercase().into_boxed_str());
                    continue;
                }
            };
            // Compiled alone first so that the one bad entry is named.
            match regex::RegexBuilder::new(&pattern)
                .size_limit(1 << 20)
                .build()
            {
                Ok(_) => patterns.push(pattern),
                Err(err) => errors.push(SkipUrlError {
                    entry: entry.to_owned(),
                    reason: first_line(&err.to_string()),
                }),
            }
        }
        let regexes = (!patterns.is_empty())
            .then(|| RegexSetBuilder::new(&patterns).size_limit(8 << 20).build())
            .and_then(|built| match built {
                Ok(set) => Some(set),
                Err(err) => {
                    errors.push(SkipUrlError {
                        entry: patterns.join(","),
                        reason: first_line(&err.to_string()),
                    });
                    None
                }
            });
        let skip = Self {
            exact: exact.into(),
            regexes,
        };
        (skip, errors)
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.regexes.is_none()
    }

    /// `request_uri`: the path and query as sent.
    pub fn matches(&self, request_uri: &str) -> bool {
        self.exact
            .iter()
            .any(|e| e.len() == request_uri.len() && e.eq_ignore_ascii_case(request_uri))
            || self
                .regexes
                .as_ref()
                .is_some_and(|set| set.is_match(request_uri))
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or(text)
        .to_owned()
}

impl PartialEq for SkipUrls {
    fn eq(&self, other: &Self) -> bool {
        self.exact == other.exact
            && self.regexes.as_ref().map(RegexSet::patterns)
                == other.regexes.as_ref().map(RegexSet::patterns)
    }
}

impl Eq for SkipUrls {}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(list: &str) -> SkipUrls {
        let (skip, errors) = SkipUrls::parse(list);
        assert!(errors.is_empty(), "{errors:?}");
        skip
    }

    #[test]
    fn plain_entries_match_the_whole_request_uri_ignoring_case() {
        let skip = skip(" /healthz , /Metrics,,/ping?full=1");
        assert!(skip.matches("/healthz"));
        assert!(skip.matches("/HEALTHZ"));
        assert!(skip.matches("/metrics"));
        assert!(skip.matches("/ping?full=1"));
        // nginx's map compares the whole $request_uri: a query or a longer path is another URI.
        assert!(!skip.matches("/healthz?x=1"));
        assert!(!skip.matches("/healthz/"));
        assert!(!skip.matches("/ping"));
    }

    #[test]
    fn tilde_entries_are_regexes_found_anywhere() {
        let skip = skip("~^/health,~*\\.PNG$,\\~literal");
        assert!(skip.matches("/health/live?probe=1"));
        assert!(!skip.matches("/app/health"));
        assert!(skip.matches("/img/logo.png"));
        assert!(skip.matches("~literal"));
        assert!(!skip.matches("/img/logo.png?v=2"));
    }

    #[test]
    fn a_regex_that_does_not_compile_is_named_and_left_out() {
        let (skip, errors) = SkipUrls::parse("/ok,~(?<=a)b,~[");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].entry, "~(?<=a)b");
        assert!(skip.matches("/ok"));
        assert!(!skip.matches("ab"));
    }

    #[test]
    fn the_default_server_is_logged_only_when_enabled() {
        let uri = Uri::from_static("/x");
        let settings = LogSettings::default();
        assert!(settings.logs(&uri, false));
        assert!(!settings.logs(&uri, true));
        let settings = LogSettings {
            default_backend: true,
            ..LogSettings::default()
        };
        assert!(settings.logs(&uri, true));
        let settings = LogSettings {
            skip: skip("/x"),
            default_backend: true,
            ..LogSettings::default()
        };
        assert!(!settings.logs(&uri, false));
    }
}
