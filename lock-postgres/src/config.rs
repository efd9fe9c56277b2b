//! [`Config`]: what a `postgres://` URL says, checked before anything is sent.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use lock_core::Error;
use lock_core::raw::{Origin, Secret, config_error as bad, percent_decode, timeout_param};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use url::Url;

/// Which kind of lock a handle takes.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A lease per name on the server's clock, with a ttl (`mode=lease`, the default).
    Lease,
    /// A session advisory lock held on a connection of its own, released when that connection
    /// drops; no ttl (`mode=session`).
    Session,
}

impl Mode {
    /// The mode as the URL writes it: `lease` or `session`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lease => "lease",
            Self::Session => "session",
        }
    }
}

/// The table a handle uses when the URL names none, per mode.
const DEFAULT_LEASE_TABLE: &str = "lock_leases";
const DEFAULT_SESSION_TABLE: &str = "lock_sessions";
const DEFAULT_SCHEMA: &str = "public";
const DEFAULT_POOL_MAX: u32 = 10;
const MAX_POOL_MAX: u32 = 1000;
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes Postgres keeps of an identifier (NAMEDATALEN - 1).
const MAX_IDENT_BYTES: usize = 63;
/// What the table's name adds for the waiters' line table beside it.
const LINE_SUFFIX: &str = "_line";

/// The parameters this crate reads from the URL itself.
const OWN_PARAMS: [&str; 7] = [
    "table",
    "schema",
    "mode",
    "pool_max",
    "connect_timeout",
    "pgbouncer",
    "listen",
];

/// The libpq parameters handed on to the driver.
const LIBPQ_PARAMS: [&str; 12] = [
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "options",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
];

/// A checked Postgres configuration: where the server is, which table, which mode.
///
/// Made from a standard libpq URL plus this crate's parameters (see the crate documentation).
/// Its `Debug` output and every error made from it leave the password out.
#[derive(Clone)]
pub struct Config {
    pub(crate) connect: PgConnectOptions,
    pub(crate) schema: String,
    pub(crate) table: String,
    pub(crate) mode: Mode,
    pub(crate) pool_max: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) pgbouncer: bool,
    pub(crate) listen: bool,
    /// The password as given in the URL, only to scrub it from messages.
    secret: Option<Secret>,
}

impl Config {
    /// Parses and checks `url`: `postgres://` or `postgresql://`, a libpq URL, plus `table`,
    /// `schema`, `mode`, `pool_max`, `connect_timeout`, `pgbouncer` and `listen`.
    ///
    /// # Errors
    /// [`InvalidInput::Config`](lock_core::InvalidInput::Config) saying what is wrong, never
    /// quoting the password: a malformed
    /// URL, another scheme, an unknown parameter (a typo must not silently change the mode or
    /// the table), a bad value, or a combination that cannot work.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let parsed = Url::parse(url).map_err(|e| bad(format!("not a valid Postgres URL: {e}")))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(bad(format!(
                "URL scheme `{}` is not postgres:// or postgresql://",
                parsed.scheme()
            )));
        }
        let secret = match parsed.password() {
            Some(text) => Some(Secret::new(percent_decode("password", text)?)),
            None => None,
        };
        let mut own = LockParams::default();
        let mut handed_on = parsed.clone();
        handed_on.set_query(None);
        let mut seen = Vec::new();
        let mut secret = secret;
        {
            let mut pairs = handed_on.query_pairs_mut();
            for (key, value) in parsed.query_pairs() {
                if seen.contains(&key) {
                    return Err(bad(format!("URL parameter `{key}` is given twice")));
                }
                seen.push(key.clone());
                if OWN_PARAMS.contains(&&*key) {
                    own.set(&key, &value)?;
                } else if LIBPQ_PARAMS.contains(&&*key) {
                    if key == "sslmode" {
                        check_sslmode(&value)?;
                    }
                    if key == "password" {
                        secret = Some(Secret::new(value.to_string()));
                    }
                    pairs.append_pair(&key, &value);
                } else {
                    return Err(bad(format!(
                        "unknown URL parameter `{key}`: this backend reads {} and libpq's {}",
                        OWN_PARAMS.join(", "),
                        LIBPQ_PARAMS.join(", ")
                    )));
                }
            }
        }
        if handed_on.query() == Some("") {
            handed_on.set_query(None);
        }
        let scrub = |text: String| match &secret {
            Some(secret) => secret.scrub(text),
            None => text,
        };
        let mut connect = PgConnectOptions::from_str(handed_on.as_str())
            .map_err(|e| bad(scrub(format!("cannot use the Postgres URL: {e}"))))?;
        if connect.get_port() == 0 {
            return Err(bad(
                "the Postgres URL names port 0, where no server can listen; write a port from 1 to 65535",
            ));
        }
        if connect.get_application_name().is_none() {
            connect = connect.application_name("lock-postgres");
        }
        own.build(connect, secret)
    }

    /// The connection options handed to the driver (they hold the password; never log them).
    pub(crate) fn connect_options(&self) -> PgConnectOptions {
        self.connect.clone()
    }

    /// The lock mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The schema of the table.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The table, as `schema.table`.
    pub fn qualified_table(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// The table as SQL: both identifiers quoted.
    pub(crate) fn quoted_table(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }

    /// The waiters' line table beside the lock table: its name.
    pub(crate) fn line_table(&self) -> String {
        format!("{}{LINE_SUFFIX}", self.table)
    }

    /// The waiters' line table as SQL: both identifiers quoted.
    pub(crate) fn quoted_line_table(&self) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(&self.line_table())
        )
    }

    /// The most connections the handle's pool opens.
    pub fn pool_max(&self) -> u32 {
        self.pool_max
    }

    /// How long connecting, and each query, may take before the attempt gives up.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Whether the server is reached through a transaction-pooling PgBouncer.
    pub fn pgbouncer(&self) -> bool {
        self.pgbouncer
    }

    /// Whether waiters are woken by LISTEN/NOTIFY (otherwise they poll).
    pub fn listen(&self) -> bool {
        self.listen
    }

    /// `user@host:port/database`, for messages.
    pub fn target(&self) -> String {
        let c = &self.connect;
        let place = match c.get_socket() {
            Some(dir) => format!("{}:{}", dir.display(), c.get_port()),
            None => format!("{}:{}", c.get_host(), c.get_port()),
        };
        format!(
            "{}@{place}/{}",
            c.get_username(),
            c.get_database().unwrap_or(c.get_username())
        )
    }

    /// `text` without the password in it.
    pub(crate) fn scrub(&self, text: String) -> String {
        match &self.secret {
            Some(secret) => secret.scrub(text),
            None => text,
        }
    }

    /// Postgres at [`target`](Self::target), as error messages name it.
    pub(crate) fn origin(&self) -> Origin {
        Origin::new(crate::errors::BACKEND, self.target())
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("target", &self.target())
            .field("password", &self.secret)
            .field("ssl_mode", &self.connect.get_ssl_mode())
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("mode", &self.mode)
            .field("pool_max", &self.pool_max)
            .field("connect_timeout", &self.connect_timeout)
            .field("pgbouncer", &self.pgbouncer)
            .field("listen", &self.listen)
            .finish()
    }
}

