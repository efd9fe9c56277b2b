//! [`Config`]: what a `redis://` or `rediss://` URL says, checked, with the password kept out
//! of every message.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lock_core::Error;
use lock_core::raw::{Secret, config_error as bad, percent_decode, redact_url, timeout_param};
use url::{Host, Url};

/// The port when the URL names none.
pub const DEFAULT_PORT: u16 = 6379;
/// The key prefix when the URL names none.
pub const DEFAULT_PREFIX: &str = "lock:";
/// How long connecting may take when the URL does not say.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one reply may take when the URL does not say.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest prefix accepted, in bytes.
const MAX_PREFIX_BYTES: usize = 255;

/// The query keys a URL may carry.
const QUERY_KEYS: &str = "prefix, connect_timeout, response_timeout, tls_ca";

/// Where the Redis server is and how to talk to it, read from
/// `redis://[user:pass@]host[:port][/db][?prefix=P&connect_timeout=DUR&response_timeout=DUR]`
/// or `rediss://…` (TLS, with `&tls_ca=/path/ca.pem` to trust a private CA).
///
/// Its `Debug` output and every error it makes show the password as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    tls: bool,
    host: String,
    port: u16,
    db: u32,
    user: Option<String>,
    password: Option<Secret>,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    tls_ca: Option<PathBuf>,
}

impl Config {
    /// Reads a `redis://` or `rediss://` URL.
    ///
    /// User and password are percent-decoded; the database is a number (default 0); the query
    /// keys are `prefix` (default `lock:`; no `{` or `}`, which would break the key layout),
    /// `connect_timeout` and `response_timeout` (durations such as `500ms` or `5s`, or whole
    /// seconds such as `10`, from 1 ms to 1 hour; default 5 s each) and, for `rediss` only, `tls_ca` (a PEM file of the CA certificates to trust
    /// instead of the public web roots).
    ///
    /// # Errors
    /// [`InvalidInput::Config`](lock_core::InvalidInput::Config) saying what is wrong, never
    /// quoting the password.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let shown = redact_url(url);
        let parsed =
            Url::parse(url).map_err(|e| bad(format!("cannot read the Redis URL {shown}: {e}")))?;
        let tls = match parsed.scheme() {
            "redis" => false,
            "rediss" => true,
            other => {
                return Err(bad(format!(
                    "the Redis URL {shown} has scheme {other:?}; it must be redis:// or rediss://"
                )));
            }
        };
        let host = match parsed.host() {
            Some(Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(bad(format!("the Redis URL {shown} names no host"))),
        };
        let port = match parsed.port() {
            Some(0) => return Err(bad(format!("the Redis URL {shown} has port 0"))),
            Some(port) => port,
            None => DEFAULT_PORT,
        };
        let db = match parsed.path().trim_start_matches('/') {
            "" => 0,
            text => text.parse::<u32>().map_err(|_| {
                bad(format!(
                    "the Redis URL {shown} has database {text:?}; it must be a number such as /0"
                ))
            })?,
        };
        let user = match parsed.username() {
            "" => None,
            text => Some(percent_decode("user", text)?),
        };
        let password = match parsed.password() {
            None => None,
            Some(text) => Some(Secret::new(percent_decode("password", text)?)),
        };
        if user.is_some() && password.is_none() {
            return Err(bad(format!(
                "the Redis URL {shown} names a user but no password: write user:password@host"
            )));
        }
        if parsed.fragment().is_some() {
            return Err(bad(format!(
                "the Redis URL {shown} has a #fragment, which means nothing here"
            )));
        }
        let mut config = Self {
            tls,
            host,
            port,
            db,
            user,
            password,
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            tls_ca: None,
        };
        let mut seen = Vec::new();
        for (key, value) in parsed.query_pairs() {
            if seen.contains(&key) {
                return Err(bad(format!("the Redis URL {shown} gives {key:?} twice")));
            }
            match &*key {
                "prefix" => config.prefix = check_prefix(&value)?,
                "connect_timeout" => config.connect_timeout = timeout_param(&key, &value)?,
                "response_timeout" => config.response_timeout = timeout_param(&key, &value)?,
                "tls_ca" if !tls => {
                    return Err(bad(
                        "tls_ca is for rediss:// URLs; redis:// does not use TLS",
                    ));
                }
                "tls_ca" if value.is_empty() => return Err(bad("tls_ca names no file")),
                "tls_ca" => config.tls_ca = Some(PathBuf::from(&*value)),
                other => {
                    return Err(bad(format!(
                        "the Redis URL {shown} has the unknown option {other:?}; known are {QUERY_KEYS}"
                    )));
                }
            }
            seen.push(key);
        }
        Ok(config)
    }

    /// `host:port`, as messages show the server.
    pub fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the connection uses TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The host name or address, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database number.
    pub fn db(&self) -> u32 {
        self.db
    }

    /// The user, if the URL names one.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether the URL carries a password (which is never shown).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_ref().map(Secret::expose)
    }

    /// What every key and channel of this handle starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How long connecting may take: TCP, TLS, authentication and the first answer.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How long one operation may wait for its reply.
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// The PEM file of CA certificates to trust for `rediss://`, if given.
    pub fn tls_ca(&self) -> Option<&std::path::Path> {
        self.tls_ca.as_deref()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("tls", &self.tls)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
}

