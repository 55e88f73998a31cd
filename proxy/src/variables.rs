//! nginx variables in annotation and ConfigMap values (`$remote_addr`, `$http_x_token`,
//! `${host}`, ...), parsed once at compile time into a typed template and expanded per request
//! from the request itself. Nothing is ever handed to an interpreter: an unknown variable is a
//! compile-time error naming it, and an expanded value that is not a valid header value is
//! dropped, never sent.

use std::fmt;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};

/// A value with nginx variables, ready to expand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Box<[Part]>,
    /// The whole value when it has no variables: expanding it costs a reference count.
    literal: Option<HeaderValue>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(Box<str>),
    Var(Var),
}

/// The variables Switchyard knows, with nginx's (and ingress-nginx's) meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    /// `$request_id`: the X-Request-ID sent upstream.
    RequestId,
    /// `$remote_addr`, `$the_real_ip`: the client address.
    RemoteAddr,
    /// `$remote_port`.
    RemotePort,
    /// `$binary_remote_addr`: the address's bytes (used as a key).
    BinaryRemoteAddr,
    /// `$proxy_add_x_forwarded_for`: the client's X-Forwarded-For with the client appended.
    ProxyAddXForwardedFor,
    /// `$scheme`, `$pass_access_scheme`: http or https.
    Scheme,
    /// `$https`: "on" over TLS, empty otherwise.
    Https,
    /// `$host`: the request's host without port, lowercased.
    Host,
    /// `$best_http_host`: the Host header as sent (with port), else `$host`.
    BestHttpHost,
    /// `$server_name`: the Ingress rule's host.
    ServerName,
    /// `$server_port`, `$pass_server_port`: the port the request arrived on.
    ServerPort,
    /// `$request_uri`: the original path and query, as sent.
    RequestUri,
    /// `$escaped_request_uri`: `$request_uri` escaped for use as a query parameter.
    EscapedRequestUri,
    /// `$uri`, `$document_uri`: the normalized path, without the query.
    Uri,
    /// `$args`, `$query_string`: the query without `?`.
    Args,
    /// `$is_args`: "?" when there is a query.
    IsArgs,
    /// `$request_method`.
    RequestMethod,
    /// `$server_protocol`: HTTP/1.1, HTTP/2.0, ...
    ServerProtocol,
    /// `$http_NAME`: a request header (values of repeated headers joined by ", ").
    Header(HeaderName),
    /// `$cookie_NAME`.
    Cookie(Box<str>),
    /// `$arg_NAME`: a query parameter (name matched case-insensitively, as nginx does).
    Arg(Box<str>),
    /// `$1`..`$9`: a capture of the regex that matched (rewrites only).
    Capture(u8),
}

/// The request a template is expanded for.
#[derive(Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub version: Version,
    pub headers: &'a HeaderMap,
    /// The normalized request host (no port, lowercase).
    pub host: &'a str,
    /// The Ingress rule's host (`_` for a rule without one).
    pub server_name: &'a str,
    /// The normalized path (`$uri`).
    pub path: &'a str,
    pub client: IpAddr,
    pub client_port: u16,
    pub server_port: u16,
    pub tls: bool,
    pub request_id: Option<&'a HeaderValue>,
    /// The captures of the regex that matched; `$1` is `captures[0]`.
    pub captures: &'a [Option<&'a str>],
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown nginx variable ${0}")]
    Unknown(String),
    #[error("`$` must be followed by a variable name")]
    Dangling,
    #[error("unterminated `${{` in {0:?}")]
    Unterminated(String),
    #[error("${0} names no valid header")]
    BadHeader(String),
    #[error("${0}: regex captures are only available in rewrites")]
    CaptureOutsideRewrite(String),
}

/// Where a template is used: captures exist only in a rewrite's replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Value,
    Rewrite,
}

