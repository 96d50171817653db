//! apd's socket to the bus, with a bound on the replies zbus itself builds.
//!
//! `Introspect` and `GetManagedObjects` are answered by zbus, not by apd's
//! code, so [`super::gate`] cannot hold them; and they grow with the mdevs
//! (zbus introspects the whole tree below a node: 2.6 MB from the root
//! with 1,000 mdevs). zbus answers each call in a task of its own and
//! writes every reply to one socket, so under a flood finished replies
//! wait for the socket by the hundred (a flood of `Introspect` alone took
//! apd past 500 MiB). Here the socket's read half lets at most
//! [`TREE_READS`] such calls in at once, until a reply to one of them has
//! been written (seen by the write half); one more is refused as Busy
//! (by [`answer_refused`]) and never reaches zbus. The reader never waits
//! for them: a change behind them is read at once.

use std::collections::HashMap;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use zbus::connection::socket::{BoxedSplit, ReadHalf, Split, WriteHalf};
use zbus::connection::AuthMechanism;
use zbus::connection::Socket;
use zbus::fdo::ConnectionCredentials;
use zbus::message::{Flags, Message, Type as MessageType};

/// Calls answered by zbus whose replies grow with the tree, in at once.
pub const TREE_READS: usize = 2;

/// Refused tree calls waiting for their Busy answer; past this, one is
/// dropped (its caller's own timeout answers it).
const REFUSED_QUEUE: usize = 1024;

/// The interfaces whose calls zbus answers with the whole tree.
const TREE_INTERFACES: [&str; 2] = [
    "org.freedesktop.DBus.Introspectable",
    "org.freedesktop.DBus.ObjectManager",
];

/// Calls let in and not yet answered, by (caller, serial).
#[derive(Debug)]
struct InFlight {
    permits: Arc<Semaphore>,
    calls: Mutex<HashMap<(String, u32), OwnedSemaphorePermit>>,
    /// Calls refused, for [`answer_refused`] to answer.
    refused: mpsc::Sender<Message>,
}

impl InFlight {
    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), OwnedSemaphorePermit>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The caller and serial of a call zbus will answer with the whole tree
/// (and a reply: a call that wants none is not held).
fn tree_call(msg: &Message) -> Option<(String, u32)> {
    let hdr = msg.header();
    if hdr.message_type() != MessageType::MethodCall
        || hdr.primary().flags().contains(Flags::NoReplyExpected)
    {
        return None;
    }
    let iface = hdr.interface()?;
    if !TREE_INTERFACES.contains(&iface.as_str()) {
        return None;
    }
    Some((hdr.sender()?.to_string(), hdr.primary().serial_num().get()))
}

/// The call a reply answers: (its destination, the serial it replies to).
fn answered(msg: &Message) -> Option<(String, u32)> {
    let hdr = msg.header();
    if !matches!(
        hdr.message_type(),
        MessageType::MethodReturn | MessageType::Error
    ) {
        return None;
    }
    Some((hdr.destination()?.to_string(), hdr.reply_serial()?.get()))
}

#[derive(Debug)]
pub struct GatedRead<R> {
    inner: R,
    in_flight: Arc<InFlight>,
}

#[derive(Debug)]
pub struct GatedWrite<W> {
    inner: W,
    in_flight: Arc<InFlight>,
}

#[zbus::export::async_trait::async_trait]
impl<R: ReadHalf> ReadHalf for GatedRead<R> {
    async fn receive_message(
        &mut self,
        seq: u64,
        already_received_bytes: &mut Vec<u8>,
        already_received_fds: &mut Vec<OwnedFd>,
    ) -> zbus::Result<Message> {
        loop {
            let msg = self
                .inner
                .receive_message(seq, already_received_bytes, already_received_fds)
                .await?;
            let Some(call) = tree_call(&msg) else {
                return Ok(msg);
            };
            match self.in_flight.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    self.in_flight.calls().insert(call, permit);
                    return Ok(msg);
                }
                Err(TryAcquireError::NoPermits) => {
                    // Answered Busy aside; the next message is read at once.
                    if self.in_flight.refused.try_send(msg).is_err() {
                        tracing::debug!(
                            caller = call.0,
                            "a tree call dropped: too many refused at once"
                        );
                    }
                }
                Err(TryAcquireError::Closed) => {
                    return Err(zbus::Error::Failure(
                        "apd's bus reader is closed".to_string(),
                    ))
                }
            }
        }
    }

    async fn recvmsg(&mut self, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        self.inner.recvmsg(buf).await
    }

    fn can_pass_unix_fd(&self) -> bool {
        self.inner.can_pass_unix_fd()
    }

    async fn peer_credentials(&mut self) -> io::Result<ConnectionCredentials> {
        self.inner.peer_credentials().await
    }

    fn auth_mechanism(&self) -> AuthMechanism {
        self.inner.auth_mechanism()
    }
}

