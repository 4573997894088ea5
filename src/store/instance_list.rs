//! The instance list across virtual accounts (an account's, or every account's): each VA
//! is paged by keyset on an index `(va_id, sort column, id)`, then the pages are merged, so
//! a page costs (VAs x page size) index reads whatever the number of instances; but for
//! the statuses the status index leaves out, which are found by walking the VA and read
//! its rows until a page is full (`walked_vas` says when not to walk at all).

use super::instances::{like_escaped, row, Instance, COLUMNS};
use super::status_codes::{is_indexed, UNINDEXED};
use super::Result;
use crate::domain::instance::InstanceStatus;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};
use std::cmp::Ordering;

/// How the list is ordered; each has an index (migration 0015).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortBy {
    /// By instance id (the default).
    #[default]
    Id,
    /// Most recent contact first.
    LastContact,
    Pid,
    Status,
}

impl SortBy {
    pub const ALL: [SortBy; 4] = [SortBy::Id, SortBy::LastContact, SortBy::Pid, SortBy::Status];

    pub fn as_str(self) -> &'static str {
        match self {
            SortBy::Id => "id",
            SortBy::LastContact => "last_contact",
            SortBy::Pid => "pid",
            SortBy::Status => "status",
        }
    }

    /// The sort key column (None: the id alone) and whether the natural order descends.
    fn column(self) -> (Option<&'static str>, bool) {
        match self {
            SortBy::Id => (None, false),
            SortBy::LastContact => (Some("last_contact"), true),
            SortBy::Pid => (Some("pid"), false),
            SortBy::Status => (Some("status"), false),
        }
    }

    /// The key value of an instance under this sort (for cursors).
    pub fn key_of(self, i: &Instance) -> Key {
        match self {
            SortBy::Id => Key::None,
            SortBy::LastContact => Key::Int(i.last_contact),
            SortBy::Pid => Key::Text(i.udi.pid.clone()),
            SortBy::Status => Key::Text(i.status.as_str().to_string()),
        }
    }

    /// The natural order of two instances (as SQLite orders them: bytewise text).
    fn cmp(self, a: &Instance, b: &Instance) -> Ordering {
        let by_key = match self {
            SortBy::Id => Ordering::Equal,
            SortBy::LastContact => b.last_contact.cmp(&a.last_contact),
            SortBy::Pid => a.udi.pid.cmp(&b.udi.pid),
            SortBy::Status => a.status.as_str().cmp(b.status.as_str()),
        };
        let by_id = if self.column().1 {
            b.id.cmp(&a.id)
        } else {
            a.id.cmp(&b.id)
        };
        by_key.then(by_id)
    }
}

impl std::str::FromStr for SortBy {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        SortBy::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// A sort key value carried in a cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    None,
    Int(i64),
    Text(String),
}

/// Where a page starts: strictly after (or before) this position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub key: Key,
    pub id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub status: Option<InstanceStatus>,
    /// A substring of the id, pid, sn, hostname or product name.
    pub q: Option<String>,
}

/// A virtual account the list covers, with what its rows show.
#[derive(Clone, Debug)]
pub struct VaRef {
    pub id: i64,
    pub name: String,
    pub account_id: i64,
    pub account_name: String,
}

