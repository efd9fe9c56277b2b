//! What a lock file holds: one JSON object, padded with spaces to a whole number of
//! [`RECORD_LEN`] blocks.
//!
//! Two forms. A name open or held by one exclusive lease is written as version 1, as it always
//! was: `{"v":1,"owner":"…","token":42,"expires_ms":1763829384123}`, where `owner` is `null`
//! when the lock is open, `token` is the last fencing token handed out for the name (it
//! survives release and expiry) and that of the lease, and `expires_ms` is the lease's end on
//! the system clock, in milliseconds since the Unix epoch. `"tied":true` follows when the lease
//! is tied to its holders' processes (see `tie.rs`); it is left out otherwise.
//!
//! Several leases (shared leases, a semaphore's permits), or one lease whose token is not the
//! last, are written as version 2: `{"v":2,"token":44,"leases":[{"owner":"…","token":43,
//! "expires_ms":…},…]}`, where the top `token` is the last one handed out for the name and
//! each lease has its own token, end and `"tied":true`; a shared lease says `"shared":true`, a
//! permit of a semaphore of N says `"permits":N`, an exclusive lease neither. Only live leases
//! are written.
//!
//! A version 1 record is [`RECORD_LEN`] bytes; a version 2 one is as many whole
//! [`RECORD_LEN`] blocks as it needs (at most [`MAX_FILE_LEN`] bytes, which fits
//! [`Permits::MAX`](lock_core::Permits::MAX) permits of 128-byte owners, tied). Every record is
//! written in place with one write, its space reserved first, so a full disk cannot tear it; a
//! file that grew keeps its length (padded) until its record fits one block again. An empty file
//! (or one of NULs from preallocation) is a name never acquired.

use std::collections::HashSet;
use std::ops::Not;

use lock_core::{Kind, OwnerId, Permits};
use serde::{Deserialize, Serialize};

/// Every record is written as a whole number of blocks of this many bytes.
pub(crate) const RECORD_LEN: usize = 256;
/// A file longer than this is not ours: 16,384 blocks, room for 10,000 leases of the longest
/// owner ids, the largest tokens and ends, tied, of a semaphore of 10,000.
pub(crate) const MAX_FILE_LEN: u64 = 4 << 20;
/// How much of a lock file the first read takes: every version 1 record, in one `pread`.
pub(crate) const FIRST_READ: usize = 4096;

/// One lease as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) owner: String,
    pub(crate) token: u64,
    pub(crate) expires_ms: u64,
    pub(crate) tied: bool,
    pub(crate) kind: Kind,
}

impl Entry {
    /// Whether it is live at `now_ms`.
    pub(crate) fn live(&self, now_ms: u64) -> bool {
        self.expires_ms > now_ms
    }

    /// The owner id, checked when parsed.
    pub(crate) fn owner_id(&self) -> OwnerId {
        OwnerId::new(self.owner.as_str()).expect("checked when parsed")
    }
}

/// One lock file's content: the last token handed out for the name and its leases (live or
/// lapsed, as read; only live ones are written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) last: u64,
    pub(crate) leases: Vec<Entry>,
}

/// The fields of both versions, checked against the version once read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u8,
    #[serde(default)]
    owner: Option<String>,
    token: u64,
    #[serde(default)]
    expires_ms: Option<u64>,
    #[serde(default)]
    tied: Option<bool>,
    #[serde(default)]
    leases: Option<Vec<WireLease>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireLease {
    owner: String,
    token: u64,
    expires_ms: u64,
    #[serde(default)]
    tied: bool,
    #[serde(default)]
    shared: bool,
    #[serde(default)]
    permits: Option<u32>,
}

#[derive(Serialize)]
struct V1<'a> {
    v: u8,
    owner: Option<&'a str>,
    token: u64,
    expires_ms: u64,
    #[serde(skip_serializing_if = "Not::not")]
    tied: bool,
}

#[derive(Serialize)]
struct V2<'a> {
    v: u8,
    token: u64,
    leases: Vec<V2Lease<'a>>,
}

#[derive(Serialize)]
struct V2Lease<'a> {
    owner: &'a str,
    token: u64,
    expires_ms: u64,
    #[serde(skip_serializing_if = "Not::not")]
    tied: bool,
    #[serde(skip_serializing_if = "Not::not")]
    shared: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    permits: Option<u32>,
}

impl Record {
    /// A record of `owner` holding `token` exclusively until `expires_ms`.
    #[cfg(test)]
    pub(crate) fn held(owner: &OwnerId, token: u64, expires_ms: u64) -> Self {
        Self {
            last: token,
            leases: vec![Entry {
                owner: owner.as_str().to_owned(),
                token,
                expires_ms,
                tied: false,
                kind: Kind::Exclusive,
            }],
        }
    }

