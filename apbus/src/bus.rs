//! Which bus apd serves on and apctl calls on: `system`, `session` or a
//! D-Bus address (design.md, "Binaries and flags"). One parser for both, so
//! the daemon and its client agree on what a bus address is; each binary
//! words the refusal in its own voice.

use std::fmt;

/// The bus named by `--bus` (apd, apctl) or `APCTL_BUS` (apctl).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusChoice {
    /// The system bus (production).
    System,
    /// The caller's session bus.
    Session,
    /// A D-Bus address such as `unix:path=/run/apd-test/bus` (a private bus).
    Address(String),
}

/// Why a `--bus` value names no bus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusChoiceError {
    /// The value is empty.
    #[error("no bus given: write system, session or a D-Bus address")]
    Empty,
    /// Neither `system`, `session` nor `transport:key=value,...`.
    #[error("{0:?} is neither system, session nor a D-Bus address")]
    NotABus(String),
}

impl BusChoice {
    /// Parses `system`, `session` or a D-Bus address (`transport:key=value,...`).
    pub fn parse(input: &str) -> Result<BusChoice, BusChoiceError> {
        match input {
            "system" => Ok(BusChoice::System),
            "session" => Ok(BusChoice::Session),
            "" => Err(BusChoiceError::Empty),
            addr if looks_like_address(addr) => Ok(BusChoice::Address(addr.to_string())),
            other => Err(BusChoiceError::NotABus(other.to_string())),
        }
    }

    /// Whether this is the system bus, where only root (or polkit) may change things.
    pub fn is_system(&self) -> bool {
        matches!(self, BusChoice::System)
    }

    /// The D-Bus address of this bus (the system and session buses from the
    /// environment or their defaults, as zbus finds them).
    pub fn address(&self) -> zbus::Result<zbus::Address> {
        match self {
            BusChoice::System => zbus::Address::system(),
            BusChoice::Session => zbus::Address::session(),
            BusChoice::Address(a) => a.as_str().try_into(),
        }
    }

    /// A connection builder for this bus, its socket already connected
    /// where it is a Unix socket ([`connect_unix`]); the caller adds what
    /// it serves and builds. Any other transport is zbus's.
    pub async fn connection_builder(&self) -> zbus::Result<zbus::connection::Builder<'static>> {
        let address = self.address()?;
        match connect_unix(&address).await {
            Ok(Some(stream)) => Ok(zbus::connection::Builder::unix_stream(stream)),
            Ok(None) => zbus::connection::Builder::address(address),
            Err(e) => Err(zbus::Error::Connection(std::sync::Arc::new(e), address)),
        }
    }
}

/// The stream of a bus whose address is a Unix socket (a file, or an
/// abstract name), connected on the caller's thread; None for any other
/// transport. zbus connects a Unix socket on a new blocking thread, which
/// every short-lived apctl would pay a thread start for.
pub async fn connect_unix(
    address: &zbus::Address,
) -> std::io::Result<Option<tokio::net::UnixStream>> {
    use zbus::address::transport::{Transport, UnixSocket};
    let Transport::Unix(unix) = address.transport() else {
        return Ok(None);
    };
    match unix.path() {
        UnixSocket::File(path) => tokio::net::UnixStream::connect(path).await.map(Some),
        UnixSocket::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            use std::os::unix::ffi::OsStrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            let s = std::os::unix::net::UnixStream::connect_addr(&addr)?;
            s.set_nonblocking(true)?;
            tokio::net::UnixStream::from_std(s).map(Some)
        }
        _ => Ok(None),
    }
}

/// `transport:` followed by something, with a transport name of letters,
/// digits and `-`, and no control characters anywhere.
fn looks_like_address(s: &str) -> bool {
    match s.split_once(':') {
        Some((transport, rest)) => {
            !transport.is_empty()
                && transport
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !rest.is_empty()
                && !s.chars().any(char::is_control)
        }
        None => false,
    }
}

