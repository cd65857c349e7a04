//! The Lua scripts of lua/, embedded in the binary, and the meaning of their replies.
//!
//! A call sends EVALSHA and, on NOSCRIPT (Redis restarted or ran SCRIPT FLUSH, or a
//! replica was just promoted: a script cache is not replicated), sends the script itself
//! with EVAL, which also caches it there, so callers never handle that case. The redis
//! crate's own `Script` answers NOSCRIPT with a SCRIPT LOAD sent to every node of a
//! cluster, which fails while any node is unreachable, as one is during the very failover
//! that caused the NOSCRIPT; EVAL goes only to the slot's new primary.

use std::sync::LazyLock;

use redis::aio::ConnectionLike;

use chrono::{Days, NaiveDate};

use crate::domain::{Restriction, Stay};
use redis::{FromRedisValue, RedisResult, ServerErrorKind, ToRedisArgs};

/// A Lua script and its SHA1, as EVALSHA names it.
pub struct InventoryScript {
    code: &'static str,
    hash: String,
}

impl InventoryScript {
    fn new(code: &'static str) -> Self {
        Self {
            code,
            hash: redis::Script::new(code).get_hash().to_owned(),
        }
    }

    /// A call of the script, to be given its keys and arguments.
    pub fn prepare_invoke(&self) -> ScriptCall<'_> {
        ScriptCall {
            script: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// One call of a script: its keys (which must share one cluster slot) and arguments.
pub struct ScriptCall<'a> {
    script: &'a InventoryScript,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl ScriptCall<'_> {
    pub fn key(&mut self, key: impl ToRedisArgs) -> &mut Self {
        self.keys.extend(key.to_redis_args());
        self
    }

    pub fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    /// EVALSHA, and EVAL after a NOSCRIPT.
    pub async fn invoke<T: FromRedisValue>(
        &self,
        connection: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        match self
            .command("EVALSHA", &self.script.hash)
            .query_async(connection)
            .await
        {
            Err(error) if error.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.command("EVAL", self.script.code)
                    .query_async(connection)
                    .await
            }
            outcome => outcome,
        }
    }

    fn command(&self, name: &str, script: &str) -> redis::Cmd {
        let mut command = redis::cmd(name);
        command
            .arg(script)
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        command
    }
}

pub static RESERVE: LazyLock<InventoryScript> =
    LazyLock::new(|| InventoryScript::new(include_str!("../../lua/reserve.lua")));
pub static COMMIT: LazyLock<InventoryScript> =
    LazyLock::new(|| InventoryScript::new(include_str!("../../lua/commit.lua")));
pub static RELEASE: LazyLock<InventoryScript> =
    LazyLock::new(|| InventoryScript::new(include_str!("../../lua/release.lua")));
pub static LOAD_NIGHTS: LazyLock<InventoryScript> =
    LazyLock::new(|| InventoryScript::new(include_str!("../../lua/load_nights.lua")));
pub static RECONCILE: LazyLock<InventoryScript> =
    LazyLock::new(|| InventoryScript::new(include_str!("../../lua/reconcile.lua")));

/// What reserve.lua did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreDeduct {
    /// Every night was deducted and the deduction marker set.
    Deducted,
    /// The night at this index (0-based) lacks the rooms; nothing changed.
    SoldOut { night: usize },
    /// These nights (0-based) are not in Redis; nothing changed.
    Missing { nights: Vec<usize> },
    /// The reservation id already deducted (its marker exists); nothing changed.
    AlreadyHeld,
    /// The stay breaks this restriction, set on this date; nothing changed.
    Restricted {
        night: NaiveDate,
        restriction: Restriction,
    },
}

