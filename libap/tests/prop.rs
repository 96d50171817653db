//! Property tests: parsers against independent reference models, set
//! maths and the guest matrix against brute force.

use libap::apqn::Apqn;
use libap::host::{Host, Matrix, Mdev, Queue};
use libap::ids::{format_ids, parse_id_list, IdStyle};
use libap::matrix::{format_ap_config, format_matrix, parse_ap_config, parse_matrix};
use libap::validate::{check_assign, AssignKind, AssignVerdict, FindingKind};
use libap::ApMask;
use proptest::prelude::*;
use uuid::Uuid;

fn any_mask() -> impl Strategy<Value = ApMask> {
    prop_oneof![
        any::<[u64; 4]>().prop_map(ApMask::from_words),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(ApMask::from_ids),
        Just(ApMask::empty()),
        Just(ApMask::full()),
    ]
}

/// Masks over a few ids so that random sets overlap.
fn small_mask() -> impl Strategy<Value = ApMask> {
    proptest::collection::vec(0u8..6, 0..5).prop_map(ApMask::from_ids)
}

#[derive(Debug, Clone)]
struct Term {
    plus: bool,
    a: u8,
    b: Option<u8>,
    style: u8,
    sep: String,
}

fn num(v: u8, style: u8) -> String {
    match style % 4 {
        0 => v.to_string(),
        1 => format!("0x{v:x}"),
        2 => format!("0X{v:X}"),
        _ => format!("0{v:o}"),
    }
}

fn term() -> impl Strategy<Value = Term> {
    (
        any::<bool>(),
        any::<u8>(),
        proptest::option::of(any::<u8>()),
        any::<u8>(),
        "[,\n]{0,3}",
    )
        .prop_map(|(plus, a, b, style, sep)| Term {
            plus,
            a,
            b: b.map(|b| b.max(a)),
            style,
            sep,
        })
}

