//! The Lua scripts of lua/, embedded in the binary, and the meaning of their replies.
//!
//! `redis::Script` sends EVALSHA and, on NOSCRIPT (Redis restarted, failed over or ran
//! SCRIPT FLUSH), loads the script and retries, so callers never handle that case.

use std::sync::LazyLock;

use redis::Script;

pub static RESERVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/reserve.lua")));
pub static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/release.lua")));
pub static LOAD_NIGHTS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/load_nights.lua")));
pub static RECONCILE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/reconcile.lua")));

/// What reserve.lua did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreDeduct {
    /// Every night was deducted and the hold marker set.
    Deducted,
    /// The night at this index (0-based) lacks the rooms; nothing changed.
    SoldOut { night: usize },
    /// These nights (0-based) are not in Redis; nothing changed.
    Missing { nights: Vec<usize> },
    /// The reservation id already deducted (its marker exists); nothing changed.
    AlreadyHeld,
}

/// Decodes reserve.lua's reply; the codes are documented in the script's header.
pub fn decode_reserve(reply: &[i64]) -> Option<PreDeduct> {
    let index = |i: &i64| usize::try_from(*i).ok()?.checked_sub(1);
    match reply.split_first()? {
        (1, []) => Some(PreDeduct::Deducted),
        (0, [night]) => Some(PreDeduct::SoldOut {
            night: index(night)?,
        }),
        (-1, nights) if !nights.is_empty() => Some(PreDeduct::Missing {
            nights: nights.iter().map(index).collect::<Option<_>>()?,
        }),
        (2, []) => Some(PreDeduct::AlreadyHeld),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reserve_code_decodes() {
        assert_eq!(decode_reserve(&[1]), Some(PreDeduct::Deducted));
        assert_eq!(
            decode_reserve(&[0, 3]),
            Some(PreDeduct::SoldOut { night: 2 })
        );
        assert_eq!(
            decode_reserve(&[-1, 1, 4]),
            Some(PreDeduct::Missing { nights: vec![0, 3] })
        );
        assert_eq!(decode_reserve(&[2]), Some(PreDeduct::AlreadyHeld));
    }

    #[test]
    fn malformed_replies_are_refused() {
        for bad in [&[][..], &[7], &[0], &[-1], &[1, 1], &[0, 0], &[-1, 0]] {
            assert_eq!(decode_reserve(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_script_documents_its_contract() {
        for source in [
            include_str!("../../lua/reserve.lua"),
            include_str!("../../lua/release.lua"),
            include_str!("../../lua/load_nights.lua"),
            include_str!("../../lua/reconcile.lua"),
        ] {
            for part in ["KEYS[", "ARGV[", "Returns"] {
                assert!(source.contains(part), "a script header lacks {part}");
            }
        }
    }
}
