//! Kernel uevents: one wire-format parser (kernel spec §9) and the three
//! sources apd reads them from — netlink (a real host), the SOCK_SEQPACKET
//! socket of `apsim mount`, and the in-process simulator's channel. Every
//! source feeds the same channel of raw messages; the daemon parses them,
//! drains bursts and re-reads the host once.

use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use libap::host::{parse_card_name, parse_mdev_name};
use libap::resync::Stale;
use libap::Apqn;
use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, UnixAddr,
};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use uuid::Uuid;

/// The largest uevent the kernel sends (UEVENT_BUFFER_SIZE is 2048) plus
/// room for the header; bigger packets are truncated and refused.
const MAX_MESSAGE: usize = 8192;

/// One parsed kernel uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `add`, `remove`, `change`, `bind`, `unbind`, ...
    pub action: String,
    /// The device path, e.g. `/devices/ap/card05/05.0004`.
    pub devpath: String,
    /// Every `KEY=VALUE` pair (values keep their bytes, e.g. the trailing
    /// newline of `APMASK=`).
    pub env: BTreeMap<String, String>,
}

/// Why a message is not a kernel uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UeventError(String);

impl fmt::Display for UeventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UeventError {}

fn bad(why: impl Into<String>) -> UeventError {
    UeventError(why.into())
}

/// Parses one message: `ACTION@DEVPATH\0` then `KEY=VALUE\0` pairs.
pub fn parse(buf: &[u8]) -> Result<Uevent, UeventError> {
    if buf.starts_with(b"libudev\0") {
        return Err(bad("a udev message, not a kernel uevent"));
    }
    let mut fields = buf.split(|b| *b == 0);
    let header = fields.next().unwrap_or_default();
    let header =
        std::str::from_utf8(header).map_err(|_| bad("the ACTION@DEVPATH header is not UTF-8"))?;
    let (action, devpath) = header
        .split_once('@')
        .ok_or_else(|| bad(format!("header {header:?} lacks ACTION@DEVPATH")))?;
    if action.is_empty() || !action.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(bad(format!("header {header:?} has no valid action")));
    }
    if !devpath.starts_with('/') {
        return Err(bad(format!(
            "header {header:?} has no absolute device path"
        )));
    }
    let mut env = BTreeMap::new();
    for field in fields {
        if field.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(field);
        let (k, v) = text
            .split_once('=')
            .ok_or_else(|| bad(format!("field {text:?} is not KEY=VALUE")))?;
        if k.is_empty() {
            return Err(bad(format!("field {text:?} has an empty key")));
        }
        env.insert(k.to_string(), v.to_string());
    }
    for (key, header_value) in [("ACTION", action), ("DEVPATH", devpath)] {
        if let Some(v) = env.get(key) {
            if v != header_value {
                return Err(bad(format!("{key}={v} contradicts the header {header:?}")));
            }
        }
    }
    Ok(Uevent {
        action: action.to_string(),
        devpath: devpath.to_string(),
        env,
    })
}