proptest! {
    #[test]
    fn mask_display_parse_round_trip(m in any_mask()) {
        let s = m.to_string();
        prop_assert_eq!(s.len(), 66);
        prop_assert_eq!(ApMask::parse_absolute(&s), Ok(m));
        prop_assert_eq!(ApMask::parse_absolute(&format!("{s}\n")), Ok(m));
        prop_assert_eq!(ApMask::parse_absolute(&s[2..]), Ok(m));
        prop_assert_eq!(ApMask::parse_absolute(&s[1..]), Ok(m));
        prop_assert_eq!(ApMask::parse_absolute(&format!("0x{}", s[2..].to_uppercase())), Ok(m));
        prop_assert_eq!(ApMask::empty().apply_write(&s), Ok(m));
        // Trailing zeros may be dropped: fewer digits are left aligned.
        let trimmed = s.trim_end_matches('0');
        prop_assert_eq!(ApMask::parse_absolute(trimmed), Ok(m));
    }

    #[test]
    fn mask_ids_and_set_ops(a in any_mask(), b in any_mask()) {
        let ids: Vec<u8> = a.iter().collect();
        prop_assert!(ids.windows(2).all(|w| w[0] < w[1]));
        prop_assert_eq!(ids.len(), a.len());
        prop_assert_eq!(ApMask::from_ids(ids.iter().copied()), a);
        for id in 0..=255u8 {
            prop_assert_eq!(a.union(b).contains(id), a.contains(id) || b.contains(id));
            prop_assert_eq!(a.intersection(b).contains(id), a.contains(id) && b.contains(id));
            prop_assert_eq!(a.difference(b).contains(id), a.contains(id) && !b.contains(id));
        }
        prop_assert_eq!(a.intersects(b), !a.intersection(b).is_empty());
        prop_assert_eq!(a.is_subset(b), a.difference(b).is_empty());
        prop_assert_eq!(a.last(), ids.last().copied());
    }

    #[test]
    fn relative_writes_match_a_naive_model(start in any_mask(), terms in proptest::collection::vec(term(), 1..8)) {
        let mut model = [false; 256];
        for id in start.iter() {
            model[usize::from(id)] = true;
        }
        let mut text = String::new();
        for t in &terms {
            text.push(if t.plus { '+' } else { '-' });
            text.push_str(&num(t.a, t.style));
            if let Some(b) = t.b {
                text.push('-');
                text.push_str(&num(b, t.style / 4));
            }
            // "-1" then "-2" written without a separator read as the range
            // "-1-2" (as in the kernel); a separator keeps them two terms.
            if t.b.is_none() && t.sep.is_empty() {
                text.push(',');
            } else {
                text.push_str(&t.sep);
            }
            for id in t.a..=t.b.unwrap_or(t.a) {
                model[usize::from(id)] = t.plus;
            }
        }
        let expected = ApMask::from_ids((0..=255u8).filter(|i| model[usize::from(*i)]));
        prop_assert_eq!(start.apply_write(&text), Ok(expected), "{:?}", text);
    }

    #[test]
    fn reversed_ranges_and_big_ids_are_refused(a in 1u8..=255, big in 256u32..100_000) {
        let rev = format!("+{}-{}", a, a - 1);
        prop_assert!(ApMask::empty().apply_write(&rev).is_err());
        let over = format!("-{big}");
        prop_assert!(ApMask::full().apply_write(&over).is_err());
        let two = format!("+{a},{a}");
        prop_assert!(ApMask::empty().apply_write(&two).is_err());
    }

    #[test]
    fn mask_parsers_never_panic(s in "\\PC{0,80}", start in any_mask()) {
        let _ = ApMask::parse_absolute(&s);
        let r = start.apply_write(&s);
        if s.is_empty() {
            prop_assert_eq!(r, Ok(start));
        }
    }

    #[test]
    fn mask_parsers_on_kernel_alphabet(s in "[-+0-9a-fA-FxX,\n ]{0,40}", start in any_mask()) {
        // Either an error, or the write of the canonical result gives the same.
        if let Ok(m) = start.apply_write(&s) {
            prop_assert_eq!(ApMask::parse_absolute(&m.to_string()), Ok(m));
            if !s.is_empty() && !ApMask::is_relative(&s) {
                // Absolute writes do not depend on the current value.
                prop_assert_eq!(ApMask::empty().apply_write(&s), Ok(m));
            }
        }
    }

    #[test]
    fn id_list_matches_reference_grammar(s in "[0-9a-fxX, -]{0,24}") {
        let got = parse_id_list(&s);
        let want = reference_id_list(&s);
        match (&got, &want) {
            (Ok(g), Some(w)) => prop_assert_eq!(g, w),
            (Err(_), None) => {}
            _ => prop_assert!(false, "{:?}: parser {:?} vs reference {:?}", s, got, want),
        }
    }

    #[test]
    fn id_list_never_panics(s in "\\PC{0,60}") {
        let _ = parse_id_list(&s);
    }

    #[test]
    fn id_list_format_round_trip(m in any_mask(), hex in any::<bool>()) {
        let style = if hex { IdStyle::Hex } else { IdStyle::Decimal };
        let text = format_ids(&m, style);
        if m.is_empty() {
            prop_assert_eq!(text, "");
        } else {
            prop_assert_eq!(parse_id_list(&text), Ok(m));
        }
    }

    #[test]
    fn matrix_round_trip(a in any_mask(), d in any_mask(), c in any_mask()) {
        let text = format_matrix(a, d);
        prop_assert_eq!(parse_matrix(&text), Ok((a, d)));
        prop_assert_eq!(parse_ap_config(&format_ap_config(a, d, c)), Ok((a, d, c)));
        let lines = text.lines().count();
        let expected = match (a.is_empty(), d.is_empty()) {
            (true, _) => d.len(),
            (false, true) => a.len(),
            _ => a.len() * d.len(),
        };
        prop_assert_eq!(lines, expected);
    }

    #[test]
    fn guest_matrix_matches_brute_force(
        apm in small_mask(), aqm in small_mask(),
        assigned_a in small_mask(), assigned_d in small_mask(),
        bound in proptest::collection::vec((0u8..6, 0u8..6, 0u8..3), 0..30),
    ) {
        let mut host = Host { vfio_ap_loaded: true, ..Host::default() };
        host.config.adapters = apm;
        host.config.usage_domains = aqm;
        host.config.known = true;
        for (a, d, how) in &bound {
            let driver = match how { 0 => None, 1 => Some("cex4queue".into()), _ => Some("vfio_ap".into()) };
            host.queues_mut().insert(Apqn::new(*a, *d), Queue { apqn: Apqn::new(*a, *d), driver });
        }
        let (ga, gd) = libap::guest::guest_matrix(&host, assigned_a, assigned_d);
        // Brute force, per APQN.
        let mut want_d = ApMask::empty();
        for d in 0..=255u8 {
            if assigned_d.contains(d) && aqm.contains(d) { want_d.insert(d); }
        }
        let mut want_a = ApMask::empty();
        for a in 0..=255u8 {
            if !(assigned_a.contains(a) && apm.contains(a)) { continue; }
            let ok = want_d.iter().all(|d| host.queues.get(&Apqn::new(a, d)).and_then(|q| q.driver.as_deref()) == Some("vfio_ap"));
            if ok { want_a.insert(a); }
        }
        prop_assert_eq!((ga, gd), (want_a, want_d));
    }

    #[test]
    fn check_assign_matches_brute_force(
        apmask in small_mask(), aqmask in small_mask(),
        mdevs in proptest::collection::vec((small_mask(), small_mask()), 1..5),
        kind in 0u8..2, id in 0u8..7, max in 3u8..8,
    ) {
        let mut host = Host { apmask, aqmask, max_adapter_id: max, max_domain_id: max, vfio_ap_loaded: true, ..Host::default() };
        for (i, (a, d)) in mdevs.iter().enumerate() {
            let uuid = Uuid::from_u128(i as u128 + 1);
            host.mdevs.insert(uuid, Mdev { uuid, matrix: Matrix::new(*a, *d, ApMask::empty()), guest_matrix: None, in_use: false });
        }
        let target = Uuid::from_u128(1);
        let kind = if kind == 0 { AssignKind::Adapter } else { AssignKind::Domain };
        let got = check_assign(&host, &|_| None, target, kind, id);
        // Brute force in the kernel's order.
        let (mut a, mut d) = mdevs[0];
        let want: Result<AssignVerdict, FindingKind> = if id > max {
            Err(FindingKind::OutOfRange)
        } else if (kind == AssignKind::Adapter && !a.insert(id)) || (kind == AssignKind::Domain && !d.insert(id)) {
            Ok(AssignVerdict::NoOp)
        } else {
            let apqns: Vec<(u8, u8)> = a.iter().flat_map(|x| d.iter().map(move |y| (x, y))).collect();
            if apqns.iter().any(|(x, y)| apmask.contains(*x) && aqmask.contains(*y)) {
                Err(FindingKind::HostOwned)
            } else if apqns.iter().any(|(x, y)| mdevs[1..].iter().any(|(oa, od)| oa.contains(*x) && od.contains(*y))) {
                Err(FindingKind::InUse)
            } else {
                Ok(AssignVerdict::Ok)
            }
        };
        prop_assert_eq!(got.map_err(|f| f.kind), want);
    }
}

