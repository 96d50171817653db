//! 256-bit AP masks with exactly the kernel's syntax (kernel spec §2).
//!
//! The same type is the set of adapters, usage domains or control domains of
//! an mdev, and the host configuration masks (APM, AQM, ADM).

use std::borrow::Borrow;
use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Not, Sub, SubAssign};

/// Number of ids a mask holds (0..=255).
pub const MASK_BITS: usize = 256;

/// A set of AP ids 0..=255.
///
/// Stored as four 64-bit words; id `i` lives in word `i / 64` at bit
/// `63 - i % 64`, so the words printed in order as 16 hex digits each give
/// the kernel's read format (id 0 is the most significant bit of the first
/// hex digit).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct ApMask {
    words: [u64; 4],
}

impl ApMask {
    /// The mask with no id set.
    pub const fn empty() -> Self {
        Self { words: [0; 4] }
    }

    /// The mask with every id 0..=255 set (the kernel's default apmask/aqmask).
    pub const fn full() -> Self {
        Self {
            words: [u64::MAX; 4],
        }
    }

    /// All ids in `0..=max` (the range a host supports).
    pub fn up_to(max: u8) -> Self {
        let mut m = Self::empty();
        for id in 0..=max {
            m.insert(id);
        }
        m
    }

    /// Build a mask from ids; duplicates collapse.
    pub fn from_ids(ids: impl IntoIterator<Item = u8>) -> Self {
        let mut m = Self::empty();
        for id in ids {
            m.insert(id);
        }
        m
    }

    fn pos(id: u8) -> (usize, u64) {
        let i = usize::from(id);
        (i / 64, 1u64 << (63 - (i % 64)))
    }

    /// Whether `id` is set.
    pub fn contains(&self, id: u8) -> bool {
        let (w, b) = Self::pos(id);
        self.words[w] & b != 0
    }

    /// Set `id`; returns whether it was newly set.
    pub fn insert(&mut self, id: u8) -> bool {
        let (w, b) = Self::pos(id);
        let was = self.words[w] & b != 0;
        self.words[w] |= b;
        !was
    }

    /// Clear `id`; returns whether it was set.
    pub fn remove(&mut self, id: u8) -> bool {
        let (w, b) = Self::pos(id);
        let was = self.words[w] & b != 0;
        self.words[w] &= !b;
        was
    }

    /// Set or clear `id`.
    pub fn set(&mut self, id: u8, value: bool) {
        if value {
            self.insert(id);
        } else {
            self.remove(id);
        }
    }

    /// The set ids, ascending.
    pub fn iter(&self) -> Iter {
        Iter {
            words: self.words,
            word: 0,
        }
    }

    /// Number of set ids.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether no id is set.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// Whether every id 0..=255 is set.
    pub fn is_full(&self) -> bool {
        self.words.iter().all(|w| *w == u64::MAX)
    }

    /// The smallest set id.
    pub fn first(&self) -> Option<u8> {
        self.iter().next()
    }

    /// The largest set id.
    pub fn last(&self) -> Option<u8> {
        for (w, word) in self.words.iter().enumerate().rev() {
            if *word != 0 {
                let bit = 63 - word.trailing_zeros() as usize;
                return u8::try_from(w * 64 + bit).ok();
            }
        }
        None
    }

    /// Ids in either mask.
    pub fn union(&self, other: impl Borrow<ApMask>) -> ApMask {
        let o = other.borrow();
        let mut r = *self;
        for (a, b) in r.words.iter_mut().zip(o.words) {
            *a |= b;
        }
        r
    }

    /// Ids in both masks.
    pub fn intersection(&self, other: impl Borrow<ApMask>) -> ApMask {
        let o = other.borrow();
        let mut r = *self;
        for (a, b) in r.words.iter_mut().zip(o.words) {
            *a &= b;
        }
        r
    }

    /// Ids in `self` but not in `other`.
    pub fn difference(&self, other: impl Borrow<ApMask>) -> ApMask {
        let o = other.borrow();
        let mut r = *self;
        for (a, b) in r.words.iter_mut().zip(o.words) {
            *a &= !b;
        }
        r
    }

