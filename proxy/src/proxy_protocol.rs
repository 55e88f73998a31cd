//! The PROXY protocol (versions 1 and 2, as HAProxy specifies them) at accept, for
//! `use-proxy-protocol`: a load balancer in front says who the client is before the first
//! byte of HTTP or TLS. The header is bounded in size and in time; a connection without a valid
//! one is refused. Bytes read past the header are handed on to HTTP/TLS by [`Prefixed`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use crate::compile::forwarding::ProxiedAddrs;

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 line is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
/// A v2 header's addresses and TLVs; larger ones (from nobody we know) are refused.
const V2_MAX_PAYLOAD: usize = 2048;

/// What a complete header said: `None` for `UNKNOWN` (v1) or `LOCAL` (v2) — the connection is
/// the balancer's own (a health check), and the TCP peer stands.
pub type Header = Option<ProxiedAddrs>;

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The header and how many bytes it took.
    Complete(Header, usize),
    /// More bytes are needed.
    Incomplete,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyProtocolError {
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    #[error("invalid PROXY protocol header: {0}")]
    Invalid(&'static str),
    #[error("the PROXY protocol header did not arrive in time")]
    TimedOut,
    #[error("reading the PROXY protocol header: {0}")]
    Io(String),
}

/// Parses the start of a connection.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    let signature_len = buf.len().min(V2_SIGNATURE.len());
    if buf[..signature_len] == V2_SIGNATURE[..signature_len] {
        return if buf.len() < V2_SIGNATURE.len() {
            Ok(Parsed::Incomplete)
        } else {
            parse_v2(buf)
        };
    }
    let prefix_len = buf.len().min(6);
    if buf[..prefix_len] == b"PROXY "[..prefix_len] {
        return parse_v1(buf);
    }
    Err(ProxyProtocolError::Missing)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    let invalid = ProxyProtocolError::Invalid;
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(invalid("v1 line longer than 107 bytes"))
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    if end + 2 > V1_MAX {
        return Err(invalid("v1 line longer than 107 bytes"));
    }
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| invalid("v1 line is not text"))?;
    let words: Vec<&str> = line.split(' ').collect();
    let header = match words.as_slice() {
        ["PROXY", "UNKNOWN", ..] => None,
        [
            "PROXY",
            family @ ("TCP4" | "TCP6"),
            source,
            _destination,
            _sport,
            dport,
        ] => {
            let source: IpAddr = source.parse().map_err(|_| invalid("v1 source address"))?;
            if source.is_ipv4() != (*family == "TCP4") {
                return Err(invalid("v1 address does not match its family"));
            }
            let destination_port = dport.parse().map_err(|_| invalid("v1 port"))?;
            Some(ProxiedAddrs {
                source,
                destination_port,
            })
        }
        _ => return Err(invalid("v1 line is not PROXY TCP4|TCP6|UNKNOWN ...")),
    };
    Ok(Parsed::Complete(header, end + 2))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    let invalid = ProxyProtocolError::Invalid;
    if buf.len() < 16 {
        return Ok(Parsed::Incomplete);
    }
    let (version_command, family) = (buf[12], buf[13]);
    if version_command >> 4 != 2 {
        return Err(invalid("v2 version"));
    }
    let length = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if length > V2_MAX_PAYLOAD {
        return Err(invalid("v2 header too large"));
    }
    let total = 16 + length;
    if buf.len() < total {
        return Ok(Parsed::Incomplete);
    }
    let payload = &buf[16..total];
    let header = match version_command & 0x0f {
        // LOCAL: the balancer's own connection.
        0 => None,
        1 => match family >> 4 {
            // AF_INET: source, destination (4 bytes each), source port, destination port.
            1 if payload.len() >= 12 => Some(ProxiedAddrs {
                source: IpAddr::V4(Ipv4Addr::new(
                    payload[0], payload[1], payload[2], payload[3],
                )),
                destination_port: u16::from_be_bytes([payload[10], payload[11]]),
            }),
            // AF_INET6: 16 bytes each.
            2 if payload.len() >= 36 => {
                let mut source = [0u8; 16];
                source.copy_from_slice(&payload[..16]);
                Some(ProxiedAddrs {
                    source: IpAddr::V6(Ipv6Addr::from(source)),
                    destination_port: u16::from_be_bytes([payload[34], payload[35]]),
                })
            }
            // AF_UNSPEC or AF_UNIX: no IP address to take.
            0 | 3 => None,
            _ => return Err(invalid("v2 address block too short for its family")),
        },
        _ => return Err(invalid("v2 command")),
    };
    Ok(Parsed::Complete(header, total))
}

