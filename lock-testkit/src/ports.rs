//! Loopback ports.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A port on 127.0.0.1 that was free a moment ago, below the kernel's range of ephemeral
/// ports (`/proc/sys/net/ipv4/ip_local_port_range`).
///
/// Below that range because a server that is killed and restarted on its port must find it
/// free again, and a port in the range can be taken meanwhile by any client's outgoing
/// connection, even one to that very port: a client reconnecting to a dead server on an
/// ephemeral port can be handed that port as its own and connect to itself (TCP's
/// simultaneous open), holding it until it gives up. A long reliability run met it: a
/// Postgres restart found its port still taken after 10 s. Tries random ports from 20000 up
/// to the range's start; binds `127.0.0.1:0` (any free port) only if none of those is free.
/// Another process may take the port before the caller binds it; the servers in this crate
/// notice that and start again on a new port.
///
/// # Panics
///
/// If no loopback port can be bound at all.
pub fn free_port() -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_start > LOWEST + 1000 {
        for _ in 0..100 {
            let port = LOWEST + (random() % u64::from(ephemeral_start - LOWEST)) as u16;
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return port;
            }
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|err| panic!("cannot bind any port on 127.0.0.1: {err}"));
    listener
        .local_addr()
        .unwrap_or_else(|err| panic!("cannot read the address of a bound socket: {err}"))
        .port()
}

/// The lowest port [`free_port`] picks: above the well-known and most registered services.
const LOWEST: u16 = 20000;

/// A random number, from the standard library's randomly keyed hasher.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// Opens a TCP connection to `127.0.0.1:port`, giving up after `timeout`.
pub(crate) fn connect(port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_bindable() {
        let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        for _ in 0..20 {
            let port = free_port();
            assert!(
                (LOWEST..start).contains(&port),
                "{port} not in {LOWEST}..{start}"
            );
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("free");
        }
    }
}
