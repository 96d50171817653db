//! The definition store: atomic writes, bad files reported and kept.

use libap::store::{Store, StoreError};
use libap::{ApMask, Definition};
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use uuid::Uuid;

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";

fn def(u: u128, name: Option<&str>) -> Definition {
    Definition {
        uuid: Uuid::from_u128(u),
        name: name.map(str::to_string),
        autostart: true,
        adapters: ApMask::from_ids([5, 6]),
        domains: ApMask::from_ids([4, 0xab]),
        control_domains: ApMask::empty(),
    }
}

#[test]
fn save_load_remove() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    assert_eq!(store.load().definitions.len(), 0);
    let a = def(1, Some("guest1"));
    let b = def(2, None);
    store.save(&a).expect("save");
    store.save(&b).expect("save");
    let r = store.load();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.definitions, vec![a.clone(), b.clone()]);
    let text = fs::read_to_string(store.path_of(a.uuid)).expect("read");
    assert_eq!(text, a.to_toml());
    assert_eq!(store.load_one(a.uuid).expect("load"), Some(a.clone()));
    assert!(store.remove(a.uuid).expect("remove"));
    assert!(!store.remove(a.uuid).expect("remove again"));
    assert_eq!(store.load().definitions, vec![b]);
    assert_eq!(store.load_one(a.uuid).expect("load"), None);
}

#[test]
fn corrupt_file_does_not_hide_the_others_and_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    store.save(&def(1, Some("a"))).expect("save");
    store.save(&def(3, Some("c"))).expect("save");
    let bad = store
        .mdevs_dir()
        .join(format!("{}.toml", Uuid::from_u128(2).hyphenated()));
    fs::write(
        &bad,
        "uuid = \"00000000-0000-0000-0000-000000000002\"\nadapters = [5,\n",
    )
    .expect("write");
    let r = store.load();
    assert_eq!(r.definitions.len(), 2);
    assert_eq!(r.errors.len(), 1);
    match &r.errors[0] {
        StoreError::Parse { path, .. } => assert_eq!(path, &bad),
        other => panic!("expected a parse error, got {other:?}"),
    }
    assert!(r.errors[0].to_string().contains(&bad.display().to_string()));
    // Never rewritten or deleted.
    let before = fs::read(&bad).expect("read");
    let _ = store.load();
    assert_eq!(fs::read(&bad).expect("read"), before);
}

#[test]
fn uuid_mismatch_and_bad_names_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    fs::create_dir_all(store.mdevs_dir()).expect("mkdir");
    let other = def(9, Some("nine"));
    let path = store.mdevs_dir().join(format!("{G1}.toml"));
    fs::write(&path, other.to_toml()).expect("write");
    fs::write(
        store.mdevs_dir().join("guest1.toml"),
        def(4, None).to_toml(),
    )
    .expect("write");
    fs::write(store.mdevs_dir().join("README"), "notes").expect("write");
    let upper = store
        .mdevs_dir()
        .join(format!("{}.toml", G1.to_uppercase()));
    fs::write(&upper, def(5, None).to_toml()).expect("write");
    let r = store.load();
    assert!(r.definitions.is_empty(), "{:?}", r.definitions);
    assert_eq!(r.errors.len(), 3, "{:?}", r.errors);
    assert!(r
        .errors
        .iter()
        .any(|e| matches!(e, StoreError::UuidMismatch { content, .. } if *content == other.uuid)));
    assert_eq!(
        r.errors
            .iter()
            .filter(|e| matches!(e, StoreError::BadFileName { .. }))
            .count(),
        2
    );
    assert_eq!(fs::read_to_string(&path).expect("kept"), other.to_toml());
}

#[test]
fn duplicate_names_keep_the_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    store.save(&def(1, Some("twin"))).expect("save");
    store.save(&def(2, Some("twin"))).expect("save");
    let r = store.load();
    assert_eq!(r.definitions, vec![def(1, Some("twin"))]);
    assert!(matches!(&r.errors[..], [StoreError::DuplicateName { name, .. }] if name == "twin"));
}

