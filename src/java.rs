//! Java's iteration orders, where ZooKeeper's answers follow them: the ids of a connection
//! (a `ConcurrentHashMap` set) and a session's ephemerals (a `HashSet`, iterated when the
//! session closes and by getEphemerals). Both go bucket by bucket, and within a bucket in the
//! order of insertion; the buckets are the hash's low bits after `h ^ (h >>> 16)`.

/// Java's `String.hashCode` (over UTF-16 code units).
pub fn string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The bucket of hash `h` in a table of `table` (a power of two) buckets.
pub fn bucket(h: i32, table: u32) -> u32 {
    let h = h as u32;
    (h ^ (h >> 16)) & (table - 1)
}

/// The table size of a default `HashMap`/`HashSet` that held at most `n` keys: 16, doubled
/// when a key is added past three quarters of it (tables never shrink).
pub fn hash_set_table(n: usize) -> u32 {
    let mut table = 16u32;
    while n > table as usize * 3 / 4 {
        table *= 2;
    }
    table
}

/// The table size of a default `ConcurrentHashMap` holding `n` keys: 16, doubled when the
/// count reaches three quarters of it.
pub fn concurrent_table(n: usize) -> u32 {
    let mut table = 16u32;
    while n >= table as usize * 3 / 4 {
        table *= 2;
    }
    table
}

/// `items` (in insertion order) in the order a `HashSet<String>` of them iterates, once it
/// has held `held` of them at most.
pub fn hash_set_order(mut items: Vec<String>, held: usize) -> Vec<String> {
    let table = hash_set_table(held.max(items.len()));
    items.sort_by_key(|s| bucket(string_hash(s), table));
    items
}

/// The order a `clone()` of such a set iterates: `HashMap.clone` sizes its table for the
/// keys there are (`tableSizeFor((int) (n / 0.75f + 1))`, JDK 17) and inserts them in the
/// original's order. ZooKeeper iterates a clone of a session's ephemerals.
pub fn cloned_hash_set_order(items: Vec<String>, held: usize) -> Vec<String> {
    let mut items = hash_set_order(items, held);
    let n = items.len();
    if n == 0 {
        return items;
    }
    let table = ((n as f32 / 0.75f32 + 1.0f32) as u32).next_power_of_two();
    items.sort_by_key(|s| bucket(string_hash(s), table));
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_tables_are_javas() {
        assert_eq!(string_hash("ip"), 3367);
        assert_eq!(string_hash("zß€"), 132_519);
        assert_eq!(string_hash(""), 0);
        assert_eq!((concurrent_table(11), concurrent_table(12)), (16, 32));
        assert_eq!((hash_set_table(12), hash_set_table(13)), (16, 32));
    }

    #[test]
    fn a_sets_order_is_by_bucket_then_insertion() {
        // "Aa" and "BB" collide in Java (2112, bucket 0); "a" is in bucket 1, "b" in 2.
        assert_eq!(string_hash("Aa"), string_hash("BB"));
        let keys = || vec!["b".to_string(), "BB".into(), "a".into(), "Aa".into()];
        assert_eq!(hash_set_order(keys(), 4), ["BB", "Aa", "a", "b"]);
        // Buckets 8 and 14 of 16 are 24 and 14 of 32: a set that once held 13 keys.
        let two = || {
            vec![
                "/difftest-188/b/a".to_string(),
                "/difftest-188/b/b/c".into(),
            ]
        };
        let swapped = || vec![two()[1].clone(), two()[0].clone()];
        assert_eq!(hash_set_order(two(), 2), two());
        assert_eq!(hash_set_order(two(), 13), swapped());
        // A clone of those two has 4 buckets, where they are 0 and 2.
        assert_eq!(cloned_hash_set_order(two(), 13), two());
        assert!(cloned_hash_set_order(Vec::new(), 0).is_empty());
    }
}
