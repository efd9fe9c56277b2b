//! For backend authors (re-exported by `raw`): what every backend needs to read its configuration and to report what
//! went wrong the same way as the others. Users of locks need none of it.
//!
//! - errors: [`corrupt`] for stored state this library did not write, [`config_error`] for a
//!   setting that cannot be used, and [`Origin`], which words a failure from the operation and
//!   the backend it happened in;
//! - secrets: [`Secret`] holds a password and keeps it out of `Debug` and messages,
//!   [`redact_url`] shows a URL without its password, both as [`REDACTED`];
//! - URL values: [`percent_decode`] (strict) and [`timeout_param`], which reads every
//!   backend's timeouts the same way.

use std::fmt;
use std::time::Duration;

use crate::{BoxError, Error, InvalidInput, LockName, Operation};

/// What a password shows as wherever it would otherwise be printed.
pub const REDACTED: &str = "***";

/// The longest timeout a URL may set: a backend never waits forever, nor nearly so.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// The error for the state stored for `name` at `location` (a path, a key, a table) that this
/// library did not write; `detail` says what is wrong with it.
pub fn corrupt(name: &LockName, location: impl fmt::Display, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        name: name.to_string(),
        location: location.to_string(),
        detail: detail.into(),
    }
}

/// The error for a configuration value (URL, option) that cannot be used. `message` must not
/// hold a password (see [`Secret::scrub`] and [`redact_url`]).
pub fn config_error(message: impl Into<String>) -> Error {
    InvalidInput::Config(message.into()).into()
}

/// Where a backend's operations go: the backend's name and the server or place, as every
/// message about a failure there names them (`"{backend} at {target} {what}"`, after the
/// operation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The backend, as users know it: `"Postgres"`, `"Redis"`.
    pub backend: &'static str,
    /// The server or place, without secrets: `host:port`, `user@host:port/db`, a directory.
    pub target: String,
}

impl Origin {
    /// The origin of `backend` at `target`.
    pub fn new(backend: &'static str, target: impl Into<String>) -> Self {
        Self {
            backend,
            target: target.into(),
        }
    }

    /// [`Error::Unreachable`] for `op`, saying `"{backend} at {target} {what}"`.
    pub fn unreachable(
        &self,
        op: Operation,
        what: impl fmt::Display,
        source: Option<BoxError>,
    ) -> Error {
        Error::unreachable(self.backend, op, self.say(what), source)
    }

    /// [`Error::Backend`] for `op`, saying `"{backend} at {target} {what}"`.
    pub fn refused(
        &self,
        op: Operation,
        what: impl fmt::Display,
        source: Option<BoxError>,
    ) -> Error {
        Error::backend(self.backend, op, self.say(what), source)
    }

    /// [`Error::Unreachable`] for `op` getting no answer within `after`.
    pub fn timed_out(&self, op: Operation, after: Duration) -> Error {
        self.unreachable(op, format_args!("did not answer within {after:?}"), None)
    }

    fn say(&self, what: impl fmt::Display) -> String {
        format!("{} at {} {what}", self.backend, self.target)
    }
}

/// Sets the operation of an [`Error::Unreachable`] or [`Error::Backend`] to `op`, for
/// `map_err` at a trait method's edge: the helpers below it report what failed, and the
/// method says which operation it was (a `try_acquire` that reads the lock again to name its
/// holder fails as a `try_acquire`, not an `inspect`).
pub fn during(op: Operation) -> impl FnOnce(Error) -> Error {
    move |mut e| {
        if let Error::Unreachable { operation, .. } | Error::Backend { operation, .. } = &mut e {
            *operation = op;
        }
        e
    }
}

/// A password: kept for the connection, shown as [`REDACTED`] in `Debug`, and scrubbed from
/// messages that might quote it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Keeps `password`.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself, to hand to the driver; never print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the password replaced by [`REDACTED`]. A password of
    /// under 4 bytes is left alone: replacing it would garble every message, and it says
    /// little.
    pub fn scrub(&self, text: String) -> String {
        if self.0.len() >= 4 && text.contains(&self.0) {
            text.replace(&self.0, REDACTED)
        } else {
            text
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// `url` with its password shown as [`REDACTED`]: the one after `user:` before the host, and
/// the value of a `password=` query parameter. Works on text that does not parse as a URL too:
/// text without `://` holding an `@` shows as `…`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.contains('@') {
            "…".to_owned()
        } else {
            url.to_owned()
        };
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}@{}", &authority[at + 1..]),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{}", redact_query(tail))
}

/// `tail` (path, query, fragment) with the value of each `password=` parameter redacted.
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                format!("{key}={REDACTED}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
    format!("{path}?{}{fragment}", pairs.join("&"))
}