fn check_prefix(prefix: &str) -> Result<String, Error> {
    if prefix.len() > MAX_PREFIX_BYTES {
        return Err(bad(format!(
            "the prefix is {} bytes long; the most is {MAX_PREFIX_BYTES}",
            prefix.len()
        )));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| matches!(c, '{' | '}') || c.is_control())
    {
        return Err(bad(format!(
            "the prefix {prefix:?} has {c:?}; braces (which pick the Redis Cluster slot) and control characters are not allowed"
        )));
    }
    Ok(prefix.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a good URL reads as: (tls, host, port, db, user, password, prefix, connect ms).
    type Want<'a> = (
        bool,
        &'a str,
        u16,
        u32,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        u64,
    );

    #[test]
    fn good_urls_are_read() {
        let cases: &[(&str, Want)] = &[
            (
                "redis://127.0.0.1",
                (false, "127.0.0.1", 6379, 0, None, None, "lock:", 5000),
            ),
            (
                "redis://localhost:6380/",
                (false, "localhost", 6380, 0, None, None, "lock:", 5000),
            ),
            (
                "redis://h:1/15",
                (false, "h", 1, 15, None, None, "lock:", 5000),
            ),
            (
                "redis://h:65535/0",
                (false, "h", 65535, 0, None, None, "lock:", 5000),
            ),
            (
                "rediss://h",
                (true, "h", 6379, 0, None, None, "lock:", 5000),
            ),
            (
                "redis://:pw@h",
                (false, "h", 6379, 0, None, Some("pw"), "lock:", 5000),
            ),
            (
                "redis://u:p%40ss%3Aw@h",
                (
                    false,
                    "h",
                    6379,
                    0,
                    Some("u"),
                    Some("p@ss:w"),
                    "lock:",
                    5000,
                ),
            ),
            (
                "redis://[::1]:7000/2",
                (false, "::1", 7000, 2, None, None, "lock:", 5000),
            ),
            (
                "redis://h?prefix=app%3Alocks%3A",
                (false, "h", 6379, 0, None, None, "app:locks:", 5000),
            ),
            (
                "redis://h?prefix=",
                (false, "h", 6379, 0, None, None, "", 5000),
            ),
            (
                "redis://h/3?connect_timeout=250ms&prefix=x",
                (false, "h", 6379, 3, None, None, "x", 250),
            ),
            (
                "redis://h?connect_timeout=2s",
                (false, "h", 6379, 0, None, None, "lock:", 2000),
            ),
            (
                "redis://h?connect_timeout=5",
                (false, "h", 6379, 0, None, None, "lock:", 5000),
            ),
        ];
        for (url, want) in cases {
            let c = Config::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            let got = (
                c.tls(),
                c.host(),
                c.port(),
                c.db(),
                c.user(),
                c.password(),
                c.prefix(),
                c.connect_timeout().as_millis() as u64,
            );
            assert_eq!(got, *want, "{url}");
        }
        let c = Config::from_url("rediss://h?tls_ca=/etc/ca.pem&response_timeout=1s").unwrap();
        assert_eq!(c.tls_ca(), Some(std::path::Path::new("/etc/ca.pem")));
        assert_eq!(c.response_timeout(), Duration::from_secs(1));
        assert_eq!(
            Config::from_url("redis://[::1]").unwrap().endpoint(),
            "[::1]:6379"
        );
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("redis://h:0", "port 0"),
            ("redis://h:65536", "invalid port"),
            ("redis://h/x", "database \"x\""),
            ("redis://h/-1", "database \"-1\""),
            ("redis://h/1/2", "database \"1/2\""),
            ("redis://", "no host"),
            ("redis://:6379", "cannot read"),
            ("redis:///0", "no host"),
            ("redis://h?colour=red", "unknown option \"colour\""),
            ("redis://h?prefix=a&prefix=b", "\"prefix\" twice"),
            ("redis://h?prefix=%7Bx%7D", "braces"),
            ("redis://h?connect_timeout=5x", "not a duration"),
            ("redis://h?connect_timeout=1.5", "not a duration"),
            ("redis://h?connect_timeout=0s", "out of range"),
            ("redis://h?response_timeout=2h", "out of range"),
            ("redis://u:p%zz@h", "password in the URL"),
            ("redis://h?response_timeout=soon", "not a duration"),
            ("redis://h?tls_ca=/ca.pem", "rediss"),
            ("redis://h#insecure", "fragment"),
            ("redis://user@h", "no password"),
            ("http://h", "redis:// or rediss://"),
            ("not a url", "cannot read"),
        ];
        for (url, want) in cases {
            let e = Config::from_url(url).expect_err(url).to_string();
            assert!(e.contains(want), "{url}: {e:?} should say {want:?}");
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let secret = "hunter2";
        let urls = [
            "redis://u:hunter2@h/x",
            "redis://u:hunter2@h:0",
            "redis://u:hunter2@h?bogus=1",
            "redis://:hunter2@h#frag",
            "redis://u:hunter2@h:99999",
            "redis://u:hunter2@[bad",
            "rediss://u:hunter2@h?prefix=%7B",
            "redis://u:hunter2%ff@h",
        ];
        for url in urls {
            let e = Config::from_url(url).expect_err(url);
            let (shown, debug) = (e.to_string(), format!("{e:?}"));
            assert!(
                !shown.contains(secret) && !debug.contains(secret),
                "{url}: {shown} / {debug}"
            );
        }
        let c = Config::from_url("redis://u:hunter2@h").unwrap();
        assert!(c.has_password());
        let debug = format!("{c:?}");
        assert!(!debug.contains(secret) && debug.contains("***"), "{debug}");
    }
}
