//! 256-bit AP masks in the kernel's bit order: bit 0 is the most significant
//! bit of the first word, so ID 0 is the leftmost hex digit.

use std::fmt;

/// A set of AP ids (adapters or domains), 0..=255.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub(crate) struct Bits([u64; 4]);

impl Bits {
    pub(crate) const fn empty() -> Bits {
        Bits([0; 4])
    }

    pub(crate) const fn full() -> Bits {
        Bits([u64::MAX; 4])
    }

    pub(crate) fn from_ids(ids: impl IntoIterator<Item = u8>) -> Bits {
        let mut b = Bits::empty();
        for id in ids {
            b.set(id);
        }
        b
    }

    fn pos(id: u8) -> (usize, u64) {
        (usize::from(id / 64), 1u64 << (63 - u32::from(id % 64)))
    }

    pub(crate) fn get(&self, id: u8) -> bool {
        let (w, m) = Bits::pos(id);
        self.0[w] & m != 0
    }

    pub(crate) fn set(&mut self, id: u8) {
        let (w, m) = Bits::pos(id);
        self.0[w] |= m;
    }

    pub(crate) fn clear(&mut self, id: u8) {
        let (w, m) = Bits::pos(id);
        self.0[w] &= !m;
    }

    pub(crate) fn put(&mut self, id: u8, on: bool) {
        if on {
            self.set(id);
        } else {
            self.clear(id);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub(crate) fn and(&self, other: &Bits) -> Bits {
        let mut r = *self;
        for (a, b) in r.0.iter_mut().zip(other.0) {
            *a &= b;
        }
        r
    }

    /// Bits in `self` that are not in `other`.
    pub(crate) fn minus(&self, other: &Bits) -> Bits {
        let mut r = *self;
        for (a, b) in r.0.iter_mut().zip(other.0) {
            *a &= !b;
        }
        r
    }

    /// Ids set, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=255u8).filter(move |id| self.get(*id))
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// `0x` + 64 lowercase hex digits, as sysfs prints masks.
    pub(crate) fn to_hex(self) -> String {
        format!(
            "0x{:016x}{:016x}{:016x}{:016x}",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

impl fmt::Debug for Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_zero_is_leftmost() {
        let b = Bits::from_ids([1, 2, 3, 4, 5, 7]);
        assert_eq!(
            b.to_hex(),
            "0x7d00000000000000000000000000000000000000000000000000000000000000"
        );
        let last = Bits::from_ids([255]);
        assert!(last.to_hex().ends_with("01"));
    }

    #[test]
    fn set_maths() {
        let a = Bits::from_ids([1, 64, 200]);
        let b = Bits::from_ids([64, 255]);
        assert_eq!(a.and(&b).iter().collect::<Vec<_>>(), vec![64]);
        assert_eq!(a.minus(&b).iter().collect::<Vec<_>>(), vec![1, 200]);
        assert_eq!(Bits::full().count(), 256);
        assert!(Bits::empty().is_empty());
    }
}
