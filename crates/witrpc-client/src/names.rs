//! Maps keyed by event and stream names, with a hasher much cheaper than the standard
//! one on such short keys: every positioned event looks up its stream and its event.
//!
//! The standard hasher resists keys chosen to collide; these maps do not need that. Their
//! keys are the application's own event names and the stream names of the server it
//! connected to, and each map is bounded (the resume state tracks at most
//! `resume::MAX_STREAMS` streams), so the worst a server could do with colliding names is
//! make a lookup scan those few entries.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by names.
pub(crate) type NameMap<K, V> = HashMap<K, V, BuildHasherDefault<NameHasher>>;
/// A set of names.
pub(crate) type NameSet<K> = HashSet<K, BuildHasherDefault<NameHasher>>;

/// Multiply-rotate hashing, eight bytes at a time (the multiplier is FxHash's).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NameHasher(u64);

impl NameHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        // The length first: zero padding must not make "ab" and "ab\0" one word.
        self.add(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn names_that_differ_anywhere_hash_apart() {
        let hash = |s: &str| BuildHasherDefault::<NameHasher>::default().hash_one(s);
        let names = ["all", "g:room", "g:roon", "u:ann", "c:0123456789abcdef", "c:0123456789abcdeg", "", "a", "b"];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(hash(a), hash(b), "{a:?} and {b:?}");
            }
        }
        // The last word's zero padding does not make these two one hash.
        assert_ne!(hash("ab"), hash("ab\u{0}"));
        let mut map = NameMap::default();
        map.insert("Tick".to_owned(), 1);
        map.insert("Tock".to_owned(), 2);
        assert_eq!((map.get("Tick"), map.get("Tock"), map.get("Tack")), (Some(&1), Some(&2), None));
    }
}
