//! Kernel uevents for processes outside: a SOCK_SEQPACKET unix socket, one
//! uevent per packet, every event to every client connected at the time.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno as NixErrno;
use nix::sys::socket::{
    bind, listen, send, socket, AddressFamily, Backlog, MsgFlags, SockFlag, SockType, UnixAddr,
};

use crate::owned_fd::accept_owned;

/// How often pending connections are accepted while no event comes.
const ACCEPT_TICK: Duration = Duration::from_millis(100);

/// Creates the listening socket at `path`, replacing a stale socket file.
pub fn listen_at(path: &Path) -> std::io::Result<OwnedFd> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    listen(&fd, Backlog::new(128)?)?;
    Ok(fd)
}

/// Accepts every connection waiting in the backlog; each client gets a
/// writer thread so a slow reader never holds up the others.
fn accept_pending(listener: &OwnedFd, clients: &mut Vec<Sender<Arc<Vec<u8>>>>) {
    loop {
        match accept_owned(listener, SockFlag::SOCK_CLOEXEC) {
            Ok(fd) => {
                let (tx, rx) = channel::<Arc<Vec<u8>>>();
                let spawned = std::thread::Builder::new()
                    .name("apsim-uevent-client".into())
                    .spawn(move || {
                        for msg in rx {
                            if let Err(e) = send(fd.as_raw_fd(), &msg, MsgFlags::MSG_NOSIGNAL) {
                                tracing::debug!("apsim: uevent client gone: {e}");
                                return;
                            }
                        }
                    });
                match spawned {
                    Ok(_) => clients.push(tx),
                    Err(e) => tracing::error!("apsim: cannot serve a uevent client: {e}"),
                }
            }
            Err(NixErrno::EAGAIN) => return,
            Err(NixErrno::EINTR | NixErrno::ECONNABORTED) => {}
            Err(e) => {
                tracing::error!("apsim: accept on the uevent socket failed: {e}");
                return;
            }
        }
    }
}

/// Forwards uevents from `events` to the socket's clients until `events`
/// ends. A client whose connect returned before an event was emitted is
/// accepted before that event is sent, so it gets it.
pub fn forward(listener: OwnedFd, events: Receiver<Vec<u8>>) {
    let mut clients = Vec::new();
    loop {
        let next = events.recv_timeout(ACCEPT_TICK);
        accept_pending(&listener, &mut clients);
        match next {
            Ok(ev) => {
                let ev = Arc::new(ev);
                clients.retain(|c| c.send(Arc::clone(&ev)).is_ok());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
