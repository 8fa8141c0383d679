//! The cleaner's key → offset map in a fixed memory budget (Kafka's `SkimpyOffsetMap`).
//!
//! A slot holds a 128-bit hash of the key and the key's latest offset: 24 bytes whatever the
//! key's size, and nothing points into batch buffers. Two independently keyed SipHash values
//! make the 128 bits (no crypto dependency for it; a collision needs ~2^64 keys). Slots are
//! probed by double hashing over a prime slot count, so every slot is reachable; the map
//! refuses new keys beyond `load_factor` of the slots, which keeps probe chains short.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Bytes one slot takes: two hash words and the offset.
pub(crate) const BYTES_PER_ENTRY: u64 = 24;

/// A bounded map from key hash to offset.
pub(crate) struct OffsetMap {
    /// `[h1, h2, offset]` per slot; `h1 == 0` marks a free slot (real hashes have bit 0 set).
    words: Vec<u64>,
    slots: u64,
    max_entries: usize,
    entries: usize,
    hashers: (RandomState, RandomState),
}

impl OffsetMap {
    /// A map within `budget` bytes, holding at most `load_factor` of its slots, and no more
    /// slots than `max_keys` keys need (so a small log does not take the whole budget).
    pub fn new(budget: u64, load_factor: f64, max_keys: u64) -> OffsetMap {
        let load_factor = load_factor.clamp(0.01, 1.0);
        let wanted = ((max_keys as f64 / load_factor).ceil() as u64).saturating_add(2);
        let slots = largest_prime_at_most((budget / BYTES_PER_ENTRY).min(wanted).max(2));
        let max_entries = ((slots as f64 * load_factor) as u64).clamp(1, slots - 1) as usize;
        OffsetMap {
            // Zeroed memory comes from calloc/mmap: pages count towards RSS once touched.
            words: vec![0u64; slots as usize * 3],
            slots,
            max_entries,
            entries: 0,
            hashers: (RandomState::new(), RandomState::new()),
        }
    }

    fn hash(&self, key: &[u8]) -> (u64, u64) {
        (
            self.hashers.0.hash_one(key) | 1,
            self.hashers.1.hash_one(key),
        )
    }

    /// The slot holding `key`'s hash, or the free slot where it would go.
    fn find(&self, h1: u64, h2: u64) -> usize {
        let mut at = h1 % self.slots;
        let step = 1 + h2 % (self.slots - 1);
        loop {
            let i = at as usize * 3;
            let w = self.words[i];
            if w == 0 || (w == h1 && self.words[i + 1] == h2) {
                return i;
            }
            at = (at + step) % self.slots;
        }
    }

    /// Records `offset` as `key`'s latest; `false` (nothing stored) when the key is new and
    /// the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let (h1, h2) = self.hash(key);
        let i = self.find(h1, h2);
        if self.words[i] == 0 {
            if self.entries >= self.max_entries {
                return false;
            }
            self.entries += 1;
            self.words[i] = h1;
            self.words[i + 1] = h2;
        }
        self.words[i + 2] = offset as u64;
        true
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let (h1, h2) = self.hash(key);
        let i = self.find(h1, h2);
        (self.words[i] != 0).then(|| self.words[i + 2] as i64)
    }

    /// Keys stored.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Bytes allocated for slots.
    pub fn allocated_bytes(&self) -> u64 {
        self.slots * BYTES_PER_ENTRY
    }
}

fn largest_prime_at_most(n: u64) -> u64 {
    (2..=n.max(2))
        .rev()
        .find(|&c| {
            c == 2
                || (c % 2 == 1
                    && (3..)
                        .step_by(2)
                        .take_while(|d| d * d <= c)
                        .all(|d| c % d != 0))
        })
        .unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_latest_offsets_and_refuses_new_keys_when_full() {
        // 240 bytes: 10 slots → 7 (prime); 0.9 of them: 6 keys.
        let mut m = OffsetMap::new(240, 0.9, u64::MAX);
        assert_eq!(m.allocated_bytes(), 7 * BYTES_PER_ENTRY);
        for i in 0..6 {
            assert!(m.put(format!("k{i}").as_bytes(), i));
        }
        assert!(!m.put(b"k6", 6), "full");
        assert!(m.put(b"k2", 60), "an update needs no new slot");
        assert_eq!(m.get(b"k2"), Some(60));
        assert_eq!(m.get(b"k5"), Some(5));
        assert_eq!(m.get(b"k6"), None);
        assert_eq!(m.len(), 6);
    }

    #[test]
    fn sizes_to_the_keys_expected_and_holds_many() {
        let m = OffsetMap::new(1 << 30, 0.9, 100);
        assert!(m.allocated_bytes() < 200 * BYTES_PER_ENTRY);
        let mut m = OffsetMap::new(24 * 100_000, 0.9, u64::MAX);
        for i in 0..89_000i64 {
            assert!(m.put(&i.to_be_bytes(), i));
        }
        assert!((0..89_000i64).all(|i| m.get(&i.to_be_bytes()) == Some(i)));
        assert_eq!(largest_prime_at_most(100), 97);
        assert_eq!(largest_prime_at_most(2), 2);
    }
}
