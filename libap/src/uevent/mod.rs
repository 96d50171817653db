//! Kernel uevents (kernel spec §9): the wire format a netlink socket (or
//! apsim's socket) delivers, and what each event means for a host model
//! kept current by them. Here, in the library, so that the parser a
//! hostile byte stream reaches is fuzzed (`fuzz/fuzz_targets/uevent.rs`).

mod classify;
mod wire;

pub use classify::Change;
pub use wire::{parse, Uevent, UeventError, MAX_MESSAGE};

/// Building uevents for tests.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    /// A message in the kernel's wire format: the fields, each ended by NUL.
    pub fn wire(fields: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for f in fields {
            v.extend_from_slice(f.as_bytes());
            v.push(0);
        }
        v
    }
}
