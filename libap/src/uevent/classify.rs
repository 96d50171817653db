//! What a uevent means for a host model kept by uevents (apd's): which device it names, what
//! it made stale, and whether it may unblock a failed automatic start.

use crate::apqn::Apqn;
use crate::host::{parse_card_name, parse_mdev_name};
use crate::resync::Stale;
use uuid::Uuid;

use super::Uevent;

impl Uevent {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// What this event means for apd's host model.
    pub fn classify(&self) -> Change {
        let subsystem = self.get("SUBSYSTEM").unwrap_or("");
        let a = self.action.as_str();
        match (subsystem, device_of(&self.devpath)) {
            ("ap", Device::Bus) => {
                if self.get("APMASK").is_some() || self.get("AQMASK").is_some() {
                    Change::Masks
                } else if self.get("INITSCAN").is_some() || self.get("BINDINGS").is_some() {
                    Change::ScanDone
                } else {
                    Change::Ignored
                }
            }
            ("ap", Device::Card(id)) => match a {
                "add" => Change::CardAdded(id),
                "remove" => Change::CardRemoved(id),
                "change" => match (flag(self.get("CONFIG")), flag(self.get("ONLINE"))) {
                    (Some(on), _) => Change::AdapterConfig { adapter: id, on },
                    (None, Some(on)) => Change::AdapterOnline { adapter: id, on },
                    // `udevadm trigger` and keys we do not know.
                    (None, None) => Change::Ignored,
                },
                // Cards are always bound to cex4card: nothing to learn.
                _ => Change::Ignored,
            },
            ("ap", Device::Queue(apqn)) => match a {
                "add" => Change::QueueAdded(apqn),
                "remove" => Change::QueueRemoved(apqn),
                "bind" => Change::QueueDriver {
                    apqn,
                    driver: self.get("DRIVER").map(str::to_string),
                },
                "unbind" => Change::QueueDriver { apqn, driver: None },
                "change" => match (flag(self.get("CONFIG")), flag(self.get("ONLINE"))) {
                    (Some(on), _) => Change::QueueConfig { apqn, on },
                    (None, Some(_)) => Change::QueueOnline(apqn),
                    (None, None) => Change::Ignored,
                },
                _ => Change::Ignored,
            },
            ("matrix", Device::Matrix) => match self.get("MDEV_STATE") {
                Some("registered") => Change::VfioAp { registered: true },
                Some("unregistered") => Change::VfioAp { registered: false },
                _ => Change::Ignored,
            },
            ("mdev", Device::Mdev(uuid)) => match a {
                "add" => Change::MdevAdded(uuid),
                "remove" => Change::MdevRemoved(uuid),
                // bind/unbind of vfio_ap_mdev follow add/remove.
                _ => Change::Ignored,
            },
            _ => Change::Ignored,
        }
    }
}

fn flag(v: Option<&str>) -> Option<bool> {
    match v?.trim_end() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// What an event means for the host model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// apmask or aqmask changed.
    Masks,
    /// A bus scan finished (`INITSCAN`, `BINDINGS`).
    ScanDone,
    /// An adapter (card) appeared.
    CardAdded(u8),
    /// An adapter (card) went away.
    CardRemoved(u8),
    /// An adapter was configured on or off.
    AdapterConfig {
        /// The adapter id.
        adapter: u8,
        /// Configured on.
        on: bool,
    },
    /// An adapter was set online or offline.
    AdapterOnline {
        /// The adapter id.
        adapter: u8,
        /// Online.
        on: bool,
    },
    /// A queue appeared.
    QueueAdded(Apqn),
    /// A queue went away.
    QueueRemoved(Apqn),
    /// A queue was bound (`Some(driver)`) or unbound (`None`).
    QueueDriver {
        /// The queue.
        apqn: Apqn,
        /// The new driver.
        driver: Option<String>,
    },
    /// A queue's configuration followed its adapter's.
    QueueConfig {
        /// The queue.
        apqn: Apqn,
        /// Configured on.
        on: bool,
    },
    /// A queue's online state changed.
    QueueOnline(Apqn),
    /// The vfio_ap matrix device was registered or unregistered.
    VfioAp {
        /// `MDEV_STATE=registered`.
        registered: bool,
    },
    /// An mdev was created (by anyone).
    MdevAdded(Uuid),
    /// An mdev was removed (by anyone).
    MdevRemoved(Uuid),
    /// Nothing apd follows.
    Ignored,
}

