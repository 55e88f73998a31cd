//! Writing one line of a [`LogFormat`] for a finished request, on the access log's own thread:
//! into the line buffer it is given, with nginx's escaping, allocating nothing else (a scratch
//! buffer, reused, decodes a Basic user name).

use std::io::Write as _;

use http::{HeaderValue, Version};

use super::Entry;
use super::format::{Escape, LogFormat, LogVar, Part};
use crate::normalize::{normalize_host, normalize_path};
use crate::routes::{Route, Target};

impl LogFormat {
    /// Appends the line (without its newline) to `out`.
    pub fn render(&self, e: &Entry, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        for part in self.parts.iter() {
            match part {
                Part::Text(text) => out.extend_from_slice(text),
                Part::Var(var) => {
                    let mut w = Out {
                        out: &mut *out,
                        escape: self.escape,
                    };
                    w.var(var, e, scratch);
                }
            }
        }
    }
}

struct Out<'a> {
    out: &'a mut Vec<u8>,
    escape: Escape,
}

impl Out<'_> {
    fn var(&mut self, var: &LogVar, e: &Entry, scratch: &mut Vec<u8>) {
        let r = &e.request;
        match var {
            LogVar::RemoteAddr => self.raw(format_args!("{}", r.peer.ip())),
            LogVar::RemotePort => self.raw(format_args!("{}", r.peer.port())),
            LogVar::BinaryRemoteAddr => match r.peer.ip() {
                std::net::IpAddr::V4(ip) => self.text(&ip.octets()),
                std::net::IpAddr::V6(ip) => self.text(&ip.octets()),
            },
            LogVar::RemoteUser(slot) => {
                let user =
                    slot_value(&r.headers, *slot).and_then(|v| basic_user(v.as_bytes(), scratch));
                match user {
                    Some(user) => self.text(user),
                    None => self.missing(),
                }
            }
            LogVar::ProxyProtocolAddr => self.missing(),
            LogVar::ProxyAddXForwardedFor(slot) => {
                if let Some(forwarded) = slot_value(&r.headers, *slot) {
                    self.text(forwarded.as_bytes());
                    self.out.extend_from_slice(b", ");
                }
                self.raw(format_args!("{}", r.peer.ip()));
            }
            LogVar::Connection => self.raw(format_args!("{}", r.connection)),
            LogVar::ConnectionRequests => self.raw(format_args!("{}", r.connection_requests)),
            LogVar::Pipe => self.out.push(b'.'),
            LogVar::TimeLocal => {
                let time = e.time.to_zoned(jiff::tz::TimeZone::UTC);
                self.raw(format_args!("{}", time.strftime("%d/%b/%Y:%H:%M:%S %z")));
            }
            LogVar::TimeIso8601 => {
                let time = e.time.to_zoned(jiff::tz::TimeZone::UTC);
                self.raw(format_args!("{}", time.strftime("%Y-%m-%dT%H:%M:%S%:z")));
            }
            LogVar::Msec => {
                let ms = e.time.as_millisecond();
                self.raw(format_args!(
                    "{}.{:03}",
                    ms.div_euclid(1000),
                    ms.rem_euclid(1000)
                ));
            }
            LogVar::Request => {
                self.text(r.method.as_str().as_bytes());
                self.out.push(b' ');
                self.text(request_uri(&r.uri).as_bytes());
                self.out.push(b' ');
                self.out.extend_from_slice(protocol(r.version));
            }
            LogVar::RequestMethod => self.text(r.method.as_str().as_bytes()),
            LogVar::RequestUri => self.text(request_uri(&r.uri).as_bytes()),
            LogVar::EscapedRequestUri => {
                for &b in request_uri(&r.uri).as_bytes() {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                        self.out.push(b);
                    } else {
                        self.raw(format_args!("%{b:02X}"));
                    }
                }
            }
            LogVar::Uri => self.text(normalize_path(r.uri.path()).as_bytes()),
            LogVar::Args => match r.uri.query() {
                Some(query) => self.text(query.as_bytes()),
                None => self.missing(),
            },
            LogVar::IsArgs => {
                if r.uri.query().is_some() {
                    self.out.push(b'?');
                }
            }
            LogVar::ServerProtocol => self.out.extend_from_slice(protocol(r.version)),
            LogVar::Scheme => self.out.extend_from_slice(scheme(r.tls)),
            LogVar::Https => {
                if r.tls {
                    self.out.extend_from_slice(b"on");
                }
            }
            LogVar::Host => match r.host.as_ref().and_then(|h| h.to_str().ok()) {
                Some(host) if !host.is_empty() => self.text(normalize_host(host).as_bytes()),
                _ => self.text(e.host.as_bytes()),
            },
            LogVar::BestHttpHost => match &r.host {
                Some(host) => self.text(host.as_bytes()),
                None => self.text(e.host.as_bytes()),
            },
            LogVar::ServerName => self.text(e.host.as_bytes()),
            LogVar::ServerPort => self.raw(format_args!("{}", r.server_port)),
            LogVar::RequestLength => self.raw(format_args!("{}", e.request_length)),
            LogVar::RequestId => self.header(e.request_id.as_ref().or(r.request_id.as_ref())),
            LogVar::Referer => self.header(r.referer.as_ref()),
            LogVar::UserAgent => self.header(r.user_agent.as_ref()),
            LogVar::RequestHeader(slot) => self.header(slot_value(&r.headers, *slot)),
            LogVar::Cookie(slot, name) => {
                let value = slot_value(&r.headers, *slot)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| crate::compile::canary::cookie_value(v, name));
                match value {
                    Some(value) => self.text(value.as_bytes()),
                    None => self.missing(),
                }
            }
            LogVar::Arg(name) => {
                let value = r.uri.query().and_then(|query| {
                    query.split('&').find_map(|pair| {
                        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                        key.eq_ignore_ascii_case(name).then_some(value)
                    })
                });
                match value {
                    Some(value) => self.text(value.as_bytes()),
                    None => self.missing(),
                }
            }
            LogVar::Status => self.raw(format_args!("{}", e.status)),
            LogVar::BodyBytesSent => self.raw(format_args!("{}", e.body_bytes_sent)),
            LogVar::BytesSent => self.raw(format_args!("{}", e.bytes_sent)),
            LogVar::RequestTime => self.seconds(e.request_time),
            LogVar::SentHeader(slot) => self.header(slot_value(&r.sent, *slot)),
            LogVar::ProxyUpstreamName => self.upstream_name(&e.route),
            LogVar::ProxyAlternativeUpstreamName => {
                if let (Some(canary), true) = (&e.route.canary, e.canary) {
                    self.text(canary.label.as_bytes());
                }
            }
            LogVar::Namespace => {
                if let Some(ingress) = &e.route.ingress {
                    self.text(ingress.namespace.as_bytes());
                }
            }
            LogVar::IngressName => {
                if let Some(ingress) = &e.route.ingress {
                    self.text(ingress.name.as_bytes());
                }
            }
            LogVar::ServiceName => self.text(e.route.service.as_bytes()),
            LogVar::ServicePort => {
                if let Some(port) = service_port(&e.route) {
                    self.text(port.as_bytes());
                }
            }
            LogVar::LocationPath => self.text(e.route.path.as_bytes()),
            LogVar::UpstreamAddr => match &e.upstream_addr {
                Some(addr) => self.text(addr.as_str().as_bytes()),
                None => self.missing(),
            },
            LogVar::UpstreamStatus => match e.upstream_status {
                Some(status) => self.raw(format_args!("{status}")),
                None => self.missing(),
            },
            LogVar::UpstreamResponseLength => match e.upstream_addr {
                Some(_) => self.raw(format_args!("{}", e.body_bytes_sent)),
                None => self.missing(),
            },
            LogVar::UpstreamResponseTime => match e.upstream_response_time {
                Some(time) => self.seconds(time),
                None => self.missing(),
            },
            LogVar::UpstreamHeaderTime => match e.upstream_header_time {
                Some(time) => self.seconds(time),
                None => self.missing(),
            },
        }
    }

    /// Numbers and addresses: nothing in them is ever escaped.
    fn raw(&mut self, args: std::fmt::Arguments<'_>) {
        let _ = self.out.write_fmt(args);
    }

    /// nginx's `%T.%03M`: seconds with millisecond resolution (truncated, as nginx counts).
    fn seconds(&mut self, time: std::time::Duration) {
        let ms = time.as_millis();
        self.raw(format_args!("{}.{:03}", ms / 1000, ms % 1000));
    }

    /// A value that is not set: `-` with the default escaping, nothing with JSON or none.
    fn missing(&mut self) {
        if self.escape == Escape::Default {
            self.out.push(b'-');
        }
    }

    fn header(&mut self, value: Option<&HeaderValue>) {
        match value {
            Some(value) => self.text(value.as_bytes()),
            None => self.missing(),
        }
    }

    /// ingress-nginx's `$proxy_upstream_name`: `namespace-service-port` (the Service port's
    /// number), or `upstream-default-backend`.
    fn upstream_name(&mut self, route: &Route) {
        match &route.ingress {
            Some(ingress) if !route.service.is_empty() => {
                self.text(ingress.namespace.as_bytes());
                self.out.push(b'-');
                self.text(route.service.as_bytes());
                if let Some(port) = service_port(route) {
                    self.out.push(b'-');
                    self.text(port.as_bytes());
                }
            }
            _ => self.out.extend_from_slice(b"upstream-default-backend"),
        }
    }

    /// A value a client may have chosen, escaped as the format says.
    fn text(&mut self, bytes: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let out = &mut *self.out;
        match self.escape {
            Escape::Default => {
                for &b in bytes {
                    if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
                        out.extend_from_slice(&[
                            b'\\',
                            b'x',
                            HEX[usize::from(b >> 4)],
                            HEX[usize::from(b & 0xf)],
                        ]);
                    } else {
                        out.push(b);
                    }
                }
            }
            Escape::Json => {
                for &b in bytes {
                    match b {
                        b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        0x08 => out.extend_from_slice(b"\\b"),
                        0x0c => out.extend_from_slice(b"\\f"),
                        0..0x20 => out.extend_from_slice(&[
                            b'\\',
                            b'u',
                            b'0',
                            b'0',
                            HEX[usize::from(b >> 4)],
                            HEX[usize::from(b & 0xf)],
                        ]),
                        _ => out.push(b),
                    }
                }
            }
            Escape::None => {
                for &b in bytes {
                    if b == b'\n' || b == b'\r' {
                        out.extend_from_slice(&[b'\\', b'x', b'0', HEX[usize::from(b & 0xf)]]);
                    } else {
                        out.push(b);
                    }
                }
            }
        }
    }
}

