//! The definition store: atomic writes, bad files reported and kept.

use libap::config_file::FileKind;
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

/// apd killed while it saved the persistent masks: their temporary file
/// sits in CFG, beside apd.toml, not in CFG/mdevs.
#[test]
fn a_dead_writers_temp_file_of_the_masks_is_cleaned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    store
        .save_masks(Some(ApMask::full()), None)
        .expect("save masks");
    let dead = dir.path().join(".apd.toml.tmp.4294967294.3");
    fs::write(&dead, "apmask = \"0x").expect("write");
    let live = dir
        .path()
        .join(format!(".apd.toml.tmp.{}.999999", std::process::id()));
    fs::write(&live, "apmask = \"0x").expect("write");
    let r = store.load();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(!dead.exists(), "{} is left behind", dead.display());
    assert!(live.exists());
    assert_eq!(store.load_masks(), Ok((Some(ApMask::full()), None)));
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

/// A line of a root-only file that must never reach a report.
const SECRET: &str = "root:$6$SECRET-MARKER-7f3a$hash:19000:0:99999:7:::";

/// A root-only file outside the store, holding the secret.
fn secret_file(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join("shadow");
    fs::write(&p, format!("{SECRET}\n")).expect("write the secret");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod 600");
    p
}

fn assert_no_secret(errors: &[StoreError]) {
    for e in errors {
        for text in [e.to_string(), e.problem(), format!("{e:?}")] {
            assert!(!text.contains("SECRET-MARKER"), "the secret leaked: {text}");
        }
    }
}

fn toml_name(u: u128) -> String {
    format!("{}.toml", Uuid::from_u128(u).hyphenated())
}

#[test]
fn links_and_special_files_are_reported_never_followed_or_opened() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(outside.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    let good = def(1, Some("good"));
    store.save(&good).expect("save");
    let mdevs = store.mdevs_dir();
    // 2: a link to a root-only file outside the directory.
    symlink(&secret, mdevs.join(toml_name(2))).expect("symlink");
    // 3: a link to a valid definition inside the directory (same content
    // as its own name says): still a link, still skipped.
    let inside = mdevs.join("kept-elsewhere");
    fs::write(&inside, def(3, Some("three")).to_toml()).expect("write");
    symlink(&inside, mdevs.join(toml_name(3))).expect("symlink");
    // 4: a FIFO (opening it for reading would block apd forever).
    nix_mkfifo(&mdevs.join(toml_name(4)));
    // 5: a directory.
    fs::create_dir(mdevs.join(toml_name(5))).expect("mkdir");
    // 6: a dangling link.
    symlink("/nonexistent/SECRET-MARKER", mdevs.join(toml_name(6))).expect("symlink");
    // 7: a device node, where the OS lets us make one (root).
    let device = mknod_null(&mdevs.join(toml_name(7)));
    // The masks file as a link to the secret.
    symlink(&secret, store.masks_path()).expect("symlink");

    let r = store.load();
    assert_eq!(r.definitions, vec![good.clone()]);
    let expect = [
        (2, FileKind::Symlink),
        (3, FileKind::Symlink),
        (4, FileKind::Fifo),
        (5, FileKind::Directory),
        (6, FileKind::Symlink),
    ];
    for (u, kind) in expect {
        let path = mdevs.join(toml_name(u));
        assert!(
            r.errors.iter().any(|e| matches!(e,
                StoreError::NotRegular { path: p, kind: k } if *p == path && *k == kind)),
            "{} must be reported as {kind}: {:?}",
            path.display(),
            r.errors
        );
    }
    if device {
        assert!(r.errors.iter().any(|e| matches!(
            e,
            StoreError::NotRegular {
                kind: FileKind::Device,
                ..
            }
        )));
    }
    assert_eq!(r.errors.len(), expect.len() + usize::from(device));
    assert_no_secret(&r.errors);
    let e = r
        .errors
        .iter()
        .find(|e| e.path() == Some(&mdevs.join(toml_name(2))))
        .expect("the link");
    assert_eq!(
        e.problem(),
        "a symbolic link, not a regular file: apd reads only regular files here and follows no links; put the file itself in its place, or remove it"
    );
    // One path per report line, not two.
    assert_eq!(e.to_string().matches(&toml_name(2)).count(), 1, "{e}");

    let m = store.load_masks().expect_err("apd.toml is a link");
    assert!(
        matches!(
            m,
            StoreError::NotRegular {
                kind: FileKind::Symlink,
                ..
            }
        ),
        "{m}"
    );
    assert_no_secret(&[m]);
    // load_one follows the same rule.
    let one = store.load_one(Uuid::from_u128(2)).expect_err("a link");
    assert!(matches!(one, StoreError::NotRegular { .. }), "{one}");

    // Nothing reported is replaced or removed through the store, and the
    // link's target is untouched.
    let mut d2 = def(2, Some("two"));
    assert!(matches!(
        store.save(&d2),
        Err(StoreError::NotRegular { .. })
    ));
    d2.uuid = Uuid::from_u128(5);
    assert!(matches!(
        store.save(&d2),
        Err(StoreError::NotRegular { .. })
    ));
    assert!(matches!(
        store.remove(Uuid::from_u128(3)),
        Err(StoreError::NotRegular { .. })
    ));
    assert!(store.save_masks(None, None).is_err());
    assert!(fs::symlink_metadata(mdevs.join(toml_name(2)))
        .expect("still there")
        .file_type()
        .is_symlink());
    assert!(fs::symlink_metadata(store.masks_path())
        .expect("still there")
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_to_string(&secret).expect("secret"),
        format!("{SECRET}\n")
    );
}

