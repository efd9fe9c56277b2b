//! Lock name → lock file path, so that no name escapes the directory and no two names share
//! a file.
//!
//! Lowercase ASCII letters, digits, `-` and `_` stay as they are; every other byte becomes
//! `%xx` (lowercase hex). The escaped text never holds `/` or `.`, so `..` and `/abs` cannot
//! climb out, and upper case is escaped too, so names that differ only in case stay apart
//! on case-insensitive file systems. The file is the escaped text plus `.lock`; escaped text
//! over 200 bytes (a long or non-ASCII name) is cut into 200-byte directories, as no file
//! system takes a component over 255 bytes. Escaping is injective and the cut is fixed by the
//! text's length, so two names never meet in one file.

use std::path::PathBuf;

use lock_core::LockName;

/// The longest path component this encoding writes, before `.lock`.
const COMPONENT: usize = 200;

/// The lock file's path relative to the lock directory.
pub(crate) fn relative_path(name: &LockName) -> PathBuf {
    let mut escaped = String::with_capacity(name.as_str().len());
    for b in name.as_str().bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' {
            escaped.push(char::from(b));
        } else {
            escaped.push_str(&format!("%{b:02x}"));
        }
    }
    let mut path = PathBuf::new();
    let mut rest = escaped.as_str();
    while rest.len() > COMPONENT {
        let (dir, tail) = rest.split_at(COMPONENT);
        path.push(dir);
        rest = tail;
    }
    path.push(format!("{rest}.lock"));
    path
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Component;

    use super::*;

    fn path(name: &str) -> String {
        relative_path(&LockName::new(name).unwrap())
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn names_map_to_paths() {
        let cases = [
            ("nightly", "nightly.lock"),
            ("db-migrate_2", "db-migrate_2.lock"),
            ("a/b", "a%2fb.lock"),
            ("a%2Fb", "a%252%46b.lock"),
            ("A/b", "%41%2fb.lock"),
            (".", "%2e.lock"),
            ("..", "%2e%2e.lock"),
            ("../../etc/passwd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd.lock"),
            ("/abs", "%2fabs.lock"),
            ("a b", "a%20b.lock"),
            ("é", "%c3%a9.lock"),
        ];
        for (name, want) in cases {
            assert_eq!(path(name), want, "{name:?}");
        }
    }

    #[test]
    fn long_names_are_cut_into_directories_that_stay_inside() {
        let name = "🔒".repeat(63) + "abc"; // 255 bytes, 759 escaped
        let p = relative_path(&LockName::new(name).unwrap());
        let parts: Vec<_> = p.components().collect();
        assert_eq!(parts.len(), 4);
        for part in parts {
            let Component::Normal(s) = part else {
                panic!("{part:?} is not a plain component")
            };
            assert!(s.len() <= COMPONENT + ".lock".len());
        }
    }

    #[test]
    fn distinct_names_get_distinct_paths() {
        let names = [
            "a/b",
            "a%2Fb",
            "a%2fb",
            "a_b",
            "A/b",
            "a-b",
            ".",
            "..",
            "%2e",
            "%",
            "%25",
            "a.lock",
            "a%2elock",
            "x".repeat(200).as_str(),
            "x".repeat(201).as_str(),
            &("x".repeat(200) + "/"),
            &("x".repeat(199) + "%"),
        ]
        .map(|n| n.to_owned());
        let paths: HashSet<_> = names.iter().map(|n| path(n)).collect();
        assert_eq!(paths.len(), names.len());
    }
}
