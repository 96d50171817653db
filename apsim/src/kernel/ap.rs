//! The AP bus side: bus attributes (masks and the rest), driver bind and
//! unbind, card and queue attributes.

use super::tree::{parse_card, parse_queue, BusAttr, CardAttr, QueueAttr};
use super::{apqn, BusDev, Dev, DriverKey, Drv, Kernel};
use crate::bits::Bits;
use crate::parse;
use crate::topology::{CardType, Mode};
use crate::Errno;

/// `ap_functions` (TAPQ GR2): APSC, MEX4K, CRT4K and APXA, the mode bit,
/// and the full function set class for coprocessors.
fn ap_functions(t: CardType) -> u32 {
    let mode = match t.mode {
        Mode::Cca => 0x1080_0000,
        Mode::Accel => 0x0800_0000,
        Mode::Ep11 => 0x0480_0000,
    };
    0xE200_0000 | mode
}

fn max_msg_size(t: CardType) -> u32 {
    if t.generation >= 8 {
        24_576
    } else {
        12_288
    }
}

fn serialnr(t: CardType, a: u8) -> String {
    match t.mode {
        Mode::Ep11 => format!("93AABEF{a:09}"),
        _ => format!("93AAB{a:03}"),
    }
}

fn flag(b: bool) -> String {
    format!("{}\n", u8::from(b))
}

/// `sscanf(buf, "%d")` for the 0/1 attributes (`config`, `online`).
fn zero_or_one(data: &[u8]) -> Result<bool, Errno> {
    match parse::sscanf_int(data, false) {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        _ => Err(libc::EINVAL),
    }
}

#[derive(Clone, Copy)]
enum WhichMask {
    Ap,
    Aq,
}

impl Kernel {
    pub(crate) fn show_bus(&self, b: BusAttr) -> String {
        match b {
            BusAttr::Apmask => format!("{}\n", self.apmask.to_hex()),
            BusAttr::Aqmask => format!("{}\n", self.aqmask.to_hex()),
            BusAttr::AdapterMask => format!("{}\n", self.host_apm.to_hex()),
            BusAttr::UsageDomainMask => format!("{}\n", self.host_aqm.to_hex()),
            BusAttr::ControlDomainMask => format!("{}\n", self.host_adm.to_hex()),
            BusAttr::MaxAdapterId => format!("{}\n", self.max_apid),
            BusAttr::MaxDomainId => format!("{}\n", self.max_apqi),
            BusAttr::ApDomain => format!("{}\n", self.ap_domain.map_or(-1, i32::from)),
            BusAttr::ApInterrupts => "1\n".to_string(),
            BusAttr::ConfigTime => format!("{}\n", self.config_time),
            BusAttr::PollThread => flag(self.poll_thread),
            BusAttr::PollTimeout => format!("{}\n", self.poll_timeout),
            BusAttr::Features => "APSC APXA QACT RC8A APSB\n".to_string(),
            BusAttr::Bindings => {
                let (bound, all) = self.binding_counts();
                if self.scans >= 1 && bound == all {
                    format!("{bound}/{all} (complete)\n")
                } else {
                    format!("{bound}/{all}\n")
                }
            }
            BusAttr::Scans => format!("{}\n", self.scans),
            BusAttr::DriversProbe => String::new(),
        }
    }

    pub(crate) fn store_bus(&mut self, b: BusAttr, data: &[u8]) -> Result<(), Errno> {
        match b {
            BusAttr::Apmask => self.store_mask(WhichMask::Ap, data),
            BusAttr::Aqmask => self.store_mask(WhichMask::Aq, data),
            BusAttr::ApDomain => {
                let d = parse::sscanf_int(data, true)
                    .and_then(|d| u8::try_from(d).ok())
                    .filter(|d| *d <= self.max_apqi && self.aqmask.get(*d))
                    .ok_or(libc::EINVAL)?;
                self.ap_domain = Some(d);
                Ok(())
            }
            BusAttr::ConfigTime => {
                let t = parse::sscanf_int(data, false)
                    .filter(|t| (5..=120).contains(t))
                    .ok_or(libc::EINVAL)?;
                self.config_time = t;
                Ok(())
            }
            BusAttr::PollThread => {
                self.poll_thread = parse::kstrtobool(data)?;
                Ok(())
            }
            BusAttr::PollTimeout => {
                let t = parse::kstrtoull(data, 10)
                    .ok()
                    .filter(|t| (1..=120_000_000_000).contains(t))
                    .ok_or(libc::EINVAL)?;
                self.poll_timeout = t;
                Ok(())
            }
            BusAttr::Scans => {
                self.scan(None);
                Ok(())
            }
            BusAttr::DriversProbe => {
                match self.find_bus_dev(data).ok_or(libc::ENODEV)? {
                    BusDev::Card(a) => self.attach_card(a),
                    BusDev::Queue(a, d) => self.probe_queue(a, d),
                }
                Ok(())
            }
            _ => Err(libc::EACCES),
        }
    }