    /// This record, with its leases tied (or not) to their holders' processes.
    #[cfg(test)]
    pub(crate) fn with_tie(mut self, tied: bool) -> Self {
        for lease in &mut self.leases {
            lease.tied = tied;
        }
        self
    }

    /// An open lock whose last token was `token`.
    pub(crate) fn open(token: u64) -> Self {
        Self {
            last: token,
            leases: Vec::new(),
        }
    }

    /// The leases live at `now_ms`.
    pub(crate) fn live(&self, now_ms: u64) -> impl Iterator<Item = &Entry> {
        self.leases.iter().filter(move |l| l.live(now_ms))
    }

    /// Whether a lease is live at `now_ms`.
    pub(crate) fn is_held(&self, now_ms: u64) -> bool {
        self.live(now_ms).next().is_some()
    }

    /// Reads a file's bytes: `Ok(None)` for a name never acquired, `Err` with what is wrong.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Option<Self>, String> {
        let text = bytes.trim_ascii_end();
        if text.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let wire: Wire = serde_json::from_slice(text)
            .map_err(|e| format!("not a lock record of this library: {e}"))?;
        let record = match (wire.v, wire.leases) {
            (1, None) => {
                let expires_ms = wire
                    .expires_ms
                    .ok_or("not a lock record of this library: missing field `expires_ms`")?;
                let leases = match wire.owner {
                    Some(owner) => vec![Entry {
                        owner,
                        token: wire.token,
                        expires_ms,
                        tied: wire.tied.unwrap_or(false),
                        kind: Kind::Exclusive,
                    }],
                    None => Vec::new(),
                };
                Self {
                    last: wire.token,
                    leases,
                }
            }
            (1, Some(_)) => return Err("a version 1 record with `leases`".into()),
            (2, Some(leases)) => {
                if wire.owner.is_some() || wire.expires_ms.is_some() || wire.tied.is_some() {
                    return Err("a version 2 record with a version 1 field".into());
                }
                let leases = leases
                    .into_iter()
                    .map(|l| {
                        let kind = match (l.shared, l.permits) {
                            (false, None) => Kind::Exclusive,
                            (true, None) => Kind::Shared,
                            (false, Some(n)) => Kind::permit(
                                Permits::new(n).map_err(|e| format!("a lease's permits: {e}"))?,
                            ),
                            (true, Some(_)) => {
                                return Err("a lease both shared and a permit".to_owned());
                            }
                        };
                        Ok(Entry {
                            owner: l.owner,
                            token: l.token,
                            expires_ms: l.expires_ms,
                            tied: l.tied,
                            kind,
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Self {
                    last: wire.token,
                    leases,
                }
            }
            (2, None) => return Err("a version 2 record without `leases`".into()),
            (v, _) => return Err(format!("unknown record version {v}")),
        };
        record.check()?;
        Ok(Some(record))
    }

    /// What no record of this library has: bad owners, token 0, a lease's token above the
    /// last, two leases of one owner or one token.
    fn check(&self) -> Result<(), String> {
        let many = self.leases.len() > 1;
        let (mut owners, mut tokens) = (HashSet::new(), HashSet::new());
        for lease in &self.leases {
            OwnerId::new(lease.owner.as_str()).map_err(|e| e.to_string())?;
            if lease.token == 0 {
                return Err("a held lease with token 0".into());
            }
            if lease.token > self.last {
                return Err(format!(
                    "a lease's token {} above the last token {}",
                    lease.token, self.last
                ));
            }
            if many && !owners.insert(lease.owner.as_str()) {
                return Err(format!("two leases of owner {}", lease.owner));
            }
            if many && !tokens.insert(lease.token) {
                return Err(format!("two leases of token {}", lease.token));
            }
        }
        Ok(())
    }

    /// Whether version 1 holds it: no lease, or one exclusive lease of the last token.
    fn is_v1(&self) -> bool {
        match self.leases.as_slice() {
            [] => true,
            [one] => one.kind == Kind::Exclusive && one.token == self.last,
            _ => false,
        }
    }

    /// The bytes to write: the JSON object padded with spaces to a whole number of
    /// [`RECORD_LEN`] blocks and to at least `at_least` bytes, ending in a newline.
    pub(crate) fn to_bytes(&self, at_least: usize) -> Vec<u8> {
        let mut bytes = if self.is_v1() {
            let lease = self.leases.first();
            serde_json::to_vec(&V1 {
                v: 1,
                owner: lease.map(|l| l.owner.as_str()),
                token: self.last,
                expires_ms: lease.map_or(0, |l| l.expires_ms),
                tied: lease.is_some_and(|l| l.tied),
            })
        } else {
            serde_json::to_vec(&V2 {
                v: 2,
                token: self.last,
                leases: self
                    .leases
                    .iter()
                    .map(|l| V2Lease {
                        owner: &l.owner,
                        token: l.token,
                        expires_ms: l.expires_ms,
                        tied: l.tied,
                        shared: l.kind == Kind::Shared,
                        permits: match l.kind {
                            Kind::Permit(n) => Some(n.get()),
                            _ => None,
                        },
                    })
                    .collect(),
            })
        }
        .expect("a record serializes");
        let len = (bytes.len() + 1).next_multiple_of(RECORD_LEN).max(at_least);
        bytes.resize(len - 1, b' ');
        bytes.push(b'\n');
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sem(n: u32) -> Kind {
        Kind::permit(Permits::new(n).unwrap())
    }

    fn entry(owner: &str, token: u64, expires_ms: u64, tied: bool, kind: Kind) -> Entry {
        Entry {
            owner: owner.into(),
            token,
            expires_ms,
            tied,
            kind,
        }
    }

    #[test]
    fn records_round_trip_in_whole_blocks() {
        let owner = OwnerId::new("x".repeat(128)).unwrap();
        let long = owner.as_str();
        let cases = [
            (Record::open(0), RECORD_LEN),
            (Record::open(u64::MAX), RECORD_LEN),
            (Record::held(&owner, 7, 1_763_829_384_123), RECORD_LEN),
            (
                Record::held(&owner, u64::MAX, u64::MAX).with_tie(true),
                RECORD_LEN,
            ),
            (
                Record {
                    last: 9,
                    leases: vec![entry(long, 7, 1, false, Kind::Exclusive)],
                },
                RECORD_LEN,
            ),
            (
                Record {
                    last: 9,
                    leases: vec![
                        entry(long, 7, 1, true, Kind::Shared),
                        entry("b", 9, 2, false, Kind::Shared),
                    ],
                },
                2 * RECORD_LEN,
            ),
            (
                Record {
                    last: 3,
                    leases: vec![entry("a", 3, 1, false, sem(3))],
                },
                RECORD_LEN,
            ),
        ];
        for (record, len) in cases {
            let bytes = record.to_bytes(0);
            assert_eq!(bytes.len(), len, "{record:?}");
            assert_eq!(Record::parse(&bytes).unwrap(), Some(record.clone()));
            let padded = record.to_bytes(5 * RECORD_LEN);
            assert_eq!(padded.len(), 5 * RECORD_LEN);
            assert_eq!(Record::parse(&padded).unwrap(), Some(record));
        }
    }

    #[test]
    fn an_exclusive_lease_is_written_as_it_always_was() {
        let owner = OwnerId::new("a").unwrap();
        let bytes = Record::held(&owner, 3, 9).with_tie(true).to_bytes(0);
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            text.trim_end(),
            r#"{"v":1,"owner":"a","token":3,"expires_ms":9,"tied":true}"#
        );
        let open = String::from_utf8(Record::open(3).to_bytes(0)).unwrap();
        assert_eq!(
            open.trim_end(),
            r#"{"v":1,"owner":null,"token":3,"expires_ms":0}"#
        );
    }

    #[test]
    fn ten_thousand_of_the_longest_permits_fit() {
        let owners: Vec<String> = (0..Permits::MAX).map(|i| format!("{i:0>128}")).collect();
        let record = Record {
            last: u64::MAX,
            leases: owners
                .iter()
                .enumerate()
                .map(|(i, o)| entry(o, u64::MAX - i as u64, u64::MAX, true, sem(Permits::MAX)))
                .collect(),
        };
        let bytes = record.to_bytes(0);
        assert!(bytes.len() as u64 <= MAX_FILE_LEN, "{}", bytes.len());
        assert_eq!(bytes.len() % RECORD_LEN, 0);
        assert_eq!(Record::parse(&bytes).unwrap(), Some(record));
    }

    #[test]
    fn parse_tells_fresh_from_garbled() {
        // Ok(n): a record of n leases; Err: a word of what is wrong.
        let cases: &[(&[u8], Result<usize, &str>)] = &[
            (b"", Ok(usize::MAX)),
            (b"\0\0\0\0", Ok(usize::MAX)),
            (b"   \n", Ok(usize::MAX)),
            (br#"{"v":1,"owner":null,"token":3,"expires_ms":0}"#, Ok(0)),
            (br#"{"v":1,"owner":"a","token":3,"expires_ms":9}  "#, Ok(1)),
            (b"hello", Err("not a lock record")),
            (b"{\"v\":1,\"owner\":\"a\"", Err("not a lock record")),
            (
                br#"{"v":3,"owner":null,"token":3,"expires_ms":0}"#,
                Err("version 3"),
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
                Ok(1),
            ),
            (
                br#"{"v":1,"owner":null,"token":3,"expires_ms":0,"x":1}"#,
                Err("unknown field"),
            ),
            (
                br#"{"v":1,"owner":null,"token":-3,"expires_ms":0}"#,
                Err("not a lock record"),
            ),
            (br#"{"v":1,"owner":null,"token":3}"#, Err("expires_ms")),
            (
                br#"{"v":1,"owner":null,"token":3,"expires_ms":0,"leases":[]}"#,
                Err("version 1 record with `leases`"),
            ),
            // Version 2: several leases, each of its own kind.
            (br#"{"v":2,"token":3,"leases":[]}"#, Ok(0)),
            (
                br#"{"v":2,"token":3,"leases":[{"owner":"a","token":2,"expires_ms":9,"shared":true},{"owner":"b","token":3,"expires_ms":9,"shared":true,"tied":true}]}"#,
                Ok(2),
            ),
            (
                br#"{"v":2,"token":7,"leases":[{"owner":"a","token":2,"expires_ms":9,"permits":3}]}"#,
                Ok(1),
            ),
            (
                br#"{"v":2,"token":7,"leases":[{"owner":"a","token":2,"expires_ms":9}]}"#,
                Ok(1),
            ),
            (br#"{"v":2,"token":3}"#, Err("without `leases`")),
            (
                br#"{"v":2,"owner":"a","token":3,"leases":[]}"#,
                Err("version 1 field"),
            ),
            (
                br#"{"v":2,"token":3,"expires_ms":0,"leases":[]}"#,
                Err("version 1 field"),
            ),
            (
                br#"{"v":2,"token":3,"leases":[{"owner":"a","token":4,"expires_ms":9}]}"#,
                Err("above the last token"),
            ),
            (
                br#"{"v":2,"token":3,"leases":[{"owner":"a","token":0,"expires_ms":9}]}"#,
                Err("token 0"),
            ),
            (
                br#"{"v":2,"token":3,"leases":[{"owner":"a","token":2,"expires_ms":9,"shared":true},{"owner":"a","token":3,"expires_ms":9,"shared":true}]}"#,
                Err("two leases of owner"),
            ),
            (
                br#"{"v":2,"token":3,"leases":[{"owner":"a","token":3,"expires_ms":9,"shared":true},{"owner":"b","token":3,"expires_ms":9,"shared":true}]}"#,
                Err("two leases of token"),
            ),
            (
                br#"{"v":2,"token":3,"leases":[{"owner":"a","token":2,"expires_ms":9,"permits":0}]}"#,
                Err("from 1 to 10000"),
            ),
            (
                br#"{"v":2,"token":3,"leases":[{"owner":"a","token":2,"expires_ms":9,"permits":10001}]}"#,
                Err("from 1 to 10000"),
            ),
            (
                br#"{"v":2,"token":3,"leases":[{"owner":"a","token":2,"expires_ms":9,"permits":3,"shared":true}]}"#,
                Err("both shared and a permit"),
            ),
            (
                br#"{"v":2,"token":3,"leases":[{"owner":"a","token":2,"expires_ms":9,"kind":"x"}]}"#,
                Err("unknown field"),
            ),
            (
                br#"{"v":2,"token":3,"leases":[{"owner":"a b","token":2,"expires_ms":9}]}"#,
                Err("owner id"),
            ),
            (
                br#"{"v":2,"token":3,"leases":[{"owner":"a","token":2}]}"#,
                Err("expires_ms"),
            ),
            (
                br#"{"v":2,"token":3,"leases":{"owner":"a"}}"#,
                Err("not a lock record"),
            ),
        ];
        for (bytes, want) in cases {
            let got = Record::parse(bytes);
            match (want, &got) {
                (Ok(usize::MAX), Ok(None)) => {}
                (Ok(n), Ok(Some(r))) if *n != usize::MAX => {
                    assert_eq!(r.leases.len(), *n, "{:?}", String::from_utf8_lossy(bytes));
                }
                (Err(needle), Err(e)) => assert!(
                    e.contains(needle),
                    "{:?}: {e}",
                    String::from_utf8_lossy(bytes)
                ),
                _ => panic!("{:?}: got {got:?}", String::from_utf8_lossy(bytes)),
            }
        }
    }
}
