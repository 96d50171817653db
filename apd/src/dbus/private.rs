//! apd's private socket, `RUNTIME_DIR/private` (`/run/apd/private`): root's
//! apctl talks to apd over it directly, in the D-Bus protocol without the
//! bus daemon, as systemctl does with `/run/systemd/private`. A call then
//! takes no hop through dbus-daemon and no credentials lookup on the bus
//! (the kernel gives the peer's uid), and root keeps apctl while the
//! system bus is down or stuck.
//!
//! Each peer gets the Manager and Host interfaces of the root object
//! ([`super::Root::serve_peer`]), authorized by [`super::auth`] from its
//! socket credentials. Signals, mdev objects and the ObjectManager stay on
//! the bus: `apctl monitor` and other tools use the bus.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use zbus::connection::socket::{ReadHalf, Split, WriteHalf};
use zbus::connection::{AuthMechanism, Socket};
use zbus::fdo::ConnectionCredentials;
use zbus::message::Message;

use super::Root;

use apbus::PRIVATE_SOCKET_NAME;

/// How the read gate names the private socket's peers (they have no bus
/// name; they count as one caller).
pub const CALLER: &str = "the private socket";

/// Peers connected at once; one more is closed at once (its apctl then
/// uses the bus). Each apctl holds one for a few milliseconds.
const MAX_PEERS: usize = 64;

/// A peer that has not finished the D-Bus handshake by then is closed.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// The socket apd listens on, removed when apd stops.
#[derive(Debug)]
pub struct PrivateSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl PrivateSocket {
    /// Listens on `dir/private`, mode 0600. A socket left there by an apd
    /// that was killed is replaced; anything else by that name is an error
    /// (apd removes only what it made).
    pub fn bind(dir: &Path) -> io::Result<PrivateSocket> {
        let path = dir.join(PRIVATE_SOCKET_NAME);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_socket() => std::fs::remove_file(&path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Connecting takes write permission on the socket: with the usual
        // umask only apd's user has it from the start; 0600 says so.
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(PrivateSocket { listener, path })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves every peer that connects until the task is dropped.
    pub async fn serve(self, root: Root) {
        let peers = Arc::new(Semaphore::new(MAX_PEERS));
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!(error = %e, "cannot accept a peer on the private socket");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = peers.clone().try_acquire_owned() else {
                tracing::debug!("private socket: too many peers; one closed");
                continue;
            };
            let root = root.clone();
            tokio::spawn(async move {
                serve_peer(stream, &root).await;
                drop(permit);
            });
        }
    }
}

impl Drop for PrivateSocket {
    fn drop(&mut self) {
        // A socket nobody listens on would make apctl try it first.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One peer: the handshake, the root object, and the connection kept until
/// the peer closes it.
async fn serve_peer(stream: UnixStream, root: &Root) {
    let stream = match PeerStream::new(stream) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "private socket: a peer without credentials");
            return;
        }
    };
    let build = async {
        let builder = zbus::connection::Builder::socket(stream)
            .server(zbus::Guid::generate())?
            .p2p();
        root.serve_peer(builder)?.build().await
    };
    let conn = match tokio::time::timeout(HANDSHAKE, build).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "private socket: a peer failed the handshake");
            return;
        }
        Err(_) => {
            tracing::debug!("private socket: a peer did not finish the handshake in time");
            return;
        }
    };
    conn.closed().await;
}

/// A peer's stream with the credentials the kernel gave at its connect
/// (SO_PEERCRED: uid and pid). zbus asks for them twice, for the
/// handshake's EXTERNAL check and for [`super::auth`]; its own socket
/// reads the peer's /proc files each time (a third of a millisecond per
/// call on a small host), for groups and a pidfd nobody here uses.
#[derive(Debug)]
struct PeerStream {
    stream: UnixStream,
    credentials: Credentials,
}

/// What the kernel said of the peer at its connect.
#[derive(Debug, Clone, Copy)]
struct Credentials {
    uid: u32,
    pid: Option<u32>,
}

impl Credentials {
    fn zbus(self) -> ConnectionCredentials {
        let c = ConnectionCredentials::default().set_unix_user_id(self.uid);
        match self.pid {
            Some(pid) => c.set_process_id(pid),
            None => c,
        }
    }
}

impl PeerStream {
    fn new(stream: UnixStream) -> io::Result<PeerStream> {
        let cred = stream.peer_cred()?;
        let credentials = Credentials {
            uid: cred.uid(),
            pid: cred.pid().and_then(|p| u32::try_from(p).ok()),
        };
        Ok(PeerStream {
            stream,
            credentials,
        })
    }
}

impl Socket for PeerStream {
    type ReadHalf = PeerRead;
    type WriteHalf = PeerWrite;

    fn split(self) -> Split<PeerRead, PeerWrite> {
        let (read, write) = self.stream.into_split();
        Split::new(
            PeerRead {
                inner: read,
                credentials: self.credentials,
            },
            PeerWrite {
                inner: write,
                credentials: self.credentials,
            },
        )
    }
}

/// The read half: tokio's, with the credentials of [`PeerStream`].
#[derive(Debug)]
struct PeerRead {
    inner: OwnedReadHalf,
    credentials: Credentials,
}

/// The write half: tokio's, with the credentials of [`PeerStream`].
#[derive(Debug)]
struct PeerWrite {
    inner: OwnedWriteHalf,
    credentials: Credentials,
}

#[zbus::export::async_trait::async_trait]
impl ReadHalf for PeerRead {
    async fn receive_message(
        &mut self,
        seq: u64,
        already_received_bytes: &mut Vec<u8>,
        already_received_fds: &mut Vec<OwnedFd>,
    ) -> zbus::Result<Message> {
        self.inner
            .receive_message(seq, already_received_bytes, already_received_fds)
            .await
    }

    async fn recvmsg(&mut self, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        self.inner.recvmsg(buf).await
    }

    fn can_pass_unix_fd(&self) -> bool {
        self.inner.can_pass_unix_fd()
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        Ok(self.credentials.zbus())
    }

    fn auth_mechanism(&self) -> AuthMechanism {
        self.inner.auth_mechanism()
    }
}

#[zbus::export::async_trait::async_trait]
impl WriteHalf for PeerWrite {
    async fn send_message(&mut self, msg: &Message) -> zbus::Result<()> {
        self.inner.send_message(msg).await
    }

    async fn sendmsg(&mut self, buffer: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
        self.inner.sendmsg(buffer, fds).await
    }

    async fn close(&mut self) -> io::Result<()> {
        self.inner.close().await
    }

    fn can_pass_unix_fd(&self) -> bool {
        self.inner.can_pass_unix_fd()
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        Ok(self.credentials.zbus())
    }
}
