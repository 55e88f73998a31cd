//! `log-format-upstream`: an nginx `log_format` string parsed once, at compile time, into
//! literal text and typed log variables. Nothing of the string is interpreted per request; a
//! variable Switchyard cannot fill is refused by name, so a format either works whole or is not
//! used at all.

use http::HeaderName;
use http::header;

use crate::variables::{TemplateError, Var};

/// ingress-nginx's default `log-format-upstream`.
pub const INGRESS_NGINX_DEFAULT: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id";

/// nginx's `log_format ... escape=`: how variable values are written (literal text never is).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Escape {
    /// `"`, `\` and bytes outside printable ASCII as `\xHH`; a value that is not set is `-`.
    #[default]
    Default,
    /// JSON string escaping (`\"`, `\\`, `\n`, `\u001F`); a value that is not set is empty.
    Json,
    /// Values as they are, except that a line break is never written raw (one line, one
    /// request); a value that is not set is empty.
    None,
}

/// A parsed `log_format`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFormat {
    pub(super) parts: Box<[Part]>,
    pub(super) escape: Escape,
    /// The request headers the format reads beyond Referer and User-Agent, one capture slot
    /// each (the `slot` of the variables that read them).
    pub(super) request_headers: Box<[HeaderName]>,
    /// The response headers `$sent_http_*` read, one slot each.
    pub(super) response_headers: Box<[HeaderName]>,
    /// Whether `$req_id` or `$request_id` is used: only then is an id made for requests that
    /// did not go upstream.
    pub(super) uses_request_id: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Text(Box<[u8]>),
    Var(LogVar),
}

/// The variables a log line can show, with nginx's (and ingress-nginx's) meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum LogVar {
    // The client and the connection.
    /// `$remote_addr`, `$the_real_ip`, `$realip_remote_addr`.
    RemoteAddr,
    RemotePort,
    BinaryRemoteAddr,
    /// The user name of a Basic `Authorization` header (read from that request header slot).
    RemoteUser(usize),
    /// Set only with the PROXY protocol, which Switchyard does not accept: never set.
    ProxyProtocolAddr,
    /// The client's X-Forwarded-For (this slot) with the client appended.
    ProxyAddXForwardedFor(usize),
    /// The connection's serial number, and how many requests it has carried.
    Connection,
    ConnectionRequests,
    /// `p` for a pipelined request; hyper does not say, so always `.`.
    Pipe,
    // Time, when the line is written.
    TimeLocal,
    TimeIso8601,
    Msec,
    // The request.
    /// `$request`: the request line.
    Request,
    RequestMethod,
    RequestUri,
    EscapedRequestUri,
    /// `$uri`, `$document_uri`: the normalized path.
    Uri,
    /// `$args`, `$query_string`.
    Args,
    IsArgs,
    ServerProtocol,
    Scheme,
    Https,
    Host,
    BestHttpHost,
    ServerName,
    ServerPort,
    RequestLength,
    /// `$req_id`, `$request_id`: the X-Request-ID sent upstream (or the client's, or a new one).
    RequestId,
    Referer,
    UserAgent,
    /// `$http_NAME`: the request header in this slot.
    RequestHeader(usize),
    /// `$cookie_NAME`: from the Cookie header slot.
    Cookie(usize, Box<str>),
    /// `$arg_NAME`.
    Arg(Box<str>),
    // The response.
    Status,
    BodyBytesSent,
    BytesSent,
    RequestTime,
    /// `$sent_http_NAME`: the response header in this slot.
    SentHeader(usize),
    // The route and the upstream.
    ProxyUpstreamName,
    ProxyAlternativeUpstreamName,
    Namespace,
    IngressName,
    ServiceName,
    ServicePort,
    LocationPath,
    UpstreamAddr,
    UpstreamStatus,
    UpstreamResponseLength,
    UpstreamResponseTime,
    UpstreamHeaderTime,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogFormatError {
    #[error("unknown log variable ${0}")]
    Unknown(String),
    #[error("`$` must be followed by a variable name")]
    Dangling,
    #[error("`${{` without a closing `}}`")]
    Unterminated,
    #[error("${0} names no valid header")]
    BadHeader(String),
    #[error("an unescaped ' ends nginx's quoted format early; write \\'")]
    Quote,
}

impl LogFormat {
    /// ingress-nginx's default format with the given escaping.
    pub fn ingress_nginx_default(escape: Escape) -> Self {
        // A constant that parses: the fallback is never taken.
        Self::parse(INGRESS_NGINX_DEFAULT, escape).unwrap_or_else(|_| Self {
            parts: Box::new([]),
            escape,
            request_headers: Box::new([]),
            response_headers: Box::new([]),
            uses_request_id: false,
        })
    }