impl Template {
    /// Parses `text`; `$name` and `${name}` are variables, everything else is kept as is.
    pub fn parse(text: &str, scope: Scope) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut text_part = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            text_part.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| TemplateError::Unterminated(text.to_owned()))?;
                (&braced[..end], end + 2)
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            };
            if name.is_empty() {
                return Err(TemplateError::Dangling);
            }
            let var = Var::parse(name)?;
            if matches!(var, Var::Capture(_)) && scope != Scope::Rewrite {
                return Err(TemplateError::CaptureOutsideRewrite(name.to_owned()));
            }
            if !text_part.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text_part).into()));
            }
            parts.push(Part::Var(var));
            rest = &after[consumed..];
        }
        text_part.push_str(rest);
        if !text_part.is_empty() {
            parts.push(Part::Text(text_part.into()));
        }
        let literal = match parts.as_slice() {
            [] => Some(HeaderValue::from_static("")),
            [Part::Text(text)] => HeaderValue::from_str(text).ok(),
            _ => None,
        };
        Ok(Self {
            parts: parts.into(),
            literal,
        })
    }

    /// True when the value has no variables.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The variables the template uses.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Text(_) => None,
        })
    }

    /// Appends the expanded value to `out`.
    pub fn expand_into(&self, view: &RequestView<'_>, out: &mut Vec<u8>) {
        for part in &self.parts {
            match part {
                Part::Text(text) => out.extend_from_slice(text.as_bytes()),
                Part::Var(var) => var.expand_into(view, out),
            }
        }
    }

    /// The expanded value as a header value; `None` when the result is not a valid one (a
    /// request can't smuggle a line break through a variable).
    pub fn header_value(&self, view: &RequestView<'_>) -> Option<HeaderValue> {
        if let Some(literal) = &self.literal {
            return Some(literal.clone());
        }
        let mut out = Vec::with_capacity(64);
        self.expand_into(view, &mut out);
        HeaderValue::from_bytes(&out).ok()
    }

    /// The expanded value as text (invalid UTF-8 replaced).
    pub fn expand(&self, view: &RequestView<'_>) -> String {
        let mut out = Vec::new();
        self.expand_into(view, &mut out);
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(text) => f.write_str(text)?,
                Part::Var(var) => write!(f, "{var}")?,
            }
        }
        Ok(())
    }
}

impl Var {
    /// One variable name, without the `$`.
    pub fn parse(name: &str) -> Result<Self, TemplateError> {
        let var = match name {
            "request_id" => Var::RequestId,
            "remote_addr" | "the_real_ip" | "realip_remote_addr" => Var::RemoteAddr,
            "remote_port" => Var::RemotePort,
            "binary_remote_addr" => Var::BinaryRemoteAddr,
            "proxy_add_x_forwarded_for" | "full_x_forwarded_for" => Var::ProxyAddXForwardedFor,
            "scheme" | "pass_access_scheme" => Var::Scheme,
            "https" => Var::Https,
            "host" => Var::Host,
            "best_http_host" => Var::BestHttpHost,
            "server_name" => Var::ServerName,
            "server_port" | "pass_server_port" | "pass_port" => Var::ServerPort,
            "request_uri" => Var::RequestUri,
            "escaped_request_uri" => Var::EscapedRequestUri,
            "uri" | "document_uri" => Var::Uri,
            "args" | "query_string" => Var::Args,
            "is_args" => Var::IsArgs,
            "request_method" => Var::RequestMethod,
            "server_protocol" => Var::ServerProtocol,
            _ => {
                if let Some(header) = name.strip_prefix("http_") {
                    let header = header.replace('_', "-").to_ascii_lowercase();
                    return HeaderName::from_bytes(header.as_bytes())
                        .map(Var::Header)
                        .map_err(|_| TemplateError::BadHeader(name.to_owned()));
                }
                if let Some(cookie) = name.strip_prefix("cookie_").filter(|c| !c.is_empty()) {
                    return Ok(Var::Cookie(cookie.into()));
                }
                if let Some(arg) = name.strip_prefix("arg_").filter(|a| !a.is_empty()) {
                    return Ok(Var::Arg(arg.into()));
                }
                match name.parse::<u8>() {
                    Ok(n @ 1..=9) => Var::Capture(n),
                    _ => return Err(TemplateError::Unknown(name.to_owned())),
                }
            }
        };
        Ok(var)
    }