fn slot_value(slots: &[Option<HeaderValue>], slot: usize) -> Option<&HeaderValue> {
    slots.get(slot).and_then(Option::as_ref)
}

fn request_uri(uri: &http::Uri) -> &str {
    uri.path_and_query().map_or("/", |pq| pq.as_str())
}

fn protocol(version: Version) -> &'static [u8] {
    match version {
        Version::HTTP_09 => b"HTTP/0.9",
        Version::HTTP_10 => b"HTTP/1.0",
        Version::HTTP_2 => b"HTTP/2.0",
        Version::HTTP_3 => b"HTTP/3.0",
        _ => b"HTTP/1.1",
    }
}

fn scheme(tls: bool) -> &'static [u8] {
    if tls { b"https" } else { b"http" }
}

fn service_port(route: &Route) -> Option<&HeaderValue> {
    match &route.target {
        Target::Upstream(upstream) => upstream.service_port.as_ref(),
        _ => None,
    }
}

/// nginx's `$remote_user`: the user of a `Basic` Authorization header whose credentials decode
/// to `user:password`; otherwise not set.
fn basic_user<'a>(value: &[u8], scratch: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    let scheme = value.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let encoded = value[6..].trim_ascii_start();
    scratch.clear();
    decode_base64(encoded, scratch)?;
    let colon = scratch.iter().position(|&b| b == b':')?;
    Some(&scratch[..colon])
}

