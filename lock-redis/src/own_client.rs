//! A lock from a `redis::Client` the application already has.

use lock_core::Error;
use lock_core::raw::config_error;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use redis::ConnectionAddr;

use crate::{Config, RedisLock};

impl Config {
    /// The configuration of a [`redis::Client`] the application already made: its host and
    /// port, TLS or not, database, user and password; the other settings at their defaults.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a client this backend cannot use: a Unix socket, or TLS
    /// without verifying the server's name.
    pub fn from_client(client: &redis::Client) -> Result<Self, Error> {
        let info = client.get_connection_info();
        let (scheme, host, port) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => ("redis", host, *port),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                ..
            } => ("rediss", host, *port),
            ConnectionAddr::TcpTls { .. } => {
                return Err(config_error(
                    "a Redis client that does not verify the server's certificate cannot make a lock",
                ));
            }
            other => {
                return Err(config_error(format!(
                    "a Redis client at {other} cannot make a lock: only TCP or TLS addresses can"
                )));
            }
        };
        let settings = info.redis_settings();
        let escape = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let credentials = match (settings.username(), settings.password()) {
            (Some(user), Some(password)) => format!("{}:{}@", escape(user), escape(password)),
            (None, Some(password)) => format!(":{}@", escape(password)),
            (Some(user), None) => format!("{}@", escape(user)),
            (None, None) => String::new(),
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let db = settings.db();
        Self::from_url(&format!("{scheme}://{credentials}{host}:{port}/{db}"))
    }
}

impl RedisLock {
    /// Locks on the server of a [`redis::Client`] the application already has, with its
    /// address, database and credentials ([`Config::from_client`]).
    ///
    /// The lock opens connections of its own from that, as [`RedisLock::connect`] does: one
    /// multiplexed command connection per handle, which reconnects by itself, and one pub/sub
    /// connection once somebody waits. It does not borrow the application's connections or
    /// a `ConnectionManager`: the lock must know when its connection closed, so that a grant
    /// is never answered by a stale error, and wake-ups need a connection in subscriber mode.
    ///
    /// # Errors
    /// As [`Config::from_client`] and [`RedisLock::connect`].
    pub async fn from_client(client: &redis::Client) -> Result<Self, Error> {
        Self::connect_with(Config::from_client(client)?).await
    }
}
