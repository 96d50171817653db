//! The in-process API: one lock around the kernel state; writes that must
//! wait (a slow attribute, removing an mdev a guest holds) wait without it.

use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::kernel::tree::{attr_mode, Obj, Written};
use crate::kernel::Kernel;
use crate::topology::Topology;
use crate::Errno;

/// How long vfio waits between device requests to the user.
const REQUEST_INTERVAL: Duration = Duration::from_secs(10);
/// sysfs hands a store function at most one page.
const PAGE_SIZE: usize = 4096;

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File,
    Symlink,
}

/// `stat` of a path (without following a final symlink).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    /// Permission bits as sysfs shows them: 0644, 0444, 0200, 0755, 0777.
    pub mode: u32,
    /// 4096 for attributes, as sysfs reports; 0 for directories; the
    /// target's length for links.
    pub size: u64,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: NodeKind,
}

struct Shared {
    kernel: Mutex<Kernel>,
    /// Signalled after every write, so a blocked `remove` sees a release.
    changed: Condvar,
}

/// The simulated kernel. Cheap to clone; every clone is the same kernel.
#[derive(Clone)]
pub struct Sim {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").finish_non_exhaustive()
    }
}

fn kind_of(obj: &Obj) -> NodeKind {
    match obj {
        Obj::Dir(_) => NodeKind::Dir,
        Obj::Attr(_) => NodeKind::File,
        Obj::Link(_) => NodeKind::Symlink,
    }
}

impl Sim {
    /// Boots a simulated host: the initial bus scan has run when this returns.
    pub fn new(topology: Topology) -> Sim {
        Sim {
            shared: Arc::new(Shared {
                kernel: Mutex::new(Kernel::boot(&topology)),
                changed: Condvar::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Kernel> {
        // A panic while holding the lock leaves consistent-enough state for
        // a simulator; keep serving rather than poisoning every caller.
        self.shared.kernel.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads an attribute (following symlinks).
    pub fn read(&self, path: &str) -> Result<Vec<u8>, Errno> {
        let k = self.lock();
        match k.resolve(path, true)?.1 {
            Obj::Attr(a) => k.read_attr(&a),
            Obj::Dir(_) => Err(libc::EISDIR),
            Obj::Link(_) => Err(libc::ELOOP),
        }
    }

    /// Writes an attribute, as one `write(2)`: returns the bytes taken or
    /// the errno the kernel returns. May block (slow attribute, removing an
    /// mdev in use) without holding the state lock.
    pub fn write(&self, path: &str, data: &[u8]) -> Result<usize, Errno> {
        let data = &data[..data.len().min(PAGE_SIZE)];
        tracing::debug!("apsim: write {path}: {:?}", String::from_utf8_lossy(data));
        let delay = {
            let k = self.lock();
            let (canon, _) = k.resolve(path, true)?;
            k.delay_for(&canon)
        };
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let mut k = self.lock();
        let (canon, obj) = k.resolve(path, true)?;
        let attr = match obj {
            Obj::Attr(a) => a,
            Obj::Dir(_) => return Err(libc::EISDIR),
            Obj::Link(_) => return Err(libc::ELOOP),
        };
        if attr_mode(&attr) & 0o222 == 0 {
            return Err(libc::EACCES);
        }
        if data.is_empty() {
            return Ok(0);
        }
        if let Some(errno) = k.take_injection(&canon) {
            tracing::debug!("apsim: injected errno {errno} for a write to {canon}");
            return Err(errno);
        }
        let written = k.write_attr(&attr, data);
        self.shared.changed.notify_all();
        match written? {
            Written::Done(n) => Ok(n),
            Written::AwaitRelease { uuid, len } => self.await_release(k, &uuid, len),
        }
    }

    /// vfio_unregister_group_dev: wait for the guest to let go, relaying
    /// the request every ten seconds, then remove the mdev.
    fn await_release(
        &self,
        mut k: MutexGuard<'_, Kernel>,
        uuid: &str,
        len: usize,
    ) -> Result<usize, Errno> {
        let mut count = 0u32;
        loop {
            let Some(i) = k.mdev_index(uuid) else {
                return Ok(len);
            };
            if !k.mdevs[i].in_use {
                k.remove_mdev(i);
                self.shared.changed.notify_all();
                return Ok(len);
            }
            let (guard, timeout) = self
                .shared
                .changed
                .wait_timeout(k, REQUEST_INTERVAL)
                .unwrap_or_else(|p| p.into_inner());
            k = guard;
            if timeout.timed_out() {
                count += 1;
                k.relay_request(uuid, count);
            }
        }
    }

    /// Lists a directory (following symlinks).
    pub fn list(&self, path: &str) -> Result<Vec<DirEntry>, Errno> {
        let k = self.lock();
        match k.resolve(path, true)?.1 {
            Obj::Dir(d) => Ok(k
                .entries(&d)
                .into_iter()
                .map(|(name, obj)| DirEntry {
                    kind: kind_of(&obj),
                    name,
                })
                .collect()),
            _ => Err(libc::ENOTDIR),
        }
    }

    /// `lstat`: a final symlink is reported as the link.
    pub fn stat(&self, path: &str) -> Result<Node, Errno> {
        let k = self.lock();
        let (_, obj) = k.resolve(path, false)?;
        Ok(match &obj {
            Obj::Dir(_) => Node {
                kind: NodeKind::Dir,
                mode: 0o755,
                size: 0,
            },
            Obj::Attr(a) => Node {
                kind: NodeKind::File,
                mode: attr_mode(a),
                size: 4096,
            },
            Obj::Link(t) => Node {
                kind: NodeKind::Symlink,
                mode: 0o777,
                size: t.text().len() as u64,
            },
        })
    }

    /// The target of a symlink, relative, as sysfs stores it.
    pub fn readlink(&self, path: &str) -> Result<String, Errno> {
        match self.lock().resolve(path, false)?.1 {
            Obj::Link(t) => Ok(t.text()),
            _ => Err(libc::EINVAL),
        }
    }

    /// Every uevent from now on, in the kernel's wire format.
    pub fn subscribe(&self) -> Receiver<Vec<u8>> {
        let (tx, rx) = channel();
        self.lock().subscribe(tx);
        rx
    }

    /// A counter that moves whenever names may have left the tree (every
    /// removal in sysfs comes with a `remove` or `unbind` uevent, or the
    /// matrix device's `MDEV_STATE=unregistered`); caches of names check
    /// it.
    pub fn removals(&self) -> u64 {
        self.lock().removals
    }

    /// Counts one FUSE request served by the mount (`.apsim/requests`
    /// shows the count: what a client's reads cost, a figure no machine's
    /// noise changes).
    pub fn count_fuse_request(&self) {
        self.lock().fuse_requests += 1;
    }

    /// The kernel log ring, oldest first.
    pub fn log(&self) -> Vec<String> {
        self.lock().log_lines()
    }
}