impl FromStr for Config {
    type Err = Error;
    fn from_str(url: &str) -> Result<Self, Error> {
        Self::from_url(url)
    }
}

/// The URL parameters this crate reads itself (the rest go to the driver), as read.
#[derive(Default)]
struct LockParams {
    table: Option<String>,
    schema: Option<String>,
    mode: Option<Mode>,
    pool_max: Option<u32>,
    connect_timeout: Option<Duration>,
    pgbouncer: Option<bool>,
    listen: Option<bool>,
}

impl LockParams {
    fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        match key {
            "table" => {
                let max = MAX_IDENT_BYTES - LINE_SUFFIX.len();
                self.table = Some(identifier("table", value, max)?);
            }
            "schema" => self.schema = Some(identifier("schema", value, MAX_IDENT_BYTES)?),
            "mode" => {
                self.mode = Some(match value {
                    "lease" => Mode::Lease,
                    "session" => Mode::Session,
                    _ => return Err(bad(format!("mode={value:?} is not `lease` or `session`"))),
                });
            }
            "pool_max" => {
                self.pool_max = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_POOL_MAX).contains(n))
                        .ok_or_else(|| {
                            bad(format!(
                                "pool_max={value:?} is not a number from 1 to {MAX_POOL_MAX}"
                            ))
                        })?,
                );
            }
            "connect_timeout" => self.connect_timeout = Some(timeout_param(key, value)?),
            "pgbouncer" => self.pgbouncer = Some(boolean(key, value)?),
            "listen" => self.listen = Some(boolean(key, value)?),
            _ => unreachable!("only OWN_PARAMS reach here"),
        }
        Ok(())
    }

    fn build(self, connect: PgConnectOptions, secret: Option<Secret>) -> Result<Config, Error> {
        let mode = self.mode.unwrap_or(Mode::Lease);
        let pgbouncer = self.pgbouncer.unwrap_or(false);
        if pgbouncer && mode == Mode::Session {
            return Err(bad(
                "mode=session cannot work through a transaction-pooling PgBouncer \
                 (pgbouncer=true): the advisory lock lives on a server connection that PgBouncer \
                 hands to other clients after each transaction; connect to Postgres directly",
            ));
        }
        if pgbouncer && self.listen == Some(true) {
            return Err(bad(
                "listen=true cannot work through a transaction-pooling PgBouncer \
                 (pgbouncer=true): LISTEN needs a session of its own; waiters poll instead",
            ));
        }
        let connect = if pgbouncer {
            // Named prepared statements do not survive a change of server connection. (And
            // PgBouncer refuses the startup parameter `options`, so the server's own
            // synchronous_commit setting applies.)
            connect.statement_cache_capacity(0)
        } else if connect
            .get_options()
            .is_some_and(|o| o.contains("synchronous_commit"))
        {
            connect
        } else {
            // A grant the client has seen must survive a crash, or a token could come again.
            connect.options([("synchronous_commit", "on")])
        };
        let default_table = match mode {
            Mode::Lease => DEFAULT_LEASE_TABLE,
            Mode::Session => DEFAULT_SESSION_TABLE,
        };
        Ok(Config {
            connect,
            schema: self.schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_owned()),
            table: self.table.unwrap_or_else(|| default_table.to_owned()),
            mode,
            pool_max: self.pool_max.unwrap_or(DEFAULT_POOL_MAX),
            connect_timeout: self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            pgbouncer,
            listen: self.listen.unwrap_or(!pgbouncer),
            secret,
        })
    }
}

