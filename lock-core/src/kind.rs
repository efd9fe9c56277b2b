//! [`Kind`] and [`Permits`]: how a lease shares its name with others.
//!
//! One model covers the three: a name has a capacity while any lease on it is live, every
//! lease takes a weight of it, and a claim is granted while the weights of the live leases
//! plus its own stay within the capacity. An exclusive lease takes all of a reader-writer
//! capacity, a shared one takes 1 of it, a permit takes 1 of N. So an exclusive lock is a
//! semaphore of 1, and a writer is an exclusive lease on a name that readers share.

use std::fmt;
use std::str::FromStr;

use crate::InvalidInput;

/// How a lease holds its name: alone, shared with other readers, or as one of N permits.
///
/// The default, [`Kind::Exclusive`], is the plain lock. A name's kind is fixed while any lease
/// on it is live: a claim of another kind is refused ([`InvalidInput::KindMismatch`]), except
/// that exclusive and shared claims meet on the same name (a writer and its readers).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Alone: no other lease while it lives (a writer, when others read the same name). The
    /// same as one permit of a semaphore of 1.
    #[default]
    Exclusive,
    /// Together with any number of other shared leases, never with an exclusive one (a
    /// reader).
    Shared,
    /// One of N permits: at most N leases at once. `Permit(1)` is [`Kind::Exclusive`].
    Permit(Permits),
}

/// The capacity of a name held exclusively or shared: every shared lease takes 1 of it, an
/// exclusive lease all of it. More shared holders than this at once are refused as full.
pub const SHARED_CAPACITY: u32 = 1_000_000_000;

impl Kind {
    /// One permit of a semaphore of `n`: [`Kind::Exclusive`] for `n` = 1.
    pub fn permit(n: Permits) -> Self {
        if n.get() == 1 {
            Self::Exclusive
        } else {
            Self::Permit(n)
        }
    }

    /// This kind with `Permit(1)` written as `Exclusive`, the one form backends store and
    /// report.
    pub fn normalized(self) -> Self {
        match self {
            Self::Permit(n) => Self::permit(n),
            kind => kind,
        }
    }

    /// The capacity of a name held with this kind: N for a semaphore, [`SHARED_CAPACITY`] for
    /// exclusive and shared leases.
    pub fn capacity(self) -> u32 {
        match self.normalized() {
            Self::Permit(n) => n.get(),
            Self::Exclusive | Self::Shared => SHARED_CAPACITY,
        }
    }

    /// How much of the capacity one lease of this kind takes: all of it for an exclusive
    /// lease, 1 otherwise.
    pub fn weight(self) -> u32 {
        match self.normalized() {
            Self::Exclusive => SHARED_CAPACITY,
            Self::Shared | Self::Permit(_) => 1,
        }
    }

    /// The kind of a lease that takes `weight` of a name's `capacity`, as a backend stores
    /// them; `None` for a pair no kind gives.
    pub fn from_parts(capacity: u32, weight: u32) -> Option<Self> {
        match (capacity, weight) {
            (SHARED_CAPACITY, SHARED_CAPACITY) => Some(Self::Exclusive),
            (SHARED_CAPACITY, 1) => Some(Self::Shared),
            (1, 1) => Some(Self::Exclusive),
            (n, 1) => Permits::new(n).ok().map(Self::Permit),
            _ => None,
        }
    }

    /// The short word status and logs use: `exclusive`, `shared`, `permit`.
    pub fn as_str(self) -> &'static str {
        match self.normalized() {
            Self::Exclusive => "exclusive",
            Self::Shared => "shared",
            Self::Permit(_) => "permit",
        }
    }
}

/// How a name is held, in a sentence's words: `exclusively`, `shared`, `as a semaphore of 3
/// permits`.
impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.normalized() {
            Self::Exclusive => f.write_str("exclusively"),
            Self::Shared => f.write_str("shared"),
            Self::Permit(n) => write!(f, "as a semaphore of {n} permits"),
        }
    }
}

/// The number of permits of a semaphore: from 1 to [`Permits::MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permits(u32);

impl Permits {
    /// The most permits a semaphore may have.
    pub const MAX: u32 = 10_000;

    /// `n` permits.
    ///
    /// # Errors
    /// [`InvalidInput::PermitsOutOfRange`] for 0 or more than [`Permits::MAX`].
    pub fn new(n: u32) -> Result<Self, InvalidInput> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(InvalidInput::PermitsOutOfRange {
                given: n.to_string(),
            })
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Permits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Reads a whole number from 1 to [`Permits::MAX`], as `--permits` takes it.
impl FromStr for Permits {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let out_of_range = || InvalidInput::PermitsOutOfRange {
            given: s.to_owned(),
        };
        let n: u32 = s.trim().parse().map_err(|_| out_of_range())?;
        Self::new(n).map_err(|_| out_of_range())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_parse_from_1_to_10000() {
        for (text, want) in [
            ("1", Some(1)),
            ("3", Some(3)),
            ("10000", Some(10_000)),
            ("0", None),
            ("10001", None),
            ("-1", None),
            ("3.5", None),
            ("three", None),
            ("", None),
            ("99999999999", None),
        ] {
            let got = text.parse::<Permits>();
            match want {
                Some(n) => assert_eq!(got.unwrap().get(), n, "{text}"),
                None => {
                    let e = got.unwrap_err();
                    assert!(e.to_string().contains("from 1 to 10000"), "{text}: {e}");
                }
            }
        }
    }

    #[test]
    fn kinds_round_trip_through_capacity_and_weight() {
        let three = Kind::Permit(Permits::new(3).unwrap());
        for kind in [Kind::Exclusive, Kind::Shared, three] {
            assert_eq!(Kind::from_parts(kind.capacity(), kind.weight()), Some(kind));
        }
        let one = Kind::Permit(Permits::new(1).unwrap());
        assert_eq!(one.normalized(), Kind::Exclusive);
        assert_eq!(one.capacity(), Kind::Exclusive.capacity());
        assert_eq!(Kind::from_parts(3, 2), None);
        assert_eq!(Kind::from_parts(SHARED_CAPACITY, 7), None);
        assert_eq!(three.to_string(), "as a semaphore of 3 permits");
    }
}
