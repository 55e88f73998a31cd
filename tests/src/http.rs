//! A minimal plain-HTTP client for tests: one request per connection (HTTP/1.1, `Connection: close`), so a test sees
//! exactly what a curl user would without pulling a client library into the test support.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::Error;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` against `addr` (host:port) with the given Host header.
pub fn get(addr: &str, host: &str, path: &str) -> Result<Response, Error> {
    let mut sock = TcpStream::connect(addr).map_err(Error::io(format!("connect {addr}")))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(Error::io("set timeout"))?;
    write!(
        sock,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: switchyard-tests\r\nConnection: close\r\n\r\n"
    )
    .map_err(Error::io(format!("send to {addr}")))?;
    let mut raw = Vec::new();
    sock.read_to_end(&mut raw)
        .map_err(Error::io(format!("read from {addr}")))?;
    parse(&raw).ok_or_else(|| Error::Invalid {
        context: format!("GET http://{addr}{path}"),
        detail: format!("not an HTTP response: {}", String::from_utf8_lossy(&raw)),
    })
}

fn parse(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Response {
        status,
        headers,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_headers_and_body() {
        let r = parse(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nX-A: b\r\n\r\nnope")
            .expect("valid");
        assert_eq!(r.status, 404);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.body, "nope");
        assert!(parse(b"garbage").is_none());
    }
}
