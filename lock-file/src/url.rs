//! `file:///abs/dir`: the file backend's URL.

use std::path::PathBuf;

use lock_core::{Error, InvalidInput};

/// The lock directory a `file://` URL names: an absolute local path, percent-decoded.
///
/// # Errors
/// [`InvalidInput::Config`] for anything else: another host, a relative or root path, a query
/// or fragment, a NUL byte.
pub fn dir_from_url(url: &str) -> Result<PathBuf, Error> {
    let bad = |why: &str| -> Error {
        InvalidInput::Config(format!(
            "{url:?} is not a usable file URL: {why}; write file:///absolute/dir"
        ))
        .into()
    };
    if !url
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("file://"))
    {
        return Err(bad("it does not start with file://"));
    }
    let parsed = ::url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if parsed
        .host_str()
        .is_some_and(|h| !h.is_empty() && h != "localhost")
    {
        return Err(bad("only local directories can hold lock files"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("it takes no query or fragment"));
    }
    let dir = parsed
        .to_file_path()
        .map_err(|()| bad("it names no absolute path"))?;
    if dir.parent().is_none() {
        return Err(bad("it names no directory below the root"));
    }
    if std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str()).contains(&0) {
        return Err(bad(
            "its path holds a NUL byte (%00), which no file name can",
        ));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_name_a_local_absolute_directory() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("file:///var/lock/app", Ok("/var/lock/app")),
            ("FILE:///var/lock/app", Ok("/var/lock/app")),
            ("file://localhost/tmp/x", Ok("/tmp/x")),
            ("file:///tmp/with%20space", Ok("/tmp/with space")),
            ("file://server/share", Err("only local directories")),
            ("file:relative/dir", Err("does not start with file://")),
            ("file://", Err("no directory below the root")),
            ("file:///", Err("no directory below the root")),
            ("file:///tmp/x?prefix=a", Err("no query")),
            ("file:///tmp/x#frag", Err("no query or fragment")),
            ("file:///tmp/a%00b", Err("NUL byte")),
            ("redis://host/0", Err("does not start with file://")),
            ("/var/lock", Err("does not start with file://")),
        ];
        for (url, want) in cases {
            match (want, dir_from_url(url)) {
                (Ok(dir), Ok(got)) => assert_eq!(got, PathBuf::from(dir), "{url}"),
                (Err(needle), Err(e)) => {
                    let msg = e.to_string();
                    assert!(msg.contains(needle), "{url}: {msg}");
                    assert!(e.is_invalid_input(), "{url}: {e:?}");
                }
                (_, got) => panic!("{url}: got {got:?}"),
            }
        }
    }
}
