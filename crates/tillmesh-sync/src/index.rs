//! The reconciliation index: every document's id with a hash of its heads, sorted by id, and the
//! range fingerprints that range-based set reconciliation compares.

use std::collections::BTreeMap;

use automerge::ChangeHash;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A document id (the document's UUID).
pub type DocId = Uuid;

/// Hash of a document id and its heads: equal on two peers exactly when they hold the same
/// version of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemHash(pub [u8; 16]);

impl ItemHash {
    /// Hashes a document's id and heads (order-independent: heads are sorted first).
    pub fn of(id: DocId, heads: &[ChangeHash]) -> ItemHash {
        let mut sorted: Vec<&ChangeHash> = heads.iter().collect();
        sorted.sort();
        let mut hasher = Sha256::new();
        hasher.update(b"tillmesh/item/v1\0");
        hasher.update(id.as_bytes());
        for head in sorted {
            hasher.update(head.0);
        }
        let digest = hasher.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        ItemHash(bytes)
    }

    /// The first eight bytes: enough to tell versions apart in item lists.
    pub fn tag(&self) -> [u8; 8] {
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&self.0[..8]);
        tag
    }
}

/// XOR of the item hashes (their first 8 bytes) in a range, with their count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// XOR of the item hashes' first 8 bytes.
    pub xor: [u8; 8],
    /// How many items.
    pub count: u64,
}

impl Fingerprint {
    fn add(&mut self, hash: &ItemHash) {
        for (acc, byte) in self.xor.iter_mut().zip(hash.tag()) {
            *acc ^= byte;
        }
        self.count += 1;
    }

    fn take_out(&mut self, hash: &ItemHash) {
        for (acc, byte) in self.xor.iter_mut().zip(hash.tag()) {
            *acc ^= byte;
        }
        self.count -= 1;
    }

    /// The fingerprint of two disjoint ranges together.
    pub(crate) fn joined(mut self, other: &Fingerprint) -> Fingerprint {
        for (acc, byte) in self.xor.iter_mut().zip(other.xor) {
            *acc ^= byte;
        }
        self.count += other.count;
        self
    }
}

/// An exclusive upper (or inclusive lower) bound of a range of document ids: a prefix of an id,
/// padded with zero bytes, or the end of the id space.
#[derive(Debug, Clone)]
pub enum Bound {
    /// A prefix (at most 16 bytes); it stands for the prefix padded with zeros.
    Prefix(Vec<u8>),
    /// Past every id.
    Max,
}

impl Bound {
    /// The start of the id space.
    pub fn min() -> Bound {
        Bound::Prefix(Vec::new())
    }

    /// The padded id this bound stands for (`None` for [`Bound::Max`]).
    pub fn key(&self) -> Option<[u8; 16]> {
        match self {
            Bound::Prefix(prefix) => {
                let mut key = [0u8; 16];
                key[..prefix.len()].copy_from_slice(prefix);
                Some(key)
            }
            Bound::Max => None,
        }
    }

    /// The shortest bound above `below` and at most `above` (`below < above`).
    pub fn between(below: &DocId, above: &DocId) -> Bound {
        let (below, above) = (below.as_bytes(), above.as_bytes());
        let shared = below.iter().zip(above).take_while(|(a, b)| a == b).count();
        Bound::Prefix(above[..(shared + 1).min(16)].to_vec())
    }
}

impl PartialEq for Bound {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Bound {}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.key(), other.key()) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (Some(a), Some(b)) => a.cmp(&b),
        }
    }
}