impl Change {
    /// What the change makes stale in the host model.
    pub fn stale(&self) -> Stale {
        match self {
            Change::Masks => Stale::masks(),
            Change::ScanDone => Stale::config(),
            // A card re-read brings the configuration files along.
            Change::CardAdded(a)
            | Change::CardRemoved(a)
            | Change::AdapterConfig { adapter: a, .. }
            | Change::AdapterOnline { adapter: a, .. } => Stale::card(*a),
            // A mask change rebinds queues before its own uevent comes: a
            // burst that holds only the binds still sees the masks that
            // caused them, so a retried start is not refused on old masks.
            Change::QueueDriver { apqn, .. } => Stale::queue(*apqn).and(Stale::masks()),
            Change::QueueAdded(q)
            | Change::QueueRemoved(q)
            | Change::QueueConfig { apqn: q, .. }
            | Change::QueueOnline(q) => Stale::queue(*q),
            Change::VfioAp { .. } => Stale::all_mdevs(),
            Change::MdevAdded(u) | Change::MdevRemoved(u) => Stale::mdev(*u),
            Change::Ignored => Stale::none(),
        }
    }

    /// Whether this change can turn a failed start into a possible one
    /// (more resources, fewer holders): then failed definitions are retried.
    pub fn may_unblock_start(&self) -> bool {
        match self {
            Change::Masks
            | Change::ScanDone
            | Change::CardAdded(_)
            | Change::QueueAdded(_)
            | Change::MdevRemoved(_) => true,
            Change::AdapterConfig { on, .. } | Change::QueueConfig { on, .. } => *on,
            Change::AdapterOnline { on, .. } => *on,
            Change::VfioAp { registered } => *registered,
            Change::QueueDriver { driver, .. } => driver.is_some(),
            Change::CardRemoved(_)
            | Change::QueueRemoved(_)
            | Change::QueueOnline(_)
            | Change::MdevAdded(_)
            | Change::Ignored => false,
        }
    }
}

/// The device a devpath names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Device {
    Bus,
    Card(u8),
    Queue(Apqn),
    Matrix,
    Mdev(Uuid),
    Other,
}

