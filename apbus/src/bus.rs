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

    /// A connection builder for this bus; the caller adds what it serves and builds.
    pub fn connection_builder(&self) -> zbus::Result<zbus::connection::Builder<'static>> {
        match self {
            BusChoice::System => zbus::connection::Builder::system(),
            BusChoice::Session => zbus::connection::Builder::session(),
            BusChoice::Address(a) => zbus::connection::Builder::address(a.as_str()),
        }
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

    #[test]
    fn an_address_builds_a_builder_without_connecting() {
        assert!(BusChoice::Address("unix:path=/nonexistent/bus".into())
            .connection_builder()
            .is_ok());
    }
}