    fn expand_into(&self, view: &RequestView<'_>, out: &mut Vec<u8>) {
        use std::io::Write;
        match self {
            Var::RequestId => {
                if let Some(id) = view.request_id.or_else(|| view.headers.get("x-request-id")) {
                    out.extend_from_slice(id.as_bytes());
                }
            }
            Var::RemoteAddr => {
                let _ = write!(out, "{}", view.client);
            }
            Var::RemotePort => {
                let _ = write!(out, "{}", view.client_port);
            }
            Var::BinaryRemoteAddr => match view.client {
                IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
                IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
            },
            Var::ProxyAddXForwardedFor => {
                let before = out.len();
                join_header(
                    view.headers,
                    &header::HeaderName::from_static("x-forwarded-for"),
                    out,
                );
                if out.len() > before {
                    out.extend_from_slice(b", ");
                }
                let _ = write!(out, "{}", view.client);
            }
            Var::Scheme => out.extend_from_slice(if view.tls { b"https" } else { b"http" }),
            Var::Https => {
                if view.tls {
                    out.extend_from_slice(b"on");
                }
            }
            Var::Host => out.extend_from_slice(view.host.as_bytes()),
            Var::BestHttpHost => match view.headers.get(header::HOST) {
                Some(host) => out.extend_from_slice(host.as_bytes()),
                None => out.extend_from_slice(view.host.as_bytes()),
            },
            Var::ServerName => out.extend_from_slice(view.server_name.as_bytes()),
            Var::ServerPort => {
                let _ = write!(out, "{}", view.server_port);
            }
            Var::RequestUri => out.extend_from_slice(request_uri(view.uri).as_bytes()),
            Var::EscapedRequestUri => escape_query_value(request_uri(view.uri), out),
            Var::Uri => out.extend_from_slice(view.path.as_bytes()),
            Var::Args => out.extend_from_slice(view.uri.query().unwrap_or("").as_bytes()),
            Var::IsArgs => {
                if view.uri.query().is_some() {
                    out.push(b'?');
                }
            }
            Var::RequestMethod => out.extend_from_slice(view.method.as_str().as_bytes()),
            Var::ServerProtocol => out.extend_from_slice(match view.version {
                Version::HTTP_09 => b"HTTP/0.9",
                Version::HTTP_10 => b"HTTP/1.0",
                Version::HTTP_2 => b"HTTP/2.0",
                Version::HTTP_3 => b"HTTP/3.0",
                _ => b"HTTP/1.1",
            }),
            Var::Header(name) => join_header(view.headers, name, out),
            Var::Cookie(name) => {
                let found = view
                    .headers
                    .get_all(header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(|v| crate::compile::canary::cookie_value(v, name));
                if let Some(value) = found {
                    out.extend_from_slice(value.as_bytes());
                }
            }
            Var::Arg(name) => {
                let found = view.uri.query().and_then(|query| {
                    query.split('&').find_map(|pair| {
                        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                        key.eq_ignore_ascii_case(name).then_some(value)
                    })
                });
                if let Some(value) = found {
                    out.extend_from_slice(value.as_bytes());
                }
            }
            Var::Capture(n) => {
                if let Some(Some(text)) = view.captures.get(usize::from(*n) - 1) {
                    out.extend_from_slice(text.as_bytes());
                }
            }
        }
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Var::RequestId => "request_id",
            Var::RemoteAddr => "remote_addr",
            Var::RemotePort => "remote_port",
            Var::BinaryRemoteAddr => "binary_remote_addr",
            Var::ProxyAddXForwardedFor => "proxy_add_x_forwarded_for",
            Var::Scheme => "scheme",
            Var::Https => "https",
            Var::Host => "host",
            Var::BestHttpHost => "best_http_host",
            Var::ServerName => "server_name",
            Var::ServerPort => "server_port",
            Var::RequestUri => "request_uri",
            Var::EscapedRequestUri => "escaped_request_uri",
            Var::Uri => "uri",
            Var::Args => "args",
            Var::IsArgs => "is_args",
            Var::RequestMethod => "request_method",
            Var::ServerProtocol => "server_protocol",
            Var::Header(name) => {
                return write!(f, "${{http_{}}}", name.as_str().replace('-', "_"));
            }
            Var::Cookie(name) => return write!(f, "${{cookie_{name}}}"),
            Var::Arg(name) => return write!(f, "${{arg_{name}}}"),
            Var::Capture(n) => return write!(f, "${{{n}}}"),
        };
        // Braced, so text that follows can't extend the name.
        write!(f, "${{{name}}}")
    }
}

/// The path and query as the client sent them.
fn request_uri(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |pq| pq.as_str())
}

fn join_header(headers: &HeaderMap, name: &HeaderName, out: &mut Vec<u8>) {
    for (i, value) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(value.as_bytes());
    }
}