    /// Ids not in `self`.
    pub fn complement(&self) -> ApMask {
        let mut r = *self;
        for a in r.words.iter_mut() {
            *a = !*a;
        }
        r
    }

    /// Whether the masks share an id.
    pub fn intersects(&self, other: impl Borrow<ApMask>) -> bool {
        let o = other.borrow();
        self.words.iter().zip(o.words).any(|(a, b)| a & b != 0)
    }

    /// Whether every id of `self` is in `other`.
    pub fn is_subset(&self, other: impl Borrow<ApMask>) -> bool {
        let o = other.borrow();
        self.words.iter().zip(o.words).all(|(a, b)| a & !b == 0)
    }

    /// The raw words (id 0 = most significant bit of word 0).
    pub fn words(&self) -> [u64; 4] {
        self.words
    }

    /// Build from raw words (id 0 = most significant bit of word 0).
    #[cfg(any(test, feature = "testing"))]
    pub fn from_words(words: [u64; 4]) -> Self {
        Self { words }
    }

    /// Parse an absolute mask exactly as the kernel does for a write whose
    /// first character is not `+`/`-` (kernel `hex2bitmap`): an optional `0x`
    /// (or a bare `x`), up to 64 hex digits of either case, left aligned, at
    /// most one trailing `\n`. `0X` is invalid. `""`, `"\n"`, `"0x"` give the
    /// empty mask. A string starting with `+`/`-` is refused as relative.
    pub fn parse_absolute(s: &str) -> Result<ApMask, MaskError> {
        let s = c_str(s);
        if let Some(c) = s.chars().next() {
            if c == '+' || c == '-' {
                return Err(MaskError::new(s, 0, MaskErrorKind::RelativeNotAllowed));
            }
        }
        hex2bitmap(s)
    }

    /// The mask after the kernel processes a write of `s` to a mask holding
    /// `self` (kernel `ap_parse_mask_str`): a zero-length write changes
    /// nothing; a first character `+`/`-` selects relative terms applied to
    /// a copy of `self`; anything else is an absolute mask. All or nothing:
    /// on error `self` is what the kernel keeps.
    pub fn apply_write(&self, s: &str) -> Result<ApMask, MaskError> {
        // A zero-length write never reaches the store function.
        if s.is_empty() {
            return Ok(*self);
        }
        // The store sees a NUL-terminated buffer: an embedded NUL ends it,
        // so a write of "\0..." is an empty absolute mask (all zeros).
        let s = c_str(s);
        match s.as_bytes().first() {
            Some(b'+') | Some(b'-') => modify_bitmap(s, *self),
            _ => hex2bitmap(s),
        }
    }

    /// Whether a write of `s` would be relative (first character `+`/`-`).
    pub fn is_relative(s: &str) -> bool {
        matches!(s.as_bytes().first(), Some(b'+') | Some(b'-'))
    }
}

/// C strings end at the first NUL; the kernel never sees what follows.
fn c_str(s: &str) -> &str {
    match s.find('\0') {
        Some(i) => &s[..i],
        None => s,
    }
}

fn hex2bitmap(s: &str) -> Result<ApMask, MaskError> {
    let b = s.as_bytes();
    let mut i = 0usize;
    if b.first() == Some(&b'0') && b.get(1) == Some(&b'x') {
        i += 1;
    }
    if b.get(i) == Some(&b'x') {
        i += 1;
    }
    let mut mask = ApMask::empty();
    let mut bit = 0usize;
    while bit < MASK_BITS {
        let Some(v) = b.get(i).and_then(|c| (*c as char).to_digit(16)) else {
            break;
        };
        // Nibble k covers ids 4k..4k+3, most significant bit first, which
        // is exactly its place in the word layout.
        mask.words[bit / 64] |= u64::from(v) << (60 - bit % 64);
        bit += 4;
        i += 1;
    }
    if b.get(i) == Some(&b'\n') {
        i += 1;
    }
    if i < b.len() {
        let kind = if bit >= MASK_BITS && b[i].is_ascii_hexdigit() {
            MaskErrorKind::TooManyDigits
        } else if b.get(i) == Some(&b'X') && i == 1 {
            MaskErrorKind::UppercaseHexPrefix
        } else {
            MaskErrorKind::UnexpectedChar(char_at(s, i))
        };
        return Err(MaskError::new(s, i, kind));
    }
    Ok(mask)
}