impl fmt::Display for BusChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusChoice::System => f.write_str("the system bus"),
            BusChoice::Session => f.write_str("the session bus"),
            BusChoice::Address(a) => write!(f, "the bus at {a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        assert_eq!(BusChoice::parse("system"), Ok(BusChoice::System));
        assert_eq!(BusChoice::parse("session"), Ok(BusChoice::Session));
        assert_eq!(
            BusChoice::parse("unix:path=/tmp/bus"),
            Ok(BusChoice::Address("unix:path=/tmp/bus".into()))
        );
        assert_eq!(
            BusChoice::parse("unix:path=/a;tcp:host=localhost,port=1"),
            Ok(BusChoice::Address(
                "unix:path=/a;tcp:host=localhost,port=1".into()
            ))
        );
        assert!(BusChoice::System.is_system());
        assert!(!BusChoice::Session.is_system());
        assert!(!BusChoice::Address("unix:path=/tmp/bus".into()).is_system());
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(BusChoice::parse(""), Err(BusChoiceError::Empty));
        for bad in [
            "sytem",
            ":x",
            "unix:",
            "/tmp/bus",
            "un ix:path=/x",
            "unix:path=/x\n",
        ] {
            assert_eq!(
                BusChoice::parse(bad),
                Err(BusChoiceError::NotABus(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn described_for_messages() {
        assert_eq!(BusChoice::System.to_string(), "the system bus");
        assert_eq!(BusChoice::Session.to_string(), "the session bus");
        assert_eq!(
            BusChoice::Address("unix:path=/tmp/bus".into()).to_string(),
            "the bus at unix:path=/tmp/bus"
        );
    }

    /// Runs `f` on a current-thread runtime (apctl's) and counts the
    /// threads the runtime started for it (its blocking pool).
    fn threads_started<T>(f: impl std::future::Future<Output = T>) -> (T, usize) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let started = Arc::new(AtomicUsize::new(0));
        let counter = started.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_start(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .expect("a runtime");
        let out = rt.block_on(f);
        (out, started.load(Ordering::SeqCst))
    }

    #[test]
    fn a_socket_file_is_connected_without_a_thread() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("bus");
        let _listener = std::os::unix::net::UnixListener::bind(&path).expect("a listener");
        let bus = BusChoice::Address(format!("unix:path={}", path.display()));
        let (connected, threads) = threads_started(async {
            let builder = bus.connection_builder().await?;
            // No bus answers: only the connect is of interest here.
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(50), builder.build()).await;
            Ok::<_, zbus::Error>(())
        });
        assert!(connected.is_ok(), "{:?}", connected.err());
        assert_eq!(threads, 0, "a thread was started to connect {bus}");
    }

    #[test]
    fn an_abstract_socket_is_connected_without_a_thread() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("apbus-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("an abstract name");
        let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).expect("a listener");
        let bus = BusChoice::Address(format!("unix:abstract={name}"));
        let (connected, threads) =
            threads_started(async { bus.connection_builder().await.map(|_| ()) });
        assert!(connected.is_ok(), "{:?}", connected.err());
        assert_eq!(threads, 0, "a thread was started to connect {bus}");
    }

    #[test]
    fn zbus_alone_starts_a_thread_for_the_same_socket() {
        // The control of the test above, and the reason for the connect
        // of our own: should a zbus release stop starting a thread here,
        // this fails and the connect above can go.
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("bus");
        let _listener = std::os::unix::net::UnixListener::bind(&path).expect("a listener");
        let address = format!("unix:path={}", path.display());
        let (_, threads) = threads_started(async {
            let builder = zbus::connection::Builder::address(address.as_str()).expect("an address");
            // No bus answers: only the connect is of interest here.
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(50), builder.build()).await;
        });
        assert!(threads >= 1, "zbus connected {address} without a thread");
    }

    #[test]
    fn a_failed_connect_names_the_address() {
        let bus = BusChoice::Address("unix:path=/nonexistent/apd-test/bus".into());
        let (built, _) = threads_started(bus.connection_builder());
        let Err(e) = built else {
            panic!("connected to a socket that does not exist");
        };
        let text = e.to_string();
        assert!(text.contains("/nonexistent/apd-test/bus"), "{text}");
    }
}
