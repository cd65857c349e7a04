//! Cursor pagination: `?limit=&cursor=` in, `{items, next_cursor}` out.
//!
//! Lists are walked by key (keyset pagination), not by offset, so a page costs the same on
//! the thousandth page as on the first and rows added meanwhile never shift a page. The
//! cursor is the last key of the page, base64url-encoded so clients treat it as opaque.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// `?limit=&cursor=`, as every list endpoint takes them.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 200; default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

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

impl PageQuery {
    pub fn parse<K: CursorKey>(&self) -> Result<PageRequest<K>, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("limit must be from 1 to {MAX_LIMIT}"),
            ));
        }
        let after = match &self.cursor {
            None => None,
            Some(cursor) => Some(
                URL_SAFE_NO_PAD
                    .decode(cursor)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .and_then(|text| K::from_cursor_text(&text))
                    .ok_or_else(|| {
                        ApiError::invalid("cursor", "cursor is not one this server issued")
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn query(limit: Option<i64>, cursor: Option<&str>) -> PageQuery {
        PageQuery {
            limit,
            cursor: cursor.map(str::to_owned),
        }
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(query(None, None).parse::<i64>().unwrap().limit, 50);
        assert_eq!(query(Some(200), None).parse::<i64>().unwrap().limit, 200);
        for bad in [0, -1, 201] {
            let error = query(Some(bad), None).parse::<i64>().unwrap_err();
            assert_eq!(error.status_code(), 422);
        }
    }

    #[test]
    fn foreign_cursors_are_refused() {
        for bad in ["%%%", "bm90IGEgbnVtYmVy"] {
            let error = query(None, Some(bad)).parse::<i64>().unwrap_err();
            assert_eq!(error.code(), "validation_failed");
        }
    }

    proptest! {
        #[test]
        fn walking_pages_visits_every_row_once(total in 0i64..60, limit in 1i64..10) {
            let rows: Vec<i64> = (1..=total).collect();
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let request = query(Some(limit), cursor.as_deref()).parse::<i64>().unwrap();
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
    }
}
