//! What the kernel may cache of the mount, and taking it back.
//!
//! sysfs's own dentries live until their name goes. The mount lets the
//! kernel keep a looked-up name and its attributes for [`TTL`], so a path
//! walk costs no FUSE request per component, and takes back every cached
//! name that has gone (`inval_entry`) and its attributes (`inval_inode`)
//! before anyone can see that it went: before the write that removed it
//! returns, and before its uevent is forwarded. Names that appear need
//! nothing: a failed lookup is not cached (apsim answers ENOENT, never a
//! negative entry).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fuser::Notifier;

use crate::{Node, Sim};

/// How long the kernel may keep a name and its attributes unasked: long
/// enough that a burst of reads walks each path once, short enough to
/// bound the one race invalidation cannot close (a lookup answered just
/// before its name goes, whose dentry the kernel makes after the
/// invalidation was sent).
pub const TTL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Cached {
    parent: u64,
    name: String,
    path: String,
    node: Node,
    until: Instant,
}

/// A name a lookup found.
#[derive(Debug)]
pub struct Found<'a> {
    /// Its inode.
    pub ino: u64,
    /// The directory's inode.
    pub parent: u64,
    /// The name in the directory.
    pub name: &'a str,
    /// Its path from the mount's root.
    pub path: String,
    /// What the lookup answered.
    pub node: Node,
}

#[derive(Default)]
struct State {
    /// Names the kernel may hold, by inode.
    entries: HashMap<u64, Cached>,
    /// `Sim::removals` when the entries were last checked.
    checked: u64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("entries", &self.entries.len())
            .field("checked", &self.checked)
            .finish()
    }
}

/// The channel to the kernel; its lock also makes one sync wait for
/// another to finish, so none returns before what it saw is taken back.
struct Syncer(Option<Notifier>);

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Syncer(mounted)"
        } else {
            "Syncer(none)"
        })
    }
}

/// The names handed to the kernel with a TTL, shared by the filesystem
/// (which records them), the writer threads and the uevent forwarder
/// (which take back what went).
#[derive(Debug, Clone)]
pub struct Names {
    state: Arc<Mutex<State>>,
    syncer: Arc<Mutex<Syncer>>,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            state: Arc::default(),
            syncer: Arc::new(Mutex::new(Syncer(None))),
        }
    }
}

impl Names {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The channel to the kernel, once the session exists.
    pub fn set_notifier(&self, notifier: Notifier) {
        self.syncer.lock().unwrap_or_else(|p| p.into_inner()).0 = Some(notifier);
    }

    /// The TTL for an answer about `path` found as `node` by a lookup that
    /// began when the removal counter was `before`: nothing is cached when
    /// names went meanwhile (the answer may already be stale), else the
    /// name is recorded so that its removal is taken back.
    pub fn entry(&self, sim: &Sim, before: u64, found: Found<'_>) -> Duration {
        let mut s = self.lock();
        if sim.removals() != before {
            return Duration::ZERO;
        }
        s.entries.insert(
            found.ino,
            Cached {
                parent: found.parent,
                name: found.name.to_string(),
                path: found.path,
                node: found.node,
                until: Instant::now() + TTL,
            },
        );
        TTL
    }

    /// The TTL for attributes of `ino` (getattr): as long as its name is
    /// recorded, extended with it; else none.
    pub fn attr(&self, ino: u64) -> Duration {
        let mut s = self.lock();
        match s.entries.get_mut(&ino) {
            Some(c) => {
                c.until = Instant::now() + TTL;
                TTL
            }
            None => Duration::ZERO,
        }
    }

    /// Take back every cached name that went, or changed, since the last
    /// check; nothing to do while the removal counter has not moved.
    /// Called outside the session loop, and the notifications are sent
    /// without the entries' lock: the kernel may hold a directory's lock
    /// while it waits for the session loop to answer a lookup there.
    pub fn sync(&self, sim: &Sim) {
        let syncer = self.syncer.lock().unwrap_or_else(|p| p.into_inner());
        let stale: Vec<(u64, Cached)> = {
            let mut s = self.lock();
            let removals = sim.removals();
            if removals == s.checked {
                return;
            }
            s.checked = removals;
            let now = Instant::now();
            s.entries.retain(|_, c| c.until > now);
            let gone: Vec<u64> = s
                .entries
                .iter()
                .filter(|(_, c)| sim.stat(&c.path).ok() != Some(c.node))
                .map(|(ino, _)| *ino)
                .collect();
            gone.into_iter()
                .filter_map(|ino| s.entries.remove(&ino).map(|c| (ino, c)))
                .collect()
        };
        let Some(n) = &syncer.0 else { return };
        for (ino, c) in stale {
            // ENOENT: the kernel had already dropped it. Anything else
            // (the mount going away) leaves nothing to take back.
            if let Err(e) = n.inval_entry(c.parent, OsStr::new(&c.name)) {
                tracing::trace!("apsim: inval_entry {}: {e}", c.path);
            }
            if let Err(e) = n.inval_inode(ino, -1, 0) {
                tracing::trace!("apsim: inval_inode {}: {e}", c.path);
            }
        }
    }
}