/// Decodes reserve.lua's reply to a call for `stay`; the codes are documented in the
/// script's header.
pub fn decode_reserve(reply: &[i64], stay: &Stay) -> Option<PreDeduct> {
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
        (3, [night, code]) => {
            let restriction = Restriction::from_script_code(*code)?;
            let night = match restriction {
                // Set on the check-out date, which the script reads on the last night.
                Restriction::ClosedToDeparture => stay.check_out,
                _ => stay.check_in + Days::new(index(night)? as u64),
            };
            Some(PreDeduct::Restricted { night, restriction })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stay() -> Stay {
        Stay {
            reservation_id: crate::domain::ReservationId::new(uuid::Uuid::nil()),
            hotel_id: 1,
            room_type_id: 1,
            check_in: NaiveDate::from_ymd_opt(2027, 7, 1).unwrap(),
            check_out: NaiveDate::from_ymd_opt(2027, 7, 4).unwrap(),
            rooms: 1,
        }
    }

    #[test]
    fn every_reserve_code_decodes() {
        assert_eq!(decode_reserve(&[1], &stay()), Some(PreDeduct::Deducted));
        assert_eq!(
            decode_reserve(&[0, 3], &stay()),
            Some(PreDeduct::SoldOut { night: 2 })
        );
        assert_eq!(
            decode_reserve(&[-1, 1, 4], &stay()),
            Some(PreDeduct::Missing { nights: vec![0, 3] })
        );
        assert_eq!(decode_reserve(&[2], &stay()), Some(PreDeduct::AlreadyHeld));
        assert_eq!(
            decode_reserve(&[3, 2, 3], &stay()),
            Some(PreDeduct::Restricted {
                night: stay().check_in + Days::new(1),
                restriction: Restriction::MinStay
            })
        );
        // Closed to departure is read on the last night and set on the check-out date.
        assert_eq!(
            decode_reserve(&[3, 3, 5], &stay()),
            Some(PreDeduct::Restricted {
                night: stay().check_out,
                restriction: Restriction::ClosedToDeparture
            })
        );
    }

    #[test]
    fn malformed_replies_are_refused() {
        for bad in [
            &[][..],
            &[7],
            &[0],
            &[-1],
            &[1, 1],
            &[0, 0],
            &[-1, 0],
            &[3, 1],
            &[3, 1, 6],
        ] {
            assert_eq!(decode_reserve(bad, &stay()), None, "{bad:?}");
        }
    }

    const SCRIPTS: [(&str, &str); 4] = [
        ("reserve.lua", include_str!("../../lua/reserve.lua")),
        ("release.lua", include_str!("../../lua/release.lua")),
        ("load_nights.lua", include_str!("../../lua/load_nights.lua")),
        ("reconcile.lua", include_str!("../../lua/reconcile.lua")),
    ];

    /// A script's header (its leading comment lines) and its code.
    fn header_and_code(source: &str) -> (String, String) {
        let mut header = String::new();
        let mut code = String::new();
        let mut in_header = true;
        for line in source.lines() {
            match line.strip_prefix("--") {
                Some(comment) if in_header => {
                    header.push_str(comment);
                    header.push('\n');
                }
                _ => {
                    in_header = false;
                    code.push_str(line);
                    code.push('\n');
                }
            }
        }
        (header, code)
    }

    /// Every `KEYS[..]` and `ARGV[..]` the code reads at a fixed position: a literal
    /// index, or one past the `n` night keys (`KEYS[n + 1]`), written as headers write
    /// them (`KEYS[n+1]`).
    fn literal_indexes(code: &str) -> Vec<String> {
        let mut found = Vec::new();
        for table in ["KEYS[", "ARGV["] {
            let mut rest = code;
            while let Some(at) = rest.find(table) {
                rest = &rest[at + table.len()..];
                let Some(end) = rest.find(']') else { break };
                let index = rest[..end].replace(' ', "");
                let fixed = index.chars().all(|c| c.is_ascii_digit())
                    || index
                        .strip_prefix("n+")
                        .is_some_and(|k| k.chars().all(|c| c.is_ascii_digit()));
                if !index.is_empty() && fixed {
                    found.push(format!("{table}{index}]"));
                }
            }
        }
        found
    }

    /// Each script's header documents every argument its code reads by position, and says
    /// what it returns.
    #[test]
    fn every_script_documents_what_it_reads_and_returns() {
        for (name, source) in SCRIPTS {
            let (header, code) = header_and_code(source);
            assert!(
                header.contains("Returns"),
                "{name} does not say what it returns"
            );
            assert!(header.contains("KEYS["), "{name} does not list its keys");
            for index in literal_indexes(&code) {
                assert!(
                    header.contains(&index),
                    "{name} reads {index} but its header does not document it"
                );
            }
        }
    }

    /// Every reply reserve.lua's header lists is one `decode_reserve` understands, and
    /// every reply shape it understands is in the header: the Rust side and the script
    /// agree on the whole contract.
    #[test]
    fn reserve_replies_match_its_header() {
        let (header, _) = header_and_code(SCRIPTS[0].1);
        let listed: Vec<&str> = header
            .lines()
            .filter_map(|line| line.trim().strip_prefix('{'))
            .filter_map(|reply| reply.split('}').next())
            .collect();
        assert_eq!(
            listed,
            ["1", "0, i", "-1, i, j...", "2", "3, i, r"],
            "{header}"
        );
        for reply in [&[1][..], &[0, 1], &[-1, 1, 2], &[2], &[3, 1, 5]] {
            assert!(decode_reserve(reply, &stay()).is_some(), "{reply:?}");
        }
    }

    #[test]
    fn the_header_check_catches_an_undocumented_argument() {
        let (header, code) = header_and_code(
            "-- KEYS[1] a key\n-- Returns: 1\nreturn ARGV[2] + KEYS[1] + KEYS[n + 1] + ARGV[i]\n",
        );
        let undocumented: Vec<String> = literal_indexes(&code)
            .into_iter()
            .filter(|index| !header.contains(index.as_str()))
            .collect();
        assert_eq!(undocumented, ["KEYS[n+1]", "ARGV[2]"]);
    }
}