fn boolean(key: &str, value: &str) -> Result<bool, Error> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(format!("{key}={value:?} is not `true` or `false`"))),
    }
}

fn check_sslmode(value: &str) -> Result<(), Error> {
    const MODES: [&str; 6] = [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ];
    if MODES.contains(&value) && value.parse::<PgSslMode>().is_ok() {
        return Ok(());
    }
    Err(bad(format!(
        "sslmode={value:?} is not one of {}",
        MODES.join(", ")
    )))
}

/// A table or schema name: 1 to `max` bytes of lowercase ASCII letters, digits and `_`, not
/// starting with a digit. Anything else is refused rather than quoted into surprises.
fn identifier(what: &str, value: &str, max: usize) -> Result<String, Error> {
    let ok = !value.is_empty()
        && value.len() <= max
        && !value.starts_with(|c: char| c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(bad(format!(
            "{what}={value:?} is not 1 to {max} lowercase letters, digits and _, \
             starting with a letter or _"
        )));
    }
    Ok(value.to_owned())
}

/// `ident` as a quoted SQL identifier.
pub(crate) fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use lock_core::InvalidInput;

    use super::*;

    /// What a URL should give: `Ok((mode, schema.table, pool_max, timeout s, pgbouncer,
    /// listen))`, or `Err(words the message must hold)`.
    type Want = Result<(Mode, &'static str, u32, u64, bool, bool), &'static str>;

    #[test]
    fn urls_are_read_and_checked() {
        use Mode::{Lease, Session};
        let cases: &[(&str, Want)] = &[
            (
                "postgres://u@h/db",
                Ok((Lease, "public.lock_leases", 10, 10, false, true)),
            ),
            (
                "postgresql://u@h:5433/db",
                Ok((Lease, "public.lock_leases", 10, 10, false, true)),
            ),
            (
                "postgres://u@h/db?mode=session",
                Ok((Session, "public.lock_sessions", 10, 10, false, true)),
            ),
            (
                "postgres://u@h/db?mode=lease&table=jobs&schema=ops",
                Ok((Lease, "ops.jobs", 10, 10, false, true)),
            ),
            (
                "postgres://u@h/db?pool_max=3&connect_timeout=2",
                Ok((Lease, "public.lock_leases", 3, 2, false, true)),
            ),
            (
                "postgres://u@h/db?connect_timeout=5s",
                Ok((Lease, "public.lock_leases", 10, 5, false, true)),
            ),
            (
                "postgres://u@h/db?pgbouncer=true",
                Ok((Lease, "public.lock_leases", 10, 10, true, false)),
            ),
            (
                "postgres://u@h/db?listen=false",
                Ok((Lease, "public.lock_leases", 10, 10, false, false)),
            ),
            (
                "postgres://u@h/db?sslmode=require&application_name=x",
                Ok((Lease, "public.lock_leases", 10, 10, false, true)),
            ),
            (
                "postgres://u@h/db?table=_t1",
                Ok((Lease, "public._t1", 10, 10, false, true)),
            ),
            // 58 bytes: the line table beside it (`_line`) still fits Postgres's 63.
            (
                "postgres://u@h/db?table=tttttttttttttttttttttttttttttttttttttttttttttttttttttttttt",
                Ok((
                    Lease,
                    "public.tttttttttttttttttttttttttttttttttttttttttttttttttttttttttt",
                    10,
                    10,
                    false,
                    true,
                )),
            ),
            (
                "postgres://u@h/db?table=ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt",
                Err("is not 1 to 58 lowercase"),
            ),
            (
                "postgres://u@h/db?schema=sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss",
                Ok((
                    Lease,
                    "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss.lock_leases",
                    10,
                    10,
                    false,
                    true,
                )),
            ),
            ("redis://h", Err("scheme `redis`")),
            (
                "postgres://u@h/db?sslmode=sometimes",
                Err("sslmode=\"sometimes\" is not one of"),
            ),
            (
                "postgres://u@h/db?mode=exclusive",
                Err("mode=\"exclusive\""),
            ),
            (
                "postgres://u@h/db?mod=session",
                Err("unknown URL parameter `mod`"),
            ),
            ("postgres://u@h/db?table=a;drop", Err("table=\"a;drop\"")),
            ("postgres://u@h/db?table=Jobs", Err("lowercase")),
            ("postgres://u@h/db?table=1jobs", Err("table=\"1jobs\"")),
            ("postgres://u@h/db?table=", Err("table=\"\"")),
            ("postgres://u@h/db?schema=a%22b", Err("schema=\"a\\\"b\"")),
            ("postgres://u@h/db?table=a&table=b", Err("given twice")),
            ("postgres://u@h/db?pool_max=0", Err("pool_max=\"0\"")),
            (
                "postgres://u@h/db?connect_timeout=0",
                Err("never waits forever"),
            ),
            (
                "postgres://u@h/db?connect_timeout=1.5",
                Err("not a duration"),
            ),
            (
                "postgres://u@h/db?connect_timeout=3601",
                Err("never waits forever"),
            ),
            ("postgres://u:p%zz@h/db", Err("password in the URL")),
            ("postgres://u@h/db?pgbouncer=yes", Err("pgbouncer=\"yes\"")),
            (
                "postgres://u@h/db?pgbouncer=true&mode=session",
                Err("mode=session cannot work"),
            ),
            (
                "postgres://u@h/db?pgbouncer=true&listen=true",
                Err("listen=true cannot work"),
            ),
            ("postgres://u@h:99999/db", Err("not a valid Postgres URL")),
            ("postgres://u@h:0/db", Err("port 0")),
            ("postgres://u@h/db?port=0", Err("port 0")),
        ];
        for (url, want) in cases {
            match (Config::from_url(url), want) {
                (Ok(c), Ok((mode, table, pool, secs, bouncer, listen))) => {
                    assert_eq!(c.mode(), *mode, "{url}");
                    assert_eq!(c.qualified_table(), *table, "{url}");
                    assert_eq!(c.pool_max(), *pool, "{url}");
                    assert_eq!(c.connect_timeout(), Duration::from_secs(*secs), "{url}");
                    assert_eq!(c.pgbouncer(), *bouncer, "{url}");
                    assert_eq!(c.listen(), *listen, "{url}");
                }
                (Err(e), Err(words)) => {
                    assert!(
                        matches!(e, Error::InvalidInput(InvalidInput::Config(_))),
                        "{url}: {e:?}"
                    );
                    assert!(e.to_string().contains(words), "{url}: {e} lacks {words:?}");
                }
                (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        for url in [
            "postgres://alice:s3cr%2Ft-pw@db.example:5433/app?sslmode=disable",
            "postgres://alice@db.example/app?password=s3cr/t-pw",
        ] {
            let config = Config::from_url(url).unwrap();
            let debug = format!("{config:?}");
            assert!(!debug.contains("s3cr"), "{debug}");
            assert!(debug.contains("***"), "{debug}");
            assert!(
                config.target().starts_with("alice@db.example:"),
                "{}",
                config.target()
            );
            assert_eq!(
                config.scrub("x s3cr/t-pw y".into()),
                "x *** y",
                "a message holding the password is scrubbed"
            );
        }
        for url in [
            "postgres://alice:s3cr3t-pw@h/db?sslmode=bogus",
            "postgres://alice:s3cr3t-pw@h/db?nope=1",
            "postgres://alice:s3cr3t-pw@h:70000/db",
        ] {
            let e = Config::from_url(url).unwrap_err();
            assert!(!format!("{e} {e:?}").contains("s3cr3t"), "{e:?}");
        }
    }

    #[test]
    fn commits_are_synchronous_unless_the_url_says_otherwise() {
        let options = |url: &str| {
            Config::from_url(url)
                .unwrap()
                .connect
                .get_options()
                .map(str::to_owned)
        };
        assert_eq!(
            options("postgres://u@h/db").as_deref(),
            Some("-c synchronous_commit=on")
        );
        assert_eq!(
            options("postgres://u@h/db?options=-c%20synchronous_commit%3Doff").as_deref(),
            Some("-c synchronous_commit=off")
        );
        assert_eq!(options("postgres://u@h/db?pgbouncer=true"), None);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a"), "\"a\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        let c = Config::from_url("postgres://u@h/db?schema=s&table=t").unwrap();
        assert_eq!(c.quoted_table(), "\"s\".\"t\"");
    }
}
