//! ingress-nginx's regex paths and `rewrite-target`. Once any Ingress naming a host asks for
//! `use-regex: "true"` or a `rewrite-target` that differs from its path, every path of that host
//! becomes a case-insensitive regex anchored at the start, tried longest pattern first; the
//! first match wins. A rewrite replaces the whole path with the target (`$1`… from the path's
//! captures) and keeps the query. `switchyard.dev/regex-scope: path` keeps an Ingress's regexes
//! to its own paths.

use std::collections::BTreeMap;

use super::canary::PREFIX;
use super::path_regex::{Exhausted, PathRegex};

pub const REGEX_SCOPE: &str = "switchyard.dev/regex-scope";

/// What one Ingress's annotations ask for.
#[derive(Clone, Debug, Default)]
pub struct RegexAnnotations {
    pub use_regex: bool,
    pub rewrite_target: Option<RewriteTarget>,
    /// `switchyard.dev/regex-scope: path`: this Ingress's regexes stay on its own paths.
    pub path_scope: bool,
}

impl RegexAnnotations {
    /// Whether a path of this Ingress puts its host into regex mode (ingress-nginx's rule),
    /// unless the Ingress keeps its regexes to its own paths.
    pub fn host_wide_for(&self, path: &str) -> bool {
        !self.path_scope && self.regex_for(path)
    }

    /// Whether this Ingress's own `path` is a regex.
    pub fn regex_for(&self, path: &str) -> bool {
        self.use_regex
            || self
                .rewrite_target
                .as_ref()
                .is_some_and(|t| t.template != path)
    }
}

/// A `rewrite-target` template: literal text and `$N` capture references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewriteTarget {
    pub template: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Capture(usize),
}

impl RewriteTarget {
    pub fn parse(template: &str) -> Result<Self, String> {
        if !template.starts_with('/') {
            return Err(format!("{template:?} must start with `/`"));
        }
        if template.chars().any(|c| c.is_control() || c == ' ') {
            return Err(format!(
                "{template:?} contains spaces or control characters"
            ));
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                literal.push(c);
                continue;
            }
            let digits: String =
                std::iter::from_fn(|| chars.next_if(char::is_ascii_digit)).collect();
            if digits.is_empty() {
                return Err(format!(
                    "{template:?}: only capture references ($1, $2, …) are supported after `$`"
                ));
            }
            let index = digits
                .parse()
                .map_err(|_| format!("{template:?}: ${digits} is too large"))?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Capture(index));
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self {
            template: template.to_owned(),
            parts,
        })
    }

    /// The new path for `path`, matched by `regex` (the location's regex); `Ok(None)` when it
    /// does not match.
    pub fn apply(&self, regex: &PathRegex, path: &str) -> Result<Option<String>, Exhausted> {
        let Some(captures) = regex.captures(path)? else {
            return Ok(None);
        };
        let mut out = String::with_capacity(self.template.len() + path.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Capture(i) => {
                    out.push_str(captures.get(*i).unwrap_or(""));
                }
            }
        }
        Ok(Some(out))
    }
}

/// Parses the regex annotations of one Ingress; problems are `(annotation, reason)`.
pub fn parse(annotations: &BTreeMap<String, String>) -> (RegexAnnotations, Vec<(String, String)>) {
    let mut problems = Vec::new();
    let nginx = |name: &str| {
        annotations
            .get(&format!("{PREFIX}{name}"))
            .map(|v| v.trim())
    };
    let use_regex = match nginx("use-regex") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            problems.push((
                format!("{PREFIX}use-regex"),
                format!("{other:?} is not true or false; regex mode stays off"),
            ));
            false
        }
    };
    let rewrite_target = match nginx("rewrite-target") {
        None | Some("") => None,
        Some(target) => match RewriteTarget::parse(target) {
            Ok(target) => Some(target),
            Err(why) => {
                problems.push((
                    format!("{PREFIX}rewrite-target"),
                    format!("{why}; no rewrite"),
                ));
                None
            }
        },
    };
    let path_scope = match annotations.get(REGEX_SCOPE).map(|v| v.trim()) {
        None | Some("host") => false,
        Some("path") => true,
        Some(other) => {
            problems.push((
                REGEX_SCOPE.to_owned(),
                format!("{other:?} is not host or path; using host (ingress-nginx's behaviour)"),
            ));
            false
        }
    };
    (
        RegexAnnotations {
            use_regex,
            rewrite_target,
            path_scope,
        },
        problems,
    )
}

