//! What a lock file holds: one JSON object, padded to a fixed length.
//!
//! `{"v":1,"owner":"…","token":42,"expires_ms":1763829384123}`: `owner` is `null` when the
//! lock is open, `token` is the last fencing token handed out for the name (it survives
//! release and expiry), `expires_ms` is the lease's end on the system clock, in milliseconds
//! since the Unix epoch. `"tied":true` follows when the lease is tied to its holders' processes
//! (see `tie.rs`); it is left out otherwise, so records of untied leases read the same as
//! before ties existed. The object is padded with spaces to [`RECORD_LEN`] bytes and always
//! written in place with one write, so the file never shrinks or grows once it exists and a
//! full disk cannot tear it. An empty file (or one of NULs from preallocation) is a name never
//! acquired.

use lock_core::OwnerId;
use serde::{Deserialize, Serialize};

/// Every record is written as exactly this many bytes.
pub(crate) const RECORD_LEN: usize = 256;
/// A file longer than this is not ours.
pub(crate) const MAX_FILE_LEN: u64 = 4096;

const VERSION: u8 = 1;

/// One lock file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    v: u8,
    pub(crate) owner: Option<String>,
    pub(crate) token: u64,
    pub(crate) expires_ms: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) tied: bool,
}

impl Record {
    /// A record of `owner` holding `token` until `expires_ms`.
    pub(crate) fn held(owner: &OwnerId, token: u64, expires_ms: u64) -> Self {
        Self {
            v: VERSION,
            owner: Some(owner.as_str().to_owned()),
            token,
            expires_ms,
            tied: false,
        }
    }

    /// This record, with its lease tied (or not) to its holders' processes.
    pub(crate) fn with_tie(self, tied: bool) -> Self {
        Self { tied, ..self }
    }

    /// An open lock whose last token was `token`.
    pub(crate) fn open(token: u64) -> Self {
        Self {
            v: VERSION,
            owner: None,
            token,
            expires_ms: 0,
            tied: false,
        }
    }

    /// The owner of the live lease at `now_ms`, if any.
    pub(crate) fn live_owner(&self, now_ms: u64) -> Option<&str> {
        self.owner.as_deref().filter(|_| self.expires_ms > now_ms)
    }

    /// Reads a file's bytes: `Ok(None)` for a name never acquired, `Err` with what is wrong.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Option<Self>, String> {
        let text = bytes.trim_ascii_end();
        if text.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let record: Self = serde_json::from_slice(text)
            .map_err(|e| format!("not a lock record of this library: {e}"))?;
        if record.v != VERSION {
            return Err(format!("unknown record version {}", record.v));
        }
        if let Some(owner) = &record.owner {
            OwnerId::new(owner.as_str()).map_err(|e| e.to_string())?;
        }
        if record.token == 0 && record.owner.is_some() {
            return Err("a held lease with token 0".into());
        }
        Ok(Some(record))
    }

    /// The bytes to write: the JSON object padded with spaces, ending in a newline.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).expect("a record serializes");
        assert!(bytes.len() < RECORD_LEN, "owner ids are at most 128 bytes");
        bytes.resize(RECORD_LEN - 1, b' ');
        bytes.push(b'\n');
        bytes
    }

    /// The owner id, checked when parsed.
    pub(crate) fn owner_id(&self) -> Option<OwnerId> {
        self.owner
            .as_deref()
            .map(|o| OwnerId::new(o).expect("checked when parsed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_at_a_fixed_length() {
        let owner = OwnerId::new("x".repeat(128)).unwrap();
        for record in [
            Record::open(0),
            Record::open(u64::MAX),
            Record::held(&owner, 7, 1_763_829_384_123),
            Record::held(&owner, u64::MAX, u64::MAX).with_tie(true),
        ] {
            let bytes = record.to_bytes();
            assert_eq!(bytes.len(), RECORD_LEN);
            assert_eq!(Record::parse(&bytes).unwrap(), Some(record));
        }
    }

    #[test]
    fn parse_tells_fresh_from_garbled() {
        let cases: &[(&[u8], Result<bool, &str>)] = &[
            (b"", Ok(false)),
            (b"\0\0\0\0", Ok(false)),
            (b"   \n", Ok(false)),
            (
                br#"{"v":1,"owner":null,"token":3,"expires_ms":0}"#,
                Ok(true),
            ),
            (
                br#"{"v":1,"owner":"a","token":3,"expires_ms":9}  "#,
                Ok(true),
            ),
            (b"hello", Err("not a lock record")),
            (b"{\"v\":1,\"owner\":\"a\"", Err("not a lock record")),
            (
                br#"{"v":2,"owner":null,"token":3,"expires_ms":0}"#,
                Err("version"),
            ),
            (
                br#"{"v":1,"owner":"a b","token":3,"expires_ms":0}"#,
                Err("owner id"),
            ),
            (
                br#"{"v":1,"owner":"a","token":0,"expires_ms":0}"#,
                Err("token 0"),
            ),
            (
                br#"{"v":1,"owner":"a","token":3,"expires_ms":9,"tied":true}"#,
                Ok(true),
            ),
            (
                br#"{"v":1,"owner":null,"token":3,"expires_ms":0,"x":1}"#,
                Err("unknown field"),
            ),
            (
                br#"{"v":1,"owner":null,"token":-3,"expires_ms":0}"#,
                Err("not a lock record"),
            ),
        ];
        for (bytes, want) in cases {
            let got = Record::parse(bytes);
            match (want, &got) {
                (Ok(some), Ok(r)) => assert_eq!(r.is_some(), *some, "{bytes:?}"),
                (Err(needle), Err(e)) => assert!(e.contains(needle), "{bytes:?}: {e}"),
                _ => panic!("{:?}: got {got:?}", String::from_utf8_lossy(bytes)),
            }
        }
    }
}
