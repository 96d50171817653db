//! Client-side checks of what people type: id lists, masks, UUIDs, adapter
//! ids. They run before apctl connects to anything, so bad input changes
//! nothing and is refused with one sentence (exit 2).

use crate::cli::IdListArgs;
use crate::error::{quote_input, CliError};
use apbus::IdLists;
use libap::ApMask;

/// Longest id list accepted (all 256 ids fit easily as ranges).
const MAX_LIST_LEN: usize = 1024;
/// Longest mask string accepted (256 relative terms like `-0xff,`).
const MAX_MASK_LEN: usize = 2048;
/// Longest MDEV argument or name accepted.
const MAX_NAME_LEN: usize = 255;

/// Parses one id list (`5,6`, `0x47`, `1-4`, mixed); `what` names it in the
/// error, e.g. "adapter list".
pub fn parse_list(what: &str, input: &str) -> Result<ApMask, CliError> {
    if input.len() > MAX_LIST_LEN {
        return Err(CliError::usage(format!(
            "invalid {what} {}: too long (an id list names ids 0..=255, e.g. 5,6 or 1-4)",
            quote_input(input)
        )));
    }
    libap::ids::parse_id_list(input).map_err(|e| {
        CliError::usage(format!(
            "invalid {what} {}: {}",
            quote_input(input),
            e.reason
        ))
    })
}

/// Ids of a mask, ascending, as they travel on the bus.
pub fn mask_ids(mask: &ApMask) -> Vec<u32> {
    mask.iter().map(u32::from).collect()
}

/// The three lists of `-a/-d/-c`, each option repeatable (they add up).
pub fn parse_id_lists(args: &IdListArgs) -> Result<IdLists, CliError> {
    let union = |what: &str, inputs: &[String]| -> Result<Vec<u32>, CliError> {
        let mut all = ApMask::empty();
        for input in inputs {
            all = all.union(parse_list(what, input)?);
        }
        Ok(mask_ids(&all))
    };
    Ok(IdLists {
        adapters: union("adapter list", &args.adapters)?,
        domains: union("domain list", &args.domains)?,
        control_domains: union("control domain list", &args.control_domains)?,
    })
}

/// True when no id was given at all.
pub fn is_empty(ids: &IdLists) -> bool {
    ids.adapters.is_empty() && ids.domains.is_empty() && ids.control_domains.is_empty()
}

/// One adapter id, e.g. `5` or `0x0a`.
pub fn parse_adapter(input: &str) -> Result<u32, CliError> {
    if input.len() > MAX_LIST_LEN {
        return Err(CliError::usage(format!(
            "invalid adapter {}: too long (an adapter id is 0..=255)",
            quote_input(input)
        )));
    }
    libap::ids::parse_id(input)
        .map(u32::from)
        .map_err(|reason| {
            CliError::usage(format!("invalid adapter {}: {reason}", quote_input(input)))
        })
}

/// Checks a mask string in the kernel's write syntax (`--apmask`/`--aqmask`).
/// The empty string means "leave the mask alone" on the bus, so it is refused
/// here rather than silently doing nothing.
pub fn check_mask(option: &str, spec: &str) -> Result<(), CliError> {
    if spec.is_empty() {
        return Err(CliError::usage(format!(
            "{option} is empty: give a mask such as -5,-6 (relative) or 0x followed by up to 64 hex digits (absolute)"
        )));
    }
    if spec.len() > MAX_MASK_LEN {
        return Err(CliError::usage(format!(
            "invalid {option} {}: too long for a mask (at most 64 hex digits, or relative terms like -5,-6)",
            quote_input(spec)
        )));
    }
    if spec.contains('\0') {
        return Err(CliError::usage(format!(
            "invalid {option} {}: it contains a NUL character",
            quote_input(spec)
        )));
    }
    ApMask::full()
        .apply_write(spec)
        .map(|_| ())
        .map_err(|e| CliError::usage(format!("invalid {option}: {e}")))
}

/// Checks a `--uuid`: the hyphenated form the kernel accepts; returns it in
/// lowercase.
pub fn parse_uuid(input: &str) -> Result<String, CliError> {
    let bad = || {
        CliError::usage(format!(
            "invalid UUID {}: write 8-4-4-4-12 hex digits, e.g. 62177883-f1bb-47f0-914d-32a22e3a8804",
            quote_input(input)
        ))
    };
    let uuid = libap::definition::parse_hyphenated_uuid(input).ok_or_else(bad)?;
    Ok(uuid.hyphenated().to_string())
}

/// Checks an mdev's `--name` with libap's rule (the one apd applies):
/// not empty, at most 64 characters, no spaces, control characters or `/`,
/// not UUID-like.
pub fn check_name(input: &str) -> Result<(), CliError> {
    libap::definition::validate_name(input)
        .map_err(|e| CliError::usage(format!("invalid name {}: {}", quote_input(input), e.reason)))
}

