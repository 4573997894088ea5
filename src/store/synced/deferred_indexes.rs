//! A first import into empty tables builds their secondary indexes once, at the end,
//! instead of row by row. Inserted one row at a time, each instance lands in five
//! B-trees (the table and the four list indexes of migration 0016), most of them at
//! scattered places; built by `CREATE INDEX`, an index is one sort and a bottom-up
//! write. The indexes are dropped and created again inside the import's transaction, from
//! their own stored definitions (`sqlite_master`), so a rollback restores them and the
//! rebuilt ones are the migrations' exactly. Only non-unique indexes are dropped: a unique
//! one is a rule the inserts must meet as they go. (The schema change makes each
//! connection prepare its statements again once; imports are rare.)

use super::super::Result;
use rusqlite::Connection;

/// Indexes dropped for the length of one transaction, with the SQL that made each.
pub struct DeferredIndexes {
    definitions: Vec<String>,
}

impl DeferredIndexes {
    /// Drops the secondary indexes of `tables` when every one of them is empty; None (and
    /// nothing dropped) otherwise: rebuilding an index over rows already stored would cost
    /// more than the inserts it spares.
    pub fn defer_if_empty(tx: &Connection, tables: &[&str]) -> Result<Option<Self>> {
        for table in tables {
            let sql = format!("SELECT EXISTS (SELECT 1 FROM \"{table}\")");
            let any: bool = tx.query_row(&sql, [], |r| r.get(0))?;
            if any {
                return Ok(None);
            }
        }
        let mut named = Vec::new();
        let mut stmt = tx.prepare(
            "SELECT s.name, s.sql FROM sqlite_schema s
             JOIN pragma_index_list(?1) l ON l.name = s.name
             WHERE s.type = 'index' AND s.sql IS NOT NULL AND l.\"unique\" = 0
             ORDER BY s.name",
        )?;
        for table in tables {
            let rows = stmt.query_map([table], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
            for row in rows {
                named.push(row?);
            }
        }
        for (name, _) in &named {
            tx.execute_batch(&format!(
                "DROP INDEX main.\"{}\"",
                name.replace('"', "\"\"")
            ))?;
        }
        Ok(Some(DeferredIndexes {
            definitions: named.into_iter().map(|(_, sql)| sql).collect(),
        }))
    }

    /// Creates the dropped indexes again over the rows now stored. SQLite's sorter may
    /// use helper threads for this (`PRAGMA threads`, off by default): the cores are
    /// otherwise idle while one thread builds an index of a million entries.
    pub fn rebuild(self, tx: &Connection) -> Result<()> {
        let before: i64 = tx.query_row("PRAGMA threads", [], |r| r.get(0))?;
        // Two at most: each helper may buffer as much as the connection's cache.
        let helpers = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
        tx.execute_batch(&format!("PRAGMA threads = {helpers}"))?;
        let built = (self.definitions.iter()).try_for_each(|sql| tx.execute_batch(sql));
        let restored = tx.execute_batch(&format!("PRAGMA threads = {before}"));
        built?;
        Ok(restored?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexes(conn: &Connection) -> Vec<(String, String)> {
        conn.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn indexes_come_back_as_they_were_and_only_over_empty_tables() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c INTEGER);
             CREATE INDEX t_b ON t(b, a);
             CREATE INDEX t_c ON t(c);
             CREATE TABLE u (x TEXT PRIMARY KEY, y INTEGER, z INTEGER) WITHOUT ROWID;
             CREATE INDEX \"u \"\"y\"\"\" ON u(y);
             CREATE UNIQUE INDEX u_z ON u(z);",
        )
        .unwrap();
        let before = indexes(&conn);
        let tx = conn.transaction().unwrap();
        let deferred = DeferredIndexes::defer_if_empty(&tx, &["t", "u"])
            .unwrap()
            .unwrap();
        let names: Vec<String> = indexes(&tx).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["u_z"],
            "all but the unique one dropped for the transaction"
        );
        tx.execute_batch(
            "INSERT INTO t VALUES (1, 'q', 3), (2, 'p', 3); INSERT INTO u VALUES ('k', 1, 1)",
        )
        .unwrap();
        assert!(
            tx.execute("INSERT INTO u VALUES ('l', 1, 1)", []).is_err(),
            "still unique"
        );
        deferred.rebuild(&tx).unwrap();
        tx.commit().unwrap();
        assert_eq!(indexes(&conn), before);
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT a FROM t WHERE b = 'p'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("t_b"), "{plan}");

        // With rows stored, nothing is dropped; a rollback restores what was.
        assert!(DeferredIndexes::defer_if_empty(&conn, &["t", "u"])
            .unwrap()
            .is_none());
        conn.execute_batch("DELETE FROM t; DELETE FROM u").unwrap();
        let tx = conn.transaction().unwrap();
        assert!(DeferredIndexes::defer_if_empty(&tx, &["t", "u"])
            .unwrap()
            .is_some());
        tx.rollback().unwrap();
        assert_eq!(indexes(&conn), before);
    }
}
