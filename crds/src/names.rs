//! Host names as Ingress accepts them: a lower-case DNS-1123 subdomain, optionally with one
//! leading `*.` wildcard label.

/// RE2 pattern for the schema; [`is_valid_host`] accepts the same strings (up to 253 bytes).
pub const HOST_PATTERN: &str =
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Whether `host` is a host name an Ingress rule accepts (`shop.example.com`, `*.example.com`).
/// No ports and no upper case, as the Ingress API itself refuses them.
pub fn is_valid_host(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    !name.is_empty() && host.len() <= 253 && name.split('.').all(is_label)
}

fn is_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let edge_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            label.len() <= 63
                && edge_ok(first)
                && edge_ok(last)
                && bytes.iter().all(|b| edge_ok(b) || *b == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ingress_hosts() {
        for host in [
            "shop.example.com",
            "*.example.com",
            "localhost",
            "a-b.c0",
            "1.2.3.4",
        ] {
            assert!(is_valid_host(host), "{host}");
        }
    }

    #[test]
    fn refuses_what_ingress_refuses() {
        for host in [
            "",
            "*",
            "*.",
            "Shop.example.com",
            "shop.example.com.",
            ".example.com",
            "a..b",
            "-a.com",
            "a-.com",
            "foo.*.com",
            "**.example.com",
            "shop.example.com:443",
            "sh_op.com",
        ] {
            assert!(!is_valid_host(host), "{host:?}");
        }
        assert!(!is_valid_host(&format!("{}.com", "a".repeat(64))));
    }
}
