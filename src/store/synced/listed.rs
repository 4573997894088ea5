//! The instances a snapshot listed, found again by id with no hashing in the usual case.
//! A bundle lists its instances in ascending id order (export.rs reads them by id), so
//! while ids ascend, an id is new exactly when it sorts after the last one, and a later
//! row naming an instance is found at the last position found, the one after it, or by
//! a binary search. An id out of order (a bundle from another writer) moves the listing
//! to a hash index, built once from the ids before it. A million boxed keys in a hash
//! map were a tenth of a first import of a million instances (docs/benchmarks.md).

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::HashMap;

pub struct Listed<V> {
    /// Every id, one after the other; the n-th ends at `ends[n]`.
    ids: String,
    ends: Vec<usize>,
    values: Vec<V>,
    /// The last position found: the rows naming instances come in their order, in runs.
    cursor: Cell<usize>,
    /// Set once an id came out of order: every id's position.
    index: Option<HashMap<Box<str>, usize>>,
}

impl<V> Default for Listed<V> {
    fn default() -> Self {
        Listed {
            ids: String::new(),
            ends: Vec::new(),
            values: Vec::new(),
            cursor: Cell::new(0),
            index: None,
        }
    }
}

impl<V> Listed<V> {
    fn id(&self, n: usize) -> &str {
        let start = n.checked_sub(1).map_or(0, |p| self.ends[p]);
        &self.ids[start..self.ends[n]]
    }

    /// Whether `id` sorts after every id listed while they all ascend: then it is new,
    /// with nothing to look up.
    fn after_all(&self, id: &str) -> bool {
        let n = self.values.len();
        self.index.is_none() && (n == 0 || id > self.id(n - 1))
    }

    /// Room for `n` more ids of about `id_bytes` each, so a long list does not grow by
    /// copying itself.
    pub fn reserve(&mut self, n: usize, id_bytes: usize) {
        self.ids.reserve(n.saturating_mul(id_bytes));
        self.ends.reserve(n);
        self.values.reserve(n);
    }

    /// Lists `id` with its value; false, and nothing changed, when it is listed already.
    pub fn insert(&mut self, id: &str, value: V) -> bool {
        let n = self.values.len();
        if !self.after_all(id) {
            if self.position(id).is_some() {
                return false;
            }
            if self.index.is_none() {
                self.index = Some((0..n).map(|k| (Box::from(self.id(k)), k)).collect());
            }
            if let Some(index) = &mut self.index {
                index.insert(id.into(), n);
            }
        }
        self.ids.push_str(id);
        self.ends.push(self.ids.len());
        self.values.push(value);
        true
    }

    fn position(&self, id: &str) -> Option<usize> {
        let at = self.cursor.get();
        let found = [at, at + 1]
            .into_iter()
            .find(|&n| n < self.values.len() && self.id(n) == id)
            .or_else(|| match &self.index {
                Some(index) => index.get(id).copied(),
                None => self.search(id),
            })?;
        self.cursor.set(found);
        Some(found)
    }

    /// A binary search: while there is no index, the ids are in ascending order.
    fn search(&self, id: &str) -> Option<usize> {
        let (mut low, mut high) = (0, self.values.len());
        while low < high {
            let mid = low + (high - low) / 2;
            match self.id(mid).cmp(id) {
                Ordering::Less => low = mid + 1,
                Ordering::Greater => high = mid,
                Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        self.position(id).map(|n| &self.values[n])
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        self.position(id).map(|n| &mut self.values[n])
    }

    pub fn contains(&self, id: &str) -> bool {
        !self.after_all(id) && self.position(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids ascending, then out of order, then ascending again: every id is found with its
    /// own value, a repeat is refused wherever it comes, and an unlisted id is not found.
    #[test]
    fn finds_every_id_in_order_or_not_and_refuses_repeats() {
        let mut listed = Listed::default();
        let ids = [
            "inst_a01", "inst_a02", "inst_a10", "inst_0", "inst_b", "inst_a05",
        ];
        for (n, id) in ids.iter().enumerate() {
            assert!(listed.insert(id, n), "{id}");
            if n == 2 {
                assert!(listed.index.is_none(), "ascending ids need no index");
            }
        }
        assert!(listed.index.is_some());
        for (n, id) in ids.iter().enumerate().rev() {
            assert!(!listed.insert(id, 99), "{id} listed twice");
            assert_eq!(listed.get(id), Some(&n));
        }
        assert!(!listed.contains("inst_a03"));
        assert!(!listed.contains(""));
        *listed.get_mut("inst_0").unwrap() = 7;
        assert_eq!(listed.get("inst_0"), Some(&7));
    }

    #[test]
    fn ascending_ids_are_found_by_cursor_or_search_and_repeats_refused() {
        let mut listed = Listed::default();
        let ids: Vec<String> = (0..1000).map(|n| format!("inst_{n:05}")).collect();
        for (n, id) in ids.iter().enumerate() {
            assert!(listed.insert(id, n));
        }
        assert!(!listed.insert("inst_00500", 0), "a repeat out of order");
        assert!(!listed.insert("inst_00999", 0), "a repeat of the last");
        assert!(listed.index.is_none(), "a refused repeat builds no index");
        // Runs in order (the cursor), then jumps back (the search).
        for n in (0..1000).chain((0..1000).step_by(7).rev()) {
            assert_eq!(listed.get(&ids[n]), Some(&n));
        }
        assert!(!listed.contains("inst_00500x"));
        assert!(!listed.contains("inst_1"));
    }
}
