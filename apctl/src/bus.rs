//! The connection to apd: which bus (or apd's private socket), how to
//! connect, and how D-Bus failures become one sentence with a hint.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{quote_input, CliError};
use apbus::proxy::ManagerProxy;
use zbus::proxy::CacheProperties;

pub use apbus::bus::BusChoice;

/// The bus named by `--bus` or `APCTL_BUS`: the system bus when neither is
/// given, else `system`, `session` or a D-Bus address (`transport:key=value,...`).
pub fn choose(input: Option<&str>) -> Result<BusChoice, CliError> {
    let Some(input) = input else {
        return Ok(BusChoice::System);
    };
    BusChoice::parse(input).map_err(|_| {
        CliError::usage(format!(
            "invalid bus {}: write system, session, or a D-Bus address such as unix:path=/run/dbus/system_bus_socket (from --bus or {})",
            quote_input(input),
            apbus::BUS_ENV
        ))
    })
}

/// The private socket apctl tries when no bus is named: `$APCTL_PRIVATE_SOCKET`,
/// else `/run/apd/private`. None when a bus is named (`--bus`, `APCTL_BUS`):
/// then apctl goes where it is told.
pub fn private_socket(bus_named: bool) -> Option<PathBuf> {
    if bus_named {
        return None;
    }
    Some(match std::env::var_os(apbus::PRIVATE_SOCKET_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(apbus::RUNTIME_DIR).join(apbus::PRIVATE_SOCKET_NAME),
    })
}

/// How apctl reaches apd, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Through a bus daemon.
    Bus(BusChoice),
    /// Directly, on apd's private socket.
    Private(PathBuf),
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Link::Bus(bus) => bus.fmt(f),
            Link::Private(path) => write!(f, "its private socket {}", path.display()),
        }
    }
}

/// A connection to apd and the proxy of its Manager.
#[derive(Debug)]
pub struct Apd {
    /// How apd is reached, for messages.
    pub link: Link,
    /// The connection (monitor subscribes to signals on it).
    pub connection: zbus::Connection,
    /// `org.apctl.Apd1.Manager`.
    pub manager: ManagerProxy<'static>,
}

impl Apd {
    /// Connects to the bus; apd itself is only reached by the first call.
    pub async fn connect(bus: BusChoice) -> Result<Apd, CliError> {
        tracing::debug!(bus = %bus, "connecting");
        let connection = match bus.connection_builder().await {
            Ok(b) => b.build().await,
            Err(e) => Err(e),
        }
        .map_err(|e| connect_error(&bus, &e))?;
        Apd::on(Link::Bus(bus.clone()), connection)
            .await
            .map_err(|e| connect_error(&bus, &e))
    }

    /// Connects to apd's private socket at `path`, or says why not (the
    /// caller then uses the bus: the socket is absent when apd does not
    /// run, and closed to all but root).
    pub async fn connect_private(path: &Path) -> Result<Apd, String> {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map(apbus::socket::UnixPeer::client_without_fds)
            .map_err(|e| e.to_string())?;
        // apctl passes no file descriptors: the handshake is one round trip.
        let connection = zbus::connection::Builder::socket(stream)
            .p2p()
            .build()
            .await
            .map_err(|e| e.to_string())?;
        Apd::on(Link::Private(path.to_path_buf()), connection)
            .await
            .map_err(|e| e.to_string())
    }

    /// apd's Manager on `connection`, reached by `link`.
    async fn on(link: Link, connection: zbus::Connection) -> zbus::Result<Apd> {
        let manager = ManagerProxy::builder(&connection)
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        Ok(Apd {
            link,
            connection,
            manager,
        })
    }

    /// Turns an error of a call to apd into the sentence to print.
    pub fn error(&self, e: apbus::Error) -> CliError {
        call_error(&self.link, e)
    }
}

fn connect_error(bus: &BusChoice, e: &zbus::Error) -> CliError {
    CliError::failed(format!(
        "cannot reach apd on {bus}: cannot connect to the bus ({}); is the D-Bus daemon running? Use --bus or {} for another bus.",
        plain(&e.to_string()),
        apbus::BUS_ENV
    ))
}

/// The name and description of an error reply that apbus did not map to one
/// of apd's named errors (bus daemon errors, unknown names).
fn method_error(e: &zbus::Error) -> Option<(String, String)> {
    match e {
        zbus::Error::MethodError(name, desc, _) => {
            Some((name.as_str().to_string(), desc.clone().unwrap_or_default()))
        }
        zbus::Error::FDO(fdo) => {
            let fdo: &zbus::fdo::Error = fdo;
            Some((
                zbus::DBusError::name(fdo).as_str().to_string(),
                zbus::DBusError::description(fdo)
                    .unwrap_or_default()
                    .to_string(),
            ))
        }
        _ => None,
    }
}

