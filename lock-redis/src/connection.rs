//! Connections to the server: opening TCP or TLS streams within the connect timeout, and one
//! multiplexed command connection per handle that reconnects by itself.
//!
//! The `redis` crate's own `ConnectionManager` is not used: it retries a failed connect with
//! a backoff of its own (seconds past our connect timeout), and it hands the *stored* error
//! of a reconnect that failed while the server was down to the first call after the server
//! is back. Here the connection's driver task is ours, so we know when the connection has
//! closed and open a new one before sending anything: the first operation after a restart
//! goes through, and an error always means the request may have reached the server (or
//! never left, when connecting failed), never a stale answer.

use lock_core::Operation;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lock_core::{Error, InvalidInput};
use redis::aio::{MultiplexedConnection, PubSub};
use redis::{AsyncConnectionConfig, RedisConnectionInfo, ScriptInvocation, Value};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::Config;
use crate::errors;

/// A byte stream to the server: plain TCP or TLS over TCP.
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// How to reach the server: address, TLS, credentials, database, timeouts.
pub(crate) struct Endpoint {
    host: String,
    port: u16,
    /// `host:port`, for messages.
    pub(crate) shown: String,
    /// For `rediss`: the TLS setup and the name the certificate must carry.
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    info: RedisConnectionInfo,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
}

impl Endpoint {
    pub(crate) fn new(config: &Config) -> Result<Self, Error> {
        let mut info = RedisConnectionInfo::default()
            .set_db(i64::from(config.db()))
            .set_lib_name("lock-redis", env!("CARGO_PKG_VERSION"));
        if let Some(user) = config.user() {
            info = info.set_username(user);
        }
        if let Some(password) = config.password() {
            info = info.set_password(password);
        }
        let tls = if config.tls() {
            let name = ServerName::try_from(config.host().to_owned()).map_err(|e| {
                Error::InvalidInput(InvalidInput::Config(format!(
                    "{:?} cannot be checked against a TLS certificate: {e}",
                    config.host()
                )))
            })?;
            Some((Arc::new(tls_config(config)?), name))
        } else {
            None
        };
        Ok(Self {
            host: config.host().to_owned(),
            port: config.port(),
            shown: config.endpoint(),
            tls,
            info,
            connect_timeout: config.connect_timeout(),
            response_timeout: config.response_timeout(),
        })
    }

    /// Opens a TCP (and TLS) stream; not bounded in time: callers bound the whole connect.
    async fn open_stream(&self, what: Operation) -> Result<Box<dyn ByteStream>, Error> {
        let io_error = |e: io::Error| errors::from_io(what, &self.shown, e);
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(io_error)?;
        tcp.set_nodelay(true).map_err(io_error)?;
        let Some((tls, name)) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name.clone(), tcp)
            .await
            .map_err(io_error)?;
        Ok(Box::new(stream))
    }

    /// Runs `connect` within the connect timeout.
    async fn bounded<T>(
        &self,
        what: Operation,
        connect: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(self.connect_timeout, connect)
            .await
            .unwrap_or_else(|_| Err(errors::timed_out(what, &self.shown, self.connect_timeout)))
    }

    /// A new command connection, its driver running as a task of ours.
    async fn open_commands(&self) -> Result<Live, Error> {
        let what = Operation::Connect;
        self.bounded(what, async {
            let stream = self.open_stream(what).await?;
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(None)
                .set_response_timeout(Some(self.response_timeout));
            let (conn, driver) = MultiplexedConnection::new_with_config(&self.info, stream, config)
                .await
                .map_err(|e| errors::from_handshake(what, &self.shown, e))?;
            let closed = Arc::new(AtomicBool::new(false));
            let flag = SetOnDrop(closed.clone());
            tokio::spawn(async move {
                let _flag = flag;
                driver.await;
            });
            Ok(Live { conn, closed })
        })
        .await
    }

    /// A new pub/sub connection.
    pub(crate) async fn open_pubsub(&self) -> Result<PubSub, Error> {
        let what = Operation::Watch;
        self.bounded(what, async {
            let stream = self.open_stream(what).await?;
            PubSub::new(&self.info, stream)
                .await
                .map_err(|e| errors::from_handshake(what, &self.shown, e))
        })
        .await
    }
}

