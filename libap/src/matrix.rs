//! The mdev's `matrix`, `guest_matrix`, `control_domains` and `ap_config`
//! files (kernel spec §6), formatted byte for byte and parsed back.

use crate::mask::{ApMask, MaskError};
use std::borrow::Borrow;
use std::fmt::Write as _;

/// The `matrix` / `guest_matrix` file: `%02x.%04x\n` per APQN, adapters in
/// the outer loop; `05.\n` lines when there are no domains, `.0004\n` lines
/// when there are no adapters, `""` when both are empty.
pub fn format_matrix(adapters: impl Borrow<ApMask>, domains: impl Borrow<ApMask>) -> String {
    let (a, d) = (adapters.borrow(), domains.borrow());
    let mut out = String::new();
    if a.is_empty() {
        for dom in d.iter() {
            let _ = writeln!(out, ".{dom:04x}");
        }
    } else if d.is_empty() {
        for ad in a.iter() {
            let _ = writeln!(out, "{ad:02x}.");
        }
    } else {
        out.reserve(a.len() * d.len() * 8);
        for ad in a.iter() {
            for dom in d.iter() {
                let _ = writeln!(out, "{ad:02x}.{dom:04x}");
            }
        }
    }
    out
}

/// The `control_domains` file: one `%04x\n` line per control domain.
pub fn format_control_domains(controls: impl Borrow<ApMask>) -> String {
    let mut out = String::new();
    for c in controls.borrow().iter() {
        let _ = writeln!(out, "{c:04x}");
    }
    out
}

/// The `ap_config` file: `0x<64 hex>,0x<64 hex>,0x<64 hex>\n` (adapters,
/// usage domains, control domains). Also what apd writes to `ap_config`.
pub fn format_ap_config(
    adapters: impl Borrow<ApMask>,
    domains: impl Borrow<ApMask>,
    controls: impl Borrow<ApMask>,
) -> String {
    format!(
        "{},{},{}\n",
        adapters.borrow(),
        domains.borrow(),
        controls.borrow()
    )
}

/// A matrix-family file that is not in the kernel's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixError {
    /// A line is not `aa.dddd`, `aa.` or `.dddd` (or `dddd` for control domains).
    #[error("line {line} {text:?} is not in the kernel's {expected} format")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
        /// The expected shape.
        expected: &'static str,
    },
    /// An id above 255.
    #[error("line {line} {text:?} names an id above 255")]
    OutOfRange {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// Lines that are not every adapter × every domain.
    #[error("the matrix is not a full adapters x domains product (missing {missing})")]
    NotAProduct {
        /// The first APQN missing from the product, `05.0004`.
        missing: String,
    },
    /// `aa.` and `.dddd` lines mixed with `aa.dddd` lines.
    #[error(
        "line {line} {text:?}: adapter-only or domain-only lines cannot mix with full APQN lines"
    )]
    MixedForms {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// `ap_config` without three masks.
    #[error("ap_config {text:?} does not hold three masks separated by commas")]
    ApConfigFields {
        /// The input.
        text: String,
    },
    /// One `ap_config` mask is not an absolute mask.
    #[error("ap_config {which} mask: {source}")]
    ApConfigMask {
        /// adapters, domains or control domains.
        which: &'static str,
        /// The mask error.
        source: MaskError,
    },
}

fn hex_id(s: &str, width: usize) -> Option<Result<u8, ()>> {
    if s.len() != width || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(
        u16::from_str_radix(s, 16)
            .ok()
            .and_then(|v| u8::try_from(v).ok())
            .ok_or(()),
    )
}

/// Parse a `matrix` or `guest_matrix` file into (adapters, domains).
/// Accepts `aa.dddd` lines forming a full product, or only `aa.` lines, or
/// only `.dddd` lines; hex digits of either case; an empty file.
pub fn parse_matrix(text: &str) -> Result<(ApMask, ApMask), MatrixError> {
    let mut adapters = ApMask::empty();
    let mut domains = ApMask::empty();
    let mut full_lines = 0usize;
    let mut partial_lines = 0usize;
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let lineno = n + 1;
        let bad = || MatrixError::BadLine {
            line: lineno,
            text: line.to_string(),
            expected: "aa.dddd",
        };
        let range = || MatrixError::OutOfRange {
            line: lineno,
            text: line.to_string(),
        };
        let (a, d) = line.split_once('.').ok_or_else(bad)?;
        let a = if a.is_empty() {
            None
        } else {
            Some(hex_id(a, 2).ok_or_else(bad)?.map_err(|_| range())?)
        };
        let d = if d.is_empty() {
            None
        } else {
            Some(hex_id(d, 4).ok_or_else(bad)?.map_err(|_| range())?)
        };
        let mixed = || MatrixError::MixedForms {
            line: lineno,
            text: line.to_string(),
        };
        match (a, d) {
            (Some(a), Some(d)) => {
                if partial_lines > 0 {
                    return Err(mixed());
                }
                full_lines += 1;
                adapters.insert(a);
                domains.insert(d);
                pairs.push((a, d));
            }
            (Some(a), None) => {
                if full_lines > 0 || !domains.is_empty() {
                    return Err(mixed());
                }
                partial_lines += 1;
                adapters.insert(a);
            }
            (None, Some(d)) => {
                if full_lines > 0 || !adapters.is_empty() {
                    return Err(mixed());
                }
                partial_lines += 1;
                domains.insert(d);
            }
            (None, None) => return Err(bad()),
        }
    }
    if full_lines > 0 {
        // The kernel prints a product; anything else is not its file.
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        seen.extend(pairs);
        for a in adapters.iter() {
            for d in domains.iter() {
                if !seen.contains(&(a, d)) {
                    return Err(MatrixError::NotAProduct {
                        missing: format!("{a:02x}.{d:04x}"),
                    });
                }
            }
        }
    }
    Ok((adapters, domains))
}

