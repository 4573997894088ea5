//! Reading typed values out of text columns: states and kinds are stored as their one
//! string and turned back into enums as a row is read; bulk readers borrow the text.

use rusqlite::Row;

/// A text column holding one of an enum's strings; anything else is a damaged row.
pub fn enum_column<T: std::str::FromStr>(r: &Row<'_>, i: usize) -> rusqlite::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = r.get(i)?;
    text.parse::<T>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A text column borrowed from the row, not copied: for readers that stream many rows.
pub fn borrowed_text<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    r.get_ref(i)?.as_str().map_err(rusqlite::Error::from)
}
