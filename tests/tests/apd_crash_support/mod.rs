//! What the kill -9 tests share: a seeded generator, the host they run on,
//! and the state a kill must leave as it was or as the command makes it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use e2e::Host;

/// 16 adapters × 32 usage domains (512 queues), control domains 0-31:
/// room for hundreds of mdevs with one APQN each.
pub fn crash_topology() -> String {
    let domains: Vec<String> = (0..32).map(|d| d.to_string()).collect();
    let mut t = format!(
        "usage_domains = [{0}]\ncontrol_domains = [{0}]\n",
        domains.join(", ")
    );
    for a in 0..16 {
        let kind = ["CEX7C", "CEX8P", "CEX7A", "CEX8C"][a % 4];
        t.push_str(&format!("[[adapter]]\nid = {a}\ntype = \"{kind}\"\n"));
    }
    t
}

/// Adapters 0-15 and domains 0-31 for vfio_ap (absolute kernel syntax).
pub const APMASK: &str = "0x0000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
pub const AQMASK: &str = "0x00000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

pub const CREATE: &str = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";

/// xorshift64*: small, seeded, the same points for the same seed.
pub struct Rng(u64);

impl Rng {
    /// From `var` (decimal) or the clock; prints the seed and how to rerun.
    pub fn from_env(var: &str, test: &str) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("e2e {test}: seed {seed} (rerun: {var}={seed})");
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// How many kill points a test runs: `var`, else `default`.
pub fn points(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// What a kill must leave as before or as the command makes it: both
/// masks, every mdev's assignment (`ap_config`), every file of the
/// configuration directory (a temporary file left over shows as one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub apmask: String,
    pub aqmask: String,
    pub mdevs: BTreeMap<String, String>,
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The mdevs' directories: UUIDs under the matrix device.
pub fn mdev_uuids(host: &Host) -> Vec<String> {
    let dir = host.sysfs().join("devices/vfio_ap/matrix");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.len() == 36 && n.matches('-').count() == 4)
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// An mdev's assignment, or None when it is gone (or going).
pub fn ap_config(host: &Host, uuid: &str) -> Option<String> {
    let path = host
        .sysfs()
        .join(format!("devices/vfio_ap/matrix/{uuid}/ap_config"));
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim_end().to_string())
}

pub fn state(host: &Host) -> State {
    State {
        apmask: host.read("bus/ap/apmask").trim_end().to_string(),
        aqmask: host.read("bus/ap/aqmask").trim_end().to_string(),
        mdevs: mdev_uuids(host)
            .into_iter()
            .filter_map(|u| ap_config(host, &u).map(|c| (u, c)))
            .collect(),
        files: testkit::dir_snapshot(host.config_dir()),
    }
}

/// Bits set in a mask (`0x` + hex).
fn bits(mask: &str) -> u32 {
    mask.trim_start_matches("0x")
        .chars()
        .filter_map(|c| c.to_digit(16))
        .map(u32::count_ones)
        .sum()
}

/// Bits that differ between two `0x…` masks of the same length.
fn bits_between(a: &str, b: &str) -> u32 {
    a.trim_start_matches("0x")
        .chars()
        .zip(b.trim_start_matches("0x").chars())
        .filter_map(|(x, y)| Some(x.to_digit(16)? ^ y.to_digit(16)?))
        .map(u32::count_ones)
        .sum()
}

/// About how many kernel writes lie between two states: one per mask
/// written, per mdev created or removed, per id assigned or unassigned.
pub fn writes_between(a: &State, b: &State) -> u64 {
    let mut n = u64::from(a.apmask != b.apmask) + u64::from(a.aqmask != b.aqmask);
    let mut uuids: Vec<&String> = a.mdevs.keys().chain(b.mdevs.keys()).collect();
    uuids.sort();
    uuids.dedup();
    for u in uuids {
        n += match (a.mdevs.get(u), b.mdevs.get(u)) {
            (Some(x), Some(y)) => x
                .split(',')
                .zip(y.split(','))
                .map(|(p, q)| u64::from(bits_between(p, q)))
                .sum(),
            (Some(x), None) | (None, Some(x)) => {
                1 + x.split(',').map(|m| u64::from(bits(m))).sum::<u64>()
            }
            (None, None) => 0,
        };
    }
    n
}

/// The differences between two states, for failure messages.
pub fn differences(a: &State, b: &State) -> Vec<String> {
    let mut d = Vec::new();
    if a.apmask != b.apmask {
        d.push(format!("apmask {} -> {}", a.apmask, b.apmask));
    }
    if a.aqmask != b.aqmask {
        d.push(format!("aqmask {} -> {}", a.aqmask, b.aqmask));
    }
    d.extend(testkit::diff(&a.mdevs, &b.mdevs));
    d.extend(testkit::diff(&a.files, &b.files));
    d
}

/// Nothing is pending in the journal once apd has started.
pub fn assert_journal_empty(host: &Host, what: &str) {
    // Emptied by each plan that ended, removed by a recovery.
    let journal = host.runtime_dir().join("apply.journal");
    let left = std::fs::metadata(&journal).map_or(0, |m| m.len());
    assert_eq!(
        left,
        0,
        "{what}: {} holds {left} bytes after apd's start",
        journal.display()
    );
}