    /// Parses a `log-format-upstream` value as nginx reads it inside ingress-nginx's
    /// `log_format upstreaminfo '...'`: the backslash escapes of a quoted nginx string first,
    /// then `$name` and `${name}` variables (names are ASCII letters, digits and `_`).
    pub fn parse(text: &str, escape: Escape) -> Result<Self, LogFormatError> {
        let text = unquote(text)?;
        let mut builder = Builder::default();
        let mut literal = Vec::new();
        let mut rest = text.as_slice();
        while let Some(at) = rest.iter().position(|&b| b == b'$') {
            literal.extend_from_slice(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, consumed) = if let Some(braced) = after.strip_prefix(b"{") {
                let end = braced
                    .iter()
                    .position(|&b| !is_name_byte(b))
                    .filter(|&end| braced[end] == b'}')
                    .ok_or(LogFormatError::Unterminated)?;
                (&braced[..end], end + 2)
            } else {
                let end = after
                    .iter()
                    .position(|&b| !is_name_byte(b))
                    .unwrap_or(after.len());
                (&after[..end], end)
            };
            if name.is_empty() {
                return Err(LogFormatError::Dangling);
            }
            // Only ASCII name bytes: always UTF-8.
            let name = String::from_utf8_lossy(name);
            let var = builder.var(&name)?;
            if !literal.is_empty() {
                builder
                    .parts
                    .push(Part::Text(std::mem::take(&mut literal).into()));
            }
            builder.parts.push(Part::Var(var));
            rest = &after[consumed..];
        }
        literal.extend_from_slice(rest);
        if !literal.is_empty() {
            builder.parts.push(Part::Text(literal.into()));
        }
        Ok(Self {
            parts: builder.parts.into(),
            escape,
            request_headers: builder.request_headers.into(),
            response_headers: builder.response_headers.into(),
            uses_request_id: builder.uses_request_id,
        })
    }

    pub fn escape(&self) -> Escape {
        self.escape
    }

    /// The request headers to capture for this format, in slot order.
    pub fn request_headers(&self) -> &[HeaderName] {
        &self.request_headers
    }

    /// The response headers to capture for this format, in slot order.
    pub fn response_headers(&self) -> &[HeaderName] {
        &self.response_headers
    }

    pub fn uses_request_id(&self) -> bool {
        self.uses_request_id
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// nginx's reading of a single-quoted string: `\'`, `\"` and `\\` stand for the character,
/// `\t`, `\r` and `\n` for the control character, any other backslash stays; a bare `'` would
/// end the string, which nginx then refuses.
fn unquote(text: &str) -> Result<Vec<u8>, LogFormatError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'\\', Some(&c @ (b'\'' | b'"' | b'\\'))) => {
                out.push(c);
                i += 2;
            }
            (b'\\', Some(b't')) => {
                out.push(b'\t');
                i += 2;
            }
            (b'\\', Some(b'r')) => {
                out.push(b'\r');
                i += 2;
            }
            (b'\\', Some(b'n')) => {
                out.push(b'\n');
                i += 2;
            }
            (b'\'', _) => return Err(LogFormatError::Quote),
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[derive(Default)]
struct Builder {
    parts: Vec<Part>,
    request_headers: Vec<HeaderName>,
    response_headers: Vec<HeaderName>,
    uses_request_id: bool,
}

impl Builder {
    fn request_slot(&mut self, name: HeaderName) -> usize {
        slot(&mut self.request_headers, name)
    }

