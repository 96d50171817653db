//! Random bytes to every writable attribute of a mounted simulator: each
//! write gets a count or an errno, never a panic or a hung mount, and the
//! whole tree stays readable afterwards.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use common::Mount;

/// xorshift64*: deterministic, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

/// Every regular file under `dir`, not following symlinks.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, u32)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(md) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if md.is_dir() {
            walk(&e.path(), out);
        } else if md.is_file() {
            use std::os::unix::fs::PermissionsExt;
            out.push((e.path(), md.permissions().mode() & 0o777));
        }
    }
}

/// Bytes that look like what a sysfs writer might send, or garbage.
fn payload(rng: &mut Rng) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "0x",
        "+",
        "-",
        ",",
        "\n",
        "1",
        "0",
        "5",
        "0x47",
        "255",
        "256",
        "-0-255",
        "+0-255",
        "x",
        "0X",
        "05.0004",
        "card05",
        "62177883-f1bb-47f0-914d-32a22e3a8804",
        "ff",
        "change",
        "add",
        " ",
        "\0",
        "99999999999999999999",
        "add adapter 9",
        "remove domain 4",
        "lpar",
        "1",
        "EBUSY",
    ];
    let len = rng.below(8);
    let mut v = Vec::new();
    for _ in 0..len {
        if rng.below(4) == 0 {
            let n = rng.below(6);
            v.extend((0..n).map(|_| (rng.next() & 0xff) as u8));
        } else {
            v.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
        }
    }
    v
}

#[test]
fn random_writes_never_break_the_mount() {
    require_fuse!();
    let m = Mount::seed();
    m.ok("bus/ap/apmask", "-5,-6");
    m.ok("bus/ap/aqmask", "-4,-0x47");
    m.ok(
        "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create",
        "62177883-f1bb-47f0-914d-32a22e3a8804",
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut files = Vec::new();
    for round in 0..1500 {
        if round % 100 == 0 {
            files.clear();
            walk(&m.root, &mut files);
            // A guest opening an mdev would make `remove` wait for ever, and
            // a delay only slows the run: leave those two alone.
            files.retain(|(p, mode)| {
                mode & 0o200 != 0 && !p.ends_with(".apsim/in_use") && !p.ends_with(".apsim/delay")
            });
            assert!(!files.is_empty());
        }
        let (path, _) = &files[rng.below(files.len())];
        let data = payload(&mut rng);
        match std::fs::OpenOptions::new().write(true).open(path) {
            Ok(mut f) => match f.write(&data) {
                Ok(n) => assert!(n <= data.len()),
                Err(e) => assert!(e.raw_os_error().is_some(), "{}: {e}", path.display()),
            },
            // Gone since the last walk (a removed mdev or card).
            Err(e) => assert!(e.raw_os_error().is_some(), "{}: {e}", path.display()),
        }
    }
    // Everything readable reads; everything write-only refuses with EACCES.
    let mut all = Vec::new();
    walk(&m.root, &mut all);
    assert!(all.len() > 50);
    for (path, mode) in all {
        let mut s = Vec::new();
        let r = std::fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut s));
        if mode & 0o444 != 0 {
            r.unwrap_or_else(|e| panic!("{} unreadable after fuzzing: {e}", path.display()));
        } else {
            assert_eq!(
                r.map_err(|e| e.raw_os_error()),
                Err(Some(libc::EACCES)),
                "{}",
                path.display()
            );
        }
    }
    assert!(m.read("bus/ap/bindings").contains('/'));
    m.stop_keep_dir(|| {});
}