/// ingress-nginx's `$escaped_request_uri`: everything but unreserved characters escaped, so the
/// URI fits in a query parameter (`auth-signin`'s `rd=`).
fn escape_query_value(text: &str, out: &mut Vec<u8>) {
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Request {
        method: Method,
        uri: Uri,
        headers: HeaderMap,
    }

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("valid test input"),
                HeaderValue::from_str(value).expect("valid test input"),
            );
        }
        Request {
            method: Method::GET,
            uri: uri.parse().expect("valid test input"),
            headers: map,
        }
    }

    fn expand(template: &str, req: &Request, captures: &[Option<&str>]) -> String {
        let scope = if captures.is_empty() {
            Scope::Value
        } else {
            Scope::Rewrite
        };
        let view = RequestView {
            method: &req.method,
            uri: &req.uri,
            version: Version::HTTP_11,
            headers: &req.headers,
            host: "shop.example",
            server_name: "shop.example",
            path: req.uri.path(),
            client: "10.1.2.3".parse().expect("valid test input"),
            client_port: 40000,
            server_port: 443,
            tls: true,
            request_id: None,
            captures,
        };
        Template::parse(template, scope)
            .expect("valid test input")
            .expand(&view)
    }

    #[test]
    fn literals_stay_literal_and_cost_no_expansion() {
        let template =
            Template::parse("max-age=60, public", Scope::Value).expect("valid test input");
        assert!(template.is_literal());
        assert_eq!(
            template.literal,
            Some(HeaderValue::from_static("max-age=60, public"))
        );
    }

    #[test]
    fn request_variables_expand_from_the_request() {
        let req = request(
            "/cart/items?id=7&Lang=de",
            &[
                ("host", "Shop.Example:8443"),
                ("x-forwarded-for", "192.0.2.1"),
                ("x-token", "abc"),
                ("x-token", "def"),
                ("cookie", "session=s1; theme=dark"),
                ("x-request-id", "r-1"),
            ],
        );
        assert_eq!(
            expand("$scheme://$host$request_uri", &req, &[]),
            "https://shop.example/cart/items?id=7&Lang=de"
        );
        assert_eq!(
            expand("${remote_addr}:$remote_port", &req, &[]),
            "10.1.2.3:40000"
        );
        assert_eq!(
            expand("$proxy_add_x_forwarded_for", &req, &[]),
            "192.0.2.1, 10.1.2.3"
        );
        assert_eq!(expand("$http_x_token", &req, &[]), "abc, def");
        assert_eq!(expand("t=$cookie_theme", &req, &[]), "t=dark");
        assert_eq!(expand("$arg_lang/$arg_id/$arg_missing", &req, &[]), "de/7/");
        assert_eq!(
            expand("$uri$is_args$args", &req, &[]),
            "/cart/items?id=7&Lang=de"
        );
        assert_eq!(
            expand("$best_http_host $https $server_port", &req, &[]),
            "Shop.Example:8443 on 443"
        );
        assert_eq!(
            expand("$request_id $request_method $server_protocol", &req, &[]),
            "r-1 GET HTTP/1.1"
        );
        assert_eq!(
            expand("rd=$escaped_request_uri", &req, &[]),
            "rd=%2Fcart%2Fitems%3Fid%3D7%26Lang%3Dde"
        );
    }

    #[test]
    fn proxy_add_x_forwarded_for_without_a_client_header_is_the_client() {
        let req = request("/", &[]);
        assert_eq!(expand("$proxy_add_x_forwarded_for", &req, &[]), "10.1.2.3");
    }

    #[test]
    fn captures_only_in_rewrites() {
        let req = request("/a", &[]);
        assert_eq!(
            expand("/v2/$1/$2", &req, &[Some("users"), None]),
            "/v2/users/"
        );
        assert_eq!(
            Template::parse("$1", Scope::Value),
            Err(TemplateError::CaptureOutsideRewrite("1".to_owned()))
        );
    }

    #[test]
    fn unknown_variables_and_bad_syntax_are_refused_by_name() {
        assert_eq!(
            Template::parse("a $upstream_addr", Scope::Value),
            Err(TemplateError::Unknown("upstream_addr".to_owned()))
        );
        assert_eq!(
            Template::parse("cost: 5$", Scope::Value),
            Err(TemplateError::Dangling)
        );
        assert!(matches!(
            Template::parse("${host", Scope::Value),
            Err(TemplateError::Unterminated(_))
        ));
        // A name ends at the first character that can't be in one, as in nginx.
        let template = Template::parse("$http_a\u{e9}", Scope::Value).expect("valid test input");
        assert_eq!(template.vars().count(), 1);
        assert_eq!(template.to_string(), "${http_a}\u{e9}");
    }

    #[test]
    fn expanded_values_that_are_not_header_values_are_dropped() {
        let req = request("/", &[]);
        let view_template = Template::parse("$arg_x", Scope::Value).expect("valid test input");
        let uri: Uri = "/?x=%0d%0a".parse().expect("valid test input");
        let view = RequestView {
            method: &req.method,
            uri: &uri,
            version: Version::HTTP_11,
            headers: &req.headers,
            host: "h",
            server_name: "h",
            path: "/",
            client: "10.1.2.3".parse().expect("valid test input"),
            client_port: 1,
            server_port: 80,
            tls: false,
            request_id: None,
            captures: &[],
        };
        // Query text stays escaped (nginx's $arg_ is raw), so it is a valid value.
        assert_eq!(
            view_template.header_value(&view),
            Some(HeaderValue::from_static("%0d%0a"))
        );
    }

    #[test]
    fn display_round_trips() {
        for text in ["$host", "a-$http_x_y-b", "${cookie_s}x", "$arg_q"] {
            let template = Template::parse(text, Scope::Value).expect("valid test input");
            let again =
                Template::parse(&template.to_string(), Scope::Value).expect("valid test input");
            assert_eq!(template, again, "{text}");
        }
    }
}
