//! Which address a request comes from, and what the upstream is told about it: ingress-nginx's
//! `use-forwarded-headers`, `compute-full-forwarded-for`, `forwarded-for-header`,
//! `proxy-real-ip-cidr`, `enable-real-ip` and `use-proxy-protocol`, as nginx's real_ip module
//! and ingress-nginx's template combine them. Pure: the hot path calls [`Forwarding::client`]
//! with what it knows about the connection.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::policy::Cidr;

/// The forwarding settings of the controller ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwarding {
    /// `use-forwarded-headers`: trust the client's X-Forwarded-For/-Proto/-Host/-Port, as behind
    /// an L7 load balancer.
    pub use_forwarded_headers: bool,
    /// `compute-full-forwarded-for` (with `use-forwarded-headers`): append the peer to the
    /// client's X-Forwarded-For instead of replacing it.
    pub compute_full_forwarded_for: bool,
    /// `forwarded-for-header`: where the real_ip module reads the client address.
    pub forwarded_for_header: HeaderName,
    /// `proxy-real-ip-cidr`: the peers whose word about the client address is taken.
    pub trusted: Vec<Cidr>,
    /// `enable-real-ip`: the real_ip module without trusting the other forwarded headers.
    pub enable_real_ip: bool,
    /// `use-proxy-protocol`: every connection starts with a PROXY protocol header.
    pub proxy_protocol: bool,
}

impl Default for Forwarding {
    fn default() -> Self {
        Self {
            use_forwarded_headers: false,
            compute_full_forwarded_for: false,
            forwarded_for_header: HeaderName::from_static("x-forwarded-for"),
            trusted: vec![any_address()],
            enable_real_ip: false,
            proxy_protocol: false,
        }
    }
}

/// ingress-nginx's default `proxy-real-ip-cidr`: `0.0.0.0/0`.
pub fn any_address() -> Cidr {
    Cidr::parse("0.0.0.0/0").unwrap_or_else(|_| unreachable!("a literal CIDR"))
}

/// What the PROXY protocol header of the connection said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxiedAddrs {
    pub source: IpAddr,
    pub destination_port: u16,
}

/// The request's view of its client, for access rules, limits, logs and upstream headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// nginx's `$remote_addr` after the real_ip module.
    pub ip: IpAddr,
    /// The address the real_ip module replaced (`$realip_remote_addr`, or the PROXY protocol
    /// source), which `compute-full-forwarded-for` appends.
    pub hop: IpAddr,
}