impl Uevent {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// What this event means for apd's host model.
    pub fn classify(&self) -> Change {
        let subsystem = self.get("SUBSYSTEM").unwrap_or("");
        let a = self.action.as_str();
        match (subsystem, device_of(&self.devpath)) {
            ("ap", Device::Bus) => {
                if self.get("APMASK").is_some() || self.get("AQMASK").is_some() {
                    Change::Masks
                } else if self.get("INITSCAN").is_some() || self.get("BINDINGS").is_some() {
                    Change::ScanDone
                } else {
                    Change::Ignored
                }
            }
            ("ap", Device::Card(id)) => match a {
                "add" => Change::CardAdded(id),
                "remove" => Change::CardRemoved(id),
                "change" => match (flag(self.get("CONFIG")), flag(self.get("ONLINE"))) {
                    (Some(on), _) => Change::AdapterConfig { adapter: id, on },
                    (None, Some(on)) => Change::AdapterOnline { adapter: id, on },
                    // `udevadm trigger` and keys we do not know.
                    (None, None) => Change::Ignored,
                },
                // Cards are always bound to cex4card: nothing to learn.
                _ => Change::Ignored,
            },
            ("ap", Device::Queue(apqn)) => match a {
                "add" => Change::QueueAdded(apqn),
                "remove" => Change::QueueRemoved(apqn),
                "bind" => Change::QueueDriver {
                    apqn,
                    driver: self.get("DRIVER").map(str::to_string),
                },
                "unbind" => Change::QueueDriver { apqn, driver: None },
                "change" => match (flag(self.get("CONFIG")), flag(self.get("ONLINE"))) {
                    (Some(on), _) => Change::QueueConfig { apqn, on },
                    (None, Some(_)) => Change::QueueOnline(apqn),
                    (None, None) => Change::Ignored,
                },
                _ => Change::Ignored,
            },
            ("matrix", Device::Matrix) => match self.get("MDEV_STATE") {
                Some("registered") => Change::VfioAp { registered: true },
                Some("unregistered") => Change::VfioAp { registered: false },
                _ => Change::Ignored,
            },
            ("mdev", Device::Mdev(uuid)) => match a {
                "add" => Change::MdevAdded(uuid),
                "remove" => Change::MdevRemoved(uuid),
                // bind/unbind of vfio_ap_mdev follow add/remove.
                _ => Change::Ignored,
            },
            _ => Change::Ignored,
        }
    }
}

fn flag(v: Option<&str>) -> Option<bool> {
    match v?.trim_end() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// What an event means for the host model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// apmask or aqmask changed.
    Masks,
    /// A bus scan finished (`INITSCAN`, `BINDINGS`).
    ScanDone,
    /// An adapter (card) appeared.
    CardAdded(u8),
    /// An adapter (card) went away.
    CardRemoved(u8),
    /// An adapter was configured on or off.
    AdapterConfig {
        /// The adapter id.
        adapter: u8,
        /// Configured on.
        on: bool,
    },
    /// An adapter was set online or offline.
    AdapterOnline {
        /// The adapter id.
        adapter: u8,
        /// Online.
        on: bool,
    },
    /// A queue appeared.
    QueueAdded(Apqn),
    /// A queue went away.
    QueueRemoved(Apqn),
    /// A queue was bound (`Some(driver)`) or unbound (`None`).
    QueueDriver {
        /// The queue.
        apqn: Apqn,
        /// The new driver.
        driver: Option<String>,
    },
    /// A queue's configuration followed its adapter's.
    QueueConfig {
        /// The queue.
        apqn: Apqn,
        /// Configured on.
        on: bool,
    },
    /// A queue's online state changed.
    QueueOnline(Apqn),
    /// The vfio_ap matrix device was registered or unregistered.
    VfioAp {
        /// `MDEV_STATE=registered`.
        registered: bool,
    },
    /// An mdev was created (by anyone).
    MdevAdded(Uuid),
    /// An mdev was removed (by anyone).
    MdevRemoved(Uuid),
    /// Nothing apd follows.
    Ignored,
}

impl Change {
    /// What the change makes stale in the host model.
    pub fn stale(&self) -> Stale {
        match self {
            Change::Masks => Stale::masks(),
            Change::ScanDone => Stale::config(),
            // A card re-read brings the configuration files along.
            Change::CardAdded(a)
            | Change::CardRemoved(a)
            | Change::AdapterConfig { adapter: a, .. }
            | Change::AdapterOnline { adapter: a, .. } => Stale::card(*a),
            // A mask change rebinds queues before its own uevent comes: a
            // burst that holds only the binds still sees the masks that
            // caused them, so a retried start is not refused on old masks.
            Change::QueueDriver { apqn, .. } => Stale::queue(*apqn).and(Stale::masks()),
            Change::QueueAdded(q)
            | Change::QueueRemoved(q)
            | Change::QueueConfig { apqn: q, .. }
            | Change::QueueOnline(q) => Stale::queue(*q),
            Change::VfioAp { .. } => Stale::all_mdevs(),
            Change::MdevAdded(u) | Change::MdevRemoved(u) => Stale::mdev(*u),
            Change::Ignored => Stale::none(),
        }
    }