#[zbus::export::async_trait::async_trait]
impl<W: WriteHalf> WriteHalf for GatedWrite<W> {
    async fn send_message(&mut self, msg: &Message) -> zbus::Result<()> {
        let sent = self.inner.send_message(msg).await;
        // Written (or failed): either way that call is over.
        if let Some(call) = answered(msg) {
            let mut calls = self.in_flight.calls();
            if calls.remove(&call).is_some() && calls.is_empty() {
                // The tree replies are freed: hand their memory back.
                drop(tokio::task::spawn_blocking(crate::memory::give_back));
            }
        }
        sent
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
        self.inner.peer_credentials().await
    }
}

/// The unix socket of `address`, connected and gated; `None` for an
/// address that is not a unix socket (then zbus connects as usual).
pub async fn connect(
    address: &zbus::Address,
) -> io::Result<Option<(BoxedSplit, mpsc::Receiver<Message>)>> {
    let Some(stream) = apbus::bus::connect_unix(address).await? else {
        return Ok(None);
    };
    let (refused, calls) = mpsc::channel(REFUSED_QUEUE);
    Ok(Some((GatedStream { stream, refused }.into(), calls)))
}

/// Answers the tree calls the reader refused, Busy, until the connection
/// ends.
pub async fn answer_refused(conn: zbus::Connection, mut calls: mpsc::Receiver<Message>) {
    let busy = format!("{}.Busy", apbus::ERROR_PREFIX);
    let sentence = format!(
        "apd is answering {TREE_READS} introspections or object listings; try again in a moment"
    );
    while let Some(call) = calls.recv().await {
        if let Err(e) = conn
            .reply_error(&call.header(), busy.as_str(), &(sentence.as_str(),))
            .await
        {
            tracing::debug!(error = %e, "cannot answer a refused introspection");
        }
    }
}

/// A unix stream whose halves hold the tree calls.
#[derive(Debug)]
struct GatedStream {
    stream: tokio::net::UnixStream,
    refused: mpsc::Sender<Message>,
}

impl Socket for GatedStream {
    type ReadHalf = GatedRead<tokio::net::unix::OwnedReadHalf>;
    type WriteHalf = GatedWrite<tokio::net::unix::OwnedWriteHalf>;

    fn split(self) -> Split<Self::ReadHalf, Self::WriteHalf> {
        let (read, write) = self.stream.into_split();
        let in_flight = Arc::new(InFlight {
            permits: Arc::new(Semaphore::new(TREE_READS)),
            calls: Mutex::new(HashMap::new()),
            refused: self.refused,
        });
        let read = GatedRead {
            inner: read,
            in_flight: in_flight.clone(),
        };
        let write = GatedWrite {
            inner: write,
            in_flight,
        };
        Split::new(read, write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(iface: &str, member: &str, flags: Option<Flags>) -> Message {
        let mut b = Message::method_call(apbus::ROOT_PATH, member)
            .and_then(|b| b.interface(iface))
            .and_then(|b| b.sender(":1.42"))
            .expect("a call");
        if let Some(f) = flags {
            b = b.with_flags(f).expect("flags");
        }
        b.build(&()).expect("built")
    }

    #[test]
    fn introspection_and_object_listings_are_held_and_their_replies_release_them() {
        let intro = call("org.freedesktop.DBus.Introspectable", "Introspect", None);
        let serial = intro.primary_header().serial_num().get();
        assert_eq!(tree_call(&intro), Some((":1.42".to_string(), serial)));
        let om = call(
            "org.freedesktop.DBus.ObjectManager",
            "GetManagedObjects",
            None,
        );
        assert!(tree_call(&om).is_some());
        // apd's own methods pass the read gate instead; a call that wants
        // no reply would never release its place.
        assert!(tree_call(&call(apbus::MANAGER_INTERFACE, "ListQueues", None)).is_none());
        let quiet = call(
            "org.freedesktop.DBus.Introspectable",
            "Introspect",
            Some(Flags::NoReplyExpected),
        );
        assert!(tree_call(&quiet).is_none());

        let reply = Message::method_return(&intro.header())
            .and_then(|b| b.build(&("<node/>",)))
            .expect("a reply");
        assert_eq!(answered(&reply), Some((":1.42".to_string(), serial)));
        let error = Message::error(&intro.header(), "org.apctl.Apd1.Error.Busy")
            .and_then(|b| b.build(&("busy",)))
            .expect("an error");
        assert_eq!(answered(&error), Some((":1.42".to_string(), serial)));
        assert_eq!(answered(&intro), None);
    }
}