fn char_at(s: &str, i: usize) -> char {
    s.get(i..).and_then(|t| t.chars().next()).unwrap_or('?')
}

/// C `simple_strtoul(s, &end, 0)`: returns (value, bytes consumed). The
/// value wraps on overflow as the kernel's does (the overflow flag is
/// dropped by simple_strtoul); nothing consumed means no digits.
pub(crate) fn simple_strtoul(b: &[u8]) -> (u64, usize) {
    let (base, start) = if b.first() == Some(&b'0') {
        if matches!(b.get(1), Some(b'x') | Some(b'X'))
            && b.get(2).is_some_and(|c| c.is_ascii_hexdigit())
        {
            (16u32, 2usize)
        } else {
            (8, 0)
        }
    } else {
        (10, 0)
    };
    let mut value: u64 = 0;
    let mut i = start;
    while let Some(d) = b.get(i).and_then(|c| (*c as char).to_digit(base)) {
        value = value
            .wrapping_mul(u64::from(base))
            .wrapping_add(u64::from(d));
        i += 1;
    }
    if i == start {
        (0, 0)
    } else {
        (value, i)
    }
}

fn modify_bitmap(s: &str, mut mask: ApMask) -> Result<ApMask, MaskError> {
    let b = s.as_bytes();
    let mut i = 0usize;
    while i < b.len() {
        let term_start = i;
        let sign = b[i];
        if sign != b'+' && sign != b'-' {
            return Err(MaskError::new(
                s,
                i,
                MaskErrorKind::MissingSign(char_at(s, i)),
            ));
        }
        i += 1;
        let a = term_id(s, term_start, &mut i)?;
        let mut z = a;
        if b.get(i) == Some(&b'-') {
            i += 1;
            let zz = term_id(s, term_start, &mut i)?;
            if a > zz {
                return Err(MaskError::new(
                    s,
                    term_start,
                    MaskErrorKind::ReversedRange(token(s, term_start, i)),
                ));
            }
            z = zz;
        }
        for id in a..=z {
            if let Ok(id) = u8::try_from(id) {
                mask.set(id, sign == b'+');
            }
        }
        while matches!(b.get(i), Some(b',') | Some(b'\n')) {
            i += 1;
        }
    }
    Ok(mask)
}

/// One id of the term that starts at `term_start`, read at `*i` as the
/// kernel does (simple_strtoul), below 256; `*i` moves past its digits.
fn term_id(s: &str, term_start: usize, i: &mut usize) -> Result<u64, MaskError> {
    let (id, n) = simple_strtoul(&s.as_bytes()[*i..]);
    if n == 0 {
        return Err(MaskError::new(s, *i, MaskErrorKind::NoDigits));
    }
    *i += n;
    if id >= MASK_BITS as u64 {
        return Err(MaskError::new(
            s,
            term_start,
            MaskErrorKind::IdTooLarge(token(s, term_start, *i)),
        ));
    }
    Ok(id)
}

fn token(s: &str, from: usize, to: usize) -> String {
    s.get(from..to).unwrap_or("").to_string()
}

impl fmt::Display for ApMask {
    /// The kernel's read format without the newline: `0x` + 64 lowercase hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "0x{:016x}{:016x}{:016x}{:016x}",
            self.words[0], self.words[1], self.words[2], self.words[3]
        )
    }
}

impl fmt::Debug for ApMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl std::str::FromStr for ApMask {
    type Err = MaskError;
    /// Absolute kernel syntax (see [`ApMask::parse_absolute`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ApMask::parse_absolute(s)
    }
}

impl FromIterator<u8> for ApMask {
    fn from_iter<T: IntoIterator<Item = u8>>(iter: T) -> Self {
        ApMask::from_ids(iter)
    }
}

impl Extend<u8> for ApMask {
    fn extend<T: IntoIterator<Item = u8>>(&mut self, iter: T) {
        for id in iter {
            self.insert(id);
        }
    }
}

impl IntoIterator for &ApMask {
    type Item = u8;
    type IntoIter = Iter;
    fn into_iter(self) -> Iter {
        self.iter()
    }
}