    /// Whether this change can turn a failed start into a possible one
    /// (more resources, fewer holders): then failed definitions are retried.
    pub fn may_unblock_start(&self) -> bool {
        match self {
            Change::Masks
            | Change::ScanDone
            | Change::CardAdded(_)
            | Change::QueueAdded(_)
            | Change::MdevRemoved(_) => true,
            Change::AdapterConfig { on, .. } | Change::QueueConfig { on, .. } => *on,
            Change::AdapterOnline { on, .. } => *on,
            Change::VfioAp { registered } => *registered,
            Change::QueueDriver { driver, .. } => driver.is_some(),
            Change::CardRemoved(_)
            | Change::QueueRemoved(_)
            | Change::QueueOnline(_)
            | Change::MdevAdded(_)
            | Change::Ignored => false,
        }
    }
}

/// The device a devpath names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Device {
    Bus,
    Card(u8),
    Queue(Apqn),
    Matrix,
    Mdev(Uuid),
    Other,
}

fn device_of(devpath: &str) -> Device {
    let parts: Vec<&str> = devpath.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["devices", "ap"] => Device::Bus,
        ["devices", "ap", card] => parse_card_name(card).map_or(Device::Other, Device::Card),
        ["devices", "ap", card, queue] => match (parse_card_name(card), queue.parse::<Apqn>()) {
            (Some(c), Ok(q)) if q.adapter == c && queue.len() == 7 => Device::Queue(q),
            _ => Device::Other,
        },
        ["devices", "vfio_ap", "matrix"] => Device::Matrix,
        ["devices", "vfio_ap", "matrix", uuid] => {
            parse_mdev_name(uuid).map_or(Device::Other, Device::Mdev)
        }
        _ => Device::Other,
    }
}

/// What a source delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// One raw message.
    Message(Vec<u8>),
    /// Events may have been lost (buffer overrun, reconnect): re-read
    /// everything.
    Resync(&'static str),
}

/// Everything a source had queued when apd got to it, merged: a burst of
/// thousands of events costs one re-read of what they name, not one each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Burst {
    /// What the events made stale.
    pub stale: Stale,
    /// Whether a failed automatic start may now succeed.
    pub unblock: bool,
    /// How many feeds the burst held (for logs).
    pub events: usize,
}

/// Waits for the next feed, then takes every feed already queued behind
/// it. `None` once every source is gone.
pub async fn next_burst(rx: &mut mpsc::Receiver<Feed>) -> Option<Burst> {
    let first = rx.recv().await?;
    let mut burst = Burst {
        stale: Stale::none(),
        unblock: false,
        events: 0,
    };
    let mut take = |feed: Feed| {
        burst.events += 1;
        match feed {
            Feed::Message(msg) => match parse(&msg) {
                Ok(ev) => {
                    let change = ev.classify();
                    if change != Change::Ignored {
                        tracing::debug!(action = %ev.action, devpath = %ev.devpath, ?change, "uevent");
                    }
                    burst.stale.merge(change.stale());
                    burst.unblock |= change.may_unblock_start();
                }
                Err(e) => tracing::debug!(error = %e, "ignoring a malformed uevent"),
            },
            Feed::Resync(why) => {
                tracing::info!(why, "re-reading the whole host");
                burst.stale.merge(Stale::everything());
                burst.unblock = true;
            }
        }
    };
    take(first);
    while let Ok(more) = rx.try_recv() {
        take(more);
    }
    Some(burst)
}

/// Where uevents come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// NETLINK_KOBJECT_UEVENT group 1 (the kernel).
    Netlink,
    /// A SOCK_SEQPACKET unix socket (`apsim mount --uevent-socket`).
    Socket(PathBuf),
}

/// Opens `source` and forwards its messages to `tx` until `tx` closes.
/// Netlink errors at start are returned; the socket source keeps trying to
/// (re)connect in the background.
pub async fn spawn(source: Source, tx: mpsc::Sender<Feed>) -> std::io::Result<()> {
    match source {
        Source::Netlink => {
            let first = open_netlink()?;
            tokio::spawn(async move { follow_netlink(first, tx).await });
        }
        Source::Socket(path) => {
            tokio::spawn(async move { read_socket(path, tx).await });
        }
    }
    Ok(())
}

