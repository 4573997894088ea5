//! An instance's usage as its row keeps it (migration 0021): a JSON object from interned
//! tag id to count, `{"3":5,"7":1}`, or NULL when it holds none. One page per instance
//! then holds both its state and its usage, so a report that changes counts reads and
//! dirties that page alone. SQL reads it through the `instance_usage` view (one instance's
//! usage: the view's lookup is by rowid), or with `json_each` where a whole account is
//! read; Rust reads and writes it here.

use super::Result;
use rusqlite::types::Type;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// The (tag id, count) entries of a stored column, in the column's order (the order
/// `json_each` reads them in, which the ledger's capture follows).
pub fn decode(column: Option<&str>) -> Result<Vec<(i64, i64)>> {
    let Some(text) = column else {
        return Ok(Vec::new());
    };
    let unreadable = |e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(0, Type::Text, e)
    };
    let InOrder(entries) = serde_json::from_str(text).map_err(|e| unreadable(e.into()))?;
    Ok(entries)
}

/// A JSON object of tag id to count, its entries kept in order.
struct InOrder(Vec<(i64, i64)>);

impl<'de> Deserialize<'de> for InOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = InOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of tag id to count")
            }
            fn visit_map<M: MapAccess<'de>>(
                self,
                mut m: M,
            ) -> std::result::Result<InOrder, M::Error> {
                let mut entries = Vec::with_capacity(m.size_hint().unwrap_or(1));
                while let Some((tag_id, count)) =
                    m.next_entry::<std::borrow::Cow<'de, str>, i64>()?
                {
                    let tag_id = tag_id.parse().map_err(serde::de::Error::custom)?;
                    entries.push((tag_id, count));
                }
                Ok(InOrder(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// The column for these entries: NULL (None) when there are none.
pub fn encode(entries: &[(i64, i64)]) -> Option<String> {
    if entries.is_empty() {
        return None;
    }
    let mut text = String::with_capacity(2 + entries.len() * 12);
    text.push('{');
    for (i, (tag_id, count)) in entries.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!("\"{tag_id}\":{count}"));
    }
    text.push('}');
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_round_trip_and_none_is_null() {
        assert_eq!(encode(&[]), None);
        assert_eq!(decode(None).unwrap(), vec![]);
        let text = encode(&[(3, 5), (12, 0), (7, 2_147_483_647)]).unwrap();
        assert_eq!(text, r#"{"3":5,"12":0,"7":2147483647}"#);
        let back = decode(Some(&text)).unwrap();
        assert_eq!(back, vec![(3, 5), (12, 0), (7, 2_147_483_647)], "in order");
    }

    #[test]
    fn sqlite_reads_the_column_as_rust_writes_it() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let text = encode(&[(3, 5), (12, 1)]).unwrap();
        let rows: Vec<(i64, i64)> = c
            .prepare("SELECT CAST(key AS INTEGER), value FROM json_each(?1) ORDER BY 1")
            .unwrap()
            .query_map([&text], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, vec![(3, 5), (12, 1)]);
        let made: String = c
            .query_row("SELECT json_object('3', 5, '12', 1)", [], |r| r.get(0))
            .unwrap();
        let mut back = decode(Some(&made)).unwrap();
        back.sort_unstable();
        assert_eq!(back, vec![(3, 5), (12, 1)]);
    }

    #[test]
    fn a_damaged_column_is_an_error_not_a_panic() {
        for bad in [
            "",
            "{",
            "[1,2]",
            r#"{"x":1}"#,
            r#"{"1":"a"}"#,
            r#"{"1":1.5}"#,
        ] {
            assert!(decode(Some(bad)).is_err(), "{bad}");
        }
    }
}