/// A path as ingress-nginx's regex location: `~* "^<path>"`, on the linear-time engine where
/// the pattern allows, on the bounded backtracking one otherwise.
pub fn location_regex(path: &str) -> Result<PathRegex, String> {
    PathRegex::new(&format!("^{path}"))
}

/// Whether a path written with pathType Exact or Prefix looks like a regex (old manifests did
/// that with `use-regex`; ImplementationSpecific is the right type).
pub fn looks_like_regex(path: &str) -> bool {
    path.chars().any(|c| {
        matches!(
            c,
            '(' | ')' | '[' | ']' | '*' | '+' | '?' | '|' | '^' | '$' | '{' | '}' | '\\'
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn rewrite_replaces_the_whole_path_with_captures() {
        let target = RewriteTarget::parse("/$1").unwrap_or_else(|e| panic!("{e}"));
        let regex = location_regex("/api/v1/?(.*)").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            target.apply(&regex, "/api/v1/users/7"),
            Ok(Some("/users/7".into()))
        );
        assert_eq!(target.apply(&regex, "/API/V1"), Ok(Some("/".into())));
        assert_eq!(target.apply(&regex, "/other"), Ok(None));

        // `rewrite-target: /` on a plain path: everything goes to `/`, as ingress-nginx does.
        let root = RewriteTarget::parse("/").unwrap_or_else(|e| panic!("{e}"));
        let app = location_regex("/app1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(root.apply(&app, "/app1/deep/page"), Ok(Some("/".into())));

        let both = RewriteTarget::parse("/v2/$2/x$1").unwrap_or_else(|e| panic!("{e}"));
        let two = location_regex("/(a)/(b)").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(both.apply(&two, "/a/b"), Ok(Some("/v2/b/xa".into())));
        // A capture the regex does not have is empty, as in nginx.
        let missing = RewriteTarget::parse("/$7").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(missing.apply(&two, "/a/b"), Ok(Some("/".into())));
        // Captures from the backtracking engine work the same.
        let ahead = location_regex("/(?!admin)(\\w+)").unwrap_or_else(|e| panic!("{e}"));
        assert!(ahead.is_backtracking());
        assert_eq!(missing.apply(&ahead, "/x"), Ok(Some("/".into())));
        let first = RewriteTarget::parse("/$1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.apply(&ahead, "/shop"), Ok(Some("/shop".into())));
        assert_eq!(first.apply(&ahead, "/admin"), Ok(None));
    }

    #[test]
    fn targets_are_validated() {
        for bad in ["relative", "/$host", "/a b", "/x$"] {
            assert!(RewriteTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regex_mode_follows_use_regex_and_rewrites_that_change_the_path() {
        let (a, problems) = parse(&annotations(&[(
            "nginx.ingress.kubernetes.io/rewrite-target",
            "/",
        )]));
        assert!(problems.is_empty());
        assert!(a.host_wide_for("/app1"));
        assert!(
            !a.host_wide_for("/"),
            "a rewrite to the path itself changes nothing"
        );
        let (b, _) = parse(&annotations(&[
            ("nginx.ingress.kubernetes.io/use-regex", "true"),
            (REGEX_SCOPE, "path"),
        ]));
        assert!(b.regex_for("/x") && !b.host_wide_for("/x"));
        let (_, problems) = parse(&annotations(&[
            ("nginx.ingress.kubernetes.io/use-regex", "yes"),
            (REGEX_SCOPE, "everywhere"),
        ]));
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn location_regexes_are_case_insensitive_and_anchored_at_the_start_only() {
        let r = location_regex("/foo").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.is_match("/FOO"), Ok(true));
        assert_eq!(
            r.is_match("/foobar"),
            Ok(true),
            "ingress-nginx's regex locations are prefixes"
        );
        assert_eq!(r.is_match("/x/foo"), Ok(false));
        let behind = location_regex("/(?<=/)b").unwrap_or_else(|e| panic!("{e}"));
        assert!(behind.is_backtracking(), "look-behind is not linear-time");
        assert_eq!(behind.is_match("/b"), Ok(true));
        assert_eq!(behind.is_match("/xb"), Ok(false));
        assert!(looks_like_regex("/api/v1/?(.*)"));
        assert!(!looks_like_regex("/api/v1"));
    }
}