    /// apmask/aqmask store (§2).
    fn store_mask(&mut self, which: WhichMask, data: &[u8]) -> Result<(), Errno> {
        let current = match which {
            WhichMask::Ap => self.apmask,
            WhichMask::Aq => self.aqmask,
        };
        let new = parse::mask_str(data, current)?;
        if new == current {
            return Ok(());
        }
        let newly_set = new.minus(&current);
        if self.vfio_loaded && !newly_set.is_empty() {
            let (apm, aqm) = match which {
                WhichMask::Ap => (newly_set, self.aqmask),
                WhichMask::Aq => (self.apmask, newly_set),
            };
            self.check_reservable(apm, aqm)?;
        }
        let (old_ap, old_aq) = (self.apmask, self.aqmask);
        let key = match which {
            WhichMask::Ap => {
                self.apmask = new;
                format!("APMASK={}\n", new.to_hex())
            }
            WhichMask::Aq => {
                self.aqmask = new;
                format!("AQMASK={}\n", new.to_hex())
            }
        };
        self.revise_bindings(old_ap, old_aq);
        self.uevent("change", &Dev::ApRoot, &[key], DriverKey::Current);
        Ok(())
    }

    /// vfio_ap's in_use callback: EBUSY when an APQN the host would take
    /// lies in an mdev's matrix; logs each for the first such mdev.
    fn check_reservable(&mut self, apm: Bits, aqm: Bits) -> Result<(), Errno> {
        let Some((uuid, a, d)) = self.first_overlap(None, &apm, &aqm) else {
            return Ok(());
        };
        for ap in a.iter() {
            for dom in d.iter() {
                self.klog(format!(
                    "vfio_ap_mdev {uuid}: Can not reserve queue {} for host driver: in use by mdev",
                    apqn(ap, dom)
                ));
            }
        }
        Err(libc::EBUSY)
    }

    /// `bus_find_device_by_name`: exact name, one trailing newline ignored.
    fn find_bus_dev(&self, data: &[u8]) -> Option<BusDev> {
        let s = parse::cstr(data);
        let name = std::str::from_utf8(s.strip_suffix(b"\n").unwrap_or(s)).ok()?;
        if let Some(a) = parse_card(name) {
            return self.cards.contains_key(&a).then_some(BusDev::Card(a));
        }
        let (a, d) = parse_queue(name)?;
        self.queues
            .contains_key(&(a, d))
            .then_some(BusDev::Queue(a, d))
    }

    fn attach_card(&mut self, a: u8) {
        if let Some(c) = self.cards.get_mut(&a) {
            if c.driver.is_none() {
                c.driver = Some(Drv::Cex4Card);
                c.online = true;
                self.uevent("bind", &Dev::Card(a), &[], DriverKey::Current);
            }
        }
    }

    pub(crate) fn store_bind(&mut self, drv: Drv, data: &[u8]) -> Result<(), Errno> {
        let dev = self.find_bus_dev(data).ok_or(libc::ENODEV)?;
        match (dev, drv) {
            (BusDev::Card(a), Drv::Cex4Card) => {
                if self.cards.get(&a).is_some_and(|c| c.driver.is_some()) {
                    return Err(libc::EBUSY);
                }
                self.attach_card(a);
                Ok(())
            }
            (BusDev::Queue(a, d), Drv::Cex4Queue | Drv::VfioAp) => {
                if self.queues.get(&(a, d)).is_some_and(|q| q.driver.is_some()) {
                    return Err(libc::EBUSY);
                }
                let host = self.host_owned(a, d);
                if host != (drv == Drv::Cex4Queue) {
                    return Err(libc::ENODEV);
                }
                self.bind_queue(a, d, drv);
                Ok(())
            }
            _ => Err(libc::ENODEV),
        }
    }

    pub(crate) fn store_unbind(&mut self, drv: Drv, data: &[u8]) -> Result<(), Errno> {
        match self.find_bus_dev(data).ok_or(libc::ENODEV)? {
            BusDev::Card(a) => {
                let c = self.cards.get_mut(&a).ok_or(libc::ENODEV)?;
                if c.driver != Some(drv) {
                    return Err(libc::ENODEV);
                }
                c.driver = None;
                self.uevent(
                    "unbind",
                    &Dev::Card(a),
                    &[],
                    DriverKey::Is(Some(drv.name())),
                );
                Ok(())
            }
            BusDev::Queue(a, d) => {
                if self.queues.get(&(a, d)).and_then(|q| q.driver) != Some(drv) {
                    return Err(libc::ENODEV);
                }
                self.unbind_queue(a, d);
                Ok(())
            }
        }
    }

