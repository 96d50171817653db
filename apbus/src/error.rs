//! The named errors of `org.apctl.Apd1`. Each carries the one sentence an
//! admin reads: what was refused, why, and who is in the way.

use zbus::DBusError;

/// An error returned by apd; the D-Bus name is `org.apctl.Apd1.Error.<Variant>`.
#[derive(DBusError, Debug)]
#[zbus(prefix = "org.apctl.Apd1.Error", impl_display = false)]
pub enum Error {
    /// Transport or protocol failure, not a refusal by apd.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The queue or mdev is used by another mdev or by a running guest.
    InUse(String),
    /// The queue belongs to the host's zcrypt drivers (apmask/aqmask).
    HostOwned(String),
    /// An id above the host's maximum adapter or domain id.
    OutOfRange(String),
    /// The kernel or another writer is busy; try again.
    Busy(String),
    /// No such mdev, definition or adapter.
    NotFound(String),
    /// The UUID or name is taken.
    Exists(String),
    /// Malformed input: a mask, an id list, a name, a state file.
    Invalid(String),
    /// Definitions or a desired state contradict each other or the host.
    Conflict(String),
    /// The kernel refused or an I/O error happened; the sentence says which.
    Failed(String),
    /// The caller may read but not change (uid 0 or polkit required).
    AccessDenied(String),
}

/// The kind of an [`Error`], without its sentence: what scripts branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// See [`Error::ZBus`].
    Transport,
    /// See [`Error::InUse`].
    InUse,
    /// See [`Error::HostOwned`].
    HostOwned,
    /// See [`Error::OutOfRange`].
    OutOfRange,
    /// See [`Error::Busy`].
    Busy,
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::Exists`].
    Exists,
    /// See [`Error::Invalid`].
    Invalid,
    /// See [`Error::Conflict`].
    Conflict,
    /// See [`Error::Failed`].
    Failed,
    /// See [`Error::AccessDenied`].
    AccessDenied,
}

impl Error {
    /// Builds the error of `kind` with `message`; `Transport` becomes `Failed`
    /// since a server never sends a transport error on purpose.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let m = message.into();
        match kind {
            ErrorKind::InUse => Error::InUse(m),
            ErrorKind::HostOwned => Error::HostOwned(m),
            ErrorKind::OutOfRange => Error::OutOfRange(m),
            ErrorKind::Busy => Error::Busy(m),
            ErrorKind::NotFound => Error::NotFound(m),
            ErrorKind::Exists => Error::Exists(m),
            ErrorKind::Invalid => Error::Invalid(m),
            ErrorKind::Conflict => Error::Conflict(m),
            ErrorKind::Transport | ErrorKind::Failed => Error::Failed(m),
            ErrorKind::AccessDenied => Error::AccessDenied(m),
        }
    }

    /// What kind of refusal this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ZBus(_) => ErrorKind::Transport,
            Error::InUse(_) => ErrorKind::InUse,
            Error::HostOwned(_) => ErrorKind::HostOwned,
            Error::OutOfRange(_) => ErrorKind::OutOfRange,
            Error::Busy(_) => ErrorKind::Busy,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Exists(_) => ErrorKind::Exists,
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Failed(_) => ErrorKind::Failed,
            Error::AccessDenied(_) => ErrorKind::AccessDenied,
        }
    }

    /// The sentence for people, without the D-Bus name. For a transport
    /// error it is zbus's description; callers add the hint (is apd running?).
    pub fn sentence(&self) -> String {
        match self {
            Error::ZBus(e) => e.to_string(),
            Error::InUse(m)
            | Error::HostOwned(m)
            | Error::OutOfRange(m)
            | Error::Busy(m)
            | Error::NotFound(m)
            | Error::Exists(m)
            | Error::Invalid(m)
            | Error::Conflict(m)
            | Error::Failed(m)
            | Error::AccessDenied(m) => m.clone(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sentence())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_contract() {
        let e = Error::new(
            ErrorKind::InUse,
            "queue 05.0047 is already assigned to guest1",
        );
        assert_eq!(e.name().as_str(), "org.apctl.Apd1.Error.InUse");
        assert_eq!(e.kind(), ErrorKind::InUse);
        assert_eq!(e.to_string(), "queue 05.0047 is already assigned to guest1");
        let d = Error::new(ErrorKind::AccessDenied, "x");
        assert_eq!(d.name().as_str(), "org.apctl.Apd1.Error.AccessDenied");
    }
}
