//! One URL picks the backend: [`parse_url`] says which, [`connect`] opens it.

use std::sync::Arc;

use lock_core::raw::{config_error, redact_url as redact};
use lock_core::{Error, Lock};

/// The environment variable read when no URL is given.
pub const LOCK_URL: &str = "LOCK_URL";

/// The schemes this library knows, whether or not this build has their feature.
const SCHEMES: &str = "file://, redis://, rediss://, postgres://, postgresql://";

/// The backend a URL names.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq)]
pub enum BackendKind {
    /// `file:///abs/dir`: lock files in that directory; kept whole for the file backend to read.
    File(String),
    /// `redis://…` or `rediss://…`, kept whole for the Redis backend to read.
    Redis(String),
    /// `postgres://…` or `postgresql://…`, kept whole for the Postgres backend to read.
    Postgres(String),
}

impl std::fmt::Debug for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(dir) => f.debug_tuple("File").field(dir).finish(),
            Self::Redis(url) => f.debug_tuple("Redis").field(&redact(url)).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&redact(url)).finish(),
        }
    }
}

/// Says which backend `url` names, checking what can be checked without connecting.
///
/// # Errors
/// [`InvalidInput::Config`](lock_core::InvalidInput::Config) for a malformed URL, an unknown
/// scheme (naming the supported ones), a scheme whose cargo feature this build lacks (naming the feature), or a `file`
/// URL that is not an absolute local directory. No message holds a password.
pub fn parse_url(url: &str) -> Result<BackendKind, Error> {
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(config_error(format!(
            "{:?} is not a lock URL: expected one of {SCHEMES}",
            redact(url)
        )));
    };
    let kind = match scheme.to_ascii_lowercase().as_str() {
        "file" => BackendKind::File(url.to_owned()),
        "redis" | "rediss" => BackendKind::Redis(url.to_owned()),
        "postgres" | "postgresql" => BackendKind::Postgres(url.to_owned()),
        other => {
            return Err(config_error(format!(
                "unknown lock URL scheme {other:?}: supported are {SCHEMES}"
            )));
        }
    };
    let feature = match &kind {
        BackendKind::File(_) => ("file", cfg!(feature = "file")),
        BackendKind::Redis(_) => ("redis", cfg!(feature = "redis")),
        BackendKind::Postgres(_) => ("postgres", cfg!(feature = "postgres")),
    };
    if !feature.1 {
        return Err(config_error(format!(
            "{scheme}:// URLs need the `{}` cargo feature of the `lock` crate, which this build does not have",
            feature.0
        )));
    }
    // A file URL is checked here already: it needs no connection to tell.
    #[cfg(feature = "file")]
    if let BackendKind::File(url) = &kind {
        lock_file::dir_from_url(url)?;
    }
    Ok(kind)
}

/// Opens the backend `url` names.
///
/// # Errors
/// As [`parse_url`], and the backend's own error when it cannot be opened or reached.
pub async fn connect(url: &str) -> Result<Arc<dyn Lock>, Error> {
    match parse_url(url)? {
        #[cfg(feature = "file")]
        BackendKind::File(url) => Ok(Arc::new(lock_file::FileLock::from_url(&url)?)),
        #[cfg(feature = "redis")]
        BackendKind::Redis(url) => Ok(Arc::new(lock_redis::RedisLock::connect(&url).await?)),
        #[cfg(feature = "postgres")]
        BackendKind::Postgres(url) => lock_postgres::connect(&url).await,
        #[allow(unreachable_patterns)]
        _ => unreachable!("parse_url refuses schemes without their feature"),
    }
}

/// Opens the backend of the `LOCK_URL` environment variable or, when it is unset or empty,
/// the file backend in a per-user directory private to the user (`$XDG_RUNTIME_DIR/lock`, or
/// `/tmp/lock-<uid>`; mode `0700`, refused if another user owns it).
///
/// # Errors
/// As [`connect`].
pub async fn connect_default() -> Result<Arc<dyn Lock>, Error> {
    match std::env::var(LOCK_URL) {
        Ok(url) if !url.is_empty() => connect(&url).await,
        _ => default_file().await,
    }
}

