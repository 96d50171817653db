//! The unix stream under a zbus connection of apd's private socket, with
//! what apd and apctl know better than zbus's own stream: the peer's
//! credentials as the kernel gave them at the connect (SO_PEERCRED, read
//! once; zbus's own reads the peer's /proc files each time it is asked,
//! for groups and a pidfd nobody here uses, a third of a millisecond per
//! ask on a small host, and a server asks twice), and, for a client that
//! sends none, no file descriptor passing (its handshake is then AUTH and
//! BEGIN: one round trip instead of two).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use zbus::connection::socket::{ReadHalf, Split, WriteHalf};
use zbus::connection::{AuthMechanism, Socket};
use zbus::fdo::ConnectionCredentials;
use zbus::message::Message;

/// A unix stream for `zbus::connection::Builder::socket`.
#[derive(Debug)]
pub struct UnixPeer {
    stream: UnixStream,
    /// A server's peer; a client is never asked for its server's.
    credentials: Option<Credentials>,
    unix_fds: bool,
}

/// What the kernel said of the peer at its connect.
#[derive(Debug, Clone, Copy)]
struct Credentials {
    uid: u32,
    pid: Option<u32>,
}

impl Credentials {
    fn of(stream: &UnixStream) -> io::Result<Credentials> {
        let cred = stream.peer_cred()?;
        Ok(Credentials {
            uid: cred.uid(),
            pid: cred.pid().and_then(|p| u32::try_from(p).ok()),
        })
    }

    fn zbus(self) -> ConnectionCredentials {
        let c = ConnectionCredentials::default().set_unix_user_id(self.uid);
        match self.pid {
            Some(pid) => c.set_process_id(pid),
            None => c,
        }
    }
}

impl UnixPeer {
    /// A server's end of an accepted stream: file descriptors pass if the
    /// client asks.
    pub fn server(stream: UnixStream) -> io::Result<UnixPeer> {
        Ok(UnixPeer {
            credentials: Some(Credentials::of(&stream)?),
            stream,
            unix_fds: true,
        })
    }

    /// A client's end that passes no file descriptors.
    pub fn client_without_fds(stream: UnixStream) -> UnixPeer {
        UnixPeer {
            credentials: None,
            stream,
            unix_fds: false,
        }
    }
}

impl Socket for UnixPeer {
    type ReadHalf = PeerRead;
    type WriteHalf = PeerWrite;

    fn split(self) -> Split<PeerRead, PeerWrite> {
        let (read, write) = self.stream.into_split();
        Split::new(
            PeerRead {
                inner: read,
                credentials: self.credentials,
                unix_fds: self.unix_fds,
            },
            PeerWrite {
                inner: write,
                credentials: self.credentials,
                unix_fds: self.unix_fds,
            },
        )
    }
}

/// The read half: tokio's, with what [`UnixPeer`] knows.
#[derive(Debug)]
pub struct PeerRead {
    inner: OwnedReadHalf,
    credentials: Option<Credentials>,
    unix_fds: bool,
}

/// The write half: tokio's, with what [`UnixPeer`] knows.
#[derive(Debug)]
pub struct PeerWrite {
    inner: OwnedWriteHalf,
    credentials: Option<Credentials>,
    unix_fds: bool,
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
        self.unix_fds && self.inner.can_pass_unix_fd()
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        match self.credentials {
            Some(c) => Ok(c.zbus()),
            None => self.inner.peer_credentials().await,
        }
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
        self.unix_fds && self.inner.can_pass_unix_fd()
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        match self.credentials {
            Some(c) => Ok(c.zbus()),
            None => self.inner.peer_credentials().await,
        }
    }
}