    /// One variable name, without the `$`. nginx reads variable names case-insensitively; a
    /// cookie or argument name keeps its case.
    fn var(&mut self, name: &str) -> Result<LogVar, LogFormatError> {
        let lower = name.to_ascii_lowercase();
        let var = match lower.as_str() {
            "remote_user" => LogVar::RemoteUser(self.request_slot(header::AUTHORIZATION)),
            "proxy_protocol_addr" => LogVar::ProxyProtocolAddr,
            "connection" => LogVar::Connection,
            "connection_requests" => LogVar::ConnectionRequests,
            "pipe" => LogVar::Pipe,
            "time_local" => LogVar::TimeLocal,
            "time_iso8601" => LogVar::TimeIso8601,
            "msec" => LogVar::Msec,
            "request" => LogVar::Request,
            "request_length" => LogVar::RequestLength,
            "req_id" | "request_id" => LogVar::RequestId,
            "status" => LogVar::Status,
            "body_bytes_sent" => LogVar::BodyBytesSent,
            "bytes_sent" => LogVar::BytesSent,
            "request_time" => LogVar::RequestTime,
            "proxy_upstream_name" => LogVar::ProxyUpstreamName,
            "proxy_alternative_upstream_name" => LogVar::ProxyAlternativeUpstreamName,
            "namespace" => LogVar::Namespace,
            "ingress_name" => LogVar::IngressName,
            "service_name" => LogVar::ServiceName,
            "service_port" => LogVar::ServicePort,
            "location_path" => LogVar::LocationPath,
            "upstream_addr" => LogVar::UpstreamAddr,
            "upstream_status" => LogVar::UpstreamStatus,
            "upstream_response_length" => LogVar::UpstreamResponseLength,
            "upstream_response_time" => LogVar::UpstreamResponseTime,
            "upstream_header_time" => LogVar::UpstreamHeaderTime,
            _ => {
                if let Some(sent) = lower.strip_prefix("sent_http_") {
                    let header = HeaderName::from_bytes(sent.replace('_', "-").as_bytes())
                        .map_err(|_| LogFormatError::BadHeader(name.to_owned()))?;
                    return Ok(LogVar::SentHeader(slot(&mut self.response_headers, header)));
                }
                // The request variables the rest of the proxy knows, with the same names.
                let cased = match lower.split_once('_') {
                    // Names are ASCII: the prefix's length is the same in both.
                    Some((prefix @ ("cookie" | "arg"), _)) => {
                        format!("{prefix}_{}", &name[prefix.len() + 1..])
                    }
                    _ => lower.clone(),
                };
                self.request_var(Var::parse(&cased).map_err(|err| match err {
                    TemplateError::BadHeader(_) => LogFormatError::BadHeader(name.to_owned()),
                    _ => LogFormatError::Unknown(name.to_owned()),
                })?)?
            }
        };
        self.uses_request_id |= var == LogVar::RequestId;
        Ok(var)
    }

