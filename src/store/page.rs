//! Keyset pagination: a page of items and the cursor for the next one.

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<String>,
}

/// Clamps a requested page size to 1..=MAX_LIMIT.
pub fn clamp_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

/// Builds a page from up to `limit + 1` fetched rows: the extra row only signals that
/// there is more, and the cursor is the last returned item's key.
pub fn from_rows<T>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_after = if more { rows.last().map(key) } else { None };
    Page {
        items: rows,
        next_after,
    }
}
