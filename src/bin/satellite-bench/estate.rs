//! Who the agent phases speak for. By default every report and renewal comes from an
//! instance drawn uniformly from the whole estate, its key derived on demand from its index
//! (a hash and one base-point multiplication, so a million instances cost nothing up
//! front); `--hot N` gives the older shape, N instances spread over the estate with their
//! keys derived before the phases start. The estate also remembers the count each
//! instance last reported, so a report can repeat it or change it on purpose.

use super::seed::key_for;
use ed25519_dalek::SigningKey;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

/// An instance chosen to sign a request.
pub struct Drawn<'a> {
    /// Its place in the estate (for its remembered count).
    pub slot: usize,
    pub id: &'a str,
    pub key: SigningKey,
}

enum Signers {
    /// Instance ids with the index their keys derive from.
    Uniform(Vec<(u64, String)>),
    /// A hot set with keys derived up front.
    Hot(Vec<(String, SigningKey)>),
}

pub struct Estate {
    signers: Signers,
    /// The count each instance last reported for the bench's one tag.
    counts: Vec<AtomicU8>,
}

/// The count every instance's first report carries (seeded or over HTTPS).
pub const FIRST_COUNT: u8 = 1;

impl Estate {
    /// Every instance of `ids` (key index, id), drawn uniformly.
    pub fn uniform(ids: Vec<(u64, String)>) -> Estate {
        let counts = ids.iter().map(|_| AtomicU8::new(FIRST_COUNT)).collect();
        Estate {
            signers: Signers::Uniform(ids),
            counts,
        }
    }

    /// Up to `hot` instances spread evenly over `ids`, keys derived now.
    pub fn hot(ids: &[(u64, String)], hot: usize) -> Estate {
        let step = (ids.len() / hot.max(1)).max(1);
        let set: Vec<(String, SigningKey)> = ids
            .iter()
            .step_by(step)
            .take(hot)
            .map(|(i, id)| (id.clone(), key_for(*i)))
            .collect();
        let counts = set.iter().map(|_| AtomicU8::new(FIRST_COUNT)).collect();
        Estate {
            signers: Signers::Hot(set),
            counts,
        }
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// The instance for random number `r`; `None` for an empty estate.
    pub fn draw(&self, r: u64) -> Option<Drawn<'_>> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let slot = (r % n as u64) as usize;
        Some(match &self.signers {
            Signers::Uniform(ids) => {
                let (index, id) = &ids[slot];
                Drawn {
                    slot,
                    id,
                    key: key_for(*index),
                }
            }
            Signers::Hot(set) => {
                let (id, key) = &set[slot];
                Drawn {
                    slot,
                    id,
                    key: key.clone(),
                }
            }
        })
    }

    pub fn count(&self, slot: usize) -> u8 {
        self.counts[slot].load(Ordering::Relaxed)
    }

    /// Records the count `slot` now reports and returns it: the same one again, or
    /// another (1, 2, 3 in turn) when it must change.
    pub fn next_count(&self, slot: usize, change: bool) -> u8 {
        let now = self.count(slot);
        if !change {
            return now;
        }
        let next = now % 3 + 1;
        self.counts[slot].store(next, Ordering::Relaxed);
        next
    }
}

/// Work handed out one item at a time up to a limit that each round raises, so a phase
/// bounded by count can take turns with the floor like one bounded by time.
pub struct Queue<T> {
    items: Mutex<Vec<T>>,
    next: AtomicUsize,
    limit: AtomicUsize,
}

impl<T: Clone> Queue<T> {
    pub fn new(items: Vec<T>) -> Queue<T> {
        Queue {
            items: Mutex::new(items),
            next: AtomicUsize::new(0),
            limit: AtomicUsize::new(usize::MAX),
        }
    }

    pub fn push(&self, item: T) {
        if let Ok(mut items) = self.items.lock() {
            items.push(item);
        }
    }

    pub fn len(&self) -> usize {
        self.items.lock().map_or(0, |v| v.len())
    }

    /// Hands out items up to `fraction` of those queued now (the rest wait for a later
    /// round).
    pub fn open_up_to(&self, numerator: usize, denominator: usize) {
        let n = self.len() * numerator / denominator.max(1);
        self.limit.store(n, Ordering::Relaxed);
    }

    /// Hands out everything queued, now or later.
    pub fn open_all(&self) {
        self.limit.store(usize::MAX, Ordering::Relaxed);
    }

    pub fn take(&self) -> Option<T> {
        let items = self.items.lock().ok()?;
        let i = self.next.load(Ordering::Relaxed);
        if i >= self.limit.load(Ordering::Relaxed) || i >= items.len() {
            return None;
        }
        // Under the lock: no two takers get the same item, and none is skipped.
        self.next.store(i + 1, Ordering::Relaxed);
        Some(items[i].clone())
    }

    /// Puts the queued items in a random order (before anything is taken).
    pub fn shuffle(&self, mut seed: u64) {
        if let Ok(mut items) = self.items.lock() {
            for i in (1..items.len()).rev() {
                seed = super::load::xorshift(&mut seed);
                items.swap(i, (seed % (i as u64 + 1)) as usize);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u64) -> Vec<(u64, String)> {
        (0..n).map(|i| (i, format!("id{i}"))).collect()
    }

    #[test]
    fn uniform_draws_cover_the_estate_with_each_index_key() {
        let estate = Estate::uniform(ids(1000));
        let mut seen = vec![false; 1000];
        let mut r = 0x1234_5678u64;
        for _ in 0..20_000 {
            let d = estate.draw(super::super::load::xorshift(&mut r)).unwrap();
            assert_eq!(d.id, format!("id{}", d.slot));
            seen[d.slot] = true;
        }
        assert!(
            seen.iter().all(|s| *s),
            "20 draws each on average reach every instance"
        );
        let d = estate.draw(7).unwrap();
        assert_eq!(d.key.to_bytes(), key_for(7).to_bytes());
    }

    #[test]
    fn a_hot_set_is_spread_over_the_estate() {
        let estate = Estate::hot(&ids(1000), 10);
        assert_eq!(estate.len(), 10);
        let d = estate.draw(3).unwrap();
        assert_eq!(d.id, "id300");
        assert_eq!(d.key.to_bytes(), key_for(300).to_bytes());
        assert!(Estate::uniform(vec![]).draw(1).is_none());
    }

    #[test]
    fn counts_repeat_or_change_on_purpose() {
        let estate = Estate::uniform(ids(2));
        assert_eq!(estate.next_count(0, false), FIRST_COUNT);
        let changed = estate.next_count(0, true);
        assert_ne!(changed, FIRST_COUNT);
        assert_eq!(estate.next_count(0, false), changed);
        assert_ne!(estate.next_count(0, true), changed);
        assert_eq!(estate.count(1), FIRST_COUNT);
    }

    #[test]
    fn a_queue_opens_round_by_round() {
        let q = Queue::new((0..10).collect::<Vec<u32>>());
        q.open_up_to(1, 2);
        let first: Vec<u32> = std::iter::from_fn(|| q.take()).collect();
        assert_eq!(first, vec![0, 1, 2, 3, 4]);
        q.open_up_to(2, 2);
        assert_eq!(std::iter::from_fn(|| q.take()).count(), 5);
        q.open_all();
        q.push(10);
        assert_eq!(q.take(), Some(10));
        assert_eq!(q.take(), None);
        let s = Queue::new((0..100).collect::<Vec<u32>>());
        s.shuffle(42);
        let mut all: Vec<u32> = std::iter::from_fn(|| s.take()).collect();
        assert_ne!(all, (0..100).collect::<Vec<_>>());
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }
}
