//! Which keys the store's `nodes` family may hold: a Bloom filter over them, so that a lookup
//! of a path that is not there, which every create makes at prep, is answered in memory.
//! Without it each such lookup went through RocksDB: every memtable, the bloom filter of
//! every level-0 file and of level 1, and a block read for each false positive among them.
//! Measured before this filter, with creates at 16x64, those lookups took a fifth of the
//! server's CPU.
//!
//! The filter learns every key written to the family ([`PathFilter::add`]) and forgets none,
//! so a key it does not hold is certainly not stored, and a key it holds may be (a deleted
//! path, or a false positive): the store is asked then. It is built by the scan of every
//! node at open, and built again by a thread of its own from a scan of the family once more
//! keys were added to it than it was sized for. It is then sized for [`GROWTH`] times the
//! nodes there are, so that growing to a million nodes scans about a third of a million
//! keys in all, and deleted paths leave it at the next rebuild. Keys added during a rebuild
//! go to both filters. One lock guards it: the core thread checks and adds, the rebuilding
//! thread takes it only to begin and to finish.
//!
//! Paths come from clients: the hash has per-process random keys (ahash), so that nobody can
//! aim at false positives, which would only cost lookups anyway.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Bits per key at the filter's capacity: a false positive rate of about 6% when full,
/// under 1% at half of it, and a few hundredths of a percent just after a rebuild.
const BITS_PER_KEY: usize = 6;
/// Bits set per key, all within one 512-bit block (one cache line).
const PROBES: u32 = 4;
/// The fewest keys a filter is sized for (48 KiB).
const MIN_KEYS: usize = 1 << 16;
/// A rebuilt filter's capacity, in nodes there are when it begins.
const GROWTH: usize = 4;

/// The bits: 512-bit blocks, one per key, picked by the hash's high bits.
#[derive(Default)]
struct Bits {
    words: Vec<u64>,
    blocks: usize,
}

impl Bits {
    fn new(keys: usize) -> Bits {
        let blocks = (keys.max(MIN_KEYS) * BITS_PER_KEY).div_ceil(512);
        Bits {
            // Zeroed by the allocator: pages become resident as keys land in them.
            words: vec![0; blocks * 8],
            blocks,
        }
    }

    /// The word and bit of each probe.
    fn probes(&self, h: u64) -> impl Iterator<Item = (usize, u64)> {
        let block = ((u128::from(h) * self.blocks as u128) >> 64) as usize;
        let g = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (0..PROBES).map(move |i| {
            let bit = (g >> (i * 9)) as usize & 511;
            (block * 8 + bit / 64, 1u64 << (bit % 64))
        })
    }

    /// Sets the key's bits; true if any was not set (a key not seen before, most likely).
    fn insert(&mut self, h: u64) -> bool {
        let mut new = false;
        for (w, m) in self.probes(h) {
            if let Some(word) = self.words.get_mut(w) {
                new |= *word & m == 0;
                *word |= m;
            }
        }
        new
    }

    fn contains(&self, h: u64) -> bool {
        self.probes(h)
            .all(|(w, m)| self.words.get(w).is_some_and(|word| word & m != 0))
    }
}

#[derive(Default)]
struct State {
    /// None until built: then every key may be stored.
    active: Option<Bits>,
    /// Keys the active filter is sized for, and (about) how many it holds.
    capacity: usize,
    held: usize,
    /// A rebuild under way: the hashes of the keys added meanwhile, for the new filter.
    rebuilding: Option<Vec<u64>>,
    /// Bumped by [`PathFilter::reset`]: a rebuild begun before it is dropped.
    generation: u64,
}

/// See the module's comment.
pub struct PathFilter {
    hasher: ahash::RandomState,
    state: Mutex<State>,
}

/// A filter being built: every key the scan meets goes to [`Rebuild::add`], then
/// [`Rebuild::finish`] puts it in place. Dropped unfinished (the scan failed), it is
/// abandoned: the filter in place stays, and a later add may begin another rebuild.
pub struct Rebuild {
    filter: Arc<PathFilter>,
    bits: Bits,
    capacity: usize,
    scanned: usize,
    generation: u64,
    finished: bool,
}

