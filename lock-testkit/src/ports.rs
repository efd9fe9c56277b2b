//! Loopback ports.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A port on 127.0.0.1 that was free a moment ago.
///
/// Binds `127.0.0.1:0`, reads the port the kernel picked and lets it go again. Another
/// process may take it before the caller binds it; the servers in this crate notice that and
/// start again on a new port.
///
/// # Panics
///
/// If no loopback port can be bound at all.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|err| panic!("cannot bind any port on 127.0.0.1: {err}"));
    listener
        .local_addr()
        .unwrap_or_else(|err| panic!("cannot read the address of a bound socket: {err}"))
        .port()
}

/// Opens a TCP connection to `127.0.0.1:port`, giving up after `timeout`.
pub(crate) fn connect(port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), timeout)
}
