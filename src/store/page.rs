//! Cursor pagination of the store's lists: a limit and a cursor in, `{items, next_cursor}`
//! out.
//!
//! Lists are walked by key (keyset pagination), not by offset, so a page costs the same on
//! the thousandth page as on the first and rows added meanwhile never shift a page. The
//! cursor is the last key of the page, base64url-encoded so clients treat it as opaque.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::InvalidField;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// A validated page request: how many rows, and the key to continue after.
#[derive(Debug, Clone)]
pub struct PageRequest<K> {
    pub limit: i64,
    pub after: Option<K>,
}

/// The key a list is ordered by, written into and read back from a cursor.
pub trait CursorKey: Sized {
    fn to_cursor_text(&self) -> String;
    fn from_cursor_text(text: &str) -> Option<Self>;
}

impl CursorKey for i64 {
    fn to_cursor_text(&self) -> String {
        self.to_string()
    }

    fn from_cursor_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

/// The key of lists ordered by when their rows were made, ties broken by id: reservations
/// (newest first), webhook endpoints and deliveries (oldest first). Its `Ord` (time, then
/// id bytes) is Postgres' order of the same pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CreatedKey {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl CursorKey for CreatedKey {
    fn to_cursor_text(&self) -> String {
        format!("{}|{}", self.created_at.timestamp_micros(), self.id)
    }

    fn from_cursor_text(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('|')?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: id.parse().ok()?,
        })
    }
}

impl PageRequest<CreatedKey> {
    /// The key to continue after, as the two query parameters a list statement takes
    /// (both null on the first page).
    pub fn after_pair(&self) -> (Option<DateTime<Utc>>, Option<Uuid>) {
        match &self.after {
            Some(key) => (Some(key.created_at), Some(key.id)),
            None => (None, None),
        }
    }
}

impl<K: CursorKey> PageRequest<K> {
    /// `limit` and `cursor` as a client sent them (`None` when absent).
    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, InvalidField> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(InvalidField::new(
                "limit",
                format!("limit must be from 1 to {MAX_LIMIT}"),
            ));
        }
        // An empty `?cursor=` is no cursor: the first page.
        let after = match cursor.filter(|cursor| !cursor.is_empty()) {
            None => None,
            Some(cursor) => Some(
                URL_SAFE_NO_PAD
                    .decode(cursor)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .and_then(|text| K::from_cursor_text(&text))
                    .ok_or_else(|| {
                        InvalidField::new("cursor", "cursor is not one this server issued")
                    })?,
            ),
        };
        Ok(PageRequest { limit, after })
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row, when present, only says that
    /// another page exists, and is dropped.
    pub fn from_rows<K: CursorKey>(
        mut rows: Vec<T>,
        request: &PageRequest<K>,
        key: impl Fn(&T) -> K,
    ) -> Self {
        let limit = request.limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .map(|last| URL_SAFE_NO_PAD.encode(key(last).to_cursor_text()))
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

/// Which way a list runs by its key.
#[derive(Debug, Clone, Copy)]
pub enum Order {
    Ascending,
    Descending,
}

impl<T> Page<T> {
    /// Builds a page from each shard's rows for the same request (up to `limit + 1`
    /// each, after the same cursor): merged in the list's order, they hold the whole
    /// list's next `limit + 1`.
    pub fn from_merged<K: CursorKey + Ord>(
        per_shard: Vec<Vec<T>>,
        request: &PageRequest<K>,
        key: impl Fn(&T) -> K,
        order: Order,
    ) -> Self {
        let mut rows: Vec<T> = per_shard.into_iter().flatten().collect();
        match order {
            Order::Ascending => rows.sort_by_key(|row| key(row)),
            Order::Descending => rows.sort_by_key(|row| std::cmp::Reverse(key(row))),
        }
        rows.truncate(request.limit as usize + 1);
        Self::from_rows(rows, request, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<PageRequest<i64>, InvalidField> {
        PageRequest::parse(limit, cursor)
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(parse(None, None).unwrap().limit, 50);
        assert_eq!(parse(Some(200), None).unwrap().limit, 200);
        for bad in [0, -1, 201] {
            assert_eq!(parse(Some(bad), None).unwrap_err().field, "limit");
        }
    }

    #[test]
    fn foreign_cursors_are_refused() {
        for bad in ["%%%", "bm90IGEgbnVtYmVy"] {
            assert_eq!(parse(None, Some(bad)).unwrap_err().field, "cursor");
        }
        assert_eq!(parse(None, Some("")).unwrap().after, None);
    }

    proptest! {
        #[test]
        fn walking_pages_visits_every_row_once(total in 0i64..60, limit in 1i64..10) {
            let rows: Vec<i64> = (1..=total).collect();
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let request = parse(Some(limit), cursor.as_deref()).unwrap();
                let after = request.after.unwrap_or(0);
                let slice: Vec<i64> = rows.iter().copied().filter(|r| *r > after).take(limit as usize + 1).collect();
                let page = Page::from_rows(slice, &request, |r| *r);
                prop_assert!(page.items.len() <= limit as usize);
                seen.extend(page.items);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            prop_assert_eq!(seen, rows);
        }

        #[test]
        fn walking_merged_pages_visits_every_row_once(
            shard_of in proptest::collection::vec(0usize..3, 0..60),
            limit in 1i64..10,
        ) {
            // Row r (1-based) lives on shard shard_of[r - 1].
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let request = parse(Some(limit), cursor.as_deref()).unwrap();
                let after = request.after.unwrap_or(0);
                let per_shard: Vec<Vec<i64>> = (0..3)
                    .map(|shard| {
                        (1..=shard_of.len() as i64)
                            .filter(|r| shard_of[*r as usize - 1] == shard && *r > after)
                            .take(limit as usize + 1)
                            .collect()
                    })
                    .collect();
                let page = Page::from_merged(per_shard, &request, |r| *r, Order::Ascending);
                prop_assert!(page.items.len() <= limit as usize);
                seen.extend(page.items);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            prop_assert_eq!(seen, (1..=shard_of.len() as i64).collect::<Vec<_>>());
        }
    }
}