impl IntoIterator for ApMask {
    type Item = u8;
    type IntoIter = Iter;
    fn into_iter(self) -> Iter {
        self.iter()
    }
}

/// Serialized as an ascending array of ids (`[5, 6]`), as in definitions
/// and `--json` output.
impl serde::Serialize for ApMask {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// Deserialized from an array of ids 0..=255 (duplicates collapse).
impl<'de> serde::Deserialize<'de> for ApMask {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ids = Vec::<i64>::deserialize(d)?;
        let mut m = ApMask::empty();
        for id in ids {
            let id = u8::try_from(id)
                .map_err(|_| serde::de::Error::custom(format!("id {id} is outside 0..=255")))?;
            m.insert(id);
        }
        Ok(m)
    }
}

/// Ascending iterator over the ids of an [`ApMask`].
#[derive(Debug, Clone)]
pub struct Iter {
    words: [u64; 4],
    word: usize,
}

impl Iterator for Iter {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        while self.word < 4 {
            let w = self.words[self.word];
            if w != 0 {
                let bit = w.leading_zeros() as usize;
                self.words[self.word] &= !(1u64 << (63 - bit));
                return u8::try_from(self.word * 64 + bit).ok();
            }
            self.word += 1;
        }
        None
    }
}

macro_rules! binop {
    ($tr:ident, $m:ident, $f:ident, $tra:ident, $ma:ident) => {
        impl<T: Borrow<ApMask>> $tr<T> for ApMask {
            type Output = ApMask;
            fn $m(self, rhs: T) -> ApMask {
                self.$f(rhs)
            }
        }
        impl<T: Borrow<ApMask>> $tr<T> for &ApMask {
            type Output = ApMask;
            fn $m(self, rhs: T) -> ApMask {
                self.$f(rhs)
            }
        }
        impl<T: Borrow<ApMask>> $tra<T> for ApMask {
            fn $ma(&mut self, rhs: T) {
                *self = self.$f(rhs);
            }
        }
    };
}
binop!(BitOr, bitor, union, BitOrAssign, bitor_assign);
binop!(BitAnd, bitand, intersection, BitAndAssign, bitand_assign);
binop!(Sub, sub, difference, SubAssign, sub_assign);

impl Not for ApMask {
    type Output = ApMask;
    fn not(self) -> ApMask {
        self.complement()
    }
}

/// What is wrong with a mask string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskErrorKind {
    /// A character the syntax does not allow at this place.
    UnexpectedChar(char),
    /// `0X`: the kernel only skips a lowercase `0x` in an absolute mask.
    UppercaseHexPrefix,
    /// More than 64 hex digits.
    TooManyDigits,
    /// A relative term not starting with `+` or `-` (e.g. the `2` of `+1,2`).
    MissingSign(char),
    /// A relative term (or range end) without digits.
    NoDigits,
    /// An id above 255 in a relative term.
    IdTooLarge(String),
    /// A range `N-M` with N > M.
    ReversedRange(String),
    /// A relative string where only an absolute mask is accepted.
    RelativeNotAllowed,
}

/// A mask string the kernel would refuse with EINVAL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct MaskError {
    /// The input (up to the first NUL).
    pub input: String,
    /// Byte offset of the problem.
    pub position: usize,
    /// What is wrong.
    pub kind: MaskErrorKind,
}

impl MaskError {
    fn new(input: &str, position: usize, kind: MaskErrorKind) -> Self {
        Self {
            input: input.to_string(),
            position,
            kind,
        }
    }

    fn describe(&self) -> String {
        let what = match &self.kind {
            MaskErrorKind::UnexpectedChar(c) => format!(
                "unexpected {} at position {} (an absolute mask is 0x and up to 64 hex digits)",
                show_char(*c),
                self.position
            ),
            MaskErrorKind::UppercaseHexPrefix => {
                "the prefix must be a lowercase 0x (the kernel refuses 0X)".to_string()
            }
            MaskErrorKind::TooManyDigits => {
                "more than 64 hex digits (a mask has 256 bits)".to_string()
            }
            MaskErrorKind::MissingSign(c) => format!(
                "{} at position {} where a term must start with + or - (write +1,+2, not +1,2)",
                show_char(*c),
                self.position
            ),
            MaskErrorKind::NoDigits => format!(
                "a number is missing at position {} (write e.g. +5, -0x47 or +1-4)",
                self.position
            ),
            MaskErrorKind::IdTooLarge(t) => format!("term {t:?} names an id above 255"),
            MaskErrorKind::ReversedRange(t) => {
                format!("range {t:?} runs backwards (write the lower id first)")
            }
            MaskErrorKind::RelativeNotAllowed => {
                "a relative +/- form is not allowed here: give the whole mask as 0x and 64 hex digits"
                    .to_string()
            }
        };
        format!("invalid mask {:?}: {what}", self.input)
    }
}

