//! The socket of a held lock's connection, found so that it can be handed down as a tie.
//!
//! sqlx does not expose a connection's socket. The server tells the connection's ports
//! (`inet_client_port()`, `inet_server_port()`); the one TCP socket of this process with that
//! local port and that peer port is the connection's. Over a Unix socket the server tells no
//! port, and no tie is made.

use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{SockaddrLike, SockaddrStorage, getpeername, getsockname};

/// A new descriptor of this process's TCP socket whose local port is `local` and whose peer's
/// port is `peer`, if there is one (Linux: read from `/proc/self/fd`).
pub(crate) fn find(local: u16, peer: u16) -> Option<OwnedFd> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
        .find(|&fd| port(getsockname(fd)) == Some(local) && port(getpeername(fd)) == Some(peer))
        .and_then(|fd| {
            // SAFETY: `fd` was listed as open just now, and only a copy of it is kept; a
            // descriptor closed in between fails the copy rather than copying another.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            fd.try_clone_to_owned().ok()
        })
}

fn port(address: nix::Result<SockaddrStorage>) -> Option<u16> {
    let address = address.ok()?;
    match address.family()? {
        nix::sys::socket::AddressFamily::Inet => address.as_sockaddr_in().map(|a| a.port()),
        nix::sys::socket::AddressFamily::Inet6 => address.as_sockaddr_in6().map(|a| a.port()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn finds_the_socket_of_a_connection_by_its_ports() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (local, peer) = (
            client.local_addr().unwrap().port(),
            client.peer_addr().unwrap().port(),
        );
        let found = find(local, peer).expect("the client's socket");
        assert_ne!(found.as_raw_fd(), client.as_raw_fd(), "a new descriptor");
        let copy = std::net::TcpStream::from(found);
        assert_eq!(copy.local_addr().unwrap().port(), local);
        assert!(find(local, peer.wrapping_add(1)).is_none());
    }
}
