//! The controller ConfigMap's `annotations-risk-level` and `allow-snippet-annotations`:
//! ingress-nginx's risk of each annotation, and which an Ingress may use here.
//!
//! ingress-nginx's own default level is High, which refuses snippets because it pastes them into
//! nginx.conf. Switchyard never executes a snippet (it translates a safe subset), so its default
//! is Critical: everything is admitted unless the ConfigMap lowers the level.

use std::collections::BTreeMap;
use std::fmt;

use super::canary::PREFIX;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    /// ingress-nginx's parse: anything unknown is Low (the most restrictive level).
    pub fn parse(value: &str) -> Option<Risk> {
        match value.trim().to_ascii_lowercase().as_str() {
            "critical" => Some(Risk::Critical),
            "high" => Some(Risk::High),
            "medium" => Some(Risk::Medium),
            "low" => Some(Risk::Low),
            _ => None,
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Risk::Low => "Low",
            Risk::Medium => "Medium",
            Risk::High => "High",
            Risk::Critical => "Critical",
        })
    }
}

const CRITICAL: &[&str] = &[
    "auth-snippet",
    "configuration-snippet",
    "modsecurity-snippet",
    "server-snippet",
    "stream-snippet",
];

const HIGH: &[&str] = &[
    "auth-signin",
    "auth-tls-error-page",
    "auth-tls-match-cn",
    "auth-url",
    "mirror-host",
    "mirror-target",
    "modsecurity-transaction-id",
    "proxy-ssl-name",
    "server-alias",
    "upstream-hash-by",
];

const MEDIUM: &[&str] = &[
    "affinity-mode",
    "allowlist-source-range",
    "whitelist-source-range",
    "app-root",
    "auth-cache-duration",
    "auth-cache-key",
    "auth-proxy-set-headers",
    "auth-realm",
    "auth-request-redirect",
    "auth-response-headers",
    "auth-secret",
    "auth-signin-redirect-param",
    "auth-tls-secret",
    "auth-tls-verify-client",
    "canary-by-cookie",
    "canary-by-header",
    "canary-by-header-pattern",
    "canary-by-header-value",
    "cors-allow-headers",
    "cors-allow-methods",
    "cors-allow-origin",
    "cors-expose-headers",
    "custom-headers",
    "denylist-source-range",
    "fastcgi-index",
    "fastcgi-params-configmap",
    "force-ssl-redirect",
    "opentelemetry-operation-name",
    "permanent-redirect",
    "preserve-trailing-slash",
    "proxy-body-size",
    "proxy-cookie-domain",
    "proxy-cookie-path",
    "proxy-next-upstream",
    "proxy-redirect-from",
    "proxy-redirect-to",
    "proxy-ssl-ciphers",
    "proxy-ssl-secret",
    "rewrite-target",
    "session-cookie-domain",
    "session-cookie-expires",
    "session-cookie-max-age",
    "session-cookie-name",
    "session-cookie-path",
    "temporal-redirect",
    "x-forwarded-prefix",
];

/// An annotation's risk (without the `nginx.ingress.kubernetes.io/` prefix).
pub fn risk_of(name: &str) -> Risk {
    if CRITICAL.contains(&name) {
        Risk::Critical
    } else if HIGH.contains(&name) {
        Risk::High
    } else if MEDIUM.contains(&name) {
        Risk::Medium
    } else {
        Risk::Low
    }
}

/// Snippet annotations: off with `allow-snippet-annotations: "false"`.
pub fn is_snippet(name: &str) -> bool {
    name.ends_with("-snippet")
}

/// What the controller ConfigMap admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admit {
    pub max_risk: Risk,
    pub snippets: bool,
}

impl Default for Admit {
    fn default() -> Self {
        Self {
            max_risk: Risk::Critical,
            snippets: true,
        }
    }
}

impl Admit {
    /// The annotations of an Ingress that the ConfigMap does not admit, with why. The caller
    /// fails the Ingress's paths closed: an unadmitted snippet or auth annotation may be what
    /// protects them.
    pub fn refused(&self, annotations: &BTreeMap<String, String>) -> Vec<String> {
        annotations
            .keys()
            .filter_map(|key| key.strip_prefix(PREFIX))
            .filter_map(|name| {
                let risk = risk_of(name);
                if is_snippet(name) && !self.snippets {
                    Some(format!(
                        "{PREFIX}{name}: snippet annotations are off (allow-snippet-annotations: \"false\")"
                    ))
                } else if risk > self.max_risk {
                    Some(format!(
                        "{PREFIX}{name}: its risk ({risk}) is above the controller's annotations-risk-level ({})",
                        self.max_risk
                    ))
                } else {
                    None
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(names: &[&str]) -> BTreeMap<String, String> {
        names
            .iter()
            .map(|n| (format!("{PREFIX}{n}"), "x".to_owned()))
            .collect()
    }

    #[test]
    fn the_default_admits_everything() {
        let all = annotations(&[
            "configuration-snippet",
            "auth-url",
            "rewrite-target",
            "canary",
        ]);
        assert!(Admit::default().refused(&all).is_empty());
    }

    #[test]
    fn a_lower_level_refuses_what_is_above_it() {
        let all = annotations(&[
            "configuration-snippet",
            "auth-url",
            "whitelist-source-range",
            "canary",
            "proxy-read-timeout",
        ]);
        let refused = |max_risk| {
            Admit {
                max_risk,
                snippets: true,
            }
            .refused(&all)
            .len()
        };
        assert_eq!(refused(Risk::Critical), 0);
        assert_eq!(refused(Risk::High), 1);
        assert_eq!(refused(Risk::Medium), 2);
        assert_eq!(refused(Risk::Low), 3);
        let high = Admit {
            max_risk: Risk::High,
            snippets: true,
        }
        .refused(&all);
        assert!(
            high[0].contains("Critical") && high[0].contains("(High)"),
            "{high:?}"
        );
    }

    #[test]
    fn snippets_can_be_turned_off_alone() {
        let all = annotations(&["server-snippet", "auth-url"]);
        let refused = Admit {
            max_risk: Risk::Critical,
            snippets: false,
        }
        .refused(&all);
        assert_eq!(refused.len(), 1);
        assert!(refused[0].contains("allow-snippet-annotations"));
    }

    #[test]
    fn risk_levels_parse_like_ingress_nginx() {
        assert_eq!(Risk::parse(" HIGH "), Some(Risk::High));
        assert_eq!(Risk::parse("extreme"), None);
    }
}
