//! The sysfs tree: which directories, attributes and links exist in the
//! current state, path resolution through symlinks, and the dispatch of
//! reads and writes to the store/show functions.

use super::{BusDev, Dev, Drv, Kernel, Mdev};
use crate::Errno;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Root,
    Bus,
    BusAp,
    BusApDevices,
    BusApDrivers,
    ApDriver(Drv),
    BusMatrix,
    BusMatrixDevices,
    BusMatrixDrivers,
    MatrixDriver,
    BusMdev,
    BusMdevDevices,
    BusMdevDrivers,
    MdevDriver,
    Devices,
    DevAp,
    Card(u8),
    Queue(u8, u8),
    DevVfioAp,
    Matrix,
    MdevTypes,
    MdevType,
    MdevTypeDevices,
    Mdev(String),
    Class,
    ClassMdevBus,
    SysKernel,
    IommuGroups,
    IommuGroup(u32),
    IommuGroupDevices(u32),
    Control,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BusAttr {
    Apmask,
    Aqmask,
    AdapterMask,
    UsageDomainMask,
    ControlDomainMask,
    MaxAdapterId,
    MaxDomainId,
    ApDomain,
    ApInterrupts,
    ConfigTime,
    PollThread,
    PollTimeout,
    Features,
    Bindings,
    Scans,
    DriversProbe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CardAttr {
    Hwtype,
    RawHwtype,
    Type,
    Depth,
    ApFunctions,
    RequestCount,
    RequestqCount,
    PendingqCount,
    Modalias,
    Chkstop,
    MaxMsgSize,
    Serialnr,
    Load,
    Config,
    Online,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueueAttr {
    RequestCount,
    RequestqCount,
    PendingqCount,
    Reset,
    Interrupt,
    Config,
    Chkstop,
    ApFunctions,
    Load,
    Online,
    Status,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TypeAttr {
    Name,
    DeviceApi,
    AvailableInstances,
    Create,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MdevAttr {
    AssignAdapter,
    UnassignAdapter,
    AssignDomain,
    UnassignDomain,
    AssignControlDomain,
    UnassignControlDomain,
    Matrix,
    GuestMatrix,
    ControlDomains,
    ApConfig,
    Remove,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ctl {
    Log,
    Inject,
    Delay,
    Lpar,
    InUse,
    VfioAp,
    Requests,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Attr {
    Bus(BusAttr),
    DriverBind(Drv),
    DriverUnbind(Drv),
    Card(u8, CardAttr),
    Queue(u8, u8, QueueAttr),
    Uevent(Dev),
    MatrixFeatures,
    Type(TypeAttr),
    Mdev(String, MdevAttr),
    Control(Ctl),
}

/// A node of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Obj {
    Dir(Dir),
    Attr(Attr),
    Link(Target),
}

/// A symlink's target: a path as written, or a bus device's, made only
/// when it is read: a listing of a driver on a full LPAR has a link per
/// bound queue (64,512), and a listing needs none of their targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Path(String),
    /// [`dev_target`]`(up, dev)`.
    Dev(usize, BusDev),
}

impl Target {
    /// The target as `readlink` shows it.
    pub(crate) fn text(&self) -> String {
        match self {
            Target::Path(p) => p.clone(),
            Target::Dev(up, dev) => dev_target(*up, *dev),
        }
    }
}

/// The link to bus device `dev` from a directory `up` levels below the root.
pub(super) fn dev_link(up: usize, dev: BusDev) -> Obj {
    Obj::Link(Target::Dev(up, dev))
}

/// What a write did: done, or an mdev removal that waits for its guest.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Written {
    Done(usize),
    AwaitRelease { uuid: String, len: usize },
}

pub(crate) const RW: u32 = 0o644;
pub(crate) const RO: u32 = 0o444;
pub(crate) const WO: u32 = 0o200;

pub(super) const BUS_ATTRS: &[(&str, BusAttr)] = &[
    ("apmask", BusAttr::Apmask),
    ("aqmask", BusAttr::Aqmask),
    ("ap_adapter_mask", BusAttr::AdapterMask),
    ("ap_usage_domain_mask", BusAttr::UsageDomainMask),
    ("ap_control_domain_mask", BusAttr::ControlDomainMask),
    ("ap_max_adapter_id", BusAttr::MaxAdapterId),
    ("ap_max_domain_id", BusAttr::MaxDomainId),
    ("ap_domain", BusAttr::ApDomain),
    ("ap_interrupts", BusAttr::ApInterrupts),
    ("config_time", BusAttr::ConfigTime),
    ("poll_thread", BusAttr::PollThread),
    ("poll_timeout", BusAttr::PollTimeout),
    ("features", BusAttr::Features),
    ("bindings", BusAttr::Bindings),
    ("scans", BusAttr::Scans),
    ("drivers_probe", BusAttr::DriversProbe),
];

pub(super) const CARD_ATTRS: &[(&str, CardAttr)] = &[
    ("hwtype", CardAttr::Hwtype),
    ("raw_hwtype", CardAttr::RawHwtype),
    ("type", CardAttr::Type),
    ("depth", CardAttr::Depth),
    ("ap_functions", CardAttr::ApFunctions),
    ("request_count", CardAttr::RequestCount),
    ("requestq_count", CardAttr::RequestqCount),
    ("pendingq_count", CardAttr::PendingqCount),
    ("modalias", CardAttr::Modalias),
    ("chkstop", CardAttr::Chkstop),
    ("max_msg_size", CardAttr::MaxMsgSize),
    ("serialnr", CardAttr::Serialnr),
    ("load", CardAttr::Load),
    ("config", CardAttr::Config),
    ("online", CardAttr::Online),
];

pub(super) const QUEUE_ATTRS: &[(&str, QueueAttr)] = &[
    ("request_count", QueueAttr::RequestCount),
    ("requestq_count", QueueAttr::RequestqCount),
    ("pendingq_count", QueueAttr::PendingqCount),
    ("reset", QueueAttr::Reset),
    ("interrupt", QueueAttr::Interrupt),
    ("config", QueueAttr::Config),
    ("chkstop", QueueAttr::Chkstop),
    ("ap_functions", QueueAttr::ApFunctions),
    ("load", QueueAttr::Load),
    ("online", QueueAttr::Online),
    ("status", QueueAttr::Status),
];

pub(super) const TYPE_ATTRS: &[(&str, TypeAttr)] = &[
    ("name", TypeAttr::Name),
    ("device_api", TypeAttr::DeviceApi),
    ("available_instances", TypeAttr::AvailableInstances),
    ("create", TypeAttr::Create),
];

pub(super) const MDEV_ATTRS: &[(&str, MdevAttr)] = &[
    ("assign_adapter", MdevAttr::AssignAdapter),
    ("unassign_adapter", MdevAttr::UnassignAdapter),
    ("assign_domain", MdevAttr::AssignDomain),
    ("unassign_domain", MdevAttr::UnassignDomain),
    ("assign_control_domain", MdevAttr::AssignControlDomain),
    ("unassign_control_domain", MdevAttr::UnassignControlDomain),
    ("matrix", MdevAttr::Matrix),
    ("guest_matrix", MdevAttr::GuestMatrix),
    ("control_domains", MdevAttr::ControlDomains),
    ("ap_config", MdevAttr::ApConfig),
    ("remove", MdevAttr::Remove),
];

/// An entry built from the mdev whose directory holds it.
pub(super) type MdevNode = (&'static str, fn(&Mdev) -> Obj);

/// An mdev directory's entries after its attributes, in listing order.
pub(super) const MDEV_NODES: &[MdevNode] = &[
    ("uevent", |m| {
        Obj::Attr(Attr::Uevent(Dev::Mdev(m.uuid.clone())))
    }),
    ("driver", |_| {
        Obj::Link(Target::Path(
            "../../../../bus/mdev/drivers/vfio_ap_mdev".to_string(),
        ))
    }),
    ("subsystem", |_| {
        Obj::Link(Target::Path("../../../../bus/mdev".to_string()))
    }),
    ("iommu_group", |m| {
        Obj::Link(Target::Path(format!(
            "../../../../kernel/iommu_groups/{}",
            m.iommu_group
        )))
    }),
    ("mdev_type", |_| {
        Obj::Link(Target::Path(
            "../mdev_supported_types/vfio_ap-passthrough".to_string(),
        ))
    }),
];

/// A fixed entry and how to build it.
pub(super) type Node = (&'static str, fn() -> Obj);

/// The matrix device's entries before its mdevs, in listing order.
pub(super) const MATRIX_NODES: &[Node] = &[
    ("uevent", || Obj::Attr(Attr::Uevent(Dev::Matrix))),
    ("features", || Obj::Attr(Attr::MatrixFeatures)),
    ("mdev_supported_types", || Obj::Dir(Dir::MdevTypes)),
    ("driver", || {
        Obj::Link(Target::Path(
            "../../../bus/matrix/drivers/vfio_ap".to_string(),
        ))
    }),
    ("subsystem", || {
        Obj::Link(Target::Path("../../../bus/matrix".to_string()))
    }),
];

pub(super) const CONTROL: &[(&str, Ctl)] = &[
    ("log", Ctl::Log),
    ("inject", Ctl::Inject),
    ("delay", Ctl::Delay),
    ("lpar", Ctl::Lpar),
    ("in_use", Ctl::InUse),
    ("vfio_ap", Ctl::VfioAp),
    ("requests", Ctl::Requests),
];

pub(super) const AP_DRIVERS: &[Drv] = &[Drv::Cex4Card, Drv::Cex4Queue, Drv::VfioAp];

/// The mode bits sysfs shows for an attribute.
pub(crate) fn attr_mode(attr: &Attr) -> u32 {
    match attr {
        Attr::Bus(b) => match b {
            BusAttr::Apmask
            | BusAttr::Aqmask
            | BusAttr::ApDomain
            | BusAttr::ConfigTime
            | BusAttr::PollThread
            | BusAttr::PollTimeout
            | BusAttr::Scans => RW,
            BusAttr::DriversProbe => WO,
            _ => RO,
        },
        Attr::DriverBind(_) | Attr::DriverUnbind(_) => WO,
        Attr::Card(_, c) => match c {
            CardAttr::Config | CardAttr::Online => RW,
            _ => RO,
        },
        Attr::Queue(_, _, q) => match q {
            QueueAttr::Reset | QueueAttr::Online => RW,
            _ => RO,
        },
        Attr::Uevent(_) => RW,
        Attr::MatrixFeatures => RO,
        Attr::Type(t) => match t {
            TypeAttr::Create => WO,
            _ => RO,
        },
        Attr::Mdev(_, m) => match m {
            MdevAttr::Matrix | MdevAttr::GuestMatrix | MdevAttr::ControlDomains => RO,
            MdevAttr::ApConfig => RW,
            _ => WO,
        },
        Attr::Control(c) => match c {
            Ctl::Log | Ctl::Requests => RO,
            Ctl::VfioAp => RW,
            _ => WO,
        },
    }
}

/// Parses `cardXX` (two lowercase hex digits).
pub(crate) fn parse_card(name: &str) -> Option<u8> {
    let hex = name.strip_prefix("card")?;
    lower_hex(hex, 2).and_then(|v| u8::try_from(v).ok())
}

/// Parses an IOMMU group name: decimal as the kernel prints it (no sign,
/// no leading zero).
pub(super) fn parse_group(name: &str) -> Option<u32> {
    let canonical = !name.is_empty()
        && name.bytes().all(|c| c.is_ascii_digit())
        && (name == "0" || !name.starts_with('0'));
    canonical.then(|| name.parse().ok()).flatten()
}

/// Parses `XX.YYYY`.
pub(crate) fn parse_queue(name: &str) -> Option<(u8, u8)> {
    let (a, d) = name.split_once('.')?;
    let a = u8::try_from(lower_hex(a, 2)?).ok()?;
    let d = u8::try_from(lower_hex(d, 4)?).ok()?;
    Some((a, d))
}

pub(super) fn lower_hex(s: &str, width: usize) -> Option<u32> {
    if s.len() != width
        || !s
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Link target of a bus device from a directory `up` levels below the root
/// (`bus/ap/devices`: 3, `bus/ap/drivers/<drv>`: 4).
pub(super) fn dev_target(up: usize, dev: BusDev) -> String {
    let root = "../".repeat(up);
    match dev {
        BusDev::Card(a) => format!("{root}devices/ap/card{a:02x}"),
        BusDev::Queue(a, d) => format!("{root}devices/ap/card{a:02x}/{}", super::apqn(a, d)),
    }
}

/// What a directory that lists mdevs by UUID shows for `m`: None if `d`
/// lists no mdevs, or not this one. `entries` and `child` both build their
/// mdev entries here.
pub(super) fn mdev_entry(d: &Dir, m: &Mdev) -> Option<Obj> {
    // From a directory `up` levels below the root to the mdev's own.
    let to_mdev = |up: usize| {
        let root = "../".repeat(up);
        Obj::Link(Target::Path(format!(
            "{root}devices/vfio_ap/matrix/{}",
            m.uuid
        )))
    };
    match d {
        Dir::BusMdevDevices => Some(to_mdev(3)),
        Dir::MdevDriver => Some(to_mdev(4)),
        Dir::IommuGroupDevices(g) => (m.iommu_group == *g).then(|| to_mdev(4)),
        Dir::Matrix => Some(Obj::Dir(Dir::Mdev(m.uuid.clone()))),
        // matrix/mdev_supported_types/vfio_ap-passthrough/devices: three
        // levels up is the matrix device, the mdev's parent.
        Dir::MdevTypeDevices => Some(Obj::Link(Target::Path(format!("../../../{}", m.uuid)))),
        _ => None,
    }
}

pub(super) fn mdev_attr(m: &Mdev, attr: MdevAttr) -> Obj {
    Obj::Attr(Attr::Mdev(m.uuid.clone(), attr))
}

/// Every entry of an mdev's own directory.
pub(super) fn mdev_dir_entries(m: &Mdev) -> Vec<(String, Obj)> {
    let attrs = MDEV_ATTRS
        .iter()
        .map(|(n, a)| ((*n).to_string(), mdev_attr(m, *a)));
    let nodes = MDEV_NODES
        .iter()
        .map(|(n, make)| ((*n).to_string(), make(m)));
    attrs.chain(nodes).collect()
}

/// One entry of an mdev's own directory.
pub(super) fn mdev_dir_child(m: &Mdev, name: &str) -> Option<Obj> {
    if let Some((_, a)) = MDEV_ATTRS.iter().find(|(n, _)| *n == name) {
        return Some(mdev_attr(m, *a));
    }
    MDEV_NODES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, make)| make(m))
}

pub(super) fn group_dir(g: u32) -> Obj {
    Obj::Dir(Dir::IommuGroup(g))
}

pub(super) fn attr_entries<T: Copy>(
    table: &[(&str, T)],
    wrap: impl Fn(T) -> Attr,
) -> Vec<(String, Obj)> {
    table
        .iter()
        .map(|(n, a)| ((*n).to_string(), Obj::Attr(wrap(*a))))
        .collect()
}

pub(super) fn link(name: impl Into<String>, target: impl Into<String>) -> (String, Obj) {
    (name.into(), Obj::Link(Target::Path(target.into())))
}

pub(super) fn dir(name: impl Into<String>, d: Dir) -> (String, Obj) {
    (name.into(), Obj::Dir(d))
}

impl Kernel {
    pub(crate) fn read_attr(&self, attr: &Attr) -> Result<Vec<u8>, Errno> {
        if attr_mode(attr) & 0o444 == 0 {
            return Err(libc::EACCES);
        }
        let text = match attr {
            Attr::Bus(b) => self.show_bus(*b),
            Attr::Card(a, c) => self.show_card(*a, *c)?,
            Attr::Queue(a, d, q) => self.show_queue(*a, *d, *q)?,
            Attr::Uevent(dev) => {
                let mut s = String::new();
                for k in self.device_keys(dev, super::DriverKey::Current) {
                    s.push_str(&k);
                    s.push('\n');
                }
                s
            }
            Attr::MatrixFeatures => "guest_matrix hotplug ap_config\n".to_string(),
            Attr::Type(t) => self.show_type(*t),
            Attr::Mdev(u, m) => self.show_mdev(u, *m)?,
            Attr::Control(c) => self.show_control(*c),
            Attr::DriverBind(_) | Attr::DriverUnbind(_) => return Err(libc::EACCES),
        };
        Ok(text.into_bytes())
    }

    /// A write to an attribute, under the lock. The caller has checked the
    /// attribute exists, is writable and the data is not empty.
    pub(crate) fn write_attr(&mut self, attr: &Attr, data: &[u8]) -> Result<Written, Errno> {
        let n = data.len();
        let done = |r: Result<(), Errno>| r.map(|()| Written::Done(n));
        match attr {
            Attr::Bus(b) => done(self.store_bus(*b, data)),
            Attr::DriverBind(drv) => done(self.store_bind(*drv, data)),
            Attr::DriverUnbind(drv) => done(self.store_unbind(*drv, data)),
            Attr::Card(a, c) => done(self.store_card(*a, *c, data)),
            Attr::Queue(a, d, q) => done(self.store_queue(*a, *d, *q, data)),
            Attr::Uevent(dev) => done(self.store_uevent(dev, data)),
            Attr::Type(TypeAttr::Create) => done(self.store_create(data)),
            Attr::Mdev(u, m) => self.store_mdev(u, *m, data),
            Attr::Control(c) => done(self.store_control(*c, data)),
            Attr::MatrixFeatures | Attr::Type(_) => Err(libc::EACCES),
        }
    }

    /// `echo ACTION > uevent` (`udevadm trigger`): kobject_synth_uevent.
    fn store_uevent(&mut self, dev: &Dev, data: &[u8]) -> Result<(), Errno> {
        let mut s = data;
        if let Some((last, rest)) = s.split_last() {
            if *last == b'\n' || *last == 0 {
                s = rest;
            }
        }
        let text = std::str::from_utf8(s).map_err(|_| libc::EINVAL)?;
        let (action, args) = match text.split_once(' ') {
            Some((a, r)) => (a, Some(r)),
            None => (text, None),
        };
        const ACTIONS: &[&str] = &[
            "add", "remove", "change", "move", "online", "offline", "bind", "unbind",
        ];
        if !ACTIONS.contains(&action) {
            self.klog(format!(
                "synth uevent: {}: unknown uevent action string",
                dev.devpath()
            ));
            return Err(libc::EINVAL);
        }
        let mut keys = Vec::new();
        match args {
            None => keys.push("SYNTH_UUID=0".to_string()),
            Some(args) => {
                let mut words = args.split(' ').filter(|w| !w.is_empty());
                let uuid = words
                    .next()
                    .filter(|u| crate::parse::uuid_is_valid(u.as_bytes()) && u.len() == 36);
                let Some(uuid) = uuid else {
                    self.klog(format!(
                        "synth uevent: {}: incorrect uevent action arguments",
                        dev.devpath()
                    ));
                    return Err(libc::EINVAL);
                };
                keys.push(format!("SYNTH_UUID={uuid}"));
                for w in words {
                    match w.split_once('=') {
                        Some((k, v))
                            if !k.is_empty() && k.bytes().all(|c| c.is_ascii_alphanumeric()) =>
                        {
                            keys.push(format!("SYNTH_ARG_{k}={v}"));
                        }
                        _ => {
                            self.klog(format!(
                                "synth uevent: {}: incorrect uevent action arguments",
                                dev.devpath()
                            ));
                            return Err(libc::EINVAL);
                        }
                    }
                }
            }
        }
        self.uevent(action, dev, &keys, super::DriverKey::Current);
        Ok(())
    }
}