/// Every document id with its [`ItemHash`], sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    items: BTreeMap<DocId, ItemHash>,
    /// The fingerprint of every item, kept as they change (receipts and agreements ask for it
    /// on every exchange).
    whole: Fingerprint,
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Sets a document's hash (after any change to it).
    pub fn insert(&mut self, id: DocId, hash: ItemHash) {
        if let Some(old) = self.items.insert(id, hash) {
            self.whole.take_out(&old);
        }
        self.whole.add(&hash);
    }

    /// Forgets a document (set aside as unreadable).
    pub fn remove(&mut self, id: &DocId) {
        if let Some(old) = self.items.remove(id) {
            self.whole.take_out(&old);
        }
    }

    /// A document's hash.
    pub fn get(&self, id: &DocId) -> Option<&ItemHash> {
        self.items.get(id)
    }

    /// How many documents.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every document, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&DocId, &ItemHash)> {
        self.items.iter()
    }

    /// The documents in `[lower, upper)`, in id order.
    pub fn range<'a>(
        &'a self,
        lower: &Bound,
        upper: &Bound,
    ) -> impl Iterator<Item = (&'a DocId, &'a ItemHash)> + 'a {
        let range = match (lower.key(), upper.key()) {
            (None, _) => None,
            (Some(low), Some(high)) if low >= high => None,
            (Some(low), Some(high)) => Some(self.items.range(Uuid::from_bytes(low)..Uuid::from_bytes(high))),
            (Some(low), None) => Some(self.items.range(Uuid::from_bytes(low)..)),
        };
        range.into_iter().flatten()
    }

    /// The fingerprint of `[lower, upper)`.
    pub fn fingerprint(&self, lower: &Bound, upper: &Bound) -> Fingerprint {
        if *lower == Bound::min() && *upper == Bound::Max {
            return self.whole;
        }
        let mut fingerprint = Fingerprint::default();
        for (_, hash) in self.range(lower, upper) {
            fingerprint.add(hash);
        }
        fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_separate_neighbours_with_short_prefixes() {
        let a = Uuid::from_u128(0x1234_5678_0000_0000_0000_0000_0000_0000);
        let b = Uuid::from_u128(0x1234_9999_0000_0000_0000_0000_0000_0000);
        let bound = Bound::between(&a, &b);
        assert_eq!(bound, Bound::Prefix(vec![0x12, 0x34, 0x99]));
        let key = Uuid::from_bytes(bound.key().expect("prefix"));
        assert!(a < key && key <= b);
        assert!(Bound::min() < bound && bound < Bound::Max);
    }

    #[test]
    fn ranges_and_fingerprints() {
        let mut index = Index::new();
        for n in 1..=10u128 {
            index.insert(Uuid::from_u128(n << 120), ItemHash([n as u8; 16]));
        }
        let mid = Bound::between(&Uuid::from_u128(5 << 120), &Uuid::from_u128(6 << 120));
        assert_eq!(index.range(&Bound::min(), &mid).count(), 5);
        assert_eq!(index.range(&mid, &Bound::Max).count(), 5);
        assert_eq!(index.range(&Bound::Max, &Bound::Max).count(), 0);
        assert_eq!(index.range(&mid, &mid).count(), 0);
        let whole = index.fingerprint(&Bound::min(), &Bound::Max);
        assert_eq!(whole.count, 10);
        let xor = (1..=10u8).fold(0u8, |acc, n| acc ^ n);
        assert_eq!(whole.xor, [xor; 8]);
    }

    #[test]
    fn the_kept_whole_set_fingerprint_follows_every_change() {
        let mut index = Index::new();
        let walked = |index: &Index| {
            index.range(&Bound::min(), &Bound::Max).fold(Fingerprint::default(), |mut whole, (_, hash)| {
                whole.add(hash);
                whole
            })
        };
        for n in 0..50u128 {
            index.insert(Uuid::from_u128(n * 0x9E37_79B9_7F4A_7C15), ItemHash([(n * 7) as u8; 16]));
        }
        for n in (0..50u128).step_by(3) {
            index.insert(Uuid::from_u128(n * 0x9E37_79B9_7F4A_7C15), ItemHash([(n * 11 + 1) as u8; 16]));
        }
        for n in (0..50u128).step_by(5) {
            index.remove(&Uuid::from_u128(n * 0x9E37_79B9_7F4A_7C15));
        }
        index.remove(&Uuid::from_u128(u128::MAX));
        assert_eq!(index.fingerprint(&Bound::min(), &Bound::Max), walked(&index));
        assert_eq!(index.fingerprint(&Bound::min(), &Bound::Max).count, 40);
    }
}
