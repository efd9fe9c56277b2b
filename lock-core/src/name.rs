//! [`LockName`]: the identity of a lock.

use std::fmt;
use std::str::FromStr;

use crate::error::InvalidInput;

/// The most bytes a lock name may have.
pub const MAX_NAME_BYTES: usize = 255;

/// A lock's identity: 1 to 255 bytes of UTF-8 without control characters.
///
/// Everything else is allowed (`/`, `..`, spaces, `%`, emoji), and two different names are
/// always two different locks on every backend: `a/b`, `a%2Fb`, `a_b` and `A/b` are four.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockName(String);

impl LockName {
    /// Checks `name` and wraps it.
    ///
    /// # Errors
    /// [`InvalidInput::EmptyName`], [`InvalidInput::NameTooLong`] or
    /// [`InvalidInput::NameControlChar`].
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidInput> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidInput::EmptyName);
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(InvalidInput::NameTooLong { bytes: name.len() });
        }
        if let Some((at, c)) = name.char_indices().find(|(_, c)| c.is_control()) {
            return Err(InvalidInput::NameControlChar {
                at,
                code: u32::from(c),
            });
        }
        Ok(Self(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LockName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LockName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for LockName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for LockName {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for LockName {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<&str> for LockName {
    type Error = InvalidInput;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        let long_ok = "é".repeat(127) + "a"; // 255 bytes
        let long_bad = "a".repeat(256);
        let cases: &[(&str, Option<InvalidInput>)] = &[
            ("a", None),
            ("a/b", None),
            ("..", None),
            ("../../etc/passwd", None),
            ("with space %2F", None),
            ("🔒", None),
            (&long_ok, None),
            ("", Some(InvalidInput::EmptyName)),
            (&long_bad, Some(InvalidInput::NameTooLong { bytes: 256 })),
            (
                "a\0b",
                Some(InvalidInput::NameControlChar { at: 1, code: 0 }),
            ),
            (
                "a\nb",
                Some(InvalidInput::NameControlChar { at: 1, code: 10 }),
            ),
            (
                "\u{7f}",
                Some(InvalidInput::NameControlChar { at: 0, code: 0x7f }),
            ),
            (
                "x\u{85}",
                Some(InvalidInput::NameControlChar { at: 1, code: 0x85 }),
            ),
        ];
        for (input, want) in cases {
            let got = LockName::new(*input);
            match want {
                None => assert_eq!(got.expect(input).as_str(), *input),
                Some(err) => assert_eq!(got.unwrap_err(), *err, "input {input:?}"),
            }
        }
    }
}
