//! The D-Bus contract between `apd` and its clients (`apctl`, scripts, other
//! tools): which bus (`--bus`), bus and object names, the typed structures
//! that travel on the bus, the named errors and the client proxies.
//!
//! One source of truth: apd serves exactly these types and apctl reads
//! exactly these, so a field cannot drift between the two.
//!
//! Conventions, chosen so that `busctl` and `gdbus` users need no helper:
//! - ids travel as `u` (uint32) so that an id above 255 reaches apd and is
//!   refused with `OutOfRange` instead of being cut to a byte;
//! - "no value" is the empty string (D-Bus has no null);
//! - an mdev argument is its UUID or its name.

pub mod bus;
pub mod error;
pub mod proxy;
pub mod socket;
pub mod types;

pub use error::{Error, ErrorKind};
pub use types::{
    AdapterInfo, ApqnInfo, Definition, DesiredState, Finding, IdLists, MdevInfo, PlanStep,
    QueueInfo, QueueInfoRef, Scope, Status,
};

/// The well-known bus name apd owns.
pub const BUS_NAME: &str = "org.apctl.Apd1";
/// The root object: ObjectManager, Manager and Host interfaces.
pub const ROOT_PATH: &str = "/org/apctl/Apd1";
/// Methods that change or query the whole host.
pub const MANAGER_INTERFACE: &str = "org.apctl.Apd1.Manager";
/// Properties of the host (masks, adapters, load errors).
pub const HOST_INTERFACE: &str = "org.apctl.Apd1.Host";
/// Properties of one mdev, on `/org/apctl/Apd1/mdev/<uuid with _>`.
pub const MDEV_INTERFACE: &str = "org.apctl.Apd1.Mdev";
/// Prefix of every error name apd returns.
pub const ERROR_PREFIX: &str = "org.apctl.Apd1.Error";
/// The polkit action that authorizes changes where polkit runs.
pub const POLKIT_ACTION: &str = "org.apctl.apd.manage";
/// Environment variable apctl reads for the bus when `--bus` is absent.
pub const BUS_ENV: &str = "APCTL_BUS";
/// apd's runtime directory by default (systemd's `RuntimeDirectory=apd`).
pub const RUNTIME_DIR: &str = "/run/apd";
/// apd's private socket in its runtime directory: the D-Bus protocol
/// without the bus daemon, for root's apctl (as `/run/systemd/private`).
pub const PRIVATE_SOCKET_NAME: &str = "private";
/// Environment variable naming the private socket apctl tries (default
/// `RUNTIME_DIR/PRIVATE_SOCKET_NAME`) when no bus is named.
pub const PRIVATE_SOCKET_ENV: &str = "APCTL_PRIVATE_SOCKET";

/// The object path of an mdev: D-Bus paths allow no `-`, so it becomes `_`.
pub fn mdev_path(uuid: &str) -> String {
    format!(
        "{ROOT_PATH}/mdev/{}",
        uuid.to_ascii_lowercase().replace('-', "_")
    )
}

/// The inverse of [`mdev_path`]; `None` for a path that is not an mdev's.
pub fn uuid_from_path(path: &str) -> Option<String> {
    let tail = path.strip_prefix(ROOT_PATH)?.strip_prefix("/mdev/")?;
    if tail.is_empty() || tail.contains('/') {
        return None;
    }
    Some(tail.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdev_path_round_trips() {
        let uuid = "62177883-f1bb-47f0-914d-32a22e3a8804";
        let path = mdev_path(uuid);
        assert_eq!(
            path,
            "/org/apctl/Apd1/mdev/62177883_f1bb_47f0_914d_32a22e3a8804"
        );
        assert!(zvariant::ObjectPath::try_from(path.as_str()).is_ok());
        assert_eq!(uuid_from_path(&path).as_deref(), Some(uuid));
        assert_eq!(uuid_from_path("/org/apctl/Apd1"), None);
        assert_eq!(uuid_from_path("/org/apctl/Apd1/mdev/"), None);
        assert_eq!(uuid_from_path("/org/apctl/Apd1/mdev/a/b"), None);
    }
}