/// The VAs of one account (or of every account), in name order.
pub fn vas(conn: &Connection, account_id: Option<i64>) -> Result<Vec<VaRef>> {
    Ok(conn
        .prepare_cached(
            "SELECT v.id, v.name, a.id, a.name FROM virtual_accounts v
               JOIN accounts a ON a.id = v.account_id
             WHERE ?1 IS NULL OR v.account_id = ?1 ORDER BY a.name, v.name",
        )?
        .query_map([account_id], |r| {
            Ok(VaRef {
                id: r.get(0)?,
                name: r.get(1)?,
                account_id: r.get(2)?,
                account_name: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// Up to `limit` instances of `va_ids` in sort order from `from` in `direction`; returned in
/// the direction's order (nearest to `from` first). One indexed query per VA and table:
/// instances registered here and, on an upstream, those satellites reported (read-only,
/// marked with who reported them).
pub fn page(
    conn: &Connection,
    va_ids: &[i64],
    sort: SortBy,
    filter: &Filter,
    from: Option<&Position>,
    direction: Direction,
    limit: u32,
) -> Result<Vec<ListRow>> {
    let mut rows: Vec<ListRow> = Vec::new();
    // Our rows are keyed by integer: the cursor's text id becomes a key bound, once.
    let down = sort.column().1 == (direction == Direction::Forward);
    let bound = from
        .map(|p| super::instance_ids::bound(conn, &p.id, !down))
        .transpose()?;
    for part in parts(sort, filter) {
        let table = part.table;
        let (sql, mut args) = build(part, sort, filter, from, bound, direction, limit);
        let mut stmt = conn.prepare_cached(&sql)?;
        for va in walked_vas(conn, part, (sort, from, direction), va_ids)? {
            args[0] = Value::Integer(va);
            let part = stmt
                .query_map(params_from_iter(args.iter()), |r| {
                    Ok(ListRow {
                        instance: row(r)?,
                        reported_by: match table {
                            Table::Direct => None,
                            Table::Satellite => Some(super::reported::reported_by(r)?),
                        },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.extend(part);
        }
    }
    // Merge: nearest to `from` first, in the direction walked.
    rows.sort_by(|a, b| match direction {
        Direction::Forward => sort.cmp(&a.instance, &b.instance),
        Direction::Backward => sort.cmp(&b.instance, &a.instance),
    });
    rows.truncate(limit as usize);
    Ok(rows)
}

/// The VAs a part reads. A status the index leaves out is found by a walk of the VA's
/// instances, which would read all of them when it has none: a status sort whose cursor
/// is past the status, or the VA's status counter, says so first.
fn walked_vas(
    conn: &Connection,
    part: Part,
    (sort, from, direction): (SortBy, Option<&Position>, Direction),
    va_ids: &[i64],
) -> Result<Vec<i64>> {
    let status = match (part.table, part.status) {
        (Table::Direct, StatusTerm::Is(s)) if !is_indexed(s) => s,
        _ => return Ok(va_ids.to_vec()),
    };
    if let (
        SortBy::Status,
        Some(Position {
            key: Key::Text(at), ..
        }),
    ) = (sort, from)
    {
        let passed = match direction {
            Direction::Forward => status.as_str() < at.as_str(),
            Direction::Backward => status.as_str() > at.as_str(),
        };
        if passed {
            return Ok(Vec::new());
        }
    }
    let mut vas = Vec::with_capacity(va_ids.len());
    for &va in va_ids {
        // The VA's counters of the statuses it has (a few rows).
        let counts = super::instances::status_counts(conn, Some(va), None)?;
        if counts.iter().any(|(s, _)| s == status.as_str()) {
            vas.push(va);
        }
    }
    Ok(vas)
}

/// One row of the list: an instance, and who reported it when a satellite did.
#[derive(Clone, Debug)]
pub struct ListRow {
    pub instance: Instance,
    pub reported_by: Option<super::reported::ReportedBy>,
}

/// Where rows come from: instances registered here, or those satellites reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    Direct,
    Satellite,
}

/// Which statuses one query of a VA's page reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusTerm {
    Any,
    Is(InstanceStatus),
    /// Every status the status index holds (migrations 0023 and 0024: all but `UNINDEXED`).
    Indexed,
}

/// One query of a VA's page: a table, and which statuses it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Part {
    table: Table,
    status: StatusTerm,
}

/// The queries of a VA's page. Sorted by status, our rows come in runs, each read in
/// order: one per status the index leaves out (each a walk by id) and the rest (the
/// status index); `page` merges them with the other queries' rows.
fn parts(sort: SortBy, filter: &Filter) -> Vec<Part> {
    let mut parts = Vec::with_capacity(4);
    for table in [Table::Direct, Table::Satellite] {
        let statuses = match (filter.status, table, sort) {
            (Some(s), _, _) => vec![StatusTerm::Is(s)],
            (None, Table::Direct, SortBy::Status) => {
                let mut runs: Vec<StatusTerm> = UNINDEXED.map(StatusTerm::Is).to_vec();
                runs.push(StatusTerm::Indexed);
                runs
            }
            (None, _, _) => vec![StatusTerm::Any],
        };
        parts.extend(statuses.into_iter().map(|status| Part { table, status }));
    }
    parts
}

/// The SQL of one VA's page and its arguments (`?1`, the VA id, is set per VA).
fn build(
    Part { table, status }: Part,
    sort: SortBy,
    filter: &Filter,
    from: Option<&Position>,
    bound: Option<i64>,
    direction: Direction,
    limit: u32,
) -> (String, Vec<Value>) {
    let (column, descending) = sort.column();
    // Forward in a descending sort, or backward in an ascending one, walks down.
    let down = descending == (direction == Direction::Forward);
    let (op, order) = if down { ("<", "DESC") } else { (">", "ASC") };
    let q = filter
        .q
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("%{}%", like_escaped(s)));
    let mut sql = match table {
        Table::Direct => format!("SELECT {COLUMNS} FROM instances WHERE va_id = ?1"),
        Table::Satellite => super::reported::SELECT.to_string(),
    };
    let mut args: Vec<Value> = vec![Value::Null];
    let ext = super::instance_ids::external_sql("");
    let id_text = match table {
        Table::Direct => ext.as_str(),
        Table::Satellite => "id",
    };
    if let Some(p) = from {
        // The position's id: text for satellite rows, our key bound for ours.
        let id_value = match (table, bound) {
            (Table::Direct, Some(k)) => Value::Integer(k),
            _ => Value::Text(p.id.clone()),
        };
        let key = match &p.key {
            Key::None => Value::Null,
            Key::Int(n) => Value::Integer(*n),
            // Our statuses are stored as codes that sort as their text.
            Key::Text(t) if table == Table::Direct && sort == SortBy::Status => {
                super::status_codes::code_of(t).map_or(Value::Text(t.clone()), Value::Integer)
            }
            Key::Text(t) => Value::Text(t.clone()),
        };
        match column {
            Some(c) => {
                args.push(key);
                args.push(id_value);
                sql += &format!(" AND ({c}, id) {op} (?{}, ?{})", args.len() - 1, args.len());
            }
            None => {
                args.push(id_value);
                sql += &format!(" AND id {op} ?{}", args.len());
            }
        }
    }
    // The `UNINDEXED` statuses are found by walking the VA's instances in the sort's order;
    // the others through the status index, whose condition the query repeats.
    let indexed = format!(" AND {}", super::status_codes::indexed_sql("status"));
    match (status, table) {
        (StatusTerm::Any, _) => {}
        (StatusTerm::Is(s), Table::Satellite) => {
            args.push(Value::Text(s.as_str().into()));
            sql += &format!(" AND status = ?{}", args.len());
        }
        (StatusTerm::Is(s), Table::Direct) => {
            args.push(Value::Integer(super::status_codes::code(s)));
            sql += &format!(" AND status = ?{}", args.len());
            if is_indexed(s) {
                sql += &indexed;
            }
        }
        (StatusTerm::Indexed, _) => sql += &indexed,
    }
    if let Some(q) = q {
        args.push(Value::Text(q));
        let n = args.len();
        sql += &format!(
            " AND ({id_text} LIKE ?{n} ESCAPE '\\' OR pid LIKE ?{n} ESCAPE '\\' OR sn LIKE ?{n} ESCAPE '\\'
                  OR hostname LIKE ?{n} ESCAPE '\\' OR product_name LIKE ?{n} ESCAPE '\\')"
        );
    }
    sql += &match column {
        Some(c) => format!(" ORDER BY {c} {order}, id {order}"),
        None => format!(" ORDER BY id {order}"),
    };
    args.push(Value::Integer(i64::from(limit)));
    sql += &format!(" LIMIT ?{}", args.len());

    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each sort walks an index in order and stops at the page size: no sort of a VA's
    /// whole set of instances (what keeps a page fast at a million instances).
    #[test]
    fn every_sort_reads_an_index_in_order() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        for sort in SortBy::ALL {
            for direction in [Direction::Forward, Direction::Backward] {
                let (column, _) = sort.column();
                let from = Position {
                    key: match column {
                        None => Key::None,
                        Some("last_contact") => Key::Int(5),
                        Some(_) => Key::Text("x".into()),
                    },
                    id: "inst_x".into(),
                };
                let filter = Filter {
                    status: None,
                    q: None,
                };
                // The same SQL `page` runs, read back from the statement cache's plan.
                for part in parts(sort, &filter) {
                    let plan = plan_of(&conn, part, sort, &filter, Some(&from), direction);
                    assert!(
                        plan.contains("USING INDEX") || plan.contains("USING COVERING INDEX"),
                        "{part:?} {sort:?}: {plan}"
                    );
                    assert!(
                        !plan.contains("TEMP B-TREE"),
                        "{part:?} {sort:?} {direction:?}: {plan}"
                    );
                }
            }
        }
    }

    /// Sorted by id, a status filter reads the status index, but for `authorized` and
    /// `registered`, which it leaves out (migrations 0023, 0024) and which are found by the
    /// walk by id.
    #[test]
    fn a_status_filter_reads_the_status_index_but_for_the_two_left_out() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        for status in InstanceStatus::ALL {
            let filter = Filter {
                status: Some(status),
                q: None,
            };
            let [part, _satellites] = parts(SortBy::Id, &filter)[..] else {
                panic!("one query per table")
            };
            let plan = plan_of(&conn, part, SortBy::Id, &filter, None, Direction::Forward);
            let expected = if !is_indexed(status) {
                "USING INDEX instances_va "
            } else {
                "USING INDEX instances_va_status "
            };
            assert!(plan.contains(expected), "{status:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{status:?}: {plan}");
        }
    }

    fn plan_of(
        conn: &Connection,
        part: Part,
        sort: SortBy,
        filter: &Filter,
        from: Option<&Position>,
        direction: Direction,
    ) -> String {
        let (sql, args) = build(part, sort, filter, from, Some(7), direction, 51);
        let mut args = args;
        args[0] = Value::Integer(1);
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        stmt.query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect::<Vec<_>>()
            .join("; ")
    }
}