/// Sets the flag when dropped: when the driver task ends, and also when its runtime goes.
pub(crate) struct SetOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn tls_config(config: &Config) -> Result<rustls::ClientConfig, Error> {
    let bad = |message: String| Error::InvalidInput(InvalidInput::Config(message));
    let mut roots = rustls::RootCertStore::empty();
    match config.tls_ca() {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    bad(format!(
                        "cannot read CA certificates from {}: {e}",
                        path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(bad(format!("{} holds no PEM certificate", path.display())));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    bad(format!(
                        "{} holds a certificate that cannot be used: {e}",
                        path.display()
                    ))
                })?;
            }
        }
    }
    // The provider is named here, not taken from the process default: another crate in the
    // same program may have enabled a second one, and then there is no default to take.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An open command connection and whether its driver has ended.
#[derive(Clone)]
struct Live {
    conn: MultiplexedConnection,
    closed: Arc<AtomicBool>,
}

impl Live {
    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::SeqCst)
    }
}

/// One multiplexed command connection, opened again when it has closed.
pub(crate) struct CommandConnection {
    endpoint: Arc<Endpoint>,
    live: Mutex<Option<Live>>,
    /// Held while connecting, so that one task connects and the others wait for it; holds
    /// the last failure.
    connecting: tokio::sync::Mutex<Option<Error>>,
    /// Failed connects so far: a task that waited while another failed reports that
    /// failure instead of trying again at once.
    failures: AtomicU64,
}

impl CommandConnection {
    /// Connects, and checks that the server answers as Redis does, all within the connect
    /// timeout.
    pub(crate) async fn connect(endpoint: Arc<Endpoint>) -> Result<Self, Error> {
        let what = Operation::Connect;
        let limits = endpoint.clone();
        limits
            .bounded(what, async {
                let live = endpoint.open_commands().await?;
                let commands = Self {
                    endpoint,
                    live: Mutex::new(Some(live)),
                    connecting: tokio::sync::Mutex::new(None),
                    failures: AtomicU64::new(0),
                };
                commands.check_server().await?;
                Ok(commands)
            })
            .await
    }

    /// PING must answer PONG: proves the server is Redis and that we may use it (a server
    /// with a password answers NOAUTH to a client without one).
    async fn check_server(&self) -> Result<(), Error> {
        let what = Operation::Connect;
        let mut live = self.live().await?;
        let reply = redis::cmd("PING")
            .query_async::<Value>(&mut live.conn)
            .await;
        let shown = &self.endpoint.shown;
        match reply {
            Ok(Value::SimpleString(s)) if s == "PONG" => Ok(()),
            Ok(other) => {
                let message =
                    format!("the server at {shown} answered PING with {other:?}; is it Redis?");
                Err(Error::backend(errors::BACKEND, what, message, None))
            }
            Err(e) => Err(errors::from_redis(what, shown, e)),
        }
    }

    fn current(&self) -> Option<Live> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.as_ref().filter(|l| l.is_open()).cloned()
    }

    /// The open connection, or a new one.
    async fn live(&self) -> Result<Live, Error> {
        if let Some(live) = self.current() {
            return Ok(live);
        }
        let failures = self.failures.load(Ordering::SeqCst);
        let mut last_failure = self.connecting.lock().await;
        if let Some(live) = self.current() {
            return Ok(live);
        }
        if self.failures.load(Ordering::SeqCst) != failures
            && let Some(e) = last_failure.as_ref()
        {
            return Err(e.without_source());
        }
        match self.endpoint.open_commands().await {
            Ok(live) => {
                *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(live.clone());
                *last_failure = None;
                Ok(live)
            }
            Err(e) => {
                *last_failure = Some(e.without_source());
                self.failures.fetch_add(1, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Runs a script, reconnecting first if the connection has closed.
    pub(crate) async fn run(
        &self,
        what: Operation,
        script: &ScriptInvocation<'_>,
    ) -> Result<Value, Error> {
        let mut live = self.live().await.map_err(lock_core::raw::during(what))?;
        match script.invoke_async::<Value>(&mut live.conn).await {
            Ok(value) => Ok(value),
            Err(e) => {
                if e.is_io_error() || e.is_unrecoverable_error() {
                    // A timeout too: the next operation gets a fresh connection rather than
                    // queueing behind requests that may never be answered.
                    live.closed.store(true, Ordering::SeqCst);
                }
                Err(errors::from_redis(what, &self.endpoint.shown, e))
            }
        }
    }
}
