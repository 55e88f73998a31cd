//! Free loopback ports.

use std::net::{SocketAddr, TcpListener};

use crate::Error;

/// A TCP port on 127.0.0.1 that was free a moment ago. The kernel hands out ephemeral ports in
/// rotation, so the window in which another process takes it is small.
pub fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(Error::io("bind 127.0.0.1:0"))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(Error::io("local address of a probe socket"))?;
    Ok(addr.port())
}

/// Several distinct free ports at once (held together so they cannot repeat).
pub fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").map_err(Error::io("bind 127.0.0.1:0")))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(Error::io("local address of a probe socket"))
        })
        .collect()
}

/// This machine's own non-loopback IPv4 address (the one its default route leaves from), for
/// backends that an EndpointSlice must name: the apiserver refuses loopback endpoint addresses.
/// `None` on a machine without one.
pub fn host_address() -> Option<std::net::IpAddr> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // A UDP connect sends nothing; it only picks the route and with it the source address.
    probe.connect("203.0.113.1:9").ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}