/// `text` (the `what` of a URL: its user, its password) percent-decoded, strictly: every `%`
/// starts an escape of two hex digits, and the bytes are UTF-8.
///
/// # Errors
/// [`InvalidInput::Config`] naming `what`, never quoting `text`.
pub fn percent_decode(what: &str, text: &str) -> Result<String, Error> {
    let bytes = text.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    let decoded = percent_encoding::percent_decode(bytes).decode_utf8();
    match decoded {
        Ok(text) if well_formed => Ok(text.into_owned()),
        _ => Err(config_error(format!(
            "the {what} in the URL is not valid percent-encoded UTF-8"
        ))),
    }
}

/// A URL's timeout parameter `key=value`: a duration such as `500ms`, `5s` or `1m`, or a bare
/// whole number of seconds (`10`), from 1 ms to [`MAX_TIMEOUT`].
///
/// # Errors
/// [`InvalidInput::Config`] saying what is wrong.
pub fn timeout_param(key: &str, value: &str) -> Result<Duration, Error> {
    let parsed = match value.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(value).map_err(|e| e.to_string()),
    };
    let duration = parsed.map_err(|e| {
        config_error(format!(
            "{key}={value:?} is not a duration such as 500ms or 5s, or whole seconds such as 10: {e}"
        ))
    })?;
    if duration < Duration::from_millis(1) || duration > MAX_TIMEOUT {
        return Err(config_error(format!(
            "{key}={value:?} is out of range: it must be at least 1ms and at most {}s (a \
             backend never waits forever)",
            MAX_TIMEOUT.as_secs()
        )));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_the_same_everywhere() {
        for (value, want) in [
            ("5s", Ok(5_000)),
            ("500ms", Ok(500)),
            ("10", Ok(10_000)),
            ("1m", Ok(60_000)),
            ("1h", Ok(3_600_000)),
            ("3600", Ok(3_600_000)),
            ("1ms", Ok(1)),
            ("0", Err("out of range")),
            ("0s", Err("out of range")),
            ("3601", Err("out of range")),
            ("2h", Err("out of range")),
            ("1.5", Err("not a duration")),
            ("soon", Err("not a duration")),
            ("", Err("not a duration")),
            ("-1", Err("not a duration")),
        ] {
            match (timeout_param("connect_timeout", value), want) {
                (Ok(d), Ok(ms)) => assert_eq!(d, Duration::from_millis(ms), "{value}"),
                (Err(e), Err(words)) => {
                    assert!(e.is_invalid_input(), "{value}");
                    assert!(e.to_string().contains(words), "{value}: {e}");
                    assert!(e.to_string().contains("connect_timeout="), "{value}: {e}");
                }
                (got, want) => panic!("{value}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn urls_show_no_password() {
        for (url, want) in [
            ("redis://u:hunter2@h:1/0?x=1", "redis://u:***@h:1/0?x=1"),
            ("redis://:hunter2@h", "redis://:***@h"),
            (
                "postgres://u:hunter2@h/db?sslmode=require",
                "postgres://u:***@h/db?sslmode=require",
            ),
            (
                "postgres://u@h/db?sslmode=require&password=hunter2#x",
                "postgres://u@h/db?sslmode=require&password=***#x",
            ),
            ("redis://u:hunter2@[bad", "redis://u:***@[bad"),
            ("redis://u:p@ss@h/0", "redis://u:***@h/0"),
            ("redis://user@h", "redis://user@h"),
            ("redis://h:1", "redis://h:1"),
            ("u:hunter2@h", "…"),
            ("no url", "no url"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn secrets_are_scrubbed_and_never_shown() {
        let secret = Secret::new("s3cr/t-pw");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(secret.scrub("x s3cr/t-pw y".into()), "x *** y");
        assert_eq!(secret.expose(), "s3cr/t-pw");
        assert_eq!(Secret::new("pw").scrub("a pw b".into()), "a pw b");
    }

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(percent_decode("password", "p%40ss%3Aw").unwrap(), "p@ss:w");
        assert_eq!(percent_decode("password", "plain").unwrap(), "plain");
        assert_eq!(percent_decode("user", "%C3%A9").unwrap(), "é");
        for bad in ["a%zz", "a%4", "a%", "%ff", "x%C3"] {
            let e = percent_decode("password", bad).unwrap_err().to_string();
            assert!(
                e.contains("the password in the URL is not valid"),
                "{bad}: {e}"
            );
            assert!(!e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn origins_word_failures_alike() {
        let origin = Origin::new("Redis", "h:6379");
        let e = origin.timed_out(Operation::Renew, Duration::from_secs(5));
        assert_eq!(e.operation(), Some(Operation::Renew));
        assert_eq!(e.backend_name(), Some("Redis"));
        assert_eq!(
            e.to_string(),
            "backend unreachable: renew: Redis at h:6379 did not answer within 5s"
        );
        let e = origin.refused(Operation::Release, "answered with an error: NOPERM", None);
        assert!(
            matches!(
                e,
                Error::Backend {
                    operation: Operation::Release,
                    backend: "Redis",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "backend error: release: Redis at h:6379 answered with an error: NOPERM"
        );
    }
}