impl PathFilter {
    /// A filter not built yet: it holds every key.
    pub fn new() -> Arc<PathFilter> {
        Arc::new(PathFilter {
            hasher: ahash::RandomState::new(),
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// False only if `key` is certainly not stored.
    pub fn may_hold(&self, key: &[u8]) -> bool {
        let h = self.hash(key);
        self.lock().active.as_ref().is_none_or(|b| b.contains(h))
    }

    /// Records `key`, about to be written to the store, which then holds about `nodes`
    /// nodes. Returns a rebuild to run when the filter holds more keys than it was sized for:
    /// its scan must begin after this key and those added before it are written (keys added
    /// from now on go to the rebuild as well).
    pub fn add(self: &Arc<Self>, key: &[u8], nodes: usize) -> Option<Rebuild> {
        let h = self.hash(key);
        let mut s = self.lock();
        if let Some(side) = &mut s.rebuilding {
            side.push(h);
        }
        let Some(bits) = &mut s.active else {
            return None;
        };
        if bits.insert(h) {
            s.held += 1;
        }
        if s.held <= s.capacity || s.rebuilding.is_some() {
            return None;
        }
        s.rebuilding = Some(Vec::new());
        let generation = s.generation;
        drop(s);
        Some(self.rebuild(nodes, generation))
    }

    /// Forgets every key (the store is about to be scanned whole): returns the rebuild the
    /// scan feeds, sized for `expected` nodes. Until it finishes every key may be stored.
    pub fn reset(self: &Arc<Self>, expected: usize) -> Rebuild {
        let mut s = self.lock();
        s.generation += 1;
        s.active = None;
        s.rebuilding = Some(Vec::new());
        let generation = s.generation;
        drop(s);
        self.rebuild(expected, generation)
    }

    /// Forgets every key (the store's keys are all being replaced): until the next
    /// [`reset`](Self::reset) is finished, every key may be stored.
    pub fn forget(&self) {
        let mut s = self.lock();
        s.generation += 1;
        s.active = None;
        s.rebuilding = None;
    }

    fn rebuild(self: &Arc<Self>, nodes: usize, generation: u64) -> Rebuild {
        let capacity = nodes.saturating_mul(GROWTH).max(MIN_KEYS);
        Rebuild {
            filter: Arc::clone(self),
            bits: Bits::new(capacity),
            capacity,
            scanned: 0,
            generation,
            finished: false,
        }
    }

    /// The bytes of filter held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.lock().active.as_ref().map_or(0, |b| b.words.len() * 8)
    }
}

impl Rebuild {
    /// A key the scan met.
    pub fn add(&mut self, key: &[u8]) {
        let h = self.filter.hash(key);
        self.bits.insert(h);
        self.scanned += 1;
    }

    /// Puts the new filter in place, with the keys added since the scan began.
    pub fn finish(mut self) {
        self.finished = true;
        let mut s = self.filter.lock();
        if s.generation != self.generation {
            return;
        }
        let mut bits = std::mem::take(&mut self.bits);
        let side = s.rebuilding.take().unwrap_or_default();
        for h in &side {
            bits.insert(*h);
        }
        s.active = Some(bits);
        s.capacity = self.capacity;
        s.held = self.scanned + side.len();
    }
}

impl Drop for Rebuild {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut s = self.filter.lock();
        if s.generation == self.generation {
            s.rebuilding = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Vec<u8> {
        format!("/node-{i}").into_bytes()
    }

    /// A fresh filter fed keys 0, 1, ... until a rebuild begins: the filter, the number of
    /// keys added, and the rebuild.
    fn past_capacity() -> (Arc<PathFilter>, usize, Rebuild) {
        let f = PathFilter::new();
        f.reset(0).finish();
        let mut n = 0;
        loop {
            n += 1;
            if let Some(job) = f.add(&key(n - 1), n) {
                return (f, n, job);
            }
        }
    }

    #[test]
    fn holds_every_key_it_was_given_and_few_others() {
        let f = PathFilter::new();
        assert!(
            f.may_hold(b"/anything"),
            "not built yet: every key may be there"
        );
        let mut build = f.reset(10_000);
        for i in 0..10_000 {
            build.add(&key(i));
        }
        build.finish();
        for i in 10_000..40_000 {
            assert!(f.add(&key(i), i + 1).is_none(), "within capacity");
        }
        for i in 0..40_000 {
            assert!(f.may_hold(&key(i)), "key {i} lost");
        }
        let false_positives = (100_000..200_000).filter(|i| f.may_hold(&key(*i))).count();
        assert!(
            false_positives < 2_000,
            "{false_positives} false positives in 100,000"
        );
    }

    #[test]
    fn rebuilds_past_its_capacity_keeping_keys_added_meanwhile() {
        let (f, n, mut job) = past_capacity();
        assert!(
            n > MIN_KEYS,
            "a rebuild begins once past capacity, not before"
        );
        // Added during the rebuild: the scan does not see them.
        for i in n..n + 100 {
            assert!(f.add(&key(i), i + 1).is_none(), "one rebuild at a time");
        }
        // The scan sees the stored keys, without the first ten (deleted since).
        for i in 10..n {
            job.add(&key(i));
        }
        job.finish();
        for i in 10..n + 100 {
            assert!(f.may_hold(&key(i)), "key {i} lost by the rebuild");
        }
        let forgotten = (0..10).filter(|i| !f.may_hold(&key(*i))).count();
        assert!(forgotten >= 9, "deleted keys leave at a rebuild");
        assert!(f.bytes() >= (n * GROWTH * BITS_PER_KEY) / 8);
    }

    #[test]
    fn an_abandoned_rebuild_leaves_the_filter_in_place_and_another_may_begin() {
        let (f, n, job) = past_capacity();
        drop(job);
        assert!((0..n).all(|i| f.may_hold(&key(i))));
        assert!(f.add(&key(n), n + 1).is_some(), "a new rebuild begins");
    }

    #[test]
    fn after_forget_every_key_may_be_stored_and_a_rebuild_begun_before_is_dropped() {
        let (f, _, stale) = past_capacity();
        f.forget();
        assert!(f.may_hold(b"/never-added"));
        stale.finish();
        assert!(
            f.may_hold(b"/never-added"),
            "the stale rebuild is not put in place"
        );
        assert!(f.add(b"/x", 1).is_none(), "no rebuild until the next reset");
    }

    #[test]
    fn a_reset_drops_the_rebuild_begun_before_it() {
        let (f, _, stale) = past_capacity();
        let mut fresh = f.reset(1);
        fresh.add(b"/kept");
        stale.finish();
        assert!(
            f.may_hold(&key(0)),
            "the stale rebuild must not be put in place"
        );
        fresh.finish();
        assert!(f.may_hold(b"/kept"));
        assert!(!f.may_hold(&key(0)) || !f.may_hold(&key(1)));
    }
}