fn show_char(c: char) -> String {
    match c {
        '\n' => "newline".to_string(),
        ' ' => "space".to_string(),
        c => format!("character {c:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ids: &[u8]) -> ApMask {
        ApMask::from_ids(ids.iter().copied())
    }

    #[test]
    fn display_spec_example() {
        let mask = m(&[1, 2, 3, 4, 5, 7]);
        assert_eq!(
            mask.to_string(),
            "0x7d00000000000000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(ApMask::full().to_string(), format!("0x{}", "f".repeat(64)));
        assert_eq!(ApMask::empty().to_string(), format!("0x{}", "0".repeat(64)));
        assert_eq!(m(&[255]).to_string(), format!("0x{}1", "0".repeat(63)));
    }

    /// Found by the mask_write fuzz target against apsim: the store sees a
    /// C string, so a write that starts with NUL is an empty absolute mask,
    /// while a zero-length write never reaches it.
    #[test]
    fn a_write_ends_at_its_first_nul() {
        let full = ApMask::full();
        assert_eq!(full.apply_write(""), Ok(full));
        assert_eq!(full.apply_write("\0\0\0\x08017\n"), Ok(ApMask::empty()));
        assert_eq!(
            full.apply_write("-5\0-6"),
            Ok(full.apply_write("-5").expect("valid"))
        );
        assert_eq!(full.apply_write("0x80\0zz"), Ok(m(&[0])));
    }

    /// simple_strtoul wraps around 2^64, as the kernel's (a difference the
    /// mask_write fuzz target found in the simulator, fixed there).
    #[test]
    fn relative_ids_wrap_like_the_kernels() {
        let none = ApMask::empty();
        let huge = format!("+0x7{}", "0".repeat(39));
        assert_eq!(none.apply_write(&huge), Ok(m(&[0])));
        assert_eq!(none.apply_write("+18446744073709551621"), Ok(m(&[5])));
    }

    #[test]
    fn absolute_forms() {
        assert_eq!(ApMask::parse_absolute("0x80"), Ok(m(&[0])));
        assert_eq!(ApMask::parse_absolute("x80"), Ok(m(&[0])));
        assert_eq!(ApMask::parse_absolute("80"), Ok(m(&[0])));
        assert_eq!(ApMask::parse_absolute("0x80\n"), Ok(m(&[0])));
        assert_eq!(ApMask::parse_absolute("0x8F"), Ok(m(&[0, 4, 5, 6, 7])));
        for z in ["\n", "0x", "x", "", "0x\n"] {
            assert_eq!(ApMask::parse_absolute(z), Ok(ApMask::empty()), "{z:?}");
        }
        let e = ApMask::parse_absolute("0X1").expect_err("0X is invalid");
        assert_eq!(e.kind, MaskErrorKind::UppercaseHexPrefix);
        let e = ApMask::parse_absolute(&format!("0x{}", "f".repeat(65))).expect_err("65 digits");
        assert_eq!(e.kind, MaskErrorKind::TooManyDigits);
        assert_eq!(
            ApMask::parse_absolute(&format!("0x{}", "f".repeat(64))),
            Ok(ApMask::full())
        );
        for bad in ["0x 1", "0x1,2", " 0x1", "0x1\n\n", "0xx1", "0x1 ", "0xg"] {
            assert!(ApMask::parse_absolute(bad).is_err(), "{bad:?}");
        }
        let e = ApMask::parse_absolute("+5").expect_err("relative");
        assert_eq!(e.kind, MaskErrorKind::RelativeNotAllowed);
    }

    #[test]
    fn relative_seed_examples() {
        let full = ApMask::full();
        let ap = full.apply_write("-5,-6").expect("valid");
        assert_eq!(ap, full.difference(m(&[5, 6])));
        let aq = full.apply_write("-4,-0x47,-0xab,-0xff").expect("valid");
        assert_eq!(aq, full.difference(m(&[4, 0x47, 0xab, 0xff])));
        assert_eq!(
            aq.to_string(),
            "0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe"
        );
        assert_eq!(
            ap.to_string(),
            "0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        );
    }

    #[test]
    fn relative_rules() {
        let e = ApMask::empty();
        assert!(e.apply_write("+1,2").is_err());
        assert_eq!(e.apply_write("+1+2"), Ok(m(&[1, 2])));
        assert_eq!(e.apply_write("+1-4,-2"), Ok(m(&[1, 3, 4])));
        assert_eq!(e.apply_write("+0X10"), Ok(m(&[16])));
        assert_eq!(e.apply_write("+010"), Ok(m(&[8])));
        assert_eq!(e.apply_write("+1,,\n,+2\n\n"), Ok(m(&[1, 2])));
        assert_eq!(e.apply_write("+255"), Ok(m(&[255])));
        assert!(e.apply_write("+256").is_err());
        assert!(e.apply_write("+4-1").is_err());
        assert!(e.apply_write("+").is_err());
        assert!(e.apply_write("+1-").is_err());
        assert!(e.apply_write("+ 1").is_err());
        assert!(e.apply_write("+1 ").is_err());
        assert!(e.apply_write("+08").is_err());
        assert!(e.apply_write("+0x").is_err());
        assert!(e.apply_write("++1").is_err());
        assert!(e.apply_write("+-1").is_err());
        // Zero-length write: unchanged.
        let cur = m(&[9]);
        assert_eq!(cur.apply_write(""), Ok(cur));
        // Newline alone is absolute: clears.
        assert_eq!(cur.apply_write("\n"), Ok(ApMask::empty()));
        // The last term on a bit wins.
        assert_eq!(e.apply_write("+5,-5"), Ok(ApMask::empty()));
        assert_eq!(e.apply_write("-5,+5"), Ok(m(&[5])));
        // A '-' right after a number always starts a range end: "-1-2-4" is
        // the range 1-2, then the term -4.
        assert_eq!(
            ApMask::full().apply_write("-1-2-4"),
            Ok(ApMask::full().difference(m(&[1, 2, 4])))
        );
        // strtoul base 0 wraps like the kernel's: 2^64 + 5 reads as 5.
        assert_eq!(e.apply_write("+18446744073709551621"), Ok(m(&[5])));
    }

    #[test]
    fn host_apqns_from_spec_masks() {
        let ap = ApMask::parse_absolute(
            "0x7d00000000000000000000000000000000000000000000000000000000000000",
        )
        .expect("valid");
        let aq = ApMask::parse_absolute(
            "0x8000000000000000000000000000000000000000000000000000000000000000",
        )
        .expect("valid");
        let apqns: Vec<(u8, u8)> = ap
            .iter()
            .flat_map(|a| aq.iter().map(move |d| (a, d)))
            .collect();
        assert_eq!(apqns, vec![(1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (7, 0)]);
    }

    #[test]
    fn set_ops_and_iter() {
        let a = m(&[1, 5, 200]);
        let b = m(&[5, 6, 255]);
        assert_eq!(a.union(b), m(&[1, 5, 6, 200, 255]));
        assert_eq!(a.intersection(b), m(&[5]));
        assert_eq!(a.intersects(b), !(a & b).is_empty());
        assert_eq!(a.difference(b), m(&[1, 200]));
        assert_eq!(a | b, m(&[1, 5, 6, 200, 255]));
        assert_eq!(a & b, m(&[5]));
        assert_eq!(a - b, m(&[1, 200]));
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![1, 5, 200]);
        assert_eq!(a.len(), 3);
        assert_eq!(a.last(), Some(200));
        assert_eq!(a.first(), Some(1));
        assert!(ApMask::default().is_empty());
        assert_eq!(ApMask::full().len(), 256);
        assert_eq!(ApMask::up_to(15).len(), 16);
    }
}