/// Forwards the in-process simulator's uevents (a blocking channel) to `tx`.
pub fn forward_blocking(rx: std::sync::mpsc::Receiver<Vec<u8>>, tx: mpsc::Sender<Feed>) {
    std::thread::Builder::new()
        .name("apd-sim-uevents".into())
        .spawn(move || {
            while let Ok(msg) = rx.recv() {
                if tx.blocking_send(Feed::Message(msg)).is_err() {
                    break;
                }
            }
        })
        .map(|_| ())
        .unwrap_or_else(
            |e| tracing::error!(error = %e, "cannot start the simulator uevent thread"),
        );
}

fn open_netlink() -> std::io::Result<AsyncFd<OwnedFd>> {
    // A large buffer survives bursts (hot plug of many queues).
    open_netlink_with(8 * 1024 * 1024)
}

fn open_netlink_with(size: usize) -> std::io::Result<AsyncFd<OwnedFd>> {
    let fd = socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::NetlinkKObjectUEvent,
    )?;
    // The forced variant needs CAP_NET_ADMIN; the plain one is the fallback.
    if socket::setsockopt(&fd, socket::sockopt::RcvBufForce, &size).is_err() {
        let _ = socket::setsockopt(&fd, socket::sockopt::RcvBuf, &size);
    }
    socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1))?;
    register(fd)
}

/// Registers a socket we own with the reactor. tokio deprecates
/// `AsyncFd::new` because a `T` might close its fd while registered; an
/// `OwnedFd` moved into the `AsyncFd` cannot, and the replacement
/// (`register`) is `unsafe`, which this crate does not allow.
#[allow(deprecated)]
fn register(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    AsyncFd::new(fd)
}