/// Standard base64, padding optional; `None` on anything else.
fn decode_base64(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let text = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    if text.len() % 4 == 1 {
        return None;
    }
    let mut bits = 0u32;
    let mut count = 0;
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::uri::Authority;
    use http::{HeaderName, HeaderValue, Request};

    use super::super::test_entry::entry;
    use super::super::{Connection, Entry, RequestLog};
    use super::*;
    use crate::model::ObjectKey;
    use crate::routes::{Canary, Upstream, UpstreamProtocol};

    fn parse(text: &str, escape: Escape) -> LogFormat {
        match LogFormat::parse(text, escape) {
            Ok(format) => format,
            Err(err) => panic!("{text}: {err}"),
        }
    }

    /// `e` with its request captured again for `format` from `headers`, the response headers
    /// `sent`, and the URI `uri`.
    fn with_request(
        mut e: Entry,
        format: &Arc<LogFormat>,
        uri: &str,
        headers: &[(&str, &[u8])],
        sent: &[(&str, &str)],
    ) -> Entry {
        let mut builder = Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let req = builder.body(()).unwrap_or_default();
        let conn = Connection {
            peer: e.request.peer,
            server_port: 8443,
            tls: true,
            id: 9,
            requests: 4,
        };
        let host = req.headers().get("host").cloned();
        let mut request = RequestLog::capture(Some(format.clone()), conn, &req, host);
        let mut response = http::HeaderMap::new();
        for (name, value) in sent {
            response.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap_or(http::header::SERVER),
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("?")),
            );
        }
        request.capture_response(&response);
        e.request = request;
        e
    }

    fn render(format: &LogFormat, e: &Entry) -> String {
        let mut out = Vec::new();
        format.render(e, &mut out, &mut Vec::new());
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Renders `text` for a request with `headers` to `uri`.
    fn line(text: &str, uri: &str, headers: &[(&str, &[u8])]) -> String {
        let format = Arc::new(parse(text, Escape::Default));
        render(&format, &with_request(entry(), &format, uri, headers, &[]))
    }

    #[test]
    fn client_and_connection_variables() {
        assert_eq!(
            line(
                "$remote_addr:$remote_port $the_real_ip $connection/$connection_requests $pipe $proxy_protocol_addr",
                "/",
                &[]
            ),
            "10.0.0.7:40001 10.0.0.7 9/4 . -"
        );
        assert_eq!(
            line("$binary_remote_addr", "/", &[]),
            "\\x0A\\x00\\x00\\x07"
        );
        assert_eq!(
            line(
                "$proxy_add_x_forwarded_for",
                "/",
                &[("x-forwarded-for", b"192.0.2.1")]
            ),
            "192.0.2.1, 10.0.0.7"
        );
        assert_eq!(line("$proxy_add_x_forwarded_for", "/", &[]), "10.0.0.7");
    }

    #[test]
    fn remote_user_is_the_basic_user_name() {
        // alice:secret
        let basic: &[u8] = b"Basic YWxpY2U6c2VjcmV0";
        assert_eq!(
            line("$remote_user", "/", &[("authorization", basic)]),
            "alice"
        );
        // No colon, another scheme, bad base64: not set.
        for value in [
            &b"Basic YWxpY2U="[..],
            b"Bearer YWxpY2U6c2VjcmV0",
            b"Basic !!!",
        ] {
            assert_eq!(line("$remote_user", "/", &[("authorization", value)]), "-");
        }
        assert_eq!(line("$remote_user", "/", &[]), "-");
    }

    #[test]
    fn time_variables() {
        assert_eq!(
            line("[$time_local] $time_iso8601 $msec", "/", &[]),
            "[05/Dec/2026:06:29:17 +0000] 2026-12-05T06:29:17+00:00 1796452157.042"
        );
    }

    #[test]
    fn request_variables() {
        let headers: &[(&str, &[u8])] = &[
            ("host", b"Shop.Example:8443"),
            ("referer", b"https://ref.example/"),
            ("user-agent", b"ua/1"),
            ("x-token", b"abc"),
            ("cookie", b"session=s1; theme=dark"),
        ];
        let uri = "/a/./b/../cart?id=7&Lang=de";
        assert_eq!(
            line(
                "\"$request\" $request_method $request_uri $uri $document_uri $args $query_string $is_args $server_protocol",
                uri,
                headers
            ),
            "\"GET /a/./b/../cart?id=7&Lang=de HTTP/1.1\" GET /a/./b/../cart?id=7&Lang=de /a/cart /a/cart id=7&Lang=de id=7&Lang=de ? HTTP/1.1"
        );
        assert_eq!(
            line(
                "$scheme $https $host $best_http_host $server_name $server_port $request_length",
                uri,
                headers
            ),
            "https on shop.example Shop.Example:8443 shop.example 8443 87"
        );
        assert_eq!(
            line(
                "$http_referer|$http_user_agent|$http_x_token|$http_x_missing|$cookie_theme|$cookie_none|$arg_lang|$arg_id|$arg_none",
                uri,
                headers
            ),
            "https://ref.example/|ua/1|abc|-|dark|-|de|7|-"
        );
        assert_eq!(
            line("$escaped_request_uri", "/a%20b?x=1", &[]),
            "%2Fa%2520b%3Fx%3D1"
        );
        // Without a query, $args is not set but $is_args is empty.
        assert_eq!(line("[$args][$is_args]", "/", &[]), "[-][]");
        // Without a Host header, $host is the server name.
        assert_eq!(line("$host", "/", &[]), "shop.example");
    }

    #[test]
    fn request_ids() {
        let mut e = entry();
        let format = parse("$req_id $request_id", Escape::Default);
        assert_eq!(render(&format, &e), "abc123 abc123");
        // Not sent upstream: the client's, or the one made for the log.
        e.request_id = None;
        e.request.request_id = Some(HeaderValue::from_static("client-1"));
        assert_eq!(render(&format, &e), "client-1 client-1");
        e.request.request_id = None;
        assert_eq!(render(&format, &e), "- -");
    }

    #[test]
    fn response_variables() {
        let format = Arc::new(parse(
            "$status $body_bytes_sent $bytes_sent $request_time $sent_http_content_type $sent_http_x_missing",
            Escape::Default,
        ));
        let e = with_request(entry(), &format, "/", &[], &[("content-type", "text/html")]);
        assert_eq!(render(&format, &e), "200 512 640 0.002 text/html -");
    }

    #[test]
    fn route_and_upstream_variables() {
        let format = parse(
            "$proxy_upstream_name|$proxy_alternative_upstream_name|$namespace|$ingress_name|$service_name|$service_port|$location_path|$upstream_addr|$upstream_status|$upstream_response_length|$upstream_response_time|$upstream_header_time",
            Escape::Default,
        );
        let mut e = entry();
        let upstream = Upstream::new(
            ObjectKey::new("apps", "shop-v1"),
            vec![Authority::from_static("10.1.2.3:8080")],
            UpstreamProtocol::Http1,
        )
        .with_service_port(80);
        let mut route = Route::new(
            Some(ObjectKey::new("apps", "shop")),
            "/shop",
            "shop-v1".into(),
            Target::Upstream(Arc::new(upstream)),
        );
        route.canary = Some(Box::new(Canary::new(
            ObjectKey::new("apps", "shop-canary"),
            Target::Respond {
                status: http::StatusCode::OK,
                body: "",
            },
            crate::compile::canary::CanaryPolicy {
                header: None,
                cookie: None,
                weight: 0,
                total: 100,
            },
            "apps-shop-v2-80".into(),
        )));
        e.route = Arc::new(route);
        assert_eq!(
            render(&format, &e),
            "apps-shop-v1-80||apps|shop|shop-v1|80|/shop|10.1.2.3:8080|200|512|0.002|0.001"
        );
        e.canary = true;
        assert!(render(&format, &e).starts_with("apps-shop-v1-80|apps-shop-v2-80|"));

        // The controller's own default backend: no Ingress, no upstream.
        let mut e = entry();
        e.route = Arc::new(crate::routes::not_found_route());
        e.upstream_addr = None;
        e.upstream_status = None;
        e.upstream_response_time = None;
        e.upstream_header_time = None;
        assert_eq!(
            render(&format, &e),
            "upstream-default-backend|||||||-|-|-|-|-"
        );
    }

    fn escaped(escape: Escape, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Out {
            out: &mut out,
            escape,
        }
        .text(bytes);
        out
    }

    #[test]
    fn default_escaping_writes_hex_and_dashes() {
        // What a header value can carry: quotes, backslashes, tabs, obs-text.
        let headers: &[(&str, &[u8])] = &[("x-a", b"q\"b\\s\tc\xe9")];
        assert_eq!(
            line("\"$http_x_a\" $http_x_b", "/", headers),
            "\"q\\x22b\\x5Cs\\x09c\\xE9\" -"
        );
        assert_eq!(
            escaped(Escape::Default, b"\x00\n\x1f\x7f ~"),
            b"\\x00\\x0A\\x1F\\x7F ~"
        );
    }

    #[test]
    fn json_escaping_keeps_a_line_valid_json() {
        let format = Arc::new(parse(
            r#"{"a": "$http_x_a", "b": "$http_x_b", "status": $status}"#,
            Escape::Json,
        ));
        let headers: &[(&str, &[u8])] = &[("x-a", b"q\"b\\s\tc")];
        let e = with_request(entry(), &format, "/", headers, &[]);
        let text = render(&format, &e);
        assert_eq!(text, r#"{"a": "q\"b\\s\tc", "b": "", "status": 200}"#);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(value["a"], "q\"b\\s\tc");
        assert_eq!(value["status"], 200);
        // nginx's escape=json: named escapes, \u00XX for other control bytes, the rest as is.
        assert_eq!(
            escaped(Escape::Json, b"\n\r\x08\x0c\x01\x1f\x7f\xc3\xa9"),
            b"\\n\\r\\b\\f\\u0001\\u001F\x7f\xc3\xa9"
        );
    }

    #[test]
    fn no_escaping_still_never_breaks_a_line() {
        let format = Arc::new(parse(
            "$http_x_a|$http_x_b|$binary_remote_addr",
            Escape::None,
        ));
        let headers: &[(&str, &[u8])] = &[("x-a", b"q\"b\\s")];
        let e = with_request(entry(), &format, "/", headers, &[]);
        let mut out = Vec::new();
        format.render(&e, &mut out, &mut Vec::new());
        // 10.0.0.7's first byte is a line feed.
        assert_eq!(out, b"q\"b\\s||\\x0A\x00\x00\x07");
    }

    /// Random formats (pieces of variable syntax, escapes, quotes, names known and unknown):
    /// parsing never panics, and a format that parses renders one line whose variable values
    /// cannot break it, with every escaping.
    #[test]
    fn random_formats_parse_or_are_refused_and_never_break_a_line() {
        const PIECES: &[&str] = &[
            "$",
            "{",
            "}",
            "${",
            "\\",
            "'",
            "\\'",
            "\"",
            " ",
            "_",
            "x",
            "é",
            "$status",
            "$http_x_a",
            "$cookie_s",
            "$arg_q",
            "$sent_http_x_b",
            "$remote_user",
            "$request",
            "$time_local",
            "$msec",
            "$host",
            "$bogus",
            "${uri}",
            "$1",
            "$http_",
            "$HTTP_X_A",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) as usize) % n
        };
        let headers: &[(&str, &[u8])] = &[
            ("x-a", b"v\"\\\t\xff"),
            ("cookie", b"s=1"),
            ("authorization", b"Basic YTpi"),
        ];
        let mut parsed = 0;
        for round in 0..3000 {
            let text: String = (0..next(12)).map(|_| PIECES[next(PIECES.len())]).collect();
            let escape = [Escape::Default, Escape::Json, Escape::None][round % 3];
            let Ok(format) = LogFormat::parse(&text, escape) else {
                continue;
            };
            parsed += 1;
            let format = Arc::new(format);
            let e = with_request(entry(), &format, "/p?q=1", headers, &[("x-b", "w")]);
            let mut out = Vec::new();
            format.render(&e, &mut out, &mut Vec::new());
            // Only the format's own text (here: none) may hold a line break.
            assert!(!out.contains(&b'\n'), "{text:?} -> {out:?}");
        }
        assert!(parsed > 300, "only {parsed} formats parsed");
    }

    #[test]
    fn base64_decodes_with_or_without_padding() {
        let mut out = Vec::new();
        assert_eq!(decode_base64(b"YQ==", &mut out), Some(()));
        assert_eq!(out, b"a");
        out.clear();
        assert_eq!(decode_base64(b"YWI", &mut out), Some(()));
        assert_eq!(out, b"ab");
        assert_eq!(decode_base64(b"Y", &mut out), None);
    }
}
