//! The simulator as a FUSE filesystem: a generic mapping of the [`Sim`]
//! tree onto FUSE requests. Attributes are direct I/O (no page cache), so
//! every read shows the state as it is; names and attributes are cached by
//! the kernel and taken back when they go ([`names`]); a write returns the
//! kernel's errno to the writer; a write that blocks runs on its own
//! thread.

pub mod names;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, ReplyXattr, Request, TimeOrNow,
};

use rustc_hash::FxHashMap;

use crate::{Node, NodeKind, Sim};
use names::{Found, Names};

/// Inode numbers for paths, handed out on first sight and kept. A listing
/// of a full LPAR's `cex4queue` driver names 64,512 paths at once, so a
/// path is stored once (shared by both tables) and hashed with Fx, not
/// SipHash: nothing here is exposed to hash flooding.
#[derive(Debug, Default)]
struct Inodes {
    paths: Vec<Arc<str>>,
    by_path: FxHashMap<Arc<str>, u64>,
}

impl Inodes {
    fn new() -> Inodes {
        let mut i = Inodes::default();
        i.get_or_add("");
        i
    }

    fn get_or_add(&mut self, path: &str) -> u64 {
        if let Some(ino) = self.by_path.get(path) {
            return *ino;
        }
        let path: Arc<str> = Arc::from(path);
        self.paths.push(path.clone());
        let ino = self.paths.len() as u64;
        self.by_path.insert(path, ino);
        ino
    }

    fn reserve(&mut self, more: usize) {
        self.paths.reserve(more);
        self.by_path.reserve(more);
    }

    fn path(&self, ino: u64) -> Option<&str> {
        let i = usize::try_from(ino.checked_sub(1)?).ok()?;
        self.paths.get(i).map(|p| &**p)
    }
}

fn join(parent: &str, name: &str) -> String {
    let mut path = String::with_capacity(parent.len() + 1 + name.len());
    join_into(&mut path, parent, name);
    path
}

/// `parent/name` into `buf` (cleared first): a listing joins each of its
/// names into one buffer.
fn join_into(buf: &mut String, parent: &str, name: &str) {
    buf.clear();
    if !parent.is_empty() {
        buf.push_str(parent);
        buf.push('/');
    }
    buf.push_str(name);
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::Dir => FileType::Directory,
        NodeKind::File => FileType::RegularFile,
        NodeKind::Symlink => FileType::Symlink,
    }
}

#[derive(Debug)]
enum Handle {
    /// The text of the last read at offset 0, served for later offsets.
    File {
        path: String,
        text: Vec<u8>,
    },
    Dir(Vec<(u64, FileType, String)>),
}

/// The FUSE filesystem over a [`Sim`].
#[derive(Debug)]
pub struct SysfsFs {
    sim: Sim,
    names: Names,
    inodes: Inodes,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    boot: SystemTime,
}

impl SysfsFs {
    pub fn new(sim: Sim, names: Names) -> SysfsFs {
        SysfsFs {
            sim,
            names,
            inodes: Inodes::new(),
            handles: HashMap::new(),
            next_fh: 1,
            boot: SystemTime::now(),
        }
    }

    fn attr(&self, ino: u64, node: Node) -> FileAttr {
        FileAttr {
            ino,
            size: node.size,
            blocks: 0,
            atime: self.boot,
            mtime: self.boot,
            ctime: self.boot,
            crtime: self.boot,
            kind: file_type(node.kind),
            perm: u16::try_from(node.mode & 0o7777).unwrap_or(0),
            nlink: if node.kind == NodeKind::Dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn path(&self, ino: u64) -> Result<String, i32> {
        self.inodes
            .path(ino)
            .map(str::to_string)
            .ok_or(libc::ESTALE)
    }

    fn stat_ino(&self, ino: u64) -> Result<FileAttr, i32> {
        let path = self.path(ino)?;
        Ok(self.attr(ino, self.sim.stat(&path)?))
    }

    fn new_handle(&mut self, h: Handle) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, h);
        fh
    }
}

