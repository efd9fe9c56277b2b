//! [`Ttl`]: how long a lease lives without renewal.

use std::fmt;
use std::time::Duration;

use crate::error::InvalidInput;

/// How long a lease lives without renewal: from 1 ms to 365 days, in whole milliseconds.
///
/// A duration with a sub-millisecond part keeps its whole milliseconds (backends count in
/// milliseconds); one under 1 ms or over 365 days is refused before anything is sent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ttl(Duration);

impl Ttl {
    /// The shortest ttl: 1 ms.
    pub const MIN: Ttl = Ttl(Duration::from_millis(1));
    /// The longest ttl: 365 days.
    pub const MAX: Ttl = Ttl(Duration::from_secs(365 * 24 * 3600));

    /// Checks `duration` and wraps its whole milliseconds.
    ///
    /// # Errors
    /// [`InvalidInput::TtlOutOfRange`] below 1 ms or above 365 days.
    pub fn new(duration: Duration) -> Result<Self, InvalidInput> {
        let millis = Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
        if millis < Self::MIN.0 || millis > Self::MAX.0 {
            return Err(InvalidInput::TtlOutOfRange { given: duration });
        }
        Ok(Self(millis))
    }

    /// [`Ttl::new`] from milliseconds.
    ///
    /// # Errors
    /// As [`Ttl::new`].
    pub fn from_millis(millis: u64) -> Result<Self, InvalidInput> {
        Self::new(Duration::from_millis(millis))
    }

    /// [`Ttl::new`] from a signed count of milliseconds, refusing zero and negative values.
    ///
    /// # Errors
    /// As [`Ttl::new`].
    pub fn from_millis_signed(millis: i64) -> Result<Self, InvalidInput> {
        match u64::try_from(millis) {
            Ok(ms) => Self::from_millis(ms),
            Err(_) => Err(InvalidInput::NegativeTtl { millis }),
        }
    }

    /// The ttl as a duration.
    pub fn duration(self) -> Duration {
        self.0
    }

    /// The ttl in milliseconds (at least 1).
    pub fn as_millis(self) -> u64 {
        // In range by construction: at most 365 days.
        self.0.as_millis() as u64
    }
}

impl Default for Ttl {
    /// 30 seconds, the CLI's default too.
    fn default() -> Self {
        Self(Duration::from_secs(30))
    }
}

impl fmt::Debug for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl TryFrom<Duration> for Ttl {
    type Error = InvalidInput;
    fn try_from(d: Duration) -> Result<Self, Self::Error> {
        Self::new(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_checked() {
        let day = Duration::from_secs(24 * 3600);
        let cases: &[(Duration, Option<u64>)] = &[
            (Duration::from_millis(1), Some(1)),
            (Duration::from_micros(1500), Some(1)),
            (Duration::from_secs(30), Some(30_000)),
            (day * 365, Some(365 * 24 * 3600 * 1000)),
            (Duration::ZERO, None),
            (Duration::from_micros(500), None),
            (day * 365 + Duration::from_millis(1), None),
            (Duration::MAX, None),
        ];
        for (input, want) in cases {
            assert_eq!(
                Ttl::new(*input).ok().map(Ttl::as_millis),
                *want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn negative_and_zero_millis_are_refused() {
        assert_eq!(
            Ttl::from_millis_signed(-1),
            Err(InvalidInput::NegativeTtl { millis: -1 })
        );
        assert!(Ttl::from_millis_signed(0).is_err());
        assert!(Ttl::from_millis_signed(i64::MAX).is_err());
        assert_eq!(Ttl::from_millis_signed(250).unwrap().as_millis(), 250);
    }
}