#[test]
fn invalid_name_is_not_saved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    assert!(matches!(
        store.save(&def(1, Some("has space"))),
        Err(StoreError::InvalidName(_))
    ));
    assert!(store.load().definitions.is_empty());
}

#[test]
fn leftover_temp_files_are_ignored_and_cleaned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    store.save(&def(1, None)).expect("save");
    let name = format!("{}.toml", Uuid::from_u128(1).hyphenated());
    // A dead process's half-written temp file (pid beyond pid_max).
    let dead = store.mdevs_dir().join(format!(".{name}.tmp.4294967294.0"));
    fs::write(&dead, "uuid = \"half").expect("write");
    // A live writer's temp file (ours) is left alone.
    let live = store
        .mdevs_dir()
        .join(format!(".{name}.tmp.{}.999999", std::process::id()));
    fs::write(&live, "uuid = \"half").expect("write");
    // Not our pattern: left alone too.
    let foreign = store.mdevs_dir().join(".swp");
    fs::write(&foreign, "x").expect("write");
    let r = store.load();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.definitions.len(), 1);
    assert!(!dead.exists());
    assert!(live.exists());
    assert!(foreign.exists());
}

#[test]
fn readers_never_see_a_partial_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    let mut d = def(1, Some("busy"));
    store.save(&d).expect("save");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = store.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut loads = 0u32;
            while !done.load(Ordering::Relaxed) || loads < 50 {
                let r = store.load();
                assert!(r.errors.is_empty(), "a reader saw {:?}", r.errors);
                assert_eq!(r.definitions.len(), 1);
                loads += 1;
            }
            loads
        })
    };
    for i in 0..300u32 {
        // Vary the size so a torn write would show.
        d.adapters = ApMask::from_ids(0..=u8::try_from(i % 200).expect("fits"));
        d.domains = ApMask::from_ids((0..=u8::try_from(i % 150).expect("fits")).rev());
        store.save(&d).expect("save");
    }
    done.store(true, Ordering::Relaxed);
    let loads = reader.join().expect("reader thread");
    assert!(loads >= 50);
    assert_eq!(store.load().definitions, vec![d]);
    // No temp files left.
    let left: Vec<_> = fs::read_dir(store.mdevs_dir())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn masks_round_trip_and_keep_other_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    assert_eq!(store.load_masks().expect("none"), (None, None));
    let ap = ApMask::full().apply_write("-5,-6").expect("valid");
    store.save_masks(Some(ap), None).expect("save");
    assert_eq!(store.load_masks().expect("load"), (Some(ap), None));
    let text = fs::read_to_string(store.masks_path()).expect("read");
    assert!(text.contains(&format!("apmask = \"{ap}\"")), "{text}");
    fs::write(store.masks_path(), format!("{text}other = 1\n")).expect("write");
    store
        .save_masks(Some(ap), Some(ApMask::empty()))
        .expect("save");
    let text = fs::read_to_string(store.masks_path()).expect("read");
    assert!(text.contains("other = 1"), "{text}");
    assert_eq!(
        store.load_masks().expect("load"),
        (Some(ap), Some(ApMask::empty()))
    );
    store.save_masks(None, None).expect("clear");
    assert_eq!(store.load_masks().expect("load"), (None, None));
    // Bad content: an error naming the file; not overwritten.
    fs::write(store.masks_path(), "apmask = \"-5\"\n").expect("write");
    let e = store.load_masks().expect_err("relative");
    assert!(e.to_string().contains("apd.toml"), "{e}");
    fs::write(store.masks_path(), "apmask = [\n").expect("write");
    assert!(store.load_masks().is_err());
    assert!(store.save_masks(None, None).is_err());
    assert_eq!(
        fs::read_to_string(store.masks_path()).expect("read"),
        "apmask = [\n"
    );
}