/// Maps an error of a call to apd to one sentence and exit 1.
pub fn call_error(bus: &Link, e: apbus::Error) -> CliError {
    let apbus::Error::ZBus(z) = e else {
        // One of apd's named refusals: its sentence is the message.
        return CliError::failed(plain(&e.sentence()));
    };
    let Some((name, desc)) = method_error(&z) else {
        return CliError::failed(format!(
            "lost the connection to apd on {bus} ({}); is apd running? (systemctl status apd)",
            plain(&z.to_string())
        ));
    };
    let short = name.rsplit('.').next().unwrap_or_default();
    let sentence = match short {
        "ServiceUnknown" | "NameHasNoOwner" => format!(
            "cannot reach apd on {bus}: the name {} has no owner; is apd running? (systemctl status apd) Use --bus or {} for another bus.",
            apbus::BUS_NAME,
            apbus::BUS_ENV
        ),
        "AccessDenied" | "AuthFailed" | "InteractiveAuthorizationRequired" => format!(
            "{bus} denied the call ({}); changing AP configuration requires root or the polkit action {}",
            plain(&desc),
            apbus::POLKIT_ACTION
        ),
        "UnknownMethod" | "UnknownInterface" | "UnknownObject" | "UnknownProperty" | "InvalidArgs" => {
            format!(
                "apd on {bus} does not understand this request ({}); are apctl and apd the same version?",
                plain(&desc)
            )
        }
        "NoReply" | "Timeout" | "TimedOut" => format!(
            "apd on {bus} did not answer in time ({}); it may be busy, try again",
            plain(&desc)
        ),
        "Disconnected" | "NoServer" | "NoNetwork" => format!(
            "lost the connection to apd on {bus} ({}); is apd running? (systemctl status apd)",
            plain(&desc)
        ),
        _ if !desc.is_empty() => plain(&desc),
        _ => format!("apd on {bus} failed without saying why ({short})"),
    };
    CliError::failed(sentence)
}

/// One line of text: what a remote or library message becomes before it is
/// printed (no newlines or control characters, no trailing period doubling).
pub fn plain(s: &str) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    one.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_choices() {
        assert_eq!(choose(None), Ok(BusChoice::System));
        assert_eq!(choose(Some("system")), Ok(BusChoice::System));
        assert_eq!(choose(Some("session")), Ok(BusChoice::Session));
        assert_eq!(
            choose(Some("unix:path=/tmp/bus")),
            Ok(BusChoice::Address("unix:path=/tmp/bus".into()))
        );
        for bad in ["sytem", "", ":x", "unix:", "/tmp/bus"] {
            let e = choose(Some(bad)).expect_err(bad);
            assert_eq!(e.code, 2);
            assert!(e.sentence.contains("APCTL_BUS"), "{e}");
        }
    }

    #[test]
    fn refusals_keep_apds_sentence() {
        let s = "cannot assign domain 0x47 to guest2: queue 05.0047 is already assigned to guest1 (62177883-f1bb-47f0-914d-32a22e3a8804)";
        let e = call_error(
            &Link::Bus(BusChoice::System),
            apbus::Error::new(apbus::ErrorKind::InUse, s),
        );
        assert_eq!(e.sentence, s);
        assert_eq!(e.code, 1);
    }

    #[test]
    fn fdo_errors_become_hints() {
        let e = call_error(
            &Link::Bus(BusChoice::System),
            apbus::Error::ZBus(zbus::Error::FDO(Box::new(
                zbus::fdo::Error::ServiceUnknown("The name is not activatable".into()),
            ))),
        );
        assert_eq!(
            e.sentence,
            "cannot reach apd on the system bus: the name org.apctl.Apd1 has no owner; is apd running? (systemctl status apd) Use --bus or APCTL_BUS for another bus."
        );
        let e = call_error(
            &Link::Bus(BusChoice::Session),
            apbus::Error::ZBus(zbus::Error::FDO(Box::new(zbus::fdo::Error::AccessDenied(
                "Rejected send message".into(),
            )))),
        );
        assert!(
            e.sentence
                .starts_with("the session bus denied the call (Rejected send message)"),
            "{e}"
        );
        assert!(!e.sentence.contains("org.freedesktop"), "{e}");
    }
}