/// An independent reading of the id-list grammar, character by character.
fn reference_id_list(s: &str) -> Option<ApMask> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = ApMask::empty();
    let skip_ws = |i: &mut usize| {
        while *i < c.len() && c[*i] == ' ' {
            *i += 1;
        }
    };
    let number = |i: &mut usize| -> Option<u32> {
        if *i < c.len()
            && c[*i] == '0'
            && *i + 1 < c.len()
            && (c[*i + 1] == 'x' || c[*i + 1] == 'X')
        {
            *i += 2;
            let start = *i;
            let mut v: u32 = 0;
            while *i < c.len() && c[*i].is_ascii_hexdigit() {
                v = v.saturating_mul(16).saturating_add(c[*i].to_digit(16)?);
                *i += 1;
            }
            return if *i > start { Some(v) } else { None };
        }
        if *i < c.len() && c[*i] == '0' {
            *i += 1;
            // A lone zero; a digit after it is the refused leading zero.
            return if *i < c.len() && c[*i].is_ascii_digit() {
                None
            } else {
                Some(0)
            };
        }
        let start = *i;
        let mut v: u32 = 0;
        while *i < c.len() && c[*i].is_ascii_digit() {
            v = v.saturating_mul(10).saturating_add(c[*i].to_digit(10)?);
            *i += 1;
        }
        if *i > start {
            Some(v)
        } else {
            None
        }
    };
    loop {
        skip_ws(&mut i);
        let a = number(&mut i)?;
        skip_ws(&mut i);
        let mut b = a;
        if i < c.len() && c[i] == '-' {
            i += 1;
            skip_ws(&mut i);
            b = number(&mut i)?;
            skip_ws(&mut i);
        }
        if a > 255 || b > 255 || a > b {
            return None;
        }
        for id in a..=b {
            out.insert(u8::try_from(id).ok()?);
        }
        if i == c.len() {
            return Some(out);
        }
        if c[i] != ',' {
            return None;
        }
        i += 1;
    }
}
