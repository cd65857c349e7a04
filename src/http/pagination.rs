//! `?limit=&cursor=`, as every list endpoint takes them; the pages themselves are the
//! store's (see `store::page`).

use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use crate::store::page::{CursorKey, PageRequest};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 200; default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn parse<K: CursorKey>(&self) -> Result<PageRequest<K>, ApiError> {
        Ok(PageRequest::parse(self.limit, self.cursor.as_deref())?)
    }
}
