//! Id lists as people type them: `5,6`, `0x47,0xff`, `1-4`, `0x10-0x1f`.
//!
//! Grammar (spaces around tokens and around `-` are tolerated):
//! ```text
//! list  = item { "," item }
//! item  = num [ "-" num ]          (first <= second)
//! num   = "0" | [1-9][0-9]*        decimal
//!       | ("0x"|"0X") hex+         hexadecimal
//! ```
//! Ids must be 0..=255. Decimal numbers with a leading zero (`047`) are
//! refused: a person may mean hex (as in `05.0047`) or octal (as the kernel
//! would read it), so we ask for `0x47` or `47`.

use crate::mask::ApMask;
use std::fmt;

/// An id list that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id list {input:?}: {reason}")]
pub struct IdListError {
    /// The whole input.
    pub input: String,
    /// The offending token (empty for an empty list).
    pub token: String,
    /// One sentence: what is wrong with the token and what to write.
    pub reason: String,
}

fn err(input: &str, token: &str, reason: String) -> IdListError {
    IdListError {
        input: input.to_string(),
        token: token.to_string(),
        reason,
    }
}

/// Parse one number of the grammar; `Err` carries the reason.
pub fn parse_id(tok: &str) -> Result<u8, String> {
    let t = tok.trim_matches(' ');
    if t.is_empty() {
        return Err("a number is missing".to_string());
    }
    let value: u32 = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("{t:?} is not a hex number (write e.g. 0x47)"));
        }
        let digits = hex.trim_start_matches('0');
        if digits.len() > 2 {
            return Err(format!("{t:?} is above 255 (ids are 0..=255, 0x0..=0xff)"));
        }
        u32::from_str_radix(if digits.is_empty() { "0" } else { digits }, 16)
            .map_err(|_| format!("{t:?} is not a hex number (write e.g. 0x47)"))?
    } else {
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "{t:?} is not a number (write decimal like 71 or hex like 0x47)"
            ));
        }
        if t.len() > 1 && t.starts_with('0') {
            return Err(format!(
                "{t:?} has a leading zero: write 0x{} for hex or {} for decimal",
                t.trim_start_matches('0'),
                t.trim_start_matches('0')
            ));
        }
        if t.len() > 3 {
            return Err(format!("{t:?} is above 255 (ids are 0..=255)"));
        }
        t.parse::<u32>()
            .map_err(|_| format!("{t:?} is not a number"))?
    };
    u8::try_from(value).map_err(|_| format!("{t:?} is above 255 (ids are 0..=255)"))
}

/// Parse a human id list into a mask; duplicates collapse.
pub fn parse_id_list(s: &str) -> Result<ApMask, IdListError> {
    if s.trim_matches(' ').is_empty() {
        return Err(err(
            s,
            "",
            "the list is empty (write ids like 5,6 or 0x47 or 1-4)".to_string(),
        ));
    }
    let mut mask = ApMask::empty();
    for raw in s.split(',') {
        let item = raw.trim_matches(' ');
        if item.is_empty() {
            return Err(err(
                s,
                raw,
                "an empty item between commas (write 5,6, not 5,,6)".to_string(),
            ));
        }
        // `-` only ever separates a range: ids are never negative.
        let mut parts = item.splitn(2, '-');
        let first = parts.next().unwrap_or("");
        let lo = parse_id(first).map_err(|r| err(s, item, r))?;
        match parts.next() {
            None => {
                mask.insert(lo);
            }
            Some(second) => {
                if first.trim_matches(' ').is_empty() {
                    return Err(err(
                        s,
                        item,
                        format!("{item:?} lacks the start of the range (write e.g. 1-4)"),
                    ));
                }
                if second.trim_matches(' ').is_empty() {
                    return Err(err(
                        s,
                        item,
                        format!("{item:?} lacks the end of the range (write e.g. 1-4)"),
                    ));
                }
                let hi = parse_id(second).map_err(|r| err(s, item, r))?;
                if lo > hi {
                    return Err(err(
                        s,
                        item,
                        format!("range {item:?} runs backwards (write {hi}-{lo})"),
                    ));
                }
                for id in lo..=hi {
                    mask.insert(id);
                }
            }
        }
    }
    Ok(mask)
}

