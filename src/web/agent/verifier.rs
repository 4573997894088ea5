//! Checks agent request signatures in batches across concurrent requests. Requests hand
//! their signature to one verifier thread and await the answer; the thread takes every
//! signature queued while it was busy (up to `MAX_BATCH`) and checks them together with
//! one batch equation (crypto/batch_verify.rs). When a batch fails, each of its
//! signatures is checked alone, so one bad request never fails another. Under light load
//! a batch is a single signature, checked as before; under load the queue fills while the
//! previous batch is checked, so batches grow with the load without a timer.
//!
//! Answers go back one message per server worker per batch: waking a task from another
//! thread costs a system call (the worker's event loop is woken through a file
//! descriptor), so the thread hands each worker its batch's answers at once and a task
//! on that worker passes them on, from its own thread, which costs none.

use crate::crypto::batch_verify::{self, Item};
use std::cell::OnceCell;
use std::sync::{mpsc, Mutex, OnceLock};
use tokio::sync::{mpsc as worker_mpsc, oneshot};

/// Most signatures in one equation: past this the saving per signature is small and the
/// wait of the first in the batch grows.
const MAX_BATCH: usize = 64;

type Answer = (oneshot::Sender<bool>, bool);

/// Where a worker thread takes its answers (see the module docs).
type Mailbox = worker_mpsc::UnboundedSender<Vec<Answer>>;

struct Request {
    item: Item,
    reply: oneshot::Sender<bool>,
    /// None off a server worker (tests, tools): answered directly.
    mailbox: Option<Mailbox>,
}

/// The queue to the verifier thread, started at the first signature.
#[derive(Default)]
pub struct Verifier {
    queue: OnceLock<Option<Mutex<mpsc::Sender<Request>>>>,
}

impl Verifier {
    /// Whether `item`'s signature is valid, as `Item::verify_alone` would say.
    pub async fn verify(&self, item: Item) -> bool {
        let Some(queue) = self.queue.get_or_init(start) else {
            // No thread could start: check here, one at a time.
            return item.verify_alone();
        };
        let (reply, answer) = oneshot::channel();
        let request = Request {
            item,
            reply,
            mailbox: mailbox(),
        };
        let sent = queue
            .lock()
            .map_err(|_| ())
            .and_then(|q| q.send(request).map_err(|_| ()));
        match sent {
            Ok(()) => answer.await.unwrap_or(false),
            Err(()) => false,
        }
    }
}

thread_local! {
    /// This worker thread's mailbox, and the task that empties it.
    static MAILBOX: OnceCell<Mailbox> = const { OnceCell::new() };
}

/// The calling thread's mailbox when it is a server worker (an actix arbiter, where a
/// local task can run); None elsewhere.
fn mailbox() -> Option<Mailbox> {
    actix_web::rt::System::try_current()?;
    MAILBOX
        .with(|cell| {
            cell.get_or_init(|| {
                let (tx, mut rx) = worker_mpsc::unbounded_channel::<Vec<Answer>>();
                actix_web::rt::spawn(async move {
                    while let Some(answers) = rx.recv().await {
                        deliver(answers);
                    }
                });
                tx
            })
            .clone()
        })
        .into()
}

fn deliver(answers: Vec<Answer>) {
    for (reply, ok) in answers {
        let _ = reply.send(ok);
    }
}

fn start() -> Option<Mutex<mpsc::Sender<Request>>> {
    let (tx, rx) = mpsc::channel::<Request>();
    match std::thread::Builder::new()
        .name("signature-batch".into())
        .spawn(move || run(&rx))
    {
        Ok(_) => Some(Mutex::new(tx)),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the signature batch thread; checking one at a time");
            None
        }
    }
}

fn run(queue: &mpsc::Receiver<Request>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter().take(MAX_BATCH - 1));
        let items: Vec<&Item> = batch.iter().map(|r| &r.item).collect();
        let all_good = batch_verify::verify_all(&items);
        // A batch of one was checked alone already: a refusal is not checked twice.
        let alone = batch.len() == 1;
        let mut by_worker: Vec<(Mailbox, Vec<Answer>)> = Vec::new();
        for request in batch {
            let ok = all_good || (!alone && request.item.verify_alone());
            let Some(mailbox) = request.mailbox else {
                let _ = request.reply.send(ok);
                continue;
            };
            match by_worker.iter_mut().find(|(m, _)| m.same_channel(&mailbox)) {
                Some((_, answers)) => answers.push((request.reply, ok)),
                None => by_worker.push((mailbox, vec![(request.reply, ok)])),
            }
        }
        for (mailbox, answers) in by_worker {
            // A worker that has stopped: answer directly.
            if let Err(unsent) = mailbox.send(answers) {
                deliver(unsent.0);
            }
        }
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

    #[tokio::test]
    async fn concurrent_checks_each_get_their_own_answer() {
        let verifier = std::sync::Arc::new(Verifier::default());
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

    /// On a server worker (an actix arbiter) answers come back through the worker's
    /// mailbox: each request still gets its own.
    #[actix_web::test]
    async fn answers_reach_each_request_through_the_workers_mailbox() {
        let verifier = std::sync::Arc::new(Verifier::default());
        assert!(mailbox().is_some(), "an arbiter has a mailbox");
        let handles: Vec<_> = (0..40u8)
            .map(|i| {
                let v = verifier.clone();
                actix_web::rt::spawn(async move { (i, v.verify(signed(i, i % 5 == 2)).await) })
            })
            .collect();
        for h in handles {
            let (i, ok) = h.await.unwrap();
            assert_eq!(ok, i % 5 != 2, "request {i}");
        }
    }
}
