//! Request normalization before matching: the path the way nginx resolves it (percent-decoded,
//! `//`, `.` and `..` resolved) so that `/%61dmin` or `//admin` cannot walk around a rule for
//! `/admin`, and the host lower-cased without its port.

use std::borrow::Cow;

/// Returns the normalized form of a request path (no query). Never goes above the root.
pub fn normalize_path(raw: &str) -> Cow<'_, str> {
    if is_normal(raw) {
        return Cow::Borrowed(raw);
    }
    let decoded = percent_decode(raw.as_bytes());
    let text = String::from_utf8_lossy(&decoded);
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in text.split('/') {
        match segment {
            "" | "." => trailing_slash = true,
            ".." => {
                out.pop();
                trailing_slash = true;
            }
            other => {
                out.push(other);
                trailing_slash = false;
            }
        }
    }
    let mut normal = String::with_capacity(text.len() + 1);
    for segment in &out {
        normal.push('/');
        normal.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        normal.push('/');
    }
    Cow::Owned(normal)
}

/// The fast path: most paths need no work at all.
fn is_normal(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains('%')
        && !path.contains("//")
        && !path.contains("/./")
        && !path.contains("/../")
        && !path.ends_with("/.")
        && !path.ends_with("/..")
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let byte = input[i];
        if byte == b'%'
            && let (Some(hi), Some(lo)) = (
                input.get(i + 1).and_then(|b| hex_value(*b)),
                input.get(i + 2).and_then(|b| hex_value(*b)),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        // A `%` not followed by two hex digits stays literal, as nginx leaves it.
        out.push(byte);
        i += 1;
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The `/`-separated elements of a path, ignoring empty ones (so a trailing slash does not count).
pub fn path_elements(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Lower-cases a Host (header or authority) and drops a `:port` and a trailing dot.
pub fn normalize_host(raw: &str) -> Cow<'_, str> {
    let without_port = if raw.starts_with('[') {
        // IPv6 literal: keep the brackets, drop what follows `]`.
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => raw,
        }
    };
    let host = without_port.strip_suffix('.').unwrap_or(without_port);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_borrowed_unchanged() {
        for p in ["/", "/foo", "/foo/", "/a/b.c/d", "/..foo/x.."] {
            assert!(matches!(normalize_path(p), Cow::Borrowed(_)), "{p}");
            assert_eq!(normalize_path(p), p);
        }
    }

    #[test]
    fn percent_decoding_includes_slash_and_letters() {
        assert_eq!(normalize_path("/%61dmin"), "/admin");
        assert_eq!(normalize_path("/a%2Fb"), "/a/b");
        assert_eq!(normalize_path("/a%2fb"), "/a/b");
        assert_eq!(normalize_path("/%2e%2e/admin"), "/admin");
        assert_eq!(normalize_path("/100%"), "/100%");
        assert_eq!(normalize_path("/x%zz"), "/x%zz");
    }

    #[test]
    fn slashes_dots_and_dotdots_resolve_never_above_root() {
        assert_eq!(normalize_path("//admin"), "/admin");
        assert_eq!(normalize_path("/a//b///c"), "/a/b/c");
        assert_eq!(normalize_path("/a/./b"), "/a/b");
        assert_eq!(normalize_path("/a/b/../c"), "/a/c");
        assert_eq!(normalize_path("/../../etc"), "/etc");
        assert_eq!(normalize_path("/a/.."), "/");
        assert_eq!(normalize_path("/a/b/.."), "/a/");
        assert_eq!(normalize_path("/a/."), "/a/");
        assert_eq!(normalize_path("/foo//"), "/foo/");
        assert_eq!(normalize_path(""), "/");
    }

    #[test]
    fn elements_ignore_empty_segments() {
        assert_eq!(path_elements("/").count(), 0);
        assert_eq!(
            path_elements("/aaa/bbb/").collect::<Vec<_>>(),
            ["aaa", "bbb"]
        );
    }

    #[test]
    fn host_is_lowercased_without_port_or_trailing_dot() {
        assert_eq!(normalize_host("Foo.Example.COM:8080"), "foo.example.com");
        assert_eq!(normalize_host("foo.example.com."), "foo.example.com");
        assert_eq!(normalize_host("[::1]:443"), "[::1]");
        assert_eq!(normalize_host("plain"), "plain");
        assert!(matches!(normalize_host("plain"), Cow::Borrowed(_)));
    }
}
