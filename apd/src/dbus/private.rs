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
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

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
    let stream = match apbus::socket::UnixPeer::server(stream) {
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