#[test]
fn parse_errors_quote_nothing_of_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    fs::create_dir_all(store.mdevs_dir()).expect("mkdir");
    let u = Uuid::from_u128(1).hyphenated().to_string();
    let bodies = [
        format!("{SECRET}\n"),
        format!("uuid = \"{SECRET}\"\n"),
        format!("uuid = \"{u}\"\nname = \"{SECRET} x\"\n"),
        format!("uuid = \"{u}\"\n\"{SECRET}\" = 1\n"),
        format!("uuid = \"{u}\"\nadapters = [\"{SECRET}\"]\n"),
        format!("uuid = \"{u}\"\nautostart = \"{SECRET}\"\n"),
    ];
    for (i, body) in bodies.iter().enumerate() {
        let name = toml_name(u128::try_from(i).expect("small") + 1);
        let body = body.replace(
            &u,
            &Uuid::from_u128(u128::try_from(i).expect("small") + 1).to_string(),
        );
        fs::write(store.mdevs_dir().join(&name), body).expect("write");
    }
    // Not UTF-8, and too large.
    fs::write(
        store.mdevs_dir().join(toml_name(20)),
        b"uuid = \"\xff\xfe SECRET-MARKER\"\n",
    )
    .expect("write");
    let big = format!("# {}\n", "x".repeat(2 << 20));
    fs::write(store.mdevs_dir().join(toml_name(21)), big).expect("write");
    fs::write(store.masks_path(), format!("apmask = \"{SECRET}\"\n")).expect("write");
    let r = store.load();
    assert!(r.definitions.is_empty(), "{:?}", r.definitions);
    assert_eq!(r.errors.len(), bodies.len() + 2, "{:?}", r.errors);
    assert!(r
        .errors
        .iter()
        .any(|e| matches!(e, StoreError::NotText { .. })));
    assert!(r
        .errors
        .iter()
        .any(|e| matches!(e, StoreError::TooLarge { .. })));
    assert_no_secret(&r.errors);
    // Every parse error says where: line and column.
    for e in &r.errors {
        if let StoreError::Parse { error, .. } = e {
            assert!(error.at.is_some(), "{e}");
            assert!(e.to_string().contains("line "), "{e}");
        }
    }
    let m = store.load_masks().expect_err("not a mask");
    assert_eq!(
        m.problem(),
        "line 1, column 10: apmask is not an absolute mask (0x followed by up to 64 hex digits)"
    );
    assert_no_secret(&[m]);
}

fn nix_mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A character device like /dev/null at `path`; false when this process
/// may not make one (not root).
fn mknod_null(path: &std::path::Path) -> bool {
    std::process::Command::new("mknod")
        .arg(path)
        .args(["c", "1", "3"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where the child run of [`an_unreadable_file_is_named_and_the_others_load`]
/// finds its store.
const UNREADABLE_ENV: &str = "LIBAP_TEST_UNREADABLE_STORE";

/// The check of [`an_unreadable_file_is_named_and_the_others_load`], run
/// by a uid that cannot read the 0600 file.
fn check_unreadable(dir: &std::path::Path) {
    let r = Store::new(dir).load();
    assert_eq!(r.definitions, vec![def(1, Some("good"))]);
    assert!(
        matches!(&r.errors[..], [StoreError::Io { path, errno: Some(libc::EACCES), .. }]
            if path.ends_with(toml_name(2))),
        "{:?}",
        r.errors
    );
    assert_no_secret(&r.errors);
}

#[test]
fn an_unreadable_file_is_named_and_the_others_load() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    if let Some(dir) = std::env::var_os(UNREADABLE_ENV) {
        return check_unreadable(std::path::Path::new(&dir));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let store = Store::new(dir.path());
    store.save(&def(1, Some("good"))).expect("save");
    let hidden = store.mdevs_dir().join(toml_name(2));
    fs::write(&hidden, format!("{SECRET}\n")).expect("write");
    fs::set_permissions(&hidden, fs::Permissions::from_mode(0o600)).expect("chmod");
    // /proc/self belongs to this process's effective uid.
    if fs::metadata("/proc/self").expect("/proc/self").uid() != 0 {
        return check_unreadable(dir.path());
    }
    // Root reads everything: check as nobody, in a child run of this test.
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args([
            "--exact",
            "an_unreadable_file_is_named_and_the_others_load",
            "--nocapture",
        ])
        .env(UNREADABLE_ENV, dir.path())
        .output()
        .expect("run setpriv (util-linux)");
    assert!(
        out.status.success(),
        "the check as uid 65534 failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the child ran no test"
    );
}