/// Reads netlink until `tx` closes. A failed socket is reopened (events
/// may have been lost meanwhile, so the host is then re-read whole): apd
/// never silently stops following the kernel.
async fn follow_netlink(first: AsyncFd<OwnedFd>, tx: mpsc::Sender<Feed>) {
    let mut fd = first;
    let mut pause = Duration::from_millis(100);
    loop {
        match read_netlink(fd, &tx).await {
            Ok(()) => return,
            Err(e) => tracing::error!(error = %e, "the netlink uevent socket failed; reopening it"),
        }
        fd = loop {
            tokio::time::sleep(pause).await;
            if tx.is_closed() {
                return;
            }
            match open_netlink() {
                Ok(fd) => break fd,
                Err(e) => {
                    tracing::error!(error = %e, "cannot reopen the netlink uevent socket; retrying");
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        };
        pause = Duration::from_millis(100);
        if tx
            .send(Feed::Resync("netlink uevent socket reopened"))
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn read_netlink(fd: AsyncFd<OwnedFd>, tx: &mpsc::Sender<Feed>) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let mut guard = fd.readable().await?;
        match socket::recvfrom::<NetlinkAddr>(fd.get_ref().as_raw_fd(), &mut buf) {
            Ok((n, from)) => {
                // Only the kernel (port 0) is trusted: any local process
                // may send to the group.
                if from.map(|a| a.pid()) != Some(0) {
                    tracing::debug!(port = ?from.map(|a| a.pid()), "ignoring a uevent not sent by the kernel");
                    continue;
                }
                if n >= buf.len() {
                    tracing::warn!("ignoring a truncated uevent");
                    continue;
                }
                if tx.send(Feed::Message(buf[..n].to_vec())).await.is_err() {
                    return Ok(());
                }
            }
            Err(Errno::EAGAIN) => guard.clear_ready(),
            Err(Errno::ENOBUFS) => {
                tracing::warn!("uevents were lost (netlink buffer overrun); re-reading the host");
                if tx
                    .send(Feed::Resync("netlink buffer overrun"))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

async fn read_socket(path: PathBuf, tx: mpsc::Sender<Feed>) {
    let mut connected_before = false;
    let mut pause = Duration::from_millis(50);
    loop {
        match connect_seqpacket(&path) {
            Ok(fd) => {
                pause = Duration::from_millis(50);
                tracing::info!(socket = %path.display(), "reading uevents from the socket");
                if connected_before
                    && tx
                        .send(Feed::Resync("uevent socket reconnected"))
                        .await
                        .is_err()
                {
                    return;
                }
                connected_before = true;
                match read_seqpacket(fd, &tx).await {
                    Ok(true) => return,
                    Ok(false) => {
                        tracing::warn!(socket = %path.display(), "the uevent socket closed; reconnecting")
                    }
                    Err(e) => {
                        tracing::warn!(socket = %path.display(), error = %e, "the uevent socket failed; reconnecting")
                    }
                }
            }
            Err(e) => {
                tracing::debug!(socket = %path.display(), error = %e, "cannot connect to the uevent socket yet");
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

fn connect_seqpacket(path: &std::path::Path) -> std::io::Result<AsyncFd<OwnedFd>> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // Connect while blocking (a local socket answers at once), then switch
    // to non-blocking for the reactor.
    socket::connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    register(fd)
}

/// Reads until the peer closes (`Ok(false)`) or our receiver is gone
/// (`Ok(true)`).
async fn read_seqpacket(fd: AsyncFd<OwnedFd>, tx: &mpsc::Sender<Feed>) -> std::io::Result<bool> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let mut guard = fd.readable().await?;
        match socket::recv(fd.get_ref().as_raw_fd(), &mut buf, MsgFlags::MSG_TRUNC) {
            Ok(0) => return Ok(false),
            Ok(n) if n > buf.len() => tracing::warn!(len = n, "ignoring an oversized uevent"),
            Ok(n) => {
                if tx.send(Feed::Message(buf[..n].to_vec())).await.is_err() {
                    return Ok(true);
                }
            }
            Err(Errno::EAGAIN) => guard.clear_ready(),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// guest1 of the seed documents.
    const G1: Uuid = Uuid::from_u128(0x62177883_f1bb_47f0_914d_32a22e3a8804);

    fn wire(fields: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for f in fields {
            v.extend_from_slice(f.as_bytes());
            v.push(0);
        }
        v
    }

    #[test]
    fn parses_a_mask_change_with_its_newline() {
        let mask = format!("0x{}", "f".repeat(64));
        let msg = wire(&[
            "change@/devices/ap",
            "ACTION=change",
            "DEVPATH=/devices/ap",
            "SUBSYSTEM=ap",
            &format!("APMASK={mask}\n"),
            "SEQNUM=1234",
        ]);
        let ev = parse(&msg).expect("valid");
        assert_eq!(ev.action, "change");
        assert_eq!(ev.devpath, "/devices/ap");
        assert_eq!(ev.get("APMASK"), Some(format!("{mask}\n").as_str()));
        assert_eq!(ev.get("SEQNUM"), Some("1234"));
        assert_eq!(ev.classify(), Change::Masks);
    }

    #[test]
    fn classifies_card_queue_matrix_and_mdev_events() {
        let ev = |fields: &[&str]| parse(&wire(fields)).expect("valid").classify();
        assert_eq!(
            ev(&[
                "change@/devices/ap/card05",
                "SUBSYSTEM=ap",
                "CONFIG=0",
                "DEVTYPE=ap_card"
            ]),
            Change::AdapterConfig {
                adapter: 5,
                on: false
            }
        );
        assert_eq!(
            ev(&["change@/devices/ap/card0a", "SUBSYSTEM=ap", "ONLINE=1"]),
            Change::AdapterOnline {
                adapter: 10,
                on: true
            }
        );
        // `udevadm trigger`: a change without the keys we expect.
        assert_eq!(
            ev(&["change@/devices/ap/card05", "SUBSYSTEM=ap"]),
            Change::Ignored
        );
        assert_eq!(
            ev(&["add@/devices/ap/card06", "SUBSYSTEM=ap"]),
            Change::CardAdded(6)
        );
        assert_eq!(
            ev(&["remove@/devices/ap/card06/06.00ab", "SUBSYSTEM=ap"]),
            Change::QueueRemoved(Apqn::new(6, 0xab))
        );
        assert_eq!(
            ev(&[
                "bind@/devices/ap/card05/05.0004",
                "SUBSYSTEM=ap",
                "DRIVER=vfio_ap"
            ]),
            Change::QueueDriver {
                apqn: Apqn::new(5, 4),
                driver: Some("vfio_ap".into())
            }
        );
        assert_eq!(
            ev(&[
                "unbind@/devices/ap/card05/05.0004",
                "SUBSYSTEM=ap",
                "DRIVER=cex4queue"
            ]),
            Change::QueueDriver {
                apqn: Apqn::new(5, 4),
                driver: None
            }
        );
        assert_eq!(
            ev(&[
                "change@/devices/ap/card05/05.0004",
                "SUBSYSTEM=ap",
                "CONFIG=1"
            ]),
            Change::QueueConfig {
                apqn: Apqn::new(5, 4),
                on: true
            }
        );
        // A queue under the wrong card is not a queue.
        assert_eq!(
            ev(&["add@/devices/ap/card05/06.0004", "SUBSYSTEM=ap"]),
            Change::Ignored
        );
        assert_eq!(
            ev(&[
                "change@/devices/vfio_ap/matrix",
                "SUBSYSTEM=matrix",
                "MDEV_STATE=registered"
            ]),
            Change::VfioAp { registered: true }
        );
        assert_eq!(
            ev(&[
                "change@/devices/vfio_ap/matrix",
                "SUBSYSTEM=matrix",
                "MDEV_STATE=unregistered"
            ]),
            Change::VfioAp { registered: false }
        );
        assert_eq!(
            ev(&[
                "add@/devices/vfio_ap/matrix/62177883-F1BB-47f0-914d-32a22e3a8804",
                "SUBSYSTEM=mdev"
            ]),
            Change::MdevAdded(G1)
        );
        assert_eq!(
            ev(&[
                "remove@/devices/vfio_ap/matrix/62177883-f1bb-47f0-914d-32a22e3a8804",
                "SUBSYSTEM=mdev"
            ]),
            Change::MdevRemoved(G1)
        );
        assert_eq!(
            ev(&["change@/devices/ap", "SUBSYSTEM=ap", "INITSCAN=done"]),
            Change::ScanDone
        );
        assert_eq!(
            ev(&["add@/devices/pci0000:00/0000:00:01.0", "SUBSYSTEM=pci"]),
            Change::Ignored
        );
    }

    #[test]
    fn start_retry_triggers() {
        assert!(Change::AdapterConfig {
            adapter: 5,
            on: true
        }
        .may_unblock_start());
        assert!(!Change::AdapterConfig {
            adapter: 5,
            on: false
        }
        .may_unblock_start());
        assert!(Change::Masks.may_unblock_start());
        assert!(Change::QueueAdded(Apqn::new(5, 4)).may_unblock_start());
        assert!(Change::MdevRemoved(G1).may_unblock_start());
        assert!(Change::VfioAp { registered: true }.may_unblock_start());
        assert!(!Change::VfioAp { registered: false }.may_unblock_start());
        assert!(!Change::MdevAdded(G1).may_unblock_start());
        assert!(Change::Ignored.stale().is_empty());
    }

    #[test]
    fn refuses_what_is_not_a_kernel_uevent() {
        for bad_msg in [
            &b""[..],
            b"\0",
            b"no-at-sign\0A=B\0",
            b"@/devices/ap\0",
            b"change@devices/ap\0",
            b"change@/devices/ap\0NOEQUALS\0",
            b"change@/devices/ap\0=value\0",
            b"change@/devices/ap\0ACTION=add\0",
            b"change@/devices/ap\0DEVPATH=/devices/other\0",
            b"libudev\0\xfe\xed\xca\xfe",
            b"ch\xffange@/devices/ap\0",
            b"CHANGE@/devices/ap\0",
        ] {
            assert!(
                parse(bad_msg).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad_msg)
            );
        }
    }

    #[test]
    fn tolerates_empty_fields_and_non_utf8_values() {
        let ev = parse(b"change@/devices/ap/card05\0\0SUBSYSTEM=ap\0X=\xff\0\0").expect("valid");
        assert_eq!(ev.get("SUBSYSTEM"), Some("ap"));
        assert_eq!(ev.get("X"), Some("\u{fffd}"));
    }

    #[test]
    fn devpaths() {
        assert_eq!(device_of("/devices/ap/cardff"), Device::Card(255));
        assert_eq!(device_of("/devices/ap/card5"), Device::Other);
        assert_eq!(device_of("/devices/ap/cardzz"), Device::Other);
        assert_eq!(device_of("/devices/ap/card05/05.4"), Device::Other);
        assert_eq!(
            device_of("/devices/vfio_ap/matrix/not-a-uuid"),
            Device::Other
        );
        assert_eq!(device_of("/devices/vfio_ap"), Device::Other);
    }

    /// A real kernel uevent arrives through netlink; a forged one sent by
    /// a local process to the same group does not. Needs root (to write a
    /// device's `uevent` file and to send to the group).
    #[tokio::test]
    async fn netlink_delivers_kernel_uevents_and_drops_forged_ones() {
        let trigger = "/sys/devices/virtual/mem/null/uevent";
        if !nix::unistd::geteuid().is_root() || !std::path::Path::new(trigger).exists() {
            eprintln!("skipped: needs root and {trigger}");
            return;
        }
        let (tx, mut rx) = mpsc::channel(64);
        spawn(Source::Netlink, tx).await.expect("netlink socket");
        // A local process pretends to be the kernel.
        let forger = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .expect("forger socket");
        let forged = b"change@/devices/ap\0ACTION=change\0DEVPATH=/devices/ap\0SUBSYSTEM=ap\0APMASK=0x00\n\0";
        let _ = socket::sendto(
            forger.as_raw_fd(),
            forged,
            &NetlinkAddr::new(0, 1),
            MsgFlags::empty(),
        );
        std::fs::write(trigger, "change").expect("trigger a kernel uevent");
        // A hang guard, not a performance verdict.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let feed = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("the kernel's uevent within the liveness bound")
                .expect("the source keeps running");
            let Feed::Message(msg) = feed else { continue };
            let ev = parse(&msg).expect("a kernel uevent parses");
            assert_ne!(ev.devpath, "/devices/ap", "a forged uevent got through");
            if ev.devpath == "/devices/virtual/mem/null" {
                assert_eq!(ev.action, "change");
                break;
            }
        }
    }

    /// Thousands of queued events make one burst: one re-read of what
    /// they name, not one per event.
    #[tokio::test]
    async fn a_burst_of_thousands_of_events_is_one_re_read() {
        // Room for all of them (8,192 and one), as if apd were busy.
        let (tx, mut rx) = mpsc::channel(8193);
        // 256 adapters x 16 domains unbound then bound (a mask change on a
        // big host), plus noise apd ignores.
        let mut sent = 0;
        for a in 0..=255u8 {
            for d in 0..16u8 {
                for action in ["unbind", "bind"] {
                    let devpath = format!("/devices/ap/card{a:02x}/{a:02x}.{d:04x}");
                    let msg = wire(&[
                        &format!("{action}@{devpath}"),
                        &format!("ACTION={action}"),
                        &format!("DEVPATH={devpath}"),
                        "SUBSYSTEM=ap",
                        "DRIVER=vfio_ap",
                    ]);
                    tx.send(Feed::Message(msg)).await.expect("queued");
                    sent += 1;
                }
            }
        }
        tx.send(Feed::Message(b"not a uevent".to_vec()))
            .await
            .expect("queued");
        sent += 1;
        drop(tx);
        let burst = next_burst(&mut rx).await.expect("a burst");
        assert_eq!(burst.events, sent);
        assert_eq!(burst.stale.queues.len(), 256 * 16);
        assert!(burst.stale.masks && !burst.stale.everything);
        assert!(burst.unblock, "a bind may let a failed start succeed");
        assert!(next_burst(&mut rx).await.is_none(), "nothing left over");
    }

    /// A netlink buffer overrun (events lost) asks for a whole re-read
    /// instead of going on as if nothing was missed.
    #[tokio::test]
    async fn a_netlink_overrun_asks_for_a_resync() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to send to the uevent group");
            return;
        }
        // The smallest buffer the kernel allows, and a reader that cannot
        // run while this (single-threaded) test floods the group.
        let (tx, mut rx) = mpsc::channel(64);
        let fd = open_netlink_with(1).expect("netlink socket");
        tokio::spawn(follow_netlink(fd, tx));
        let flooder = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .expect("flooder socket");
        let msg = [b'x'; 1024];
        for _ in 0..256 {
            let _ = socket::sendto(
                flooder.as_raw_fd(),
                &msg,
                &NetlinkAddr::new(0, 1),
                MsgFlags::empty(),
            );
        }
        // A hang guard, not a performance verdict.
        let feed = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("a feed within the liveness bound")
            .expect("the source keeps running");
        assert_eq!(feed, Feed::Resync("netlink buffer overrun"));
    }

    /// The socket source reads one message per packet, reconnects when
    /// the server goes away, and asks for a re-read after reconnecting.
    #[tokio::test]
    async fn the_socket_source_reconnects_and_resyncs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("uevents.sock");
        let listener = socket::socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("listener");
        socket::bind(listener.as_raw_fd(), &UnixAddr::new(&path).expect("addr")).expect("bind");
        socket::listen(&listener, socket::Backlog::new(4).expect("backlog")).expect("listen");
        let server = std::thread::spawn(move || {
            for text in [
                "add@/devices/ap/card05\0SUBSYSTEM=ap\0",
                "remove@/devices/ap/card05\0SUBSYSTEM=ap\0",
            ] {
                let conn = socket::accept(listener.as_raw_fd()).expect("accept");
                socket::send(conn, text.as_bytes(), MsgFlags::empty()).expect("send");
                // Closing the connection: the client sees EOF and reconnects.
                nix::unistd::close(conn).expect("close");
            }
        });
        let (tx, mut rx) = mpsc::channel(16);
        spawn(Source::Socket(path), tx)
            .await
            .expect("socket source");
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let feed = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                .await
                .expect("a hang guard, not a performance verdict")
                .expect("the source keeps running");
            seen.push(match feed {
                Feed::Message(m) => parse(&m).expect("valid").action,
                Feed::Resync(_) => "resync".to_string(),
            });
        }
        assert_eq!(seen, vec!["add", "resync", "remove"]);
        server.join().expect("server thread");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(ev) = parse(&bytes) {
                let _ = ev.classify();
            }
        }

        #[test]
        fn structured_garbage_never_panics(
            action in "[a-z]{0,8}",
            path in "(/devices(/ap(/card[0-9a-fA-F]{0,3}(/[0-9a-f.]{0,8})?)?|/vfio_ap/matrix(/[0-9a-f-]{0,40})?)?)?",
            keys in proptest::collection::vec(("[A-Z_]{0,10}", "[ -~\n]{0,20}"), 0..6),
        ) {
            let mut msg = format!("{action}@{path}").into_bytes();
            msg.push(0);
            for (k, v) in &keys {
                msg.extend_from_slice(format!("{k}={v}").as_bytes());
                msg.push(0);
            }
            if let Ok(ev) = parse(&msg) {
                let c = ev.classify();
                let _ = c.may_unblock_start();
            }
        }

        #[test]
        fn well_formed_messages_round_trip(
            action in "[a-z]{1,8}",
            keys in proptest::collection::btree_map("[A-Z]{1,10}", "[ -~\n]{0,20}", 0..6),
        ) {
            let mut msg = format!("{action}@/devices/ap").into_bytes();
            msg.push(0);
            for (k, v) in &keys {
                if k == "ACTION" || k == "DEVPATH" { continue; }
                msg.extend_from_slice(format!("{k}={v}").as_bytes());
                msg.push(0);
            }
            let ev = parse(&msg).expect("well formed");
            prop_assert_eq!(ev.action, action);
            for (k, v) in &keys {
                if k == "ACTION" || k == "DEVPATH" { continue; }
                prop_assert_eq!(ev.env.get(k), Some(v));
            }
        }
    }
}
