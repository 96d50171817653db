//! The kernel's C string parsers, byte for byte: what a sysfs store
//! function sees and how it reads it. Each returns the errno the kernel's
//! store would return.

use crate::bits::Bits;
use crate::Errno;

/// sysfs hands a store function a NUL-terminated copy: C string functions
/// stop at the first NUL byte.
pub(crate) fn cstr(data: &[u8]) -> &[u8] {
    match data.iter().position(|b| *b == 0) {
        Some(n) => &data[..n],
        None => data,
    }
}

fn hex_value(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// The kernel's `hex2bitmap`/`ap_hex2bitmap`: an optional `0x` (or bare `x`)
/// prefix, up to 64 hex digits (left-aligned), at most one `\n`, the end.
pub(crate) fn hex_mask(s: &[u8]) -> Result<Bits, Errno> {
    let mut i = 0;
    if s.first() == Some(&b'0') && s.get(1) == Some(&b'x') {
        i += 1;
    }
    if s.get(i) == Some(&b'x') {
        i += 1;
    }
    let mut bits = Bits::empty();
    let mut bit: u32 = 0;
    while bit < 256 {
        let Some(v) = s.get(i).copied().and_then(hex_value) else {
            break;
        };
        for n in 0..4u32 {
            if v & (0x8 >> n) != 0 {
                bits.set(u8::try_from(bit + n).map_err(|_| libc::EINVAL)?);
            }
        }
        bit += 4;
        i += 1;
    }
    if s.get(i) == Some(&b'\n') {
        i += 1;
    }
    if i != s.len() {
        return Err(libc::EINVAL);
    }
    Ok(bits)
}

/// Base fixup of `_parse_integer_fixup_radix` for base 0: returns the radix
/// and how many prefix bytes to skip.
fn radix_base0(s: &[u8]) -> (u32, usize) {
    if s.first() == Some(&b'0') {
        let x = s.get(1).is_some_and(|c| c.eq_ignore_ascii_case(&b'x'));
        if x && s.get(2).copied().and_then(hex_value).is_some() {
            (16, 2)
        } else {
            (8, 0)
        }
    } else {
        (10, 0)
    }
}

/// Digits of `radix` from the start of `s`: (value, digits used,
/// overflowed). As the kernel's `_parse_integer_limit`, the value wraps
/// around 2^64 and the overflow is only flagged: `kstrtoull` refuses it
/// (ERANGE), `simple_strtoul` and `sscanf` go on with the wrapped value.
fn parse_digits(s: &[u8], radix: u32) -> (u64, usize, bool) {
    let mut value: u64 = 0;
    let mut overflow = false;
    let mut n = 0;
    while let Some(d) = s.get(n).and_then(|c| char::from(*c).to_digit(radix)) {
        overflow |= value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .is_none();
        value = value
            .wrapping_mul(u64::from(radix))
            .wrapping_add(u64::from(d));
        n += 1;
    }
    (value, n, overflow)
}

/// `simple_strtoul(s, &end, 0)`: the value (wrapped on overflow, as the
/// kernel's) and how many bytes it used; 0 bytes when there are no digits.
pub(crate) fn simple_strtoul(s: &[u8]) -> (u64, usize) {
    let (radix, skip) = radix_base0(s);
    let (value, n, _) = parse_digits(&s[skip..], radix);
    if n == 0 {
        (0, 0)
    } else {
        (value, skip + n)
    }
}

/// `kstrtoull(s, base)` (base 0 or 10): a leading `+`, digits, one
/// optional `\n`, the end. EINVAL otherwise, ERANGE on overflow.
pub(crate) fn kstrtoull(data: &[u8], base: u32) -> Result<u64, Errno> {
    let mut s = cstr(data);
    if s.first() == Some(&b'+') {
        s = &s[1..];
    }
    let (radix, skip) = if base == 0 { radix_base0(s) } else { (base, 0) };
    let (value, n, overflow) = parse_digits(&s[skip..], radix);
    if n == 0 {
        return Err(libc::EINVAL);
    }
    if overflow {
        return Err(libc::ERANGE);
    }
    let mut rest = &s[skip + n..];
    if rest.first() == Some(&b'\n') {
        rest = &rest[1..];
    }
    if !rest.is_empty() {
        return Err(libc::EINVAL);
    }
    Ok(value)
}

/// `kstrtoul(s, 0)`, as every vfio_ap attribute parses its id.
pub(crate) fn kstrtoul(data: &[u8]) -> Result<u64, Errno> {
    kstrtoull(data, 0)
}

/// `sscanf(buf, "%d")` (or `%i` with `base0`): leading white space, an
/// optional sign, at least one digit; whatever follows is ignored.
pub(crate) fn sscanf_int(data: &[u8], base0: bool) -> Option<i64> {
    let s = cstr(data);
    let mut i = s.iter().take_while(|c| c.is_ascii_whitespace()).count();
    let mut negative = false;
    if let Some(c @ (b'+' | b'-')) = s.get(i) {
        negative = *c == b'-';
        i += 1;
    }
    let rest = &s[i..];
    let (radix, skip) = if base0 { radix_base0(rest) } else { (10, 0) };
    let (value, n, _) = parse_digits(&rest[skip..], radix);
    if n == 0 {
        return None;
    }
    let value = i64::try_from(value).unwrap_or(i64::MAX);
    Some(if negative { -value } else { value })
}

/// `kstrtobool`: the first character decides (y/Y/1/t/T/e/E, n/N/0/f/F/d/D,
/// on/off).
pub(crate) fn kstrtobool(data: &[u8]) -> Result<bool, Errno> {
    let s = cstr(data);
    match s.first() {
        Some(b'y' | b'Y' | b'1' | b't' | b'T' | b'e' | b'E') => Ok(true),
        Some(b'n' | b'N' | b'0' | b'f' | b'F' | b'd' | b'D') => Ok(false),
        Some(b'o' | b'O') => match s.get(1) {
            Some(b'n' | b'N') => Ok(true),
            Some(b'f' | b'F') => Ok(false),
            _ => Err(libc::EINVAL),
        },
        _ => Err(libc::EINVAL),
    }
}

/// The kernel's `modify_bitmap`: `+N`, `-N`, `+N-M`, `-N-M` terms, each with
/// its own sign, separated by any number of `,`/`\n`.
fn relative_mask(s: &[u8], start: Bits) -> Result<Bits, Errno> {
    let mut bits = start;
    let mut i = 0;
    while i < s.len() {
        let sign = s[i];
        i += 1;
        if sign != b'+' && sign != b'-' {
            return Err(libc::EINVAL);
        }
        let (a, n) = simple_strtoul(&s[i..]);
        if n == 0 || a > 255 {
            return Err(libc::EINVAL);
        }
        i += n;
        let mut z = a;
        if s.get(i) == Some(&b'-') {
            i += 1;
            let (m, n) = simple_strtoul(&s[i..]);
            if n == 0 || a > m || m > 255 {
                return Err(libc::EINVAL);
            }
            i += n;
            z = m;
        }
        for id in a..=z {
            let id = u8::try_from(id).map_err(|_| libc::EINVAL)?;
            bits.put(id, sign == b'+');
        }
        while matches!(s.get(i), Some(b',' | b'\n')) {
            i += 1;
        }
    }
    Ok(bits)
}

/// A mask write (`apmask`, `aqmask`, the `ap.apmask=` boot parameter): the
/// first character chooses relative (applied to `current`) or absolute.
pub(crate) fn mask_str(data: &[u8], current: Bits) -> Result<Bits, Errno> {
    let s = cstr(data);
    match s.first() {
        Some(b'+' | b'-') => relative_mask(s, current),
        _ => hex_mask(s),
    }
}

/// `uuid_is_valid`: 36 characters, dashes at 8, 13, 18, 23, hex elsewhere.
pub(crate) fn uuid_is_valid(s: &[u8]) -> bool {
    s.len() >= 36
        && s[..36].iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// C `strsep(&rest, delims)`: None once the input is used up.
pub(crate) fn strsep<'a>(rest: &mut Option<&'a [u8]>, delims: &[u8]) -> Option<&'a [u8]> {
    let s = rest.take()?;
    match s.iter().position(|c| delims.contains(c)) {
        Some(n) => {
            *rest = Some(&s[n + 1..]);
            Some(&s[..n])
        }
        None => Some(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(b: Bits) -> Vec<u8> {
        b.iter().collect()
    }

    #[test]
    fn absolute_masks() {
        assert_eq!(ids(hex_mask(b"0x80").expect("valid")), vec![0]);
        assert_eq!(ids(hex_mask(b"x80\n").expect("valid")), vec![0]);
        assert_eq!(ids(hex_mask(b"0x4").expect("valid")), vec![1]);
        assert!(hex_mask(b"\n").expect("valid").is_empty());
        assert!(hex_mask(b"0x").expect("valid").is_empty());
        assert!(hex_mask(b"x").expect("valid").is_empty());
        assert!(hex_mask(b"").expect("valid").is_empty());
        assert_eq!(hex_mask(b"0X1"), Err(libc::EINVAL));
        assert_eq!(hex_mask(b"0x1 "), Err(libc::EINVAL));
        assert_eq!(hex_mask(b"0x1,"), Err(libc::EINVAL));
        assert_eq!(hex_mask(b"0x1\n\n"), Err(libc::EINVAL));
        let full = format!("0x{}", "f".repeat(64));
        assert_eq!(hex_mask(full.as_bytes()).expect("valid"), Bits::full());
        let too_long = format!("0x{}", "F".repeat(65));
        assert_eq!(hex_mask(too_long.as_bytes()), Err(libc::EINVAL));
    }

    #[test]
    fn relative_masks() {
        let all = Bits::full();
        let m = mask_str(b"-5,-6", all).expect("valid");
        assert!(!m.get(5) && !m.get(6) && m.get(4) && m.get(7));
        let m = mask_str(b"-4,-0x47,-0xab,-0xff\n", all).expect("valid");
        assert_eq!(m.count(), 252);
        assert!(!m.get(0x47) && !m.get(0xab) && !m.get(0xff) && !m.get(4));
        let m = mask_str(b"+1+2", Bits::empty()).expect("valid");
        assert_eq!(ids(m), vec![1, 2]);
        let m = mask_str(b"+1-4,-2,,\n\n", Bits::empty()).expect("valid");
        assert_eq!(ids(m), vec![1, 3, 4]);
        let m = mask_str(b"+010", Bits::empty()).expect("octal");
        assert_eq!(ids(m), vec![8]);
        let m = mask_str(b"+0X10", Bits::empty()).expect("hex");
        assert_eq!(ids(m), vec![16]);
        for bad in [
            &b"+1,2"[..],
            b"+4-2",
            b"+256",
            b"+",
            b"-",
            b"+x",
            b"+ 1",
            b"+1 ",
            b"+1-",
            b"+0x",
            b"+08",
            b"+1-256",
            b"+99999999999999999999999",
        ] {
            assert_eq!(mask_str(bad, all), Err(libc::EINVAL), "{bad:?}");
        }
    }

    #[test]
    fn kstrtoul_rules() {
        assert_eq!(kstrtoul(b"5"), Ok(5));
        assert_eq!(kstrtoul(b"+5\n"), Ok(5));
        assert_eq!(kstrtoul(b"0x47"), Ok(0x47));
        assert_eq!(kstrtoul(b"0XAB"), Ok(0xab));
        assert_eq!(kstrtoul(b"010"), Ok(8));
        assert_eq!(kstrtoul(b"0"), Ok(0));
        assert_eq!(kstrtoul(b"5\0junk"), Ok(5));
        assert_eq!(kstrtoul(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(kstrtoul(b"18446744073709551616"), Err(libc::ERANGE));
        for bad in [
            &b""[..],
            b"\n",
            b"5\n\n",
            b" 5",
            b"5 ",
            b"-5",
            b"++5",
            b"0x",
            b"08",
            b"abc",
            b"0x5g",
        ] {
            assert_eq!(kstrtoul(bad), Err(libc::EINVAL), "{bad:?}");
        }
    }

    #[test]
    fn sscanf_and_bool() {
        assert_eq!(sscanf_int(b"1\n", false), Some(1));
        assert_eq!(sscanf_int(b"  -3x", false), Some(-3));
        assert_eq!(sscanf_int(b"0x10", false), Some(0));
        assert_eq!(sscanf_int(b"0x10", true), Some(16));
        assert_eq!(sscanf_int(b"x", false), None);
        assert_eq!(kstrtobool(b"on"), Ok(true));
        assert_eq!(kstrtobool(b"off"), Ok(false));
        assert_eq!(kstrtobool(b"o"), Err(libc::EINVAL));
        assert_eq!(kstrtobool(b""), Err(libc::EINVAL));
    }

    #[test]
    fn uuids_and_strsep() {
        assert!(uuid_is_valid(b"62177883-f1bb-47f0-914d-32a22e3a8804"));
        assert!(uuid_is_valid(b"62177883-F1BB-47F0-914D-32A22E3A8804"));
        assert!(!uuid_is_valid(b"62177883-f1bb-47f0-914d-32a22e3a880"));
        assert!(!uuid_is_valid(b"62177883xf1bb-47f0-914d-32a22e3a8804"));
        assert!(!uuid_is_valid(b"g2177883-f1bb-47f0-914d-32a22e3a8804"));
        let mut rest = Some(&b"a,b\n"[..]);
        assert_eq!(strsep(&mut rest, b",\n"), Some(&b"a"[..]));
        assert_eq!(strsep(&mut rest, b",\n"), Some(&b"b"[..]));
        assert_eq!(strsep(&mut rest, b",\n"), Some(&b""[..]));
        assert_eq!(strsep(&mut rest, b",\n"), None);
    }

    proptest! {
        #[test]
        fn absolute_round_trip(v in proptest::collection::vec(any::<u8>(), 0..40)) {
            let b = Bits::from_ids(v);
            let text = format!("{}\n", b.to_hex());
            prop_assert_eq!(hex_mask(text.as_bytes()), Ok(b));
        }

        #[test]
        fn relative_terms_match_set_maths(terms in proptest::collection::vec((any::<bool>(), any::<u8>(), any::<u8>()), 0..12)) {
            let mut text = String::new();
            let mut expect = Bits::full();
            for (plus, a, b) in &terms {
                let (lo, hi) = if a <= b { (*a, *b) } else { (*b, *a) };
                let sign = if *plus { '+' } else { '-' };
                text.push_str(&format!("{sign}{lo:#x}-{hi},"));
                for id in lo..=hi {
                    expect.put(id, *plus);
                }
            }
            let start = if text.is_empty() { text.push('\n'); Bits::empty() } else { Bits::full() };
            let got = mask_str(text.as_bytes(), Bits::full());
            if terms.is_empty() {
                prop_assert_eq!(got, Ok(start));
            } else {
                prop_assert_eq!(got, Ok(expect));
            }
        }

        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = mask_str(&data, Bits::full());
            let _ = kstrtoul(&data);
            let _ = sscanf_int(&data, true);
            let _ = kstrtobool(&data);
        }
    }
}