    fn request_var(&mut self, var: Var) -> Result<LogVar, LogFormatError> {
        Ok(match var {
            Var::RequestId => LogVar::RequestId,
            Var::RemoteAddr => LogVar::RemoteAddr,
            Var::RemotePort => LogVar::RemotePort,
            Var::BinaryRemoteAddr => LogVar::BinaryRemoteAddr,
            Var::ProxyAddXForwardedFor => LogVar::ProxyAddXForwardedFor(
                self.request_slot(HeaderName::from_static("x-forwarded-for")),
            ),
            Var::Scheme => LogVar::Scheme,
            Var::Https => LogVar::Https,
            Var::Host => LogVar::Host,
            Var::BestHttpHost => LogVar::BestHttpHost,
            Var::ServerName => LogVar::ServerName,
            Var::ServerPort => LogVar::ServerPort,
            Var::RequestUri => LogVar::RequestUri,
            Var::EscapedRequestUri => LogVar::EscapedRequestUri,
            Var::Uri => LogVar::Uri,
            Var::Args => LogVar::Args,
            Var::IsArgs => LogVar::IsArgs,
            Var::RequestMethod => LogVar::RequestMethod,
            Var::ServerProtocol => LogVar::ServerProtocol,
            Var::Header(name) if name == header::REFERER => LogVar::Referer,
            Var::Header(name) if name == header::USER_AGENT => LogVar::UserAgent,
            Var::Header(name) => LogVar::RequestHeader(self.request_slot(name)),
            Var::Cookie(name) => LogVar::Cookie(self.request_slot(header::COOKIE), name),
            Var::Arg(name) => LogVar::Arg(name),
            // Regex captures exist only in rewrites.
            Var::Capture(n) => return Err(LogFormatError::Unknown(n.to_string())),
        })
    }
}

fn slot(names: &mut Vec<HeaderName>, name: HeaderName) -> usize {
    match names.iter().position(|n| *n == name) {
        Some(at) => at,
        None => {
            names.push(name);
            names.len() - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(format: &LogFormat) -> Vec<&LogVar> {
        format
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Var(v) => Some(v),
                Part::Text(_) => None,
            })
            .collect()
    }

    #[test]
    fn the_default_format_parses_into_its_variables() {
        let format = LogFormat::ingress_nginx_default(Escape::Default);
        assert_eq!(vars(&format).len(), 17);
        assert_eq!(format.request_headers(), [header::AUTHORIZATION]);
        assert!(format.response_headers().is_empty());
        assert!(format.uses_request_id());
        assert_eq!(
            format.parts.first(),
            Some(&Part::Var(LogVar::RemoteAddr)),
            "{format:?}"
        );
    }

    #[test]
    fn every_supported_variable_is_known() {
        let names = [
            "remote_addr",
            "the_real_ip",
            "realip_remote_addr",
            "remote_port",
            "binary_remote_addr",
            "remote_user",
            "proxy_protocol_addr",
            "proxy_add_x_forwarded_for",
            "connection",
            "connection_requests",
            "pipe",
            "time_local",
            "time_iso8601",
            "msec",
            "request",
            "request_method",
            "request_uri",
            "escaped_request_uri",
            "uri",
            "document_uri",
            "args",
            "query_string",
            "is_args",
            "server_protocol",
            "scheme",
            "https",
            "host",
            "best_http_host",
            "server_name",
            "server_port",
            "request_length",
            "req_id",
            "request_id",
            "http_referer",
            "http_user_agent",
            "http_x_forwarded_for",
            "cookie_session",
            "arg_page",
            "status",
            "body_bytes_sent",
            "bytes_sent",
            "request_time",
            "sent_http_content_type",
            "proxy_upstream_name",
            "proxy_alternative_upstream_name",
            "namespace",
            "ingress_name",
            "service_name",
            "service_port",
            "location_path",
            "upstream_addr",
            "upstream_status",
            "upstream_response_length",
            "upstream_response_time",
            "upstream_header_time",
        ];
        for name in names {
            let parsed = LogFormat::parse(&format!("${name}"), Escape::Default);
            assert!(parsed.is_ok(), "${name}: {parsed:?}");
        }
    }

    #[test]
    fn header_slots_are_shared_and_named_once() {
        let format = LogFormat::parse(
            "$http_x_token $cookie_a $cookie_b $http_X_Token $sent_http_content_type $remote_user $proxy_add_x_forwarded_for",
            Escape::Default,
        )
        .expect("valid format");
        assert_eq!(
            format.request_headers(),
            [
                HeaderName::from_static("x-token"),
                header::COOKIE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-forwarded-for"),
            ]
        );
        assert_eq!(format.response_headers(), [header::CONTENT_TYPE]);
        assert_eq!(
            vars(&format)[..4],
            [
                &LogVar::RequestHeader(0),
                &LogVar::Cookie(1, "a".into()),
                &LogVar::Cookie(1, "b".into()),
                &LogVar::RequestHeader(0)
            ]
        );
        assert!(!format.uses_request_id());
    }

    #[test]
    fn names_are_case_insensitive_but_cookie_and_arg_names_keep_their_case() {
        let format = LogFormat::parse("${Remote_Addr} $COOKIE_Sid $Arg_Page", Escape::Default)
            .expect("valid format");
        assert_eq!(
            vars(&format),
            [
                &LogVar::RemoteAddr,
                &LogVar::Cookie(0, "Sid".into()),
                &LogVar::Arg("Page".into())
            ]
        );
    }

    #[test]
    fn braces_end_a_name_where_text_follows() {
        let format = LogFormat::parse("${status}ms $status-x", Escape::Json).expect("valid");
        assert_eq!(
            format.parts.as_ref(),
            [
                Part::Var(LogVar::Status),
                Part::Text(b"ms ".to_vec().into()),
                Part::Var(LogVar::Status),
                Part::Text(b"-x".to_vec().into()),
            ]
        );
        assert_eq!(format.escape(), Escape::Json);
    }

    #[test]
    fn nginx_string_escapes_are_read_as_nginx_reads_them() {
        let format =
            LogFormat::parse(r#"{\"a\": \"$status\"}\t\x\\"#, Escape::Json).expect("valid format");
        assert_eq!(format.parts[0], Part::Text(b"{\"a\": \"".to_vec().into()));
        assert_eq!(format.parts[2], Part::Text(b"\"}\t\\x\\".to_vec().into()));
    }

    #[test]
    fn unknown_variables_and_bad_syntax_are_refused_by_name() {
        let err = |text: &str| LogFormat::parse(text, Escape::Default).err();
        assert_eq!(
            err("$remote_addr $upstream_connect_time"),
            Some(LogFormatError::Unknown("upstream_connect_time".into()))
        );
        assert_eq!(
            err("$ssl_cipher"),
            Some(LogFormatError::Unknown("ssl_cipher".into()))
        );
        assert_eq!(err("$1"), Some(LogFormatError::Unknown("1".into())));
        assert_eq!(err("cost 5$"), Some(LogFormatError::Dangling));
        assert_eq!(err("a $ b"), Some(LogFormatError::Dangling));
        assert_eq!(err("${status"), Some(LogFormatError::Unterminated));
        assert_eq!(err("${sta tus}"), Some(LogFormatError::Unterminated));
        assert_eq!(err("it's $status"), Some(LogFormatError::Quote));
        assert!(matches!(err("$http_"), Some(LogFormatError::BadHeader(_))));
        assert_eq!(
            LogFormatError::Unknown("geoip_country".into()).to_string(),
            "unknown log variable $geoip_country"
        );
    }
}
