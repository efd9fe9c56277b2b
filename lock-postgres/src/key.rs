//! Names as 64-bit advisory lock keys, and the NOTIFY channel of a table.

use sha2::{Digest, Sha256};

/// The first 8 bytes of SHA-256 over `parts` joined by NUL bytes, as a big-endian `i64`.
///
/// NUL cannot occur in a lock name nor in a checked identifier, so the join is unambiguous.
fn hash64(parts: &[&str]) -> [u8; 8] {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update([0u8]);
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    first
}

/// The advisory lock key of lock `name` in table `schema.table`: the first 8 bytes of
/// SHA-256 over `schema.table`, a NUL byte and the name's UTF-8, read as a big-endian signed
/// 64-bit integer.
///
/// The table is part of the key, so that two tables are two separate sets of locks, as they
/// are in lease mode. In SQL, for an operator looking for a lock in `pg_locks`:
///
/// ```sql
/// SELECT ('x' || encode(substring(sha256(
///            convert_to('public.lock_sessions', 'UTF8') || '\x00'::bytea || convert_to('NAME', 'UTF8'))
///          FROM 1 FOR 8), 'hex'))::bit(64)::bigint;
/// ```
pub fn advisory_key(schema: &str, table: &str, name: &str) -> i64 {
    i64::from_be_bytes(hash64(&[&format!("{schema}.{table}"), name]))
}

/// The key split as Postgres shows it in `pg_locks`, and as the two-`int4` advisory lock
/// functions take it: (high 32 bits, low 32 bits).
pub(crate) fn split(key: i64) -> (i32, i32) {
    ((key >> 32) as i32, key as i32)
}

/// The key of the transaction lock that serializes creating `schema.table`.
pub(crate) fn creation_key(schema: &str, table: &str) -> i64 {
    i64::from_be_bytes(hash64(&[
        "lock-postgres: create",
        &format!("{schema}.{table}"),
    ]))
}

/// The NOTIFY channel of table `schema.table`: `lock_postgres_` and 16 hex digits of the
/// SHA-256 of `schema.table` (a channel is an identifier: at most 63 bytes).
pub(crate) fn channel(schema: &str, table: &str) -> String {
    let first = hash64(&[&format!("{schema}.{table}")]);
    let hex: String = first.iter().map(|b| format!("{b:02x}")).collect();
    format!("lock_postgres_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_depend_on_table_and_name() {
        // Pinned: a change of the mapping would let two versions of this crate hold one lock
        // at once.
        let k = advisory_key("public", "lock_sessions", "a");
        assert_eq!(k, 3_622_244_909_279_090_585);
        assert_ne!(k, advisory_key("public", "lock_sessions", "b"));
        assert_ne!(k, advisory_key("public", "other", "a"));
        assert_ne!(advisory_key("a", "b", "c"), advisory_key("a", "b\0c", ""));
        let expected = {
            let d = Sha256::digest(b"public.lock_sessions\0a");
            i64::from_be_bytes(d[..8].try_into().unwrap())
        };
        assert_eq!(k, expected);
    }

    #[test]
    fn split_matches_pg_locks() {
        assert_eq!(split(-8_070_450_532_247_928_832), (-1_879_048_192, 0));
        assert_eq!(split(0x0000_0001_ffff_ffff), (1, -1));
        let key = advisory_key("s", "t", "n");
        let (hi, lo) = split(key);
        assert_eq!(((i64::from(hi)) << 32) | i64::from(lo as u32), key);
    }

    #[test]
    fn channels_are_identifiers() {
        let c = channel("public", "lock_leases");
        assert!(c.len() <= 63 && c.starts_with("lock_postgres_"), "{c}");
        assert_ne!(c, channel("public", "lock_sessions"));
    }
}
