//! Who may change AP configuration. Reading is open to everyone; a change
//! needs uid 0, the daemon's own uid on a session or private bus, or the
//! polkit action `org.apctl.apd.manage` where polkit runs. The daemon checks
//! this itself from the caller's credentials, not only via the bus policy.
//! On apd's private socket ([`super::private`]) the kernel gives the
//! caller's credentials (SO_PEERCRED) and there is no polkit to ask: root
//! and the daemon's own uid only.

use std::collections::HashMap;

use apbus::Error;
use zbus::message::Header;
use zbus::names::BusName;
use zbus::Connection;
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

/// The well-known name polkit owns on the system bus.
const POLKIT_NAME: &str = "org.freedesktop.PolicyKit1";

/// What the credentials alone decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed: root.
    Root,
    /// Allowed: the daemon's own user on a non-system bus.
    DaemonUser,
    /// Only polkit can allow it.
    AskPolkit,
}

/// The decision from the caller's uid alone.
pub fn decide(caller_uid: u32, daemon_uid: u32, system_bus: bool) -> Decision {
    if caller_uid == 0 {
        Decision::Root
    } else if !system_bus && caller_uid == daemon_uid {
        Decision::DaemonUser
    } else {
        Decision::AskPolkit
    }
}

/// The refusal sentence: which uid, what was refused, what to do.
pub fn denied(uid: Option<u32>, what: &str, polkit_asked: bool) -> Error {
    let who = uid.map_or_else(
        || "a caller with unknown uid".to_string(),
        |u| format!("uid {u}"),
    );
    let polkit = if polkit_asked {
        "and polkit did not grant org.apctl.apd.manage"
    } else {
        "and polkit (org.apctl.apd.manage) is not running"
    };
    Error::AccessDenied(format!(
        "{who} may not {what}: changing AP configuration requires root {polkit}; run the command as root (e.g. with sudo)"
    ))
}

/// The refusal of a peer on the private socket who is neither root nor
/// the daemon's user (the socket's mode keeps them out; this is the
/// second lock).
fn denied_on_private_socket(uid: u32, what: &str) -> Error {
    Error::AccessDenied(format!(
        "uid {uid} may not {what}: on apd's private socket only root may change AP configuration; run the command as root (e.g. with sudo), or use the bus (--bus system) where polkit can grant org.apctl.apd.manage"
    ))
}

/// The authorizer of one daemon.
#[derive(Debug, Clone)]
pub struct Authorizer {
    daemon_uid: u32,
    system_bus: bool,
    /// The callers are peers on the private socket, not bus clients.
    private_socket: bool,
}

impl Authorizer {
    /// For a daemon running as `daemon_uid` on the system bus or not.
    pub fn new(daemon_uid: u32, system_bus: bool) -> Self {
        Self {
            daemon_uid,
            system_bus,
            private_socket: false,
        }
    }

    /// The same daemon's authorizer for the peers of its private socket:
    /// their uid comes from the kernel, and polkit is not asked (it would
    /// need the bus, and the socket lets only root and the daemon's user
    /// in).
    pub fn for_private_socket(&self) -> Self {
        Self {
            daemon_uid: self.daemon_uid,
            system_bus: false,
            private_socket: true,
        }
    }

    /// Allows the call in `hdr` to `what` (e.g. `start mdev guest1`) or
    /// returns `AccessDenied`.
    pub async fn check(
        &self,
        conn: &Connection,
        hdr: &Header<'_>,
        what: &str,
    ) -> Result<(), Error> {
        if self.private_socket {
            let uid = match conn.peer_creds().await {
                Ok(c) => c.unix_user_id(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the credentials of a peer on the private socket");
                    None
                }
            };
            return match uid.map(|u| (u, decide(u, self.daemon_uid, false))) {
                Some((_, Decision::Root | Decision::DaemonUser)) => Ok(()),
                Some((u, Decision::AskPolkit)) => Err(denied_on_private_socket(u, what)),
                None => Err(denied(None, what, false)),
            };
        }
        let sender = hdr
            .sender()
            .ok_or_else(|| denied(None, what, false))?
            .to_owned();
        let dbus = zbus::fdo::DBusProxy::new(conn)
            .await
            .map_err(|e| Error::Failed(format!("cannot ask the bus who called: {e}")))?;
        let uid = match dbus
            .get_connection_credentials(BusName::Unique(sender.clone()))
            .await
        {
            Ok(c) => c.unix_user_id(),
            Err(e) => {
                tracing::warn!(sender = %sender, error = %e, "cannot read the caller's credentials");
                None
            }
        };
        let Some(uid) = uid else {
            return Err(denied(None, what, false));
        };
        match decide(uid, self.daemon_uid, self.system_bus) {
            Decision::Root | Decision::DaemonUser => Ok(()),
            Decision::AskPolkit => {
                let polkit_runs = dbus
                    .name_has_owner(
                        BusName::try_from(POLKIT_NAME).map_err(|e| Error::Failed(e.to_string()))?,
                    )
                    .await
                    .unwrap_or(false);
                if !polkit_runs {
                    tracing::info!(uid, action = what, "refused: not root and no polkit");
                    return Err(denied(Some(uid), what, false));
                }
                if ask_polkit(conn, hdr).await {
                    tracing::info!(uid, action = what, "authorized by polkit");
                    Ok(())
                } else {
                    tracing::info!(uid, action = what, "refused by polkit");
                    Err(denied(Some(uid), what, true))
                }
            }
        }
    }
}

