//! The permit arithmetic every backend shares (re-exported by `raw`): whether a claim fits a
//! name's live leases, and which waiters a freed room serves. Pure functions, no I/O: a
//! backend that runs its decisions in Rust (memory, files) calls them under its own
//! atomicity; one that decides in a script or a query (Redis, Postgres) writes the same rules
//! there, and the conformance suite holds both to them.

use crate::{Claim, Error, InvalidInput, Kind};

/// The error for `claim` on a name held `held_as` ([`Admission::Mismatch`]).
pub fn mismatch(claim: Claim<'_>, held_as: Kind) -> Error {
    InvalidInput::KindMismatch {
        name: claim.name.to_string(),
        held_as,
        asked: claim.kind,
    }
    .into()
}

/// What a claim gets, given its name's live leases and the waiters ahead of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The claim's owner already holds a live lease of the same kind (the `usize` is its
    /// index among the leases given): an idempotent retry, same token, expiry moves on.
    Again(usize),
    /// Room for the claim, no waiter ahead needing it: grant a new lease with a new token.
    Grant,
    /// No room: the live leases take too much of the capacity.
    Full,
    /// Room now, but the waiters ahead of the claim need it first.
    Behind,
    /// The claim's kind does not match the name's (or its owner's own lease's) kind, given.
    Mismatch(Kind),
}

/// Decides a claim of `kind` by `owner` against a name's live leases (`(owner, kind)` each)
/// and `ahead`, the summed [`Kind::weight`] of the live places in line ahead of the claim (0
/// for a try that does not stand in line).
///
/// The rules: an owner asking again gets its own lease back if the kind matches; a name's
/// capacity is that of its live leases, and a claim with another is refused; a claim fits
/// when the weights of the live leases, of the places ahead and its own stay within the
/// capacity (so a waiter that needs more than is free is not overtaken by later smaller
/// ones).
pub fn admit<'a>(
    leases: impl IntoIterator<Item = (&'a str, Kind)>,
    owner: &str,
    kind: Kind,
    ahead: u64,
) -> Admission {
    let kind = kind.normalized();
    let mut used = 0u64;
    let mut in_force: Option<Kind> = None;
    for (i, (holder, held)) in leases.into_iter().enumerate() {
        let held = held.normalized();
        if holder == owner {
            return if held == kind {
                Admission::Again(i)
            } else {
                Admission::Mismatch(held)
            };
        }
        used += u64::from(held.weight());
        in_force = Some(match in_force {
            Some(Kind::Exclusive) => Kind::Exclusive,
            _ => held,
        });
    }
    let capacity = u64::from(kind.capacity());
    if let Some(held) = in_force
        && held.capacity() != kind.capacity()
    {
        return Admission::Mismatch(held);
    }
    let weight = u64::from(kind.weight());
    if used + weight > capacity {
        Admission::Full
    } else if used + ahead + weight > capacity {
        Admission::Behind
    } else {
        Admission::Grant
    }
}

/// How many of the waiters at the front of a line (their kinds, first first) a name can serve
/// now, with `held` the kinds of its live leases: the ones a release or an expiry should wake.
/// Counts in line order and stops at the first that does not fit, as [`admit`] would.
pub fn servable(
    held: impl IntoIterator<Item = Kind>,
    line: impl IntoIterator<Item = Kind>,
) -> usize {
    let mut used = 0u64;
    let mut capacity = None;
    for kind in held {
        used += u64::from(kind.weight());
        capacity = Some(u64::from(kind.capacity()));
    }
    let mut served = 0;
    for kind in line {
        let capacity = *capacity.get_or_insert(u64::from(kind.capacity()));
        if u64::from(kind.capacity()) != capacity {
            return served + 1; // it is told of the mismatch at once
        }
        used += u64::from(kind.weight());
        if used > capacity {
            break;
        }
        served += 1;
    }
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Permits;

    fn sem(n: u32) -> Kind {
        Kind::permit(Permits::new(n).unwrap())
    }

    #[test]
    fn claims_are_admitted_by_weight() {
        use Admission::*;
        let (x, s) = (Kind::Exclusive, Kind::Shared);
        type Case<'a> = (&'a [(&'a str, Kind)], &'a str, Kind, u64, Admission);
        let cases: &[Case<'_>] = &[
            (&[], "a", x, 0, Grant),
            (&[], "a", x, 1, Behind),
            (&[("b", x)], "a", x, 0, Full),
            (&[("a", x)], "a", x, 0, Again(0)),
            (&[("a", s)], "a", x, 0, Mismatch(s)),
            (&[("b", s), ("c", s)], "a", s, 0, Grant),
            (&[("b", s)], "a", x, 0, Full),
            (&[("b", x)], "a", s, 0, Full),
            (&[("b", s)], "a", s, x.weight().into(), Behind),
            (&[("b", sem(3)), ("c", sem(3))], "a", sem(3), 0, Grant),
            (&[("b", sem(3)), ("c", sem(3))], "a", sem(3), 1, Behind),
            (
                &[("b", sem(3)), ("c", sem(3)), ("d", sem(3))],
                "a",
                sem(3),
                0,
                Full,
            ),
            (&[("b", sem(3))], "a", sem(4), 0, Mismatch(sem(3))),
            (&[("b", sem(3))], "a", x, 0, Mismatch(sem(3))),
            (&[("b", sem(3))], "a", s, 0, Mismatch(sem(3))),
            (&[("b", x)], "a", sem(3), 0, Mismatch(x)),
            (&[("b", s), ("c", x)], "a", sem(2), 0, Mismatch(x)),
            (&[("b", s)], "a", sem(2), 0, Mismatch(s)),
            (&[("b", x)], "a", sem(1), 0, Full),
        ];
        for (leases, owner, kind, ahead, want) in cases {
            let got = admit(leases.iter().copied(), owner, *kind, *ahead);
            assert_eq!(got, *want, "{leases:?} {owner} {kind:?} ahead {ahead}");
        }
    }

    #[test]
    fn a_release_serves_the_front_of_the_line_that_fits() {
        let (x, s) = (Kind::Exclusive, Kind::Shared);
        let cases: &[(&[Kind], &[Kind], usize)] = &[
            (&[], &[], 0),
            (&[], &[x, x], 1),
            (&[], &[s, s, x, s], 2),
            (&[s], &[x], 0),
            (&[s], &[s, x], 1),
            (&[sem(3), sem(3)], &[sem(3), sem(3)], 1),
            (&[], &[sem(3), sem(3), sem(3), sem(3)], 3),
            (&[sem(3)], &[sem(4)], 1),
        ];
        for (held, line, want) in cases {
            let got = servable(held.iter().copied(), line.iter().copied());
            assert_eq!(got, *want, "{held:?} {line:?}");
        }
    }
}
