//! Counter moves held back for the rest of a batch. Every first report moves its VA's
//! status counters and pool demand, and the reports of a batch mostly move the same few
//! rows: held, those rows are written once per batch instead of once per report.
//!
//! Only the group-commit writer holds, and only while it runs a job without a savepoint
//! of its own (`store::batch`, `Rollback::Batch`), whose failure after a move spoils the
//! whole batch (`moves` tells it that one was held). Before anything else reads or
//! writes the counters the moves are flushed: before any other job of the batch, before
//! it commits, and before a pool's demand is read (`licenses::demand`). A batch that
//! rolls back discards them.

use super::{write_demand, write_status};
use crate::store::Result;
use rusqlite::Connection;
use std::cell::RefCell;
use std::collections::BTreeMap;

#[derive(Default)]
struct Held {
    on: bool,
    /// Moves held since the thread started: a job that held one has written.
    moves: u64,
    /// (VA, tag) to (total, export-eligible) demand.
    demand: BTreeMap<(i64, String), (i64, i64)>,
    /// (VA, status) to instances.
    status: BTreeMap<(i64, String), i64>,
}

thread_local! {
    static HELD: RefCell<Held> = RefCell::new(Held::default());
}

/// Holds a demand move when holding is on; false when it is for the caller to write.
pub(super) fn demand(va_id: i64, tag: &str, total: i64, export_ok: i64) -> bool {
    hold(|h| {
        let row = h.demand.entry((va_id, tag.to_string())).or_default();
        row.0 += total;
        row.1 += export_ok;
    })
}

/// Holds a status counter move when holding is on; false when it is for the caller.
pub(super) fn status(va_id: i64, status: &str, delta: i64) -> bool {
    hold(|h| *h.status.entry((va_id, status.to_string())).or_default() += delta)
}

fn hold(f: impl FnOnce(&mut Held)) -> bool {
    HELD.with_borrow_mut(|h| {
        if h.on {
            h.moves += 1;
            f(h);
        }
        h.on
    })
}

/// Runs `job` with counter moves held.
pub fn holding<T>(job: impl FnOnce() -> T) -> T {
    struct Off;
    impl Drop for Off {
        fn drop(&mut self) {
            HELD.with_borrow_mut(|h| h.on = false);
        }
    }
    HELD.with_borrow_mut(|h| h.on = true);
    let _off = Off;
    job()
}

/// How many moves this thread has held: a job that moved this held a move.
pub fn moves() -> u64 {
    HELD.with_borrow(|h| h.moves)
}

/// Writes the held moves, one statement per row whose total moved.
pub fn flush(tx: &Connection) -> Result<()> {
    let (demand, status) =
        HELD.with_borrow_mut(|h| (std::mem::take(&mut h.demand), std::mem::take(&mut h.status)));
    for ((va_id, tag), (total, export_ok)) in demand {
        if (total, export_ok) != (0, 0) {
            write_demand(tx, va_id, &tag, total, export_ok)?;
        }
    }
    for ((va_id, status), delta) in status {
        if delta != 0 {
            write_status(tx, va_id, &status, delta)?;
        }
    }
    Ok(())
}

/// Drops the held moves: their batch rolled back.
pub fn discard() {
    HELD.with_borrow_mut(|h| {
        h.demand.clear();
        h.status.clear();
    });
}