/// polkit may ask the caller to authenticate only when the caller's
/// message allows interactive authorization (D-Bus spec,
/// ALLOW_INTERACTIVE_AUTHORIZATION; `busctl --allow-interactive-authorization`).
fn polkit_flags(
    message: enumflags2::BitFlags<zbus::message::Flags>,
) -> enumflags2::BitFlags<CheckAuthorizationFlags> {
    if message.contains(zbus::message::Flags::AllowInteractiveAuth) {
        CheckAuthorizationFlags::AllowUserInteraction.into()
    } else {
        enumflags2::BitFlags::empty()
    }
}

async fn ask_polkit(conn: &Connection, hdr: &Header<'_>) -> bool {
    let subject = match Subject::new_for_message_header(hdr) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot describe the caller to polkit");
            return false;
        }
    };
    let authority = match AuthorityProxy::new(conn).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot reach polkit");
            return false;
        }
    };
    let details: HashMap<&str, &str> = HashMap::new();
    match authority
        .check_authorization(
            &subject,
            apbus::POLKIT_ACTION,
            &details,
            polkit_flags(hdr.primary().flags()),
            "",
        )
        .await
    {
        Ok(r) => {
            if r.is_challenge {
                tracing::info!("polkit would grant the action after the caller authenticates");
            }
            r.is_authorized
        }
        Err(e) => {
            tracing::warn!(error = %e, "polkit CheckAuthorization failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polkit_may_interact_only_when_the_caller_allows_it() {
        use zbus::message::Flags;
        assert!(polkit_flags(enumflags2::BitFlags::empty()).is_empty());
        assert!(polkit_flags(Flags::NoAutoStart.into()).is_empty());
        assert_eq!(
            polkit_flags(Flags::AllowInteractiveAuth | Flags::NoAutoStart),
            CheckAuthorizationFlags::AllowUserInteraction
        );
    }

    #[test]
    fn root_is_always_allowed() {
        assert_eq!(decide(0, 0, true), Decision::Root);
        assert_eq!(decide(0, 1000, false), Decision::Root);
    }

    #[test]
    fn the_daemon_user_only_off_the_system_bus() {
        assert_eq!(decide(1000, 1000, false), Decision::DaemonUser);
        assert_eq!(decide(1000, 1000, true), Decision::AskPolkit);
    }

    #[test]
    fn others_need_polkit() {
        assert_eq!(decide(65534, 0, true), Decision::AskPolkit);
        assert_eq!(decide(65534, 0, false), Decision::AskPolkit);
        assert_eq!(decide(65534, 1000, false), Decision::AskPolkit);
    }

    #[test]
    fn the_refusal_names_uid_action_and_remedy() {
        let e = denied(Some(65534), "start mdev guest1", false);
        assert_eq!(e.kind(), apbus::ErrorKind::AccessDenied);
        let m = e.sentence();
        assert!(m.starts_with("uid 65534 may not start mdev guest1:"), "{m}");
        assert!(m.contains("run the command as root"), "{m}");
        assert!(m.contains("org.apctl.apd.manage"), "{m}");
        let e = denied(None, "set masks", true);
        assert!(e.sentence().contains("unknown uid"));
        assert!(e.sentence().contains("polkit did not grant"));
    }
}
