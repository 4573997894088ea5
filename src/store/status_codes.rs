//! An instance's status as stored (migration 0019): a small integer in `instances.status`
//! and `instance_history.status`, the ONE mapping from and to `InstanceStatus`. Codes
//! follow the strings' alphabetical order, so an index on (va_id, status) walks the
//! statuses in the order their text sorts (the list merges our rows with satellites' by
//! that text). A new status takes a free code in its alphabetical place; none is reused.
//! `va_status_counts` (a few rows per VA) keeps the text.

use crate::domain::instance::InstanceStatus;
use rusqlite::Row;

pub fn code(s: InstanceStatus) -> i64 {
    match s {
        InstanceStatus::AuthorizationExpired => 0,
        InstanceStatus::Authorized => 1,
        InstanceStatus::NotAuthorized => 2,
        InstanceStatus::OutOfCompliance => 3,
        InstanceStatus::Registered => 4,
        InstanceStatus::Reserved => 5,
    }
}

pub fn from_code(c: i64) -> Option<InstanceStatus> {
    InstanceStatus::ALL.into_iter().find(|s| code(*s) == c)
}

/// The code of a status's text (a filter, a cursor key, a history line).
pub fn code_of(text: &str) -> Option<i64> {
    InstanceStatus::parse(text).map(code)
}

/// SQL reading the code column `col` as the status's text.
pub fn text_sql(col: &str) -> String {
    let arms: String = ordered()
        .map(|s| format!(" WHEN {} THEN '{}'", code(s), s.as_str()))
        .collect();
    format!("CASE {col}{arms} END")
}

/// SQL reading the status text `expr` as its code.
pub fn code_sql(expr: &str) -> String {
    let arms: String = ordered()
        .map(|s| format!(" WHEN '{}' THEN {}", s.as_str(), code(s)))
        .collect();
    format!("CASE {expr}{arms} END")
}

/// The statuses the status index (`instances_va_status`) leaves out: the bulk of an
/// estate, which an instance's first report moves it into (migration 0023), and the one
/// it moves it out of (0024). Each would cost a first report a write on a random page.
pub const UNINDEXED: [InstanceStatus; 2] = [InstanceStatus::Authorized, InstanceStatus::Registered];

/// Whether the status index holds instances of status `s`.
pub fn is_indexed(s: InstanceStatus) -> bool {
    !UNINDEXED.contains(&s)
}

/// The status index's condition on the status column `col`. SQLite uses a partial index
/// only for a query whose terms include its condition, so a query meant to read the index
/// repeats it.
pub fn indexed_sql(col: &str) -> String {
    let codes: Vec<String> = UNINDEXED.iter().map(|s| code(*s).to_string()).collect();
    format!("{col} NOT IN ({})", codes.join(", "))
}

fn ordered() -> impl Iterator<Item = InstanceStatus> {
    let mut all = InstanceStatus::ALL;
    all.sort_by_key(|s| code(*s));
    all.into_iter()
}

/// A status column of a row, read from its code; anything else is a damaged row.
pub fn column(r: &Row<'_>, i: usize) -> rusqlite::Result<InstanceStatus> {
    let c: i64 = r.get(i)?;
    from_code(c).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Integer,
            format!("no instance status has code {c}").into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_round_trip_and_sort_as_the_text() {
        let mut by_text = InstanceStatus::ALL;
        by_text.sort_by_key(|s| s.as_str());
        let codes: Vec<i64> = by_text.iter().map(|s| code(*s)).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(codes, sorted, "codes follow the text's order, each once");
        for s in InstanceStatus::ALL {
            assert_eq!(from_code(code(s)), Some(s));
            assert_eq!(code_of(s.as_str()), Some(code(s)));
        }
        assert_eq!(from_code(99), None);
    }

    /// The condition queries repeat is the one the latest migration gave the index.
    #[test]
    fn the_index_condition_is_the_migrations() {
        let migration = include_str!("migrations/0024_status_index_without_registered.sql");
        let index = format!(
            "ON instances(va_id, status) WHERE {};",
            indexed_sql("status")
        );
        assert!(migration.contains(&index), "{index}");
    }
}
