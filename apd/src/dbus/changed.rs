//! Which entries of two maps differ, found by walking both in key order.
//! A publish compares the model with the one before it (1,000 mdevs, their
//! definitions, their objects on the bus): one comparison per entry, no
//! lookup per entry.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A key whose entry differs: its old and its new value (None: absent).
pub type Changed<'a, K, V> = (&'a K, Option<&'a V>, Option<&'a V>);

/// The keys in one map only, or in both with values that `same` says
/// differ, in key order.
pub fn changed<'a, K: Ord, V>(
    old: &'a BTreeMap<K, V>,
    new: &'a BTreeMap<K, V>,
    same: impl Fn(&V, &V) -> bool,
) -> Vec<Changed<'a, K, V>> {
    let (mut o, mut n) = (old.iter().peekable(), new.iter().peekable());
    let mut out = Vec::new();
    loop {
        let order = match (o.peek(), n.peek()) {
            (None, None) => return out,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        match order {
            Ordering::Less => out.extend(o.next().map(|(k, v)| (k, Some(v), None))),
            Ordering::Greater => out.extend(n.next().map(|(k, v)| (k, None, Some(v)))),
            Ordering::Equal => {
                if let (Some((k, a)), Some((_, b))) = (o.next(), n.next()) {
                    if !same(a, b) {
                        out.push((k, Some(a), Some(b)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The walk finds exactly what a lookup of every key finds.
        #[test]
        fn the_walk_finds_what_lookups_find(
            old in prop::collection::btree_map(0u8..40, 0u8..3, 0..30),
            new in prop::collection::btree_map(0u8..40, 0u8..3, 0..30),
        ) {
            let walked: Vec<(u8, Option<u8>, Option<u8>)> = changed(&old, &new, |a, b| a == b)
                .into_iter()
                .map(|(k, a, b)| (*k, a.copied(), b.copied()))
                .collect();
            let mut keys: Vec<u8> = old.keys().chain(new.keys()).copied().collect();
            keys.sort_unstable();
            keys.dedup();
            let looked_up: Vec<(u8, Option<u8>, Option<u8>)> = keys
                .into_iter()
                .map(|k| (k, old.get(&k).copied(), new.get(&k).copied()))
                .filter(|(_, a, b)| a != b)
                .collect();
            prop_assert_eq!(walked, looked_up);
        }
    }
}