/// How [`format_ids`] prints numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdStyle {
    /// `5,6` (how people name adapters).
    #[default]
    Decimal,
    /// `0x04,0xab` (how people name domains).
    Hex,
}

/// Compact list: runs of three or more ids become ranges (`0-255`),
/// shorter runs are listed (`5,6`). The output parses back with
/// [`parse_id_list`]. The empty mask prints as `""`.
pub fn format_ids(mask: &ApMask, style: IdStyle) -> String {
    struct Id(u8, IdStyle);
    impl fmt::Display for Id {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.1 {
                IdStyle::Decimal => write!(f, "{}", self.0),
                IdStyle::Hex => write!(f, "0x{:02x}", self.0),
            }
        }
    }
    let mut out = String::new();
    let ids: Vec<u8> = mask.iter().collect();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j].wrapping_add(1) && ids[j + 1] > ids[j] {
            j += 1;
        }
        let sep = if out.is_empty() { "" } else { "," };
        if j - i >= 2 {
            out.push_str(&format!("{sep}{}-{}", Id(ids[i], style), Id(ids[j], style)));
            i = j + 1;
        } else {
            out.push_str(&format!("{sep}{}", Id(ids[i], style)));
            i += 1;
        }
    }
    out
}

/// Decimal compact list for tables, e.g. `5,6` or `0-15`.
pub fn format_id_list(mask: &ApMask) -> String {
    format_ids(mask, IdStyle::Decimal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ids: &[u8]) -> ApMask {
        ApMask::from_ids(ids.iter().copied())
    }

    #[test]
    fn valid_lists() {
        assert_eq!(parse_id_list("5,6"), Ok(m(&[5, 6])));
        assert_eq!(parse_id_list("0x47,0xff"), Ok(m(&[0x47, 0xff])));
        assert_eq!(parse_id_list("1-4"), Ok(m(&[1, 2, 3, 4])));
        assert_eq!(
            parse_id_list("0x10-0x1f"),
            Ok(ApMask::from_ids(0x10..=0x1f))
        );
        assert_eq!(parse_id_list(" 5 , 0x47 , 1 - 2 "), Ok(m(&[1, 2, 5, 0x47])));
        assert_eq!(parse_id_list("5,5,5"), Ok(m(&[5])));
        assert_eq!(parse_id_list("0"), Ok(m(&[0])));
        assert_eq!(parse_id_list("255"), Ok(m(&[255])));
        assert_eq!(parse_id_list("0X4,0xAB"), Ok(m(&[4, 0xab])));
        assert_eq!(parse_id_list("0x004"), Ok(m(&[4])));
        assert_eq!(parse_id_list("4,0xab"), Ok(m(&[4, 0xab])));
        assert_eq!(parse_id_list("3-3"), Ok(m(&[3])));
    }

    #[test]
    fn invalid_lists_name_the_token() {
        for (input, token) in [
            ("5,,6", ""),
            ("0x", "0x"),
            ("1-", "1-"),
            ("300", "300"),
            ("4-1", "4-1"),
            ("5,abc", "abc"),
            ("-3", "-3"),
            ("1-2-3", "1-2-3"),
            ("0x100", "0x100"),
            ("047", "047"),
            ("5 6", "5 6"),
            ("5,", ""),
            ("+5", "+5"),
        ] {
            let e = parse_id_list(input).expect_err(input);
            assert_eq!(e.token.trim(), token, "{input:?}: {e}");
            assert!(e.to_string().contains(input), "{e}");
        }
        assert!(parse_id_list("").is_err());
        assert!(parse_id_list("   ").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_id_list(&m(&[5, 6])), "5,6");
        assert_eq!(format_id_list(&ApMask::full()), "0-255");
        assert_eq!(format_id_list(&m(&[1, 2, 3, 7, 9, 10])), "1-3,7,9,10");
        assert_eq!(format_ids(&m(&[4, 0xab]), IdStyle::Hex), "0x04,0xab");
        assert_eq!(format_id_list(&ApMask::empty()), "");
        assert_eq!(format_ids(&m(&[253, 254, 255]), IdStyle::Hex), "0xfd-0xff");
    }
}
