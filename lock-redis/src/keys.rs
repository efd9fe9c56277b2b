//! [`Keys`]: the Redis keys and channel of one lock name.

use lock_core::LockName;

/// The Redis keys and the pub/sub channel that hold one lock name's state.
///
/// All of them are `<prefix>{<escaped name>}:<what>`. The escaped name has no `{` or `}`, so the
/// braces around it are Redis Cluster's hash tag: they share one slot, and a script that
/// touches two of them is legal on a cluster. Escaping (`%` → `%25`, `{` → `%7B`, `}` → `%7D`,
/// everything else as it is) is injective and the prefix may not hold braces, so the text up
/// to the first `}` names exactly one prefix and one name: no two names, and no two prefixes,
/// ever share a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// The lease: a string `"<token> <owner>"` that expires on the server's clock (`PX`).
    pub lease: String,
    /// The fencing counter: the last token handed out. It never expires.
    pub token: String,
    /// The waiters' line: a sorted set of owners by the server time (µs) they joined at.
    pub line: String,
    /// How long each waiter's place is kept: a hash of owner to server time (ms).
    pub kept: String,
    /// The shared and permit leases: a sorted set of owners by the server time (ms) each
    /// lease ends at. An exclusive lease lives at `lease` instead.
    pub holders: String,
    /// The shared and permit leases' tokens: a hash of owner to token, and the field `""` to
    /// the name's capacity (N, or the reader-writer capacity for shared leases).
    pub permits: String,
    /// The channel a release or force release publishes on.
    pub channel: String,
}

impl Keys {
    /// The keys of `name` under `prefix`.
    pub fn new(prefix: &str, name: &LockName) -> Self {
        let base = format!("{prefix}{{{}}}", escape(name.as_str()));
        Self {
            lease: format!("{base}:lease"),
            token: format!("{base}:token"),
            line: format!("{base}:line"),
            kept: format!("{base}:kept"),
            holders: format!("{base}:holders"),
            permits: format!("{base}:permits"),
            channel: format!("{base}:released"),
        }
    }

    /// Every key of the name, in the order the scripts that touch them all take them: lease,
    /// token, line, kept, holders, permits.
    pub fn all(&self) -> [&str; 6] {
        [
            &self.lease,
            &self.token,
            &self.line,
            &self.kept,
            &self.holders,
            &self.permits,
        ]
    }
}

/// `name` with `%`, `{` and `}` percent-escaped.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn keys(prefix: &str, name: &str) -> Keys {
        Keys::new(prefix, &LockName::new(name).unwrap())
    }

    /// Redis Cluster's hash tag of a key: the text between the first `{` and the first `}`
    /// after it, when not empty.
    fn hash_tag(key: &str) -> Option<&str> {
        let open = key.find('{')?;
        let close = key[open + 1..].find('}')? + open + 1;
        (close > open + 1).then(|| &key[open + 1..close])
    }

    #[test]
    fn the_layout_is_prefix_tag_kind() {
        assert_eq!(
            keys("lock:", "job"),
            Keys {
                lease: "lock:{job}:lease".into(),
                token: "lock:{job}:token".into(),
                line: "lock:{job}:line".into(),
                kept: "lock:{job}:kept".into(),
                holders: "lock:{job}:holders".into(),
                permits: "lock:{job}:permits".into(),
                channel: "lock:{job}:released".into(),
            }
        );
        assert_eq!(keys("p:", "a{b}%c").lease, "p:{a%7Bb%7D%25c}:lease");
    }

    #[test]
    fn hostile_names_never_share_a_key_and_keep_one_slot() {
        let names = [
            "a",
            "a}",
            "{a}",
            "a}:lease",
            "a}:token",
            "a}:released",
            "a}:line",
            "a}:kept",
            "}",
            "{",
            "{}",
            "}{",
            "%",
            "%7B",
            "%7D",
            "%25",
            "%7b",
            "lock:",
            "lock:{a}",
            "lock:{a}:lease",
            "a:lease",
            "a b",
            "*",
            "?",
            "[a]",
            "*?[{}",
            "a%7Db",
            "a}b",
            "é",
            "🔒",
            "a:b",
            "a::b",
            ":",
        ];
        for prefix in ["lock:", "", "lock:a:", "x"] {
            let mut seen = HashSet::new();
            for name in names {
                let k = keys(prefix, name);
                for key in [&k.lease, &k.token, &k.line, &k.kept, &k.channel] {
                    assert!(
                        seen.insert(key.clone()),
                        "{prefix:?} {name:?}: {key} taken twice"
                    );
                }
                let tag = hash_tag(&k.lease).expect("a non-empty hash tag");
                assert_eq!(Some(tag), hash_tag(&k.token), "{name:?}");
                assert_eq!(Some(tag), hash_tag(&k.channel), "{name:?}");
                assert_eq!(Some(tag), hash_tag(&k.line), "{name:?}");
                assert_eq!(Some(tag), hash_tag(&k.kept), "{name:?}");
            }
        }
    }

    #[test]
    fn prefixes_never_share_a_key() {
        let a = keys("lock:", "x}:lease");
        let b = keys("lock:x", "x");
        let c = keys("lock", ":{x");
        let all: HashSet<_> = [&a, &b, &c]
            .iter()
            .flat_map(|k| [k.lease.clone(), k.token.clone(), k.channel.clone()])
            .collect();
        assert_eq!(all.len(), 9);
    }
}