fn device_of(devpath: &str) -> Device {
    let parts: Vec<&str> = devpath.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["devices", "ap"] => Device::Bus,
        ["devices", "ap", card] => parse_card_name(card).map_or(Device::Other, Device::Card),
        ["devices", "ap", card, queue] => match (parse_card_name(card), queue.parse::<Apqn>()) {
            (Some(c), Ok(q)) if q.adapter == c && queue.len() == 7 => Device::Queue(q),
            _ => Device::Other,
        },
        ["devices", "vfio_ap", "matrix"] => Device::Matrix,
        ["devices", "vfio_ap", "matrix", uuid] => {
            parse_mdev_name(uuid).map_or(Device::Other, Device::Mdev)
        }
        _ => Device::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uevent::parse;
    use crate::uevent::testing::wire;
    use uuid::Uuid;

    /// guest1 of the seed documents.
    const G1: Uuid = Uuid::from_u128(0x62177883_f1bb_47f0_914d_32a22e3a8804);

    #[test]
    fn classifies_card_queue_matrix_and_mdev_events() {
        let ev = |fields: &[&str]| parse(&wire(fields)).expect("valid").classify();
        assert_eq!(
            ev(&[
                "change@/devices/ap/card05",
                "SUBSYSTEM=ap",
                "CONFIG=0",
                "DEVTYPE=ap_card"
            ]),
            Change::AdapterConfig {
                adapter: 5,
                on: false
            }
        );
        assert_eq!(
            ev(&["change@/devices/ap/card0a", "SUBSYSTEM=ap", "ONLINE=1"]),
            Change::AdapterOnline {
                adapter: 10,
                on: true
            }
        );
        // `udevadm trigger`: a change without the keys we expect.
        assert_eq!(
            ev(&["change@/devices/ap/card05", "SUBSYSTEM=ap"]),
            Change::Ignored
        );
        assert_eq!(
            ev(&["add@/devices/ap/card06", "SUBSYSTEM=ap"]),
            Change::CardAdded(6)
        );
        assert_eq!(
            ev(&["remove@/devices/ap/card06/06.00ab", "SUBSYSTEM=ap"]),
            Change::QueueRemoved(Apqn::new(6, 0xab))
        );
        assert_eq!(
            ev(&[
                "bind@/devices/ap/card05/05.0004",
                "SUBSYSTEM=ap",
                "DRIVER=vfio_ap"
            ]),
            Change::QueueDriver {
                apqn: Apqn::new(5, 4),
                driver: Some("vfio_ap".into())
            }
        );
        assert_eq!(
            ev(&[
                "unbind@/devices/ap/card05/05.0004",
                "SUBSYSTEM=ap",
                "DRIVER=cex4queue"
            ]),
            Change::QueueDriver {
                apqn: Apqn::new(5, 4),
                driver: None
            }
        );
        assert_eq!(
            ev(&[
                "change@/devices/ap/card05/05.0004",
                "SUBSYSTEM=ap",
                "CONFIG=1"
            ]),
            Change::QueueConfig {
                apqn: Apqn::new(5, 4),
                on: true
            }
        );
        // A queue under the wrong card is not a queue.
        assert_eq!(
            ev(&["add@/devices/ap/card05/06.0004", "SUBSYSTEM=ap"]),
            Change::Ignored
        );
        assert_eq!(
            ev(&[
                "change@/devices/vfio_ap/matrix",
                "SUBSYSTEM=matrix",
                "MDEV_STATE=registered"
            ]),
            Change::VfioAp { registered: true }
        );
        assert_eq!(
            ev(&[
                "change@/devices/vfio_ap/matrix",
                "SUBSYSTEM=matrix",
                "MDEV_STATE=unregistered"
            ]),
            Change::VfioAp { registered: false }
        );
        assert_eq!(
            ev(&[
                "add@/devices/vfio_ap/matrix/62177883-F1BB-47f0-914d-32a22e3a8804",
                "SUBSYSTEM=mdev"
            ]),
            Change::MdevAdded(G1)
        );
        assert_eq!(
            ev(&[
                "remove@/devices/vfio_ap/matrix/62177883-f1bb-47f0-914d-32a22e3a8804",
                "SUBSYSTEM=mdev"
            ]),
            Change::MdevRemoved(G1)
        );
        assert_eq!(
            ev(&["change@/devices/ap", "SUBSYSTEM=ap", "INITSCAN=done"]),
            Change::ScanDone
        );
        assert_eq!(
            ev(&["add@/devices/pci0000:00/0000:00:01.0", "SUBSYSTEM=pci"]),
            Change::Ignored
        );
    }

    #[test]
    fn start_retry_triggers() {
        assert!(Change::AdapterConfig {
            adapter: 5,
            on: true
        }
        .may_unblock_start());
        assert!(!Change::AdapterConfig {
            adapter: 5,
            on: false
        }
        .may_unblock_start());
        assert!(Change::Masks.may_unblock_start());
        assert!(Change::QueueAdded(Apqn::new(5, 4)).may_unblock_start());
        assert!(Change::MdevRemoved(G1).may_unblock_start());
        assert!(Change::VfioAp { registered: true }.may_unblock_start());
        assert!(!Change::VfioAp { registered: false }.may_unblock_start());
        assert!(!Change::MdevAdded(G1).may_unblock_start());
        assert!(Change::Ignored.stale().is_empty());
    }

    #[test]
    fn devpaths() {
        assert_eq!(device_of("/devices/ap/cardff"), Device::Card(255));
        assert_eq!(device_of("/devices/ap/card5"), Device::Other);
        assert_eq!(device_of("/devices/ap/cardzz"), Device::Other);
        assert_eq!(device_of("/devices/ap/card05/05.4"), Device::Other);
        assert_eq!(
            device_of("/devices/vfio_ap/matrix/not-a-uuid"),
            Device::Other
        );
        assert_eq!(device_of("/devices/vfio_ap"), Device::Other);
    }
}