/// Reads the header from `stream` within `timeout`. Returns what it said and the bytes read
/// past it, which belong to the HTTP or TLS that follows.
pub async fn read<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<(Header, Vec<u8>), ProxyProtocolError> {
    let read = async {
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 512];
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| ProxyProtocolError::Io(e.to_string()))?;
            if n == 0 {
                return Err(ProxyProtocolError::Missing);
            }
            buf.extend_from_slice(&chunk[..n]);
            match parse(&buf)? {
                Parsed::Complete(header, used) => return Ok((header, buf.split_off(used))),
                Parsed::Incomplete if buf.len() > 16 + V2_MAX_PAYLOAD => {
                    return Err(ProxyProtocolError::Invalid("header too large"));
                }
                Parsed::Incomplete => {}
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ProxyProtocolError::TimedOut)?
}

/// A stream that first yields bytes already read from it.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            offset: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.offset < self.prefix.len() {
            let rest = &self.prefix[self.offset..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            self.offset += n;
            if self.offset == self.prefix.len() {
                self.prefix = Vec::new();
                self.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        header.extend_from_slice(payload);
        header
    }

    #[test]
    fn v1_lines() {
        let line = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\nGET / HTTP/1.1\r\n";
        let Ok(Parsed::Complete(Some(addrs), used)) = parse(line) else {
            panic!("{:?}", parse(line));
        };
        assert_eq!(addrs.source.to_string(), "203.0.113.7");
        assert_eq!(addrs.destination_port, 443);
        assert_eq!(&line[used..used + 3], b"GET");
        let six = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 80\r\n";
        assert!(matches!(parse(six), Ok(Parsed::Complete(Some(_), 41))));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Ok(Parsed::Complete(None, 15)));
        assert_eq!(parse(b"PROXY TCP4 1.2.3"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete));
        assert!(parse(b"PROXY TCP4 2001:db8::1 1.2.3.4 1 2\r\n").is_err());
        assert!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n").is_err());
        let long = format!("PROXY TCP4 {}", "1".repeat(120));
        assert!(parse(long.as_bytes()).is_err());
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n"),
            Err(ProxyProtocolError::Missing)
        );
    }

    #[test]
    fn v2_headers() {
        let mut payload = vec![198, 51, 100, 9, 10, 0, 0, 1];
        payload.extend_from_slice(&40000u16.to_be_bytes());
        payload.extend_from_slice(&443u16.to_be_bytes());
        payload.extend_from_slice(&[0x04, 0, 1, 0]); // a TLV, skipped
        let header = v2(1, 0x11, &payload);
        let Ok(Parsed::Complete(Some(addrs), used)) = parse(&header) else {
            panic!("{:?}", parse(&header));
        };
        assert_eq!(addrs.source.to_string(), "198.51.100.9");
        assert_eq!((addrs.destination_port, used), (443, header.len()));
        assert_eq!(parse(&header[..20]), Ok(Parsed::Incomplete));
        assert_eq!(parse(&header[..5]), Ok(Parsed::Incomplete));

        let mut six = vec![0u8; 36];
        six[15] = 1;
        six[34..36].copy_from_slice(&80u16.to_be_bytes());
        let Ok(Parsed::Complete(Some(addrs), _)) = parse(&v2(1, 0x21, &six)) else {
            panic!("v6");
        };
        assert_eq!(addrs.source.to_string(), "::1");

        assert!(matches!(
            parse(&v2(0, 0x00, &[])),
            Ok(Parsed::Complete(None, 16))
        ));
        assert!(
            parse(&v2(1, 0x11, &[1, 2, 3])).is_err(),
            "short address block"
        );
        assert!(parse(&v2(7, 0x11, &payload)).is_err(), "unknown command");
        let mut huge = v2(1, 0x11, &[]);
        huge[14..16].copy_from_slice(&4000u16.to_be_bytes());
        assert!(parse(&huge).is_err(), "bounded size");
    }

    #[tokio::test]
    async fn read_hands_on_the_bytes_after_the_header() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        use tokio::io::AsyncWriteExt;
        client
            .write_all(b"PROXY TCP4 1.2.3.4 5.6.7.8 1000 80\r\nGET /")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (header, rest) = read(&mut server, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(header.map(|h| h.destination_port), Some(80));
        let mut prefixed = Prefixed::new(rest, server);
        client
            .write_all(b" HTTP")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drop(client);
        let mut all = String::new();
        prefixed
            .read_to_string(&mut all)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all, "GET / HTTP");
    }

    #[tokio::test]
    async fn a_connection_that_says_nothing_is_refused_in_time() {
        let (_client, mut server) = tokio::io::duplex(64);
        let outcome = read(&mut server, Duration::from_millis(1)).await;
        assert_eq!(outcome.err(), Some(ProxyProtocolError::TimedOut));
    }
}
