//! Reading the host model from sysfs: the whole host, or one part again
//! (what a [`crate::resync::Stale`] names).

use crate::apqn::Apqn;
use crate::mask::ApMask;
use crate::matrix::{parse_ap_config, parse_control_domains, parse_matrix, MatrixError};
use crate::resync::VfioPart;
use crate::sysfs::{Sysfs, SysfsError};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

use super::{
    paths, Card, CardMode, Features, GuestMatrix, Host, HostConfig, HostError, Matrix, Mdev, Queue,
    QueueState,
};

fn read_opt(fs: &dyn Sysfs, path: &str) -> Result<Option<String>, SysfsError> {
    match fs.read(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.errno == libc::ENOENT || e.errno == libc::ENODEV => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

fn parse_hex_u32(s: &str) -> Option<u32> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u32::from_str_radix(t, 16).ok()
}

fn parse_mask_file(path: &str, text: &str) -> Result<ApMask, HostError> {
    ApMask::parse_absolute(text).map_err(|e| HostError::Parse {
        path: path.to_string(),
        message: e.to_string(),
    })
}

fn parse_max_id(path: &str, text: Option<String>) -> Result<u8, HostError> {
    match text {
        // Kernels without the attribute allow the architecture maximum.
        None => Ok(255),
        Some(t) => {
            let v: u32 = t.trim().parse().map_err(|_| HostError::Parse {
                path: path.to_string(),
                message: format!("{:?} is not a decimal number", t.trim()),
            })?;
            Ok(u8::try_from(v.min(255)).unwrap_or(255))
        }
    }
}

/// A card directory name `cardXX` → adapter id.
pub fn parse_card_name(name: &str) -> Option<u8> {
    let hex = name.strip_prefix("card")?;
    if hex.len() != 2 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// An mdev directory name: a lowercase hyphenated UUID.
pub fn parse_mdev_name(name: &str) -> Option<Uuid> {
    if name.len() != 36 {
        return None;
    }
    Uuid::try_parse(name).ok()
}

fn matrix_err(path: String, e: MatrixError) -> HostError {
    HostError::Parse {
        path,
        message: e.to_string(),
    }
}

/// The configuration files as read, before the fallback for hosts without
/// QCI (which needs the cards and queues present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawConfig {
    pub(crate) max_adapter_id: u8,
    pub(crate) max_domain_id: u8,
    adapters: Option<ApMask>,
    usage_domains: Option<ApMask>,
    control_domains: Option<ApMask>,
}

impl RawConfig {
    pub(crate) fn read(fs: &dyn Sysfs) -> Result<RawConfig, HostError> {
        let max_adapter_id =
            parse_max_id(paths::MAX_ADAPTER_ID, read_opt(fs, paths::MAX_ADAPTER_ID)?)?;
        let max_domain_id =
            parse_max_id(paths::MAX_DOMAIN_ID, read_opt(fs, paths::MAX_DOMAIN_ID)?)?;
        Self::read_masks(fs, max_adapter_id, max_domain_id)
    }

    /// The configuration masks again, with the maximum ids of `host`: the
    /// kernel sets those once, at boot (ap_bus's init reads them from QCI
    /// and nothing changes them after), so a re-read before every change
    /// and report skips their two files.
    pub(crate) fn reread(fs: &dyn Sysfs, host: &Host) -> Result<RawConfig, HostError> {
        Self::read_masks(fs, host.max_adapter_id, host.max_domain_id)
    }

    fn read_masks(
        fs: &dyn Sysfs,
        max_adapter_id: u8,
        max_domain_id: u8,
    ) -> Result<RawConfig, HostError> {
        let read = |path: &str| -> Result<Option<ApMask>, HostError> {
            match read_opt(fs, path)? {
                None => Ok(None),
                Some(t) if t.trim() == "not supported" => Ok(None),
                Some(t) => parse_mask_file(path, &t).map(Some),
            }
        };
        Ok(RawConfig {
            max_adapter_id,
            max_domain_id,
            adapters: read(paths::ADAPTER_MASK)?,
            usage_domains: read(paths::USAGE_DOMAIN_MASK)?,
            control_domains: read(paths::CONTROL_DOMAIN_MASK)?,
        })
    }

    /// The configuration; without QCI, the devices present in `host` are
    /// the best we know.
    pub(crate) fn derive(&self, host: &Host) -> HostConfig {
        let control_domains = self.control_domains.unwrap_or_default();
        match (self.adapters, self.usage_domains) {
            (Some(adapters), Some(usage_domains)) => HostConfig {
                adapters,
                usage_domains,
                control_domains,
                known: true,
            },
            _ => HostConfig {
                adapters: ApMask::from_ids(host.cards.keys().copied()),
                usage_domains: ApMask::from_ids(host.queues.keys().map(|q| q.domain)),
                control_domains,
                known: false,
            },
        }
    }
}

impl Host {
    /// Read the whole model through `fs`.
    pub fn read(fs: &dyn Sysfs) -> Result<Host, HostError> {
        if !fs.exists(paths::AP_BUS) {
            return Err(HostError::NoApBus {
                path: paths::AP_BUS.to_string(),
            });
        }
        let apmask = parse_mask_file(paths::APMASK, &fs.read(paths::APMASK)?)?;
        let aqmask = parse_mask_file(paths::AQMASK, &fs.read(paths::AQMASK)?)?;
        let raw = RawConfig::read(fs)?;
        let mut host = Host {
            max_adapter_id: raw.max_adapter_id,
            max_domain_id: raw.max_domain_id,
            apmask,
            aqmask,
            ..Host::default()
        };
        host.read_devices(fs)?;
        host.config = raw.derive(&host);
        host.read_vfio(fs)?;
        Ok(host)
    }

    /// The cards (a few files each), which queues exist (one listing per
    /// card) and their drivers (one listing per driver): O(cards) reads,
    /// whatever the number of queues.
    fn read_devices(&mut self, fs: &dyn Sysfs) -> Result<(), HostError> {
        let entries = match fs.list(paths::AP_DEVICES) {
            Ok(e) => e,
            Err(e) if e.errno == libc::ENOENT => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let ids: Vec<u8> = entries.iter().filter_map(|n| parse_card_name(n)).collect();
        // On a big host the drivers' listings (cex4queue's has a name per
        // host queue, 64,512 on a full LPAR) are read beside the cards.
        let (cards, bindings) = if ids.len() > CARDS_PER_READER {
            std::thread::scope(|s| {
                let bindings = s.spawn(|| read_bindings(fs));
                let cards = read_cards(fs, &ids);
                let bindings = bindings
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
                (cards, bindings)
            })
        } else {
            (read_cards(fs, &ids), read_bindings(fs))
        };
        let mut present = Vec::new();
        for (card, queues) in cards? {
            self.cards_mut().insert(card.id, card);
            present.extend(queues);
        }
        let bindings = bindings?;
        // Built in one go, not inserted one by one: 65,536 queues on a
        // full LPAR, and the model is new, so nothing shares the map.
        let queues: BTreeMap<Apqn, Queue> = present
            .into_iter()
            .map(|apqn| {
                let driver = bindings.get(&apqn).cloned();
                (apqn, Queue { apqn, driver })
            })
            .collect();
        self.queues = Arc::new(queues);
        Ok(())
    }

    fn read_vfio(&mut self, fs: &dyn Sysfs) -> Result<(), HostError> {
        let v = read_vfio_part(fs, &self.queues)?;
        self.vfio_ap_loaded = v.loaded;
        self.features = v.features;
        self.mdevs = v.mdevs;
        Ok(())
    }

    /// Re-read one mdev (the kernel sends no uevent when another tool
    /// changes an assignment). `Ok(None)` when it does not exist.
    pub fn read_mdev(fs: &dyn Sysfs, uuid: Uuid) -> Result<Option<Mdev>, HostError> {
        read_mdev_from(fs, uuid, &BTreeMap::new())
    }

    /// Re-read one mdev into this model (insert, update or remove it).
    /// Returns the mdev as now known.
    #[cfg(any(test, feature = "testing"))]
    pub fn refresh_mdev(&mut self, fs: &dyn Sysfs, uuid: Uuid) -> Result<Option<&Mdev>, HostError> {
        self.refresh(fs, &crate::resync::Stale::mdev(uuid))?;
        Ok(self.mdevs.get(&uuid))
    }

    /// Re-read the masks (after a mask change uevent), with the queues
    /// whose bits flipped and the mdevs.
    #[cfg(any(test, feature = "testing"))]
    pub fn refresh_masks(&mut self, fs: &dyn Sysfs) -> Result<(), HostError> {
        self.refresh(fs, &crate::resync::Stale::masks()).map(|_| ())
    }

    /// Re-read one card and its queues (after a card/queue uevent).
    #[cfg(any(test, feature = "testing"))]
    pub fn refresh_card(&mut self, fs: &dyn Sysfs, adapter: u8) -> Result<(), HostError> {
        self.refresh(fs, &crate::resync::Stale::card(adapter))
            .map(|_| ())
    }

    /// Re-read one queue (after a bind/unbind/CONFIG uevent on it); removes
    /// it from the model when its directory is gone.
    #[cfg(any(test, feature = "testing"))]
    pub fn refresh_queue(&mut self, fs: &dyn Sysfs, apqn: Apqn) -> Result<(), HostError> {
        self.refresh(fs, &crate::resync::Stale::queue(apqn))
            .map(|_| ())
    }

    /// Re-read the host configuration and maximum ids (after a scan that
    /// changed the LPAR's configuration).
    #[cfg(any(test, feature = "testing"))]
    pub fn refresh_config(&mut self, fs: &dyn Sysfs) -> Result<(), HostError> {
        self.refresh(fs, &crate::resync::Stale::config())
            .map(|_| ())
    }

    /// Re-read whether vfio_ap is loaded, its features and every mdev
    /// (after `MDEV_STATE=registered|unregistered` or an mdev add/remove).
    #[cfg(any(test, feature = "testing"))]
    pub fn refresh_vfio(&mut self, fs: &dyn Sysfs) -> Result<(), HostError> {
        self.refresh(fs, &crate::resync::Stale::all_mdevs())
            .map(|_| ())
    }
}

/// A mask file (`apmask`, `aqmask`).
pub(crate) fn read_mask(fs: &dyn Sysfs, path: &str) -> Result<ApMask, HostError> {
    parse_mask_file(path, &fs.read(path)?)
}

/// The queues present under a card, ascending; none when the card is gone.
pub(crate) fn list_queues(fs: &dyn Sysfs, adapter: u8) -> Result<Vec<Apqn>, HostError> {
    let names = match fs.list(&paths::card(adapter)) {
        Ok(q) => q,
        Err(e) if e.errno == libc::ENOENT => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut v: Vec<Apqn> = names
        .iter()
        .filter_map(|n| n.parse::<Apqn>().ok())
        .filter(|q| q.adapter == adapter)
        .collect();
    v.sort();
    Ok(v)
}

/// Whether vfio_ap is loaded, its features and every mdev.
pub(crate) fn read_vfio_part(
    fs: &dyn Sysfs,
    queues: &BTreeMap<Apqn, Queue>,
) -> Result<VfioPart, HostError> {
    let mut v = VfioPart {
        loaded: fs.exists(paths::MATRIX),
        ..VfioPart::default()
    };
    if !v.loaded {
        return Ok(v);
    }
    v.features = read_opt(fs, paths::MATRIX_FEATURES)?.map(|t| Features::parse(&t));
    let entries = match fs.list(paths::MATRIX) {
        Ok(e) => e,
        Err(e) if e.errno == libc::ENOENT => return Ok(v),
        Err(e) => return Err(e.into()),
    };
    for name in entries {
        let Some(uuid) = parse_mdev_name(&name) else {
            continue;
        };
        if let Some(mdev) = read_mdev_from(fs, uuid, queues)? {
            v.mdevs.insert(uuid, mdev);
        }
    }
    Ok(v)
}

/// Card readers at start, and how many cards make threads worth it.
const CARD_READERS: usize = 4;
const CARDS_PER_READER: usize = 16;

/// Each card of `ids` with the queues under it, in `ids`' order; a card
/// gone since the listing is left out (hot unplug). A full LPAR has 256
/// cards of six files and a listing each: they are read on a few threads,
/// as sysfs (and a FUSE mount) serve readers side by side, so the start
/// does not wait on one file at a time.
fn read_cards(fs: &dyn Sysfs, ids: &[u8]) -> Result<Vec<(Card, Vec<Apqn>)>, HostError> {
    let part = ids.len().div_ceil(CARD_READERS).max(CARDS_PER_READER);
    let read_part = |part: &[u8]| -> Result<Vec<(Card, Vec<Apqn>)>, HostError> {
        let mut read = Vec::with_capacity(part.len());
        for &id in part {
            if let Some(card) = read_card(fs, id)? {
                read.push((card, list_queues(fs, id)?));
            }
        }
        Ok(read)
    };
    if ids.len() <= part {
        return read_part(ids);
    }
    let parts: Vec<_> = std::thread::scope(|s| {
        let readers: Vec<_> = ids
            .chunks(part)
            .map(|p| s.spawn(move || read_part(p)))
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut all = Vec::with_capacity(ids.len());
    for p in parts {
        all.extend(p?);
    }
    Ok(all)
}

pub(crate) fn read_card(fs: &dyn Sysfs, id: u8) -> Result<Option<Card>, HostError> {
    let dir = paths::card(id);
    if !fs.exists(&dir) {
        return Ok(None);
    }
    let attr = |name: &str| read_opt(fs, &format!("{dir}/{name}"));
    let type_name = attr("type")?
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    // The type's last letter tells the mode; `ap_functions` is read only
    // where it does not: a file fewer per card, 256 at the start on a full
    // LPAR.
    let mode = match CardMode::from_type(&type_name) {
        Some(mode) => Some(mode),
        None => attr("ap_functions")?
            .and_then(|s| parse_hex_u32(&s))
            .and_then(CardMode::from_functions),
    };
    let online = attr("online")?
        .and_then(|s| parse_bool(&s))
        .unwrap_or(false);
    // `online` reads 1 only on a card that is configured and not
    // check-stopped (kernel spec §8): then `config` and `chkstop` say
    // nothing new, and a healthy card costs two files, not four (512 at
    // the start on a full LPAR).
    let (config, chkstop) = if online {
        (true, false)
    } else {
        (
            // Kernels without `config` have no standby state: configured.
            attr("config")?.and_then(|s| parse_bool(&s)).unwrap_or(true),
            attr("chkstop")?
                .and_then(|s| parse_bool(&s))
                .unwrap_or(false),
        )
    };
    Ok(Some(Card {
        id,
        mode,
        type_name,
        config,
        online,
        chkstop,
    }))
}

/// Which driver each queue is bound to, from the drivers' own directories
/// (`bus/ap/drivers/<driver>/XX.YYYY`, kernel spec §3): one listing per AP
/// driver instead of one `driver` link per queue.
pub(crate) fn read_bindings(fs: &dyn Sysfs) -> Result<BTreeMap<Apqn, Arc<str>>, HostError> {
    read_bindings_of(fs, |_| true)
}

/// [`read_bindings`] from the drivers `listed` picks only.
pub(crate) fn read_bindings_of(
    fs: &dyn Sysfs,
    listed: impl Fn(&str) -> bool,
) -> Result<BTreeMap<Apqn, Arc<str>>, HostError> {
    let gone = |e: &SysfsError| e.errno == libc::ENOENT || e.errno == libc::ENOTDIR;
    let drivers = match fs.list(paths::AP_DRIVERS) {
        Ok(d) => d,
        Err(e) if gone(&e) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.into()),
    };
    let mut bound = Vec::new();
    for driver in drivers.into_iter().filter(|d| listed(d)) {
        // A driver may be unloaded between the two listings.
        let names = match fs.list(&format!("{}/{driver}", paths::AP_DRIVERS)) {
            Ok(n) => n,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        let driver: Arc<str> = driver.into();
        bound.extend(
            names
                .iter()
                .filter_map(|name| name.parse::<Apqn>().ok())
                .map(|apqn| (apqn, driver.clone())),
        );
    }
    // One build of the map (64,512 names in cex4queue's listing on a full
    // LPAR), not an insert per name.
    Ok(bound.into_iter().collect())
}

/// The driver of a queue (basename of its `driver` link); None when
/// unbound or gone.
pub(crate) fn read_driver(fs: &dyn Sysfs, apqn: Apqn) -> Result<Option<Arc<str>>, HostError> {
    match fs.read_link(&format!("{}/driver", paths::queue(apqn))) {
        Ok(target) => Ok(target
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(Arc::from)),
        Err(e) if e.errno == libc::ENOENT || e.errno == libc::EINVAL => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One queue as the model keeps it; None when its directory is gone.
pub(crate) fn read_queue(fs: &dyn Sysfs, apqn: Apqn) -> Result<Option<Queue>, HostError> {
    if !fs.exists(&paths::queue(apqn)) {
        return Ok(None);
    }
    Ok(Some(Queue {
        apqn,
        driver: read_driver(fs, apqn)?,
    }))
}

impl QueueState {
    /// Reads a queue's `config`, `chkstop` and `online` (three files);
    /// None when the queue is gone. Kernels without `config` have no
    /// standby state (configured), a queue without `online` is not bound
    /// to cex4queue.
    pub fn read(fs: &dyn Sysfs, apqn: Apqn) -> Result<Option<QueueState>, HostError> {
        let dir = paths::queue(apqn);
        let attr = |name: &str| read_opt(fs, &format!("{dir}/{name}"));
        let config = attr("config")?;
        if config.is_none() && !fs.exists(&dir) {
            return Ok(None);
        }
        Ok(Some(QueueState {
            config: config.and_then(|s| parse_bool(&s)).unwrap_or(true),
            chkstop: attr("chkstop")?
                .and_then(|s| parse_bool(&s))
                .unwrap_or(false),
            online: attr("online")?.and_then(|s| parse_bool(&s)),
        }))
    }
}

/// [`read_mdev_from`] for an mdev most likely absent (one about to be
/// created): one lookup of its directory settles that, where a read of its
/// attributes first would cost two.
pub(crate) fn read_likely_absent_mdev(
    fs: &dyn Sysfs,
    uuid: Uuid,
    queues: &BTreeMap<Apqn, Queue>,
) -> Result<Option<Mdev>, HostError> {
    if !fs.exists(&paths::mdev(&uuid)) {
        return Ok(None);
    }
    read_mdev_from(fs, uuid, queues)
}

pub(crate) fn read_mdev_from(
    fs: &dyn Sysfs,
    uuid: Uuid,
    queues: &BTreeMap<Apqn, Queue>,
) -> Result<Option<Mdev>, HostError> {
    let dir = paths::mdev(&uuid);
    let gone = |e: &SysfsError| e.errno == libc::ENOENT || e.errno == libc::ENODEV;
    let ap_config_path = format!("{dir}/ap_config");
    // ap_config gives the three masks in one read (one consistent snapshot);
    // only when it is missing do we look whether the mdev is (an mdev is
    // re-read before every report: one access fewer per mdev counts).
    let matrix = match fs.read(&ap_config_path) {
        Ok(text) => {
            let (a, d, c) = parse_ap_config(&text).map_err(|e| matrix_err(ap_config_path, e))?;
            Matrix::new(a, d, c)
        }
        Err(e) if gone(&e) && !fs.exists(&dir) => return Ok(None),
        // Without ap_config (older kernels), or an mdev being removed: the
        // kernel removes a device's attributes before its directory, so a
        // reader can meet the directory without `matrix`. Either way an
        // mdev without `matrix` is gone.
        Err(e) if gone(&e) => {
            let mpath = format!("{dir}/matrix");
            let (a, d) = match fs.read(&mpath) {
                Ok(t) => parse_matrix(&t).map_err(|e| matrix_err(mpath, e))?,
                Err(e) if gone(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let cpath = format!("{dir}/control_domains");
            let c = match fs.read(&cpath) {
                Ok(t) => parse_control_domains(&t).map_err(|e| matrix_err(cpath, e))?,
                Err(e) if gone(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            Matrix::new(a, d, c)
        }
        Err(e) => return Err(e.into()),
    };
    let gpath = format!("{dir}/guest_matrix");
    let guest_matrix = match fs.read(&gpath) {
        Ok(t) => {
            let (adapters, domains) = parse_matrix(&t).map_err(|e| matrix_err(gpath, e))?;
            Some(GuestMatrix { adapters, domains })
        }
        Err(e) if gone(&e) => None,
        Err(e) => return Err(e.into()),
    };
    // Every queue of the guest matrix reports `in use` while a guest holds
    // the mdev, so the first queue with a status decides. The status is
    // read live: a guest opening the mdev sends no uevent. `queues` (the
    // model, when known) skips queues not bound to vfio_ap.
    let (ga, gd) = match &guest_matrix {
        Some(g) => (g.adapters, g.domains),
        None => (matrix.adapters, matrix.domains),
    };
    let mut in_use = false;
    'outer: for a in ga.iter() {
        for d in gd.iter() {
            let apqn = Apqn::new(a, d);
            if !queues.is_empty() && !queues.get(&apqn).is_some_and(Queue::is_vfio) {
                continue;
            }
            if let Ok(s) = fs.read(&format!("{}/status", paths::queue(apqn))) {
                in_use = s.trim() == "in use";
                break 'outer;
            }
        }
    }
    Ok(Some(Mdev {
        uuid,
        matrix,
        guest_matrix,
        in_use,
    }))
}