/// Checks an MDEV argument (UUID or name) before it is sent; apd resolves it.
pub fn check_mdev(input: &str) -> Result<(), CliError> {
    if input.trim().is_empty() {
        return Err(CliError::usage(
            "MDEV is empty: give an mdev's UUID or name (see apctl list)",
        ));
    }
    if input.len() > MAX_NAME_LEN || input.chars().any(char::is_control) {
        return Err(CliError::usage(format!(
            "no mdev can be named {}: give an mdev's UUID or name (see apctl list)",
            quote_input(input)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(a: &[&str], d: &[&str], c: &[&str]) -> IdListArgs {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        IdListArgs {
            adapters: v(a),
            domains: v(d),
            control_domains: v(c),
        }
    }

    #[test]
    fn seed_lists_parse() {
        let ids = parse_id_lists(&lists(&["5,6"], &["4,0xab"], &[])).expect("valid");
        assert_eq!(ids.adapters, vec![5, 6]);
        assert_eq!(ids.domains, vec![4, 0xab]);
        assert!(ids.control_domains.is_empty());
        let ids = parse_id_lists(&lists(&["5"], &["0x47", "0xff"], &["1-3"])).expect("valid");
        assert_eq!(ids.domains, vec![0x47, 0xff]);
        assert_eq!(ids.control_domains, vec![1, 2, 3]);
    }

    #[test]
    fn bad_lists_name_the_option_and_the_input() {
        for (input, needle) in [
            ("5,,6", "empty item"),
            ("0x", "not a hex number"),
            ("1-", "lacks the end"),
            ("300", "above 255"),
        ] {
            let e = parse_id_lists(&lists(&[input], &[], &[])).expect_err(input);
            assert_eq!(e.code, 2);
            assert!(e.sentence.starts_with("invalid adapter list"), "{e}");
            assert!(e.sentence.contains(input), "{e}");
            assert!(e.sentence.contains(needle), "{e}");
        }
        let e = parse_id_lists(&lists(&[], &["4", ""], &[])).expect_err("empty");
        assert!(e.sentence.starts_with("invalid domain list"), "{e}");
        let huge = "5,".repeat(10_000);
        let e = parse_list("adapter list", &huge).expect_err("huge");
        assert!(e.sentence.len() < 200, "{e}");
    }

    #[test]
    fn masks_are_checked_with_the_kernel_syntax() {
        check_mask("--apmask", "-5,-6").expect("relative");
        check_mask("--aqmask", "-4,-0x47,-0xab,-0xff").expect("relative");
        check_mask("--apmask", &format!("0x{}", "f".repeat(64))).expect("absolute");
        check_mask("--apmask", "+1-4").expect("range");
        for bad in [
            "", "+1,2", "0X12", "-", "-300", "0x12 34", "+4-1", "-5\0,-6",
        ] {
            let e = check_mask("--apmask", bad).expect_err(bad);
            assert_eq!(e.code, 2, "{bad}");
            assert!(e.sentence.contains("--apmask"), "{e}");
        }
        let e = check_mask("--apmask", &format!("0x{}", "f".repeat(65))).expect_err("65");
        assert!(e.sentence.contains("64"), "{e}");
        let e = check_mask("--apmask", &"-5,".repeat(5000)).expect_err("huge");
        assert!(e.sentence.len() < 200, "{e}");
    }

    #[test]
    fn uuids_names_and_adapters() {
        assert_eq!(
            parse_uuid("62177883-F1BB-47F0-914D-32A22E3A8804").expect("valid"),
            "62177883-f1bb-47f0-914d-32a22e3a8804"
        );
        for bad in [
            "",
            "62177883f1bb47f0914d32a22e3a8804",
            "{62177883-f1bb-47f0-914d-32a22e3a8804}",
            "62177883-f1bb-47f0-914d-32a22e3a880g",
        ] {
            assert_eq!(parse_uuid(bad).expect_err(bad).code, 2);
        }
        check_name("guest1").expect("valid");
        for bad in [
            "",
            " ",
            "a\nb",
            "a/b",
            "62177883-f1bb-47f0-914d-32a22e3a8804",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(300)).is_err());
        assert_eq!(parse_adapter("5").expect("5"), 5);
        assert_eq!(parse_adapter("0x0a").expect("0x0a"), 10);
        for bad in ["", "256", "0x", "5,6", "-1", "1-2"] {
            assert!(parse_adapter(bad).is_err(), "{bad:?}");
        }
        check_mdev("guest1").expect("valid");
        assert!(check_mdev("").is_err());
        assert!(check_mdev(&"g".repeat(10_000)).is_err());
    }
}
