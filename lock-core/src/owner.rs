//! [`OwnerId`]: who holds a lease.

use std::fmt;
use std::str::FromStr;

use crate::error::InvalidInput;

/// The most bytes an owner id may have.
pub const MAX_OWNER_BYTES: usize = 128;

/// Who holds a lease.
///
/// [`OwnerId::random`] draws 128 bits from the operating system's random source: that is what
/// every acquisition gets unless the caller supplies an id (the CLI does, so that a shell script
/// can act across commands). Never a process id: two machines have the same pids.
///
/// A supplied id is 1 to 128 bytes of ASCII letters, digits and `-_.:@/+=`, so that it
/// reads the same in every backend, log line and shell.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId(String);

impl OwnerId {
    /// A fresh id of 128 random bits, as 32 hex digits.
    ///
    /// # Panics
    /// If the operating system has no random source to give, which on the systems this crate
    /// supports does not happen.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Checks a caller-supplied id and wraps it.
    ///
    /// # Errors
    /// [`InvalidInput::BadOwner`] when it is empty, longer than 128 bytes, or has a character
    /// outside `A-Z a-z 0-9 - _ . : @ / + =`.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidInput> {
        let id = id.into();
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.:@/+=".contains(c);
        if id.is_empty() || id.len() > MAX_OWNER_BYTES || !id.chars().all(allowed) {
            return Err(InvalidInput::BadOwner { owner: id });
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl FromStr for OwnerId {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_128_bits_and_distinct() {
        let a = OwnerId::random();
        let b = OwnerId::random();
        assert_eq!(a.as_str().len(), 32);
        assert_ne!(a, b);
        assert_eq!(OwnerId::new(a.as_str()).unwrap(), a);
    }

    #[test]
    fn supplied_ids_are_checked() {
        let cases: &[(&str, bool)] = &[
            ("job-42@host.example:7/a+b=c_d", true),
            (&"x".repeat(128), true),
            ("", false),
            (&"x".repeat(129), false),
            ("has space", false),
            ("quote\"", false),
            ("tab\t", false),
            ("é", false),
        ];
        for (input, ok) in cases {
            assert_eq!(OwnerId::new(*input).is_ok(), *ok, "input {input:?}");
        }
    }
}