impl Forwarding {
    /// Whether nginx's real_ip module is on (ingress-nginx turns it on for any of these).
    fn real_ip(&self) -> bool {
        self.use_forwarded_headers || self.proxy_protocol || self.enable_real_ip
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client address of a request from `peer` (the TCP peer) over a connection whose
    /// PROXY protocol header said `proxied`.
    pub fn client(
        &self,
        peer: IpAddr,
        proxied: Option<ProxiedAddrs>,
        headers: &HeaderMap,
    ) -> Client {
        let hop = proxied.map_or(peer, |p| p.source);
        let unchanged = Client { ip: hop, hop };
        if !self.real_ip() || !self.trusts(peer) {
            return Client {
                ip: peer,
                hop: peer,
            };
        }
        match (self.proxy_protocol, proxied) {
            // `real_ip_header proxy_protocol`.
            (true, Some(p)) if !self.use_forwarded_headers => Client {
                ip: p.source,
                hop: p.source,
            },
            // ingress-nginx's X-Forwarded-For-Proxy-Protocol: the forwarded header counts only
            // when the PROXY source is itself trusted.
            (true, Some(p)) => {
                if !self.trusts(p.source) {
                    return unchanged;
                }
                Client {
                    ip: self.recursive(headers).unwrap_or(p.source),
                    hop: p.source,
                }
            }
            _ => Client {
                ip: self.recursive(headers).unwrap_or(peer),
                hop: peer,
            },
        }
    }

    /// `real_ip_recursive on`: from the right of the forwarded header, the first address that
    /// is not trusted, else the leftmost. `None` when the header is absent or an entry is not
    /// an address (nginx then keeps the peer).
    fn recursive(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let mut leftmost = None;
        let values: Vec<&str> = headers
            .get_all(&self.forwarded_for_header)
            .iter()
            .map(|v| v.to_str().ok())
            .collect::<Option<_>>()?;
        for entry in values.iter().rev().flat_map(|v| v.rsplit(',')) {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let ip = parse_addr(entry)?;
            if !self.trusts(ip) {
                return Some(ip);
            }
            leftmost = Some(ip);
        }
        leftmost
    }

    /// The X-Forwarded-For the upstream gets: the client address, or with
    /// `use-forwarded-headers` + `compute-full-forwarded-for` the client's own list with the
    /// hop appended.
    pub fn forwarded_for(&self, client: &Client, headers: &HeaderMap) -> HeaderValue {
        if self.use_forwarded_headers && self.compute_full_forwarded_for {
            let mut list = String::new();
            for value in headers.get_all("x-forwarded-for") {
                if let Ok(text) = value.to_str() {
                    if !list.is_empty() {
                        list.push_str(", ");
                    }
                    list.push_str(text);
                }
            }
            if !list.is_empty() {
                list.push_str(", ");
            }
            list.push_str(&client.hop.to_string());
            if let Ok(value) = HeaderValue::from_str(&list) {
                return value;
            }
        }
        ip_value(client.ip)
    }

    /// With `use-forwarded-headers`, the client's `name` header (its first entry), which
    /// replaces what the proxy would say itself.
    pub fn trusted_header(&self, headers: &HeaderMap, name: &'static str) -> Option<HeaderValue> {
        if !self.use_forwarded_headers {
            return None;
        }
        let value = headers.get(name)?.to_str().ok()?;
        let first = value.split(',').next().unwrap_or("").trim();
        if first.is_empty() {
            return None;
        }
        HeaderValue::from_str(first).ok()
    }
}

/// An address as a header value (digits, dots, colons and hex only).
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// An address in a forwarded header: bare, or with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_addr(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|_| panic!("{text}"))
    }

    fn xff(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_str(value).unwrap_or_else(|_| panic!("{value}")),
        );
        headers
    }

    fn trusting(cidrs: &[&str]) -> Forwarding {
        Forwarding {
            use_forwarded_headers: true,
            trusted: cidrs
                .iter()
                .map(|c| Cidr::parse(c).unwrap_or_else(|e| panic!("{e}")))
                .collect(),
            ..Forwarding::default()
        }
    }

    #[test]
    fn by_default_the_peer_is_the_client_whatever_the_headers_say() {
        let f = Forwarding::default();
        let client = f.client(ip("10.0.0.1"), None, &xff("1.2.3.4"));
        assert_eq!(client.ip, ip("10.0.0.1"));
        assert_eq!(f.forwarded_for(&client, &xff("1.2.3.4")), "10.0.0.1");
        assert_eq!(f.trusted_header(&xff("x"), "x-forwarded-for"), None);
    }

    #[test]
    fn real_ip_walks_the_header_from_the_right_past_trusted_proxies() {
        let f = trusting(&["10.0.0.0/8"]);
        let headers = xff("6.6.6.6, 1.2.3.4, 10.0.0.9");
        // A trusted peer: the rightmost untrusted address is the client.
        assert_eq!(f.client(ip("10.0.0.1"), None, &headers).ip, ip("1.2.3.4"));
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(f.client(ip("8.8.8.8"), None, &headers).ip, ip("8.8.8.8"));
        // All trusted: the leftmost.
        let all = xff("10.1.1.1, 10.2.2.2");
        assert_eq!(f.client(ip("10.0.0.1"), None, &all).ip, ip("10.1.1.1"));
        // Garbage before an untrusted address: nginx keeps the peer.
        let bad = xff("1.2.3.4, nonsense");
        assert_eq!(f.client(ip("10.0.0.1"), None, &bad).ip, ip("10.0.0.1"));
        // Ports are allowed.
        let port = xff("1.2.3.4:5555");
        assert_eq!(f.client(ip("10.0.0.1"), None, &port).ip, ip("1.2.3.4"));
    }

    #[test]
    fn enable_real_ip_reads_the_configured_header() {
        let f = Forwarding {
            enable_real_ip: true,
            forwarded_for_header: HeaderName::from_static("cf-connecting-ip"),
            ..Forwarding::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert("cf-connecting-ip", HeaderValue::from_static("9.9.9.9"));
        assert_eq!(f.client(ip("10.0.0.1"), None, &headers).ip, ip("9.9.9.9"));
        assert_eq!(
            f.client(ip("10.0.0.1"), None, &xff("1.1.1.1")).ip,
            ip("10.0.0.1")
        );
        // enable-real-ip alone does not trust X-Forwarded-Proto and friends.
        assert_eq!(f.trusted_header(&headers, "x-forwarded-proto"), None);
    }

    #[test]
    fn compute_full_forwarded_for_appends_the_hop() {
        let f = Forwarding {
            compute_full_forwarded_for: true,
            ..trusting(&["10.0.0.0/8"])
        };
        let headers = xff("1.2.3.4");
        let client = f.client(ip("10.0.0.1"), None, &headers);
        assert_eq!(f.forwarded_for(&client, &headers), "1.2.3.4, 10.0.0.1");
        let none = HeaderMap::new();
        let client = f.client(ip("10.0.0.1"), None, &none);
        assert_eq!(f.forwarded_for(&client, &none), "10.0.0.1");
    }

    #[test]
    fn proxy_protocol_source_is_the_client_when_the_peer_is_trusted() {
        let proxied = Some(ProxiedAddrs {
            source: ip("1.2.3.4"),
            destination_port: 443,
        });
        let f = Forwarding {
            proxy_protocol: true,
            trusted: vec![Cidr::parse("127.0.0.0/8").unwrap_or_else(|e| panic!("{e}"))],
            ..Forwarding::default()
        };
        assert_eq!(
            f.client(ip("127.0.0.1"), proxied, &xff("5.5.5.5")).ip,
            ip("1.2.3.4")
        );
        assert_eq!(
            f.client(ip("8.8.8.8"), proxied, &HeaderMap::new()).ip,
            ip("8.8.8.8")
        );
        // With use-forwarded-headers, a trusted PROXY source's X-Forwarded-For counts.
        let both = Forwarding {
            use_forwarded_headers: true,
            trusted: vec![Cidr::parse("0.0.0.0/0").unwrap_or_else(|e| panic!("{e}"))],
            ..f.clone()
        };
        assert_eq!(
            both.client(ip("127.0.0.1"), proxied, &xff("5.5.5.5")).ip,
            ip("5.5.5.5")
        );
    }
}
