//! The console's listings by status, a page at a time: the exceptions and
//! approvals pages show the oldest [`PAGE_ROWS`] entries of a status and a
//! link to the next page ([`StatusCursor`] text in the query), so a page
//! costs what it shows however many entries wait; the totals come from the
//! maintained aggregates, not from reading the entries. The bulk actions and
//! the CSV read a status to its end (`crate::ports::status_states`), a page
//! at a time.

use std::collections::BTreeMap;

use super::entry_detail::urlencode;
use super::ApiError;
use crate::ports::{EntryStore, StatusCursor, StoreError};
use crate::state::{EntryState, Status};

/// How many entries of one status a console page lists.
pub const PAGE_ROWS: usize = 200;

/// The query value that says a status was listed to its end on an earlier
/// page.
pub const END: &str = "end";

/// One page of `status` after `after` (the query's `field`: a cursor's
/// text, [`END`], or absent for the first page): at most `rows` entries and
/// what the next page's `field` is (None when this page reached the end).
pub async fn page(
    entries: &dyn EntryStore,
    status: Status,
    after: Option<&str>,
    field: &str,
    rows: usize,
) -> Result<(Vec<EntryState>, Option<String>), ApiError> {
    let cursor = match after.filter(|a| !a.is_empty()) {
        Some(END) => return Ok((Vec::new(), None)),
        Some(a) => Some(
            a.parse::<StatusCursor>()
                .map_err(|e| ApiError::bad_request(e, Some(field.into())))?,
        ),
        None => None,
    };
    let mut list = entries
        .by_status_after(status, cursor.as_ref(), rows + 1)
        .await?;
    let more = list.len() > rows;
    list.truncate(rows);
    let next = if more {
        StatusCursor::after(&list).map(|c| c.to_string())
    } else {
        None
    };
    Ok((list, next))
}

/// The admin API's page of `status`: at most `limit` entries (500 unless
/// given, 10,000 at most), oldest first, after the query's `after`
/// (`<updated_at>|<key>` of the previous page's last entry).
pub async fn api_page(
    entries: &dyn EntryStore,
    status: Status,
    after: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<EntryState>, ApiError> {
    let after = after
        .filter(|a| !a.is_empty())
        .map(str::parse::<StatusCursor>)
        .transpose()
        .map_err(|e| ApiError::bad_request(e, Some("after".into())))?;
    Ok(entries
        .by_status_after(status, after.as_ref(), api_limit(limit))
        .await?)
}

/// A listing's `limit`: 500 unless given, at most 10,000.
pub fn api_limit(limit: Option<usize>) -> usize {
    limit.unwrap_or(500).min(10_000)
}

/// How many entries each status holds, from the aggregates' year rows (a
/// bounded read, not a count of the entries).
pub async fn totals(entries: &dyn EntryStore) -> Result<BTreeMap<Status, usize>, StoreError> {
    let rows = entries
        .aggregates(crate::aggregates::Grain::Year, None, None)
        .await?;
    Ok(crate::aggregates::Totals::of(&rows).entries)
}

/// `?field=value&…` for the next page's link: `value` a status's next
/// cursor, or [`END`] when it has none.
pub fn next_query(parts: &[(&str, &Option<String>)]) -> String {
    let pairs: Vec<String> = parts
        .iter()
        .map(|(field, next)| format!("{field}={}", urlencode(next.as_deref().unwrap_or(END))))
        .collect();
    format!("?{}", pairs.join("&"))
}