    pub(crate) fn show_card(&self, a: u8, attr: CardAttr) -> Result<String, Errno> {
        let c = self.cards.get(&a).ok_or(libc::ENODEV)?;
        let t = c.card_type;
        Ok(match attr {
            CardAttr::Hwtype | CardAttr::RawHwtype => format!("{}\n", t.hwtype()),
            CardAttr::Type => format!("{t}\n"),
            CardAttr::Depth => "8\n".to_string(),
            CardAttr::ApFunctions => format!("0x{:08X}\n", ap_functions(t)),
            CardAttr::RequestCount
            | CardAttr::RequestqCount
            | CardAttr::PendingqCount
            | CardAttr::Load => "0\n".to_string(),
            CardAttr::Modalias => format!("ap:t{:02X}\n", t.hwtype()),
            CardAttr::Chkstop => flag(c.chkstop),
            CardAttr::MaxMsgSize => format!("{}\n", max_msg_size(t)),
            CardAttr::Serialnr => format!("{}\n", serialnr(t, a)),
            CardAttr::Config => flag(c.config),
            CardAttr::Online => flag(c.config && !c.chkstop && c.online),
        })
    }

    pub(crate) fn store_card(&mut self, a: u8, attr: CardAttr, data: &[u8]) -> Result<(), Errno> {
        match attr {
            CardAttr::Config => {
                let on = zero_or_one(data)?;
                let c = self.cards.get_mut(&a).ok_or(libc::ENODEV)?;
                c.config = on;
                if let Some(s) = self.specs.get_mut(&a) {
                    s.config = on;
                }
                self.uevent(
                    "change",
                    &Dev::Card(a),
                    &[format!("CONFIG={}", u8::from(on))],
                    DriverKey::Current,
                );
                // The queues follow at the next scan; the simulator scans now.
                self.scan(None);
                Ok(())
            }
            CardAttr::Online => {
                let on = zero_or_one(data)?;
                let c = self.cards.get_mut(&a).ok_or(libc::ENODEV)?;
                if on && (!c.config || c.chkstop) {
                    return Err(libc::ENODEV);
                }
                c.online = on;
                let key = [format!("ONLINE={}", u8::from(on))];
                self.uevent("change", &Dev::Card(a), &key, DriverKey::Current);
                let changed: Vec<u8> = self
                    .queues
                    .range((a, 0)..=(a, 255))
                    .filter(|(_, q)| q.driver == Some(Drv::Cex4Queue) && q.online != on)
                    .map(|((_, d), _)| *d)
                    .collect();
                for d in changed {
                    if let Some(q) = self.queues.get_mut(&(a, d)) {
                        q.online = on;
                    }
                    self.uevent("change", &Dev::Queue(a, d), &key, DriverKey::Current);
                }
                Ok(())
            }
            _ => Err(libc::EACCES),
        }
    }

    pub(crate) fn show_queue(&self, a: u8, d: u8, attr: QueueAttr) -> Result<String, Errno> {
        let q = self.queues.get(&(a, d)).ok_or(libc::ENODEV)?;
        let c = self.cards.get(&a).ok_or(libc::ENODEV)?;
        Ok(match attr {
            QueueAttr::RequestCount
            | QueueAttr::RequestqCount
            | QueueAttr::PendingqCount
            | QueueAttr::Load => "0\n".to_string(),
            QueueAttr::Reset => "No Reset Timer set.\n".to_string(),
            QueueAttr::Interrupt => {
                if q.config {
                    "Interrupts enabled.\n".to_string()
                } else {
                    "Interrupts disabled.\n".to_string()
                }
            }
            QueueAttr::Config => flag(q.config),
            QueueAttr::Chkstop => flag(c.chkstop),
            QueueAttr::ApFunctions => format!("0x{:08X}\n", ap_functions(c.card_type)),
            QueueAttr::Online => flag(q.config && c.config && !c.chkstop && q.online),
            QueueAttr::Status => match self.holder(a, d) {
                Some(i) => {
                    let m = &self.mdevs[i];
                    if m.in_use && m.shadow_apm.get(a) && m.shadow_aqm.get(d) {
                        "in use\n".to_string()
                    } else {
                        "assigned\n".to_string()
                    }
                }
                None => "unassigned\n".to_string(),
            },
        })
    }

    pub(crate) fn store_queue(
        &mut self,
        a: u8,
        d: u8,
        attr: QueueAttr,
        data: &[u8],
    ) -> Result<(), Errno> {
        match attr {
            // A reset of an idle simulated queue completes at once.
            QueueAttr::Reset => Ok(()),
            QueueAttr::Online => {
                let on = zero_or_one(data)?;
                let c = self.cards.get(&a).ok_or(libc::ENODEV)?;
                let (card_config, chkstop, card_online) = (c.config, c.chkstop, c.online);
                let q = self.queues.get_mut(&(a, d)).ok_or(libc::ENODEV)?;
                if on && (!q.config || !card_config || chkstop) {
                    return Err(libc::ENODEV);
                }
                if on && !card_online {
                    return Err(libc::EINVAL);
                }
                q.online = on;
                let key = [format!("ONLINE={}", u8::from(on))];
                self.uevent("change", &Dev::Queue(a, d), &key, DriverKey::Current);
                Ok(())
            }
            _ => Err(libc::EACCES),
        }
    }
}