/// Every request an operation below answers is counted first
/// (`.apsim/requests`): what a client's sysfs accesses cost the mount.
impl Filesystem for SysfsFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        self.sim.count_fuse_request();
        let Some(name) = name.to_str() else {
            return reply.error(libc::ENOENT);
        };
        let path = match self.path(parent) {
            Ok(p) => join(&p, name),
            Err(e) => return reply.error(e),
        };
        let before = self.sim.removals();
        match self.sim.stat(&path) {
            Ok(node) => {
                let ino = self.inodes.get_or_add(&path);
                let found = Found {
                    ino,
                    parent,
                    name,
                    path,
                    node,
                };
                let ttl = self.names.entry(&self.sim, before, found);
                reply.entry(&ttl, &self.attr(ino, node), 0);
            }
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        self.sim.count_fuse_request();
        match self.stat_ino(ino) {
            Ok(a) => reply.attr(&self.names.attr(ino), &a),
            Err(e) => reply.error(e),
        }
    }

    /// The shell's `>` truncates first: sysfs ignores that, and so do we.
    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        self.sim.count_fuse_request();
        match self.stat_ino(ino) {
            Ok(a) => reply.attr(&Duration::ZERO, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        self.sim.count_fuse_request();
        match self.path(ino).and_then(|p| self.sim.readlink(&p)) {
            Ok(t) => reply.data(t.as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        self.sim.count_fuse_request();
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let node = match self.sim.stat(&path) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        if node.kind == NodeKind::Dir {
            return reply.error(libc::EISDIR);
        }
        // kernfs refuses to open for reading what has no show, for writing
        // what has no store, whoever asks.
        let acc = flags & libc::O_ACCMODE;
        let wants_read = acc == libc::O_RDONLY || acc == libc::O_RDWR;
        let wants_write = acc == libc::O_WRONLY || acc == libc::O_RDWR;
        if (wants_read && node.mode & 0o444 == 0) || (wants_write && node.mode & 0o222 == 0) {
            return reply.error(libc::EACCES);
        }
        let fh = self.new_handle(Handle::File {
            path,
            text: Vec::new(),
        });
        reply.opened(fh, fuser::consts::FOPEN_DIRECT_IO);
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        self.sim.count_fuse_request();
        let Some(Handle::File { path, text }) = self.handles.get_mut(&fh) else {
            return reply.error(libc::EBADF);
        };
        let offset = usize::try_from(offset).unwrap_or(0);
        if offset == 0 {
            match self.sim.read(path) {
                Ok(t) => *text = t,
                Err(e) => return reply.error(e),
            }
        }
        let start = offset.min(text.len());
        let end = start.saturating_add(size as usize).min(text.len());
        reply.data(&text[start..end]);
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        self.sim.count_fuse_request();
        let Some(Handle::File { path, .. }) = self.handles.get(&fh) else {
            return reply.error(libc::EBADF);
        };
        // A write may block (remove of an mdev in use, a delay): answer it
        // from its own thread so other requests go on.
        // What the write removed is taken back before the writer hears
        // back, so its next path walk cannot meet a cached name.
        let (sim, names) = (self.sim.clone(), self.names.clone());
        let (path, data) = (path.clone(), data.to_vec());
        let spawned = std::thread::Builder::new()
            .name("apsim-write".into())
            .spawn(move || {
                let written = sim.write(&path, &data);
                names.sync(&sim);
                match written {
                    Ok(n) => reply.written(u32::try_from(n).unwrap_or(u32::MAX)),
                    Err(e) => reply.error(e),
                }
            });
        if let Err(e) = spawned {
            tracing::error!("apsim: cannot start a writer thread: {e}");
        }
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.sim.count_fuse_request();
        self.handles.remove(&fh);
        reply.ok();
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        self.sim.count_fuse_request();
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let list = match self.sim.list(&path) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let parent = match path.rsplit_once('/') {
            Some((p, _)) => p.to_string(),
            None => String::new(),
        };
        let mut entries = Vec::with_capacity(list.len() + 2);
        entries.push((ino, FileType::Directory, ".".to_string()));
        entries.push((
            self.inodes.get_or_add(&parent),
            FileType::Directory,
            "..".to_string(),
        ));
        self.inodes.reserve(list.len());
        let mut child_path = String::new();
        for e in list {
            join_into(&mut child_path, &path, &e.name);
            let child = self.inodes.get_or_add(&child_path);
            entries.push((child, file_type(e.kind), e.name));
        }
        let fh = self.new_handle(Handle::Dir(entries));
        reply.opened(fh, 0);
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        self.sim.count_fuse_request();
        let Some(Handle::Dir(entries)) = self.handles.get(&fh) else {
            return reply.error(libc::EBADF);
        };
        let skip = usize::try_from(offset).unwrap_or(0);
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(skip) {
            if reply.add(*ino, i64::try_from(i + 1).unwrap_or(i64::MAX), *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        reply: ReplyEmpty,
    ) {
        self.sim.count_fuse_request();
        self.handles.remove(&fh);
        reply.ok();
    }

    fn flush(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _lock_owner: u64,
        reply: ReplyEmpty,
    ) {
        self.sim.count_fuse_request();
        // sysfs has nothing to flush (a store's error comes with its
        // write): ENOSYS tells the kernel so once, and it stops sending a
        // FLUSH on every close.
        reply.error(libc::ENOSYS);
    }

    fn getxattr(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        self.sim.count_fuse_request();
        reply.error(libc::ENODATA);
    }

    fn listxattr(&mut self, _req: &Request<'_>, _ino: u64, size: u32, reply: ReplyXattr) {
        self.sim.count_fuse_request();
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    /// Nothing in sysfs can be removed or renamed by hand.
    fn unlink(&mut self, _req: &Request<'_>, _parent: u64, _name: &OsStr, reply: ReplyEmpty) {
        self.sim.count_fuse_request();
        reply.error(libc::EPERM);
    }

    fn rmdir(&mut self, _req: &Request<'_>, _parent: u64, _name: &OsStr, reply: ReplyEmpty) {
        self.sim.count_fuse_request();
        reply.error(libc::EPERM);
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        _parent: u64,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.sim.count_fuse_request();
        reply.error(libc::EPERM);
    }

    /// sysfs directories take no new files.
    fn create(
        &mut self,
        _req: &Request<'_>,
        _parent: u64,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        self.sim.count_fuse_request();
        reply.error(libc::EACCES);
    }
}

/// Mount options: visible to every user when we are root; permissions are
/// decided here (EACCES as kernfs gives it), not by the kernel.
pub fn mount_options() -> Vec<MountOption> {
    let mut opts = vec![
        MountOption::FSName("apsim".to_string()),
        MountOption::Subtype("apsim".to_string()),
    ];
    if nix::unistd::geteuid().is_root() {
        opts.push(MountOption::AllowOther);
    }
    opts
}

/// Lazily unmounts what a killed run left at `dir` (its stat fails with
/// ENOTCONN). Returns whether there was one.
pub fn clear_stale_mount(dir: &Path) -> std::io::Result<bool> {
    match std::fs::metadata(dir) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            tracing::warn!("apsim: clearing a stale mount at {}", dir.display());
            nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH)
                .map_err(std::io::Error::from)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Mounts the simulator at `dir` and serves it until it is unmounted.
/// `names` is shared with whoever forwards the simulator's uevents (they
/// call [`Names::sync`] before passing one on); `ready` runs once the
/// mount exists.
pub fn serve(sim: Sim, names: Names, dir: &Path, ready: impl FnOnce()) -> std::io::Result<()> {
    let mut session = fuser::Session::new(SysfsFs::new(sim, names.clone()), dir, &mount_options())?;
    names.set_notifier(session.notifier());
    ready();
    session.run()
}