#[cfg(feature = "file")]
async fn default_file() -> Result<Arc<dyn Lock>, Error> {
    Ok(Arc::new(lock_file::FileLock::private(
        lock_file::default_dir(),
    )?))
}

#[cfg(not(feature = "file"))]
async fn default_file() -> Result<Arc<dyn Lock>, Error> {
    Err(config_error(format!(
        "no lock URL given ({LOCK_URL} is unset) and the default file backend needs the `file` cargo feature"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_backend() {
        let cases: &[(&str, Result<BackendKind, &str>)] = &[
            (
                "file:///var/lock/app",
                Ok(BackendKind::File("file:///var/lock/app".into())),
            ),
            (
                "file://localhost/tmp/x",
                Ok(BackendKind::File("file://localhost/tmp/x".into())),
            ),
            (
                "file:///tmp/with%20space",
                Ok(BackendKind::File("file:///tmp/with%20space".into())),
            ),
            ("file://server/share", Err("only local directories")),
            ("file:relative/dir", Err("not a lock URL")),
            ("file://", Err("no directory below the root")),
            ("file:///", Err("no directory below the root")),
            ("file:///tmp/x?prefix=a", Err("no query")),
            ("file:///tmp/a%00b", Err("NUL byte")),
            ("ftp://host/x", Err("unknown lock URL scheme \"ftp\"")),
            ("/var/lock", Err("not a lock URL")),
            ("", Err("not a lock URL")),
            (
                "mysql://u:hunter2@h/db",
                Err("supported are file://, redis://"),
            ),
        ];
        for (url, want) in cases {
            let got = parse_url(url);
            match (want, got) {
                (Ok(kind), Ok(got)) => assert_eq!(&got, kind, "{url}"),
                (Err(needle), Err(e)) => {
                    let msg = e.to_string();
                    assert!(msg.contains(needle), "{url}: {msg}");
                    assert!(e.is_invalid_input(), "{url}");
                    assert!(!msg.contains("hunter2"), "{url}: {msg}");
                }
                (want, got) => panic!("{url}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn a_scheme_without_its_feature_names_the_feature() {
        for (url, feature, on) in [
            ("redis://127.0.0.1:6379", "`redis`", cfg!(feature = "redis")),
            (
                "rediss://u:hunter2@h:6380/1",
                "`redis`",
                cfg!(feature = "redis"),
            ),
            (
                "postgres://u:hunter2@h/db",
                "`postgres`",
                cfg!(feature = "postgres"),
            ),
            (
                "postgresql://h/db",
                "`postgres`",
                cfg!(feature = "postgres"),
            ),
        ] {
            match parse_url(url) {
                Ok(_) => assert!(on, "{url}"),
                Err(e) => {
                    assert!(!on, "{url}: {e}");
                    let msg = e.to_string();
                    assert!(msg.contains(feature) && !msg.contains("hunter2"), "{msg}");
                }
            }
        }
    }

    #[test]
    fn passwords_are_redacted() {
        let cases = [
            (
                "redis://user:hunter2@host:6379/0",
                "redis://user:***@host:6379/0",
            ),
            (
                "postgres://u:hunter2@h/db?sslmode=require",
                "postgres://u:***@h/db?sslmode=require",
            ),
            ("redis://host:6379", "redis://host:6379"),
            ("redis://u:hunter2@[bad", "redis://u:***@[bad"),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), want);
        }
        let debug = format!("{:?}", BackendKind::Redis("redis://u:hunter2@h".into()));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[tokio::test]
    async fn connect_opens_a_file_backend() {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("file://{}", tmp.path().join("locks").display());
        let lock = connect(&url).await.unwrap();
        assert!(lock.capabilities().cross_process);
        assert!(tmp.path().join("locks").is_dir());
    }
}