/// Parse a `control_domains` file (`%04x\n` lines).
pub fn parse_control_domains(text: &str) -> Result<ApMask, MatrixError> {
    let mut controls = ApMask::empty();
    for (n, line) in text.lines().enumerate() {
        let id = hex_id(line, 4)
            .ok_or_else(|| MatrixError::BadLine {
                line: n + 1,
                text: line.to_string(),
                expected: "dddd",
            })?
            .map_err(|_| MatrixError::OutOfRange {
                line: n + 1,
                text: line.to_string(),
            })?;
        controls.insert(id);
    }
    Ok(controls)
}

/// Parse an `ap_config` file (or write) into (adapters, domains, control
/// domains): three absolute masks separated by `,` or `\n`; an empty field
/// is no ids; text after the third field is ignored, as the kernel does.
pub fn parse_ap_config(text: &str) -> Result<(ApMask, ApMask, ApMask), MatrixError> {
    let mut fields = text.splitn(4, [',', '\n']);
    let mut next = |which| -> Result<ApMask, MatrixError> {
        let f = fields.next().ok_or_else(|| MatrixError::ApConfigFields {
            text: text.to_string(),
        })?;
        ApMask::parse_absolute(f).map_err(|source| MatrixError::ApConfigMask { which, source })
    };
    let a = next("adapters")?;
    let d = next("domains")?;
    let c = next("control domains")?;
    Ok((a, d, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ids: &[u8]) -> ApMask {
        ApMask::from_ids(ids.iter().copied())
    }

    #[test]
    fn seed_guest1_matrix() {
        let text = format_matrix(m(&[5, 6]), m(&[4, 0xab]));
        assert_eq!(text, "05.0004\n05.00ab\n06.0004\n06.00ab\n");
        assert_eq!(parse_matrix(&text), Ok((m(&[5, 6]), m(&[4, 0xab]))));
    }

    #[test]
    fn partial_forms() {
        assert_eq!(format_matrix(m(&[5, 6]), ApMask::empty()), "05.\n06.\n");
        assert_eq!(format_matrix(ApMask::empty(), m(&[4])), ".0004\n");
        assert_eq!(format_matrix(ApMask::empty(), ApMask::empty()), "");
        assert_eq!(
            parse_matrix("05.\n06.\n"),
            Ok((m(&[5, 6]), ApMask::empty()))
        );
        assert_eq!(parse_matrix(".0004\n"), Ok((ApMask::empty(), m(&[4]))));
        assert_eq!(parse_matrix(""), Ok((ApMask::empty(), ApMask::empty())));
        assert_eq!(parse_matrix("FF.00AB\n"), Ok((m(&[255]), m(&[0xab]))));
    }

    #[test]
    fn bad_matrices() {
        for bad in [
            "05.0004\n06.\n",
            "05.\n.0004\n",
            ".\n",
            "5.0004\n",
            "05.004\n",
            "05.0100\n",
            "05.0004\n06.0005\n",
            "junk\n",
            "05.0004 \n",
        ] {
            assert!(parse_matrix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn control_domains() {
        assert_eq!(format_control_domains(m(&[4, 0xab])), "0004\n00ab\n");
        assert_eq!(parse_control_domains("0004\n00ab\n"), Ok(m(&[4, 0xab])));
        assert_eq!(parse_control_domains(""), Ok(ApMask::empty()));
        assert!(parse_control_domains("4\n").is_err());
        assert!(parse_control_domains("0100\n").is_err());
    }

    #[test]
    fn ap_config() {
        let text = format_ap_config(m(&[5]), m(&[4]), ApMask::empty());
        let zeros = "0".repeat(62);
        assert_eq!(text, format!("0x04{zeros},0x08{zeros},0x{zeros}00\n"));
        assert_eq!(
            parse_ap_config(&text),
            Ok((m(&[5]), m(&[4]), ApMask::empty()))
        );
        assert_eq!(
            parse_ap_config(",,"),
            Ok((ApMask::empty(), ApMask::empty(), ApMask::empty()))
        );
        assert!(parse_ap_config("0x80,0x80").is_err());
        assert!(parse_ap_config("0x80,0xz,0x").is_err());
        assert_eq!(
            parse_ap_config("0x80\n0x40\n0x20\nignored"),
            Ok((m(&[0]), m(&[1]), m(&[2])))
        );
    }
}
