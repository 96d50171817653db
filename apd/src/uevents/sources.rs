//! The sources of uevents: netlink (a real host), the SOCK_SEQPACKET
//! socket of `apsim mount`, and the in-process simulator's channel.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, UnixAddr,
};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::Feed;
use libap::uevent::MAX_MESSAGE;

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

    use crate::uevents::parse;

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
}
