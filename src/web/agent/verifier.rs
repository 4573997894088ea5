//! Checks agent request signatures in batches across concurrent requests, on the server
//! worker thread that received them. A request queues its signature on its own worker and
//! awaits the answer; the first to queue schedules a check, which runs once the worker has
//! polled the other requests ready at that moment, so it takes every signature they queued
//! (up to `MAX_BATCH`) and checks them together with one batch equation
//! (crypto/batch_verify.rs). When a batch fails, each of its signatures is checked alone,
//! so one bad request never fails another. Under light load a batch is a single
//! signature, checked as before; under load each pass of the worker over its ready
//! connections makes a batch, so batches grow with the load without a timer.
//!
//! Why on the worker and not on a thread of its own: a request's trip to such a thread and
//! back crosses threads twice, and while a batch waited for that thread the requests in it
//! had nothing else to run; at 64 connections the machine stood idle about a fifth of the
//! time against a tenth for the naive floor (docs/benchmarks.md, stop 26). On its worker a
//! batch runs right after the requests that were ready with it, and both workers check at
//! once. A check takes one batch and, when more is queued, leaves the rest to a check of
//! its own behind the requests ready by then, so a worker never serves nothing else for
//! long (a failed batch of 64 checked one by one takes about 3 ms).

use crate::crypto::batch_verify::{self, Item};
use std::cell::{Cell, RefCell};
use tokio::sync::oneshot;

/// Most signatures in one equation: past this the saving per signature is small, and a
/// worker checking a batch answers nothing else meanwhile (64 take about 1 ms).
const MAX_BATCH: usize = 64;

/// Checks request signatures in batches (see the module docs). The batches live on each
/// worker thread; this is the handle the server state holds.
#[derive(Default)]
pub struct Verifier;

thread_local! {
    /// Signatures queued on this worker thread and not yet checked, each with its answer.
    static QUEUED: RefCell<Vec<(Item, oneshot::Sender<bool>)>> = const { RefCell::new(Vec::new()) };
    /// Whether a check is scheduled on this thread to take what is queued.
    static SCHEDULED: Cell<bool> = const { Cell::new(false) };
    /// Batches checked on this thread (tests read it).
    static BATCHES: Cell<u64> = const { Cell::new(0) };
}

impl Verifier {
    /// Whether `item`'s signature is valid, as `Item::verify_alone` would say.
    pub async fn verify(&self, item: Item) -> bool {
        // Off a server worker (an actix arbiter, where a local task can run): alone.
        if actix_web::rt::System::try_current().is_none() {
            return item.verify_alone();
        }
        let (reply, answer) = oneshot::channel();
        QUEUED.with_borrow_mut(|queued| queued.push((item, reply)));
        schedule();
        // A check that never ran (its task dropped) drops the reply: refused.
        answer.await.unwrap_or(false)
    }

    /// Batches checked so far on the calling thread.
    pub fn batches_on_this_thread() -> u64 {
        BATCHES.get()
    }
}

/// Has a check run on this thread unless one is already due. The task owns the mark's
/// guard from the moment it is made, so the mark is cleared however the task ends: run,
/// panicked, or dropped before it ever ran (a spawn that fails or a runtime shutting down).
fn schedule() {
    if !SCHEDULED.replace(true) {
        let due = Due;
        actix_web::rt::spawn(async move { check_queued(due) });
    }
}

/// Clears the mark of a due check however the check ends, a panic or a task dropped
/// unpolled included: the next request then schedules a new one instead of waiting on a
/// check that will not come.
struct Due;

impl Drop for Due {
    fn drop(&mut self) {
        let _ = SCHEDULED.try_with(|s| s.set(false));
    }
}

/// Checks up to `MAX_BATCH` of the signatures queued on this thread; what is left waits
/// for a check of its own, behind the requests ready by then.
fn check_queued(due: Due) {
    let batch: Vec<_> = QUEUED.with_borrow_mut(|queued| {
        let n = queued.len().min(MAX_BATCH);
        queued.drain(..n).collect()
    });
    if !batch.is_empty() {
        BATCHES.set(BATCHES.get() + 1);
        check(batch);
    }
    drop(due);
    if QUEUED.with_borrow(|queued| !queued.is_empty()) {
        schedule();
    }
}

fn check(batch: Vec<(Item, oneshot::Sender<bool>)>) {
    let items: Vec<&Item> = batch.iter().map(|(item, _)| item).collect();
    let all_good = batch_verify::verify_all(&items);
    // A batch of one was checked alone already: a refusal is not checked twice.
    let alone = batch.len() == 1;
    for (item, reply) in batch {
        let ok = all_good || (!alone && item.verify_alone());
        // The request may have gone (its client hung up): nobody to tell.
        let _ = reply.send(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    /// Request `i`'s signature, spoiled when `bad`.
    fn signed(i: u8, bad: bool) -> Item {
        let key = SigningKey::from_bytes(&[i + 1; 32]);
        let message = vec![i; 16];
        let mut signature = key.sign(&message).to_bytes();
        if bad {
            signature[40] ^= 1;
        }
        Item {
            key: key.verifying_key(),
            message,
            signature,
        }
    }

    /// Off a server worker each signature is checked alone, with the same answers.
    #[tokio::test]
    async fn off_a_worker_each_check_gets_its_own_answer() {
        let verifier = std::sync::Arc::new(Verifier);
        let handles: Vec<_> = (0..40u8)
            .map(|i| {
                let v = verifier.clone();
                tokio::spawn(async move { (i, v.verify(signed(i, i % 7 == 3)).await) })
            })
            .collect();
        for h in handles {
            let (i, ok) = h.await.unwrap();
            assert_eq!(ok, i % 7 != 3, "request {i}");
        }
    }

    /// On a server worker (an actix arbiter) requests ready together are checked in one
    /// batch, or a few past `MAX_BATCH`; a bad signature fails only its own request.
    #[actix_web::test]
    async fn requests_ready_together_share_a_batch_and_keep_their_own_answers() {
        let verifier = std::sync::Arc::new(Verifier);
        let before = Verifier::batches_on_this_thread();
        let handles: Vec<_> = (0..100u8)
            .map(|i| {
                let v = verifier.clone();
                actix_web::rt::spawn(async move { (i, v.verify(signed(i, i % 5 == 2)).await) })
            })
            .collect();
        for h in handles {
            let (i, ok) = h.await.unwrap();
            assert_eq!(ok, i % 5 != 2, "request {i}");
        }
        // 100 requests, 64 a batch at most.
        assert_eq!(Verifier::batches_on_this_thread() - before, 2);

        // A lone request later is a batch of its own, checked alone.
        assert!(verifier.verify(signed(7, false)).await);
        assert!(!verifier.verify(signed(8, true)).await);
        assert_eq!(Verifier::batches_on_this_thread() - before, 4);
    }
}
