//! Property tests for what apctl parses and prints: no input makes a
//! checker panic or accept something libap refuses, every printed id list
//! parses back to the same ids, and quoted input stays short.

use apctl::args;
use apctl::bus;
use apctl::error::quote_input;
use apctl::render::ids;
use libap::ApMask;
use proptest::prelude::*;

proptest! {
    #[test]
    fn printed_lists_parse_back(set in proptest::collection::btree_set(0u32..=255, 0..64)) {
        let v: Vec<u32> = set.into_iter().collect();
        for text in [ids::adapters(&v), ids::domains(&v)] {
            if v.is_empty() {
                prop_assert_eq!(text, "-");
                continue;
            }
            let back = args::parse_list("list", &text).expect("printed lists parse");
            prop_assert_eq!(args::mask_ids(&back), v.clone());
        }
    }

    #[test]
    fn list_checks_agree_with_libap(s in "[0-9a-fx, -]{0,24}") {
        let ours = args::parse_list("adapter list", &s);
        let libap = libap::ids::parse_id_list(&s);
        prop_assert_eq!(ours.is_ok(), libap.is_ok());
        if let Err(e) = ours {
            prop_assert_eq!(e.code, 2);
            prop_assert!(e.sentence.starts_with("invalid adapter list"));
        }
    }

    #[test]
    fn mask_checks_agree_with_the_kernel_syntax(s in "[-+0-9a-fxX,\n ]{1,40}") {
        let ours = args::check_mask("--apmask", &s);
        let kernel = ApMask::full().apply_write(&s);
        prop_assert_eq!(ours.is_ok(), kernel.is_ok(), "{:?}", s);
    }

    #[test]
    fn no_input_panics(s in any::<String>()) {
        let _ = args::parse_list("list", &s);
        let _ = args::check_mask("--aqmask", &s);
        let _ = args::parse_uuid(&s);
        let _ = args::check_name(&s);
        let _ = args::check_mdev(&s);
        let _ = args::parse_adapter(&s);
        let _ = bus::choose(Some(&s));
    }

    #[test]
    fn quoted_input_is_short_and_one_line(s in any::<String>()) {
        let q = quote_input(&s);
        prop_assert!(!q.contains('\n'));
        // 40 characters, each at most 10 when escaped (\u{10ffff}), plus quotes and the count.
        prop_assert!(q.chars().count() <= 40 * 10 + 40, "{}", q);
    }
}
