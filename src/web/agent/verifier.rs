//! Checks agent request signatures in batches across concurrent requests. Requests hand
//! their signature to one verifier thread and await the answer; the thread takes every
//! signature queued while it was busy (up to `MAX_BATCH`) and checks them together with
//! one batch equation (crypto/batch_verify.rs). When a batch fails, each of its
//! signatures is checked alone, so one bad request never fails another. Under light load
//! a batch is a single signature, checked as before; under load the queue fills while the
//! previous batch is checked, so batches grow with the load without a timer.

use crate::crypto::batch_verify::{self, Item};
use std::sync::{mpsc, Mutex, OnceLock};
use tokio::sync::oneshot;

/// Most signatures in one equation: past this the saving per signature is small and the
/// wait of the first in the batch grows.
const MAX_BATCH: usize = 64;

type Request = (Item, oneshot::Sender<bool>);

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
        let (tx, rx) = oneshot::channel();
        let sent = queue
            .lock()
            .map_err(|_| ())
            .and_then(|q| q.send((item, tx)).map_err(|_| ()));
        match sent {
            Ok(()) => rx.await.unwrap_or(false),
            Err(()) => false,
        }
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
        let (items, replies): (Vec<Item>, Vec<_>) = batch.into_iter().unzip();
        if batch_verify::verify_all(&items) {
            for reply in replies {
                let _ = reply.send(true);
            }
        } else {
            for (item, reply) in items.iter().zip(replies) {
                let _ = reply.send(item.verify_alone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[tokio::test]
    async fn concurrent_checks_each_get_their_own_answer() {
        let verifier = std::sync::Arc::new(Verifier::default());
        let mut handles = vec![];
        for i in 0..40u8 {
            let v = verifier.clone();
            handles.push(tokio::spawn(async move {
                let key = SigningKey::from_bytes(&[i + 1; 32]);
                let message = vec![i; 16];
                let mut signature = key.sign(&message).to_bytes();
                if i % 7 == 3 {
                    signature[40] ^= 1;
                }
                let item = Item {
                    key: key.verifying_key(),
                    message,
                    signature,
                };
                (i, v.verify(item).await)
            }));
        }
        for h in handles {
            let (i, ok) = h.await.unwrap();
            assert_eq!(ok, i % 7 != 3, "request {i}");
        }
    }
}
