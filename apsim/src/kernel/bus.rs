//! The AP bus as the kernel runs it: binding queues to drivers as the
//! masks say (kernel spec §2, §3), bus scans and the LPAR's hot plug
//! (§1, §7), and loading and unloading vfio_ap (§8).

use super::*;

impl Kernel {
    pub(crate) fn bind_queue(&mut self, a: u8, d: u8, drv: Drv) {
        let card_online = self.cards.get(&a).is_some_and(|c| c.online);
        let Some(q) = self.queues.get_mut(&(a, d)) else {
            return;
        };
        q.driver = Some(drv);
        if drv == Drv::Cex4Queue {
            q.online = card_online;
        }
        self.probed = true;
        self.event("bind", &Dev::Queue(a, d), &[]);
        if drv == Drv::VfioAp {
            if let Some(i) = self.holder(a, d) {
                // During a scan that adds assigned ids the filter waits for
                // the scan's end (on_scan_complete).
                if !self.mdevs[i].scan_added {
                    self.full_filter(i);
                }
            }
        }
    }

    pub(crate) fn unbind_queue(&mut self, a: u8, d: u8) {
        let Some(old) = self.queues.get_mut(&(a, d)).and_then(|q| q.driver.take()) else {
            return;
        };
        if old == Drv::VfioAp {
            // A queue leaving vfio_ap unplugs its whole adapter from the guest.
            for m in &mut self.mdevs {
                if m.shadow_apm.get(a) && m.shadow_aqm.get(d) {
                    m.shadow_apm.clear(a);
                }
            }
        }
        self.uevent(
            "unbind",
            &Dev::Queue(a, d),
            &[],
            DriverKey::Is(Some(old.name())),
        );
    }

    /// Binds an unbound queue to the driver the masks give it to.
    pub(crate) fn probe_queue(&mut self, a: u8, d: u8) {
        if self.queues.get(&(a, d)).is_some_and(|q| q.driver.is_none()) {
            if let Some(drv) = self.wanted_driver(a, d) {
                self.bind_queue(a, d, drv);
            }
        }
    }

    /// After a mask change: every queue whose owner changed leaves its
    /// driver and is probed again.
    pub(crate) fn revise_bindings(&mut self, old_apmask: Bits, old_aqmask: Bits) {
        let affected: Vec<(u8, u8)> = self
            .queues
            .keys()
            .copied()
            .filter(|(a, d)| {
                let before = old_apmask.get(*a) && old_aqmask.get(*d);
                before != self.host_owned(*a, *d)
            })
            .collect();
        for (a, d) in affected {
            self.unbind_queue(a, d);
            self.probe_queue(a, d);
        }
    }

    // ---- the guest matrix ---------------------------------------------------

    /// The full filter (§6): assigned ∩ host configuration, then drop every
    /// adapter with a queue not bound to vfio_ap.
    pub(crate) fn full_filter(&mut self, i: usize) {
        let m = &self.mdevs[i];
        let mut apm = m.apm.and(&self.host_apm);
        let aqm = m.aqm.and(&self.host_aqm);
        for a in apm.clone().iter() {
            if aqm.iter().any(|d| !self.bound_to_vfio(a, d)) {
                apm.clear(a);
            }
        }
        let m = &mut self.mdevs[i];
        m.shadow_apm = apm;
        m.shadow_aqm = aqm;
    }

    // ---- bus scans ----------------------------------------------------------

    /// One AP bus scan. `config` is the host configuration firmware reports
    /// now (None: unchanged).
    pub(crate) fn scan(&mut self, config: Option<(Bits, Bits, Bits)>) {
        let mut changed = false;
        if let Some((apm, aqm, adm)) = config {
            if (apm, aqm, adm) != (self.host_apm, self.host_aqm, self.host_adm) {
                changed = true;
                let removed_apm = self.host_apm.minus(&apm);
                let removed_aqm = self.host_aqm.minus(&aqm);
                let added_apm = apm.minus(&self.host_apm);
                let added_aqm = aqm.minus(&self.host_aqm);
                self.host_apm = apm;
                self.host_aqm = aqm;
                self.host_adm = adm;
                if self.vfio_loaded {
                    // vfio_ap's on_config_changed: unplug what left, note
                    // what came back for the filter at the scan's end.
                    for m in &mut self.mdevs {
                        m.shadow_apm = m.shadow_apm.minus(&removed_apm);
                        m.shadow_aqm = m.shadow_aqm.minus(&removed_aqm);
                        m.scan_added =
                            !m.apm.and(&added_apm).is_empty() || !m.aqm.and(&added_aqm).is_empty();
                    }
                }
            }
        }
        self.select_domain();
        for a in 0..=self.max_apid {
            self.scan_adapter(a);
        }
        if changed {
            for i in 0..self.mdevs.len() {
                if self.mdevs[i].scan_added {
                    self.mdevs[i].scan_added = false;
                    self.full_filter(i);
                }
            }
        }
        self.scans += 1;
        if self.scans == 1 {
            self.event("change", &Dev::ApRoot, &["INITSCAN=done".to_string()]);
        }
        self.check_bindings_complete();
    }

    /// The default domain (`ap_domain`): kept while it is a usage domain,
    /// else the lowest usage domain.
    fn select_domain(&mut self) {
        if self.ap_domain.is_some_and(|d| self.host_aqm.get(d)) {
            return;
        }
        self.ap_domain = self.host_aqm.iter().next();
    }

    fn scan_adapter(&mut self, a: u8) {
        let wanted =
            self.host_apm.get(a) && self.specs.get(&a).is_some_and(|s| s.card_type.has_card());
        let exists = self.cards.contains_key(&a);
        if exists && !wanted {
            self.remove_card(a);
            return;
        }
        if !wanted {
            return;
        }
        if !exists {
            self.add_card(a);
        }
        let gone: Vec<u8> = self
            .queues
            .range((a, 0)..=(a, 255))
            .map(|((_, d), _)| *d)
            .filter(|d| !self.host_aqm.get(*d))
            .collect();
        for d in gone {
            self.remove_queue(a, d);
        }
        let card_config = self.cards.get(&a).is_some_and(|c| c.config);
        for d in self.host_aqm.iter().collect::<Vec<_>>() {
            match self.queues.get_mut(&(a, d)) {
                None => self.add_queue(a, d),
                Some(q) if q.config != card_config => {
                    q.config = card_config;
                    let key = format!("CONFIG={}", u8::from(card_config));
                    self.event("change", &Dev::Queue(a, d), &[key]);
                }
                Some(_) => {}
            }
        }
    }

    fn add_card(&mut self, a: u8) {
        let Some(spec) = self.specs.get(&a) else {
            return;
        };
        self.cards.insert(
            a,
            Card {
                card_type: spec.card_type,
                config: spec.config,
                chkstop: spec.chkstop,
                online: false,
                driver: None,
            },
        );
        self.event("add", &Dev::Card(a), &[]);
        if let Some(c) = self.cards.get_mut(&a) {
            c.driver = Some(Drv::Cex4Card);
            c.online = true;
        }
        self.event("bind", &Dev::Card(a), &[]);
    }

    fn add_queue(&mut self, a: u8, d: u8) {
        let config = self.cards.get(&a).is_some_and(|c| c.config);
        self.queues.insert(
            (a, d),
            Queue {
                config,
                online: false,
                driver: None,
            },
        );
        self.event("add", &Dev::Queue(a, d), &[]);
        self.probe_queue(a, d);
    }

    fn remove_queue(&mut self, a: u8, d: u8) {
        self.unbind_queue(a, d);
        self.event("remove", &Dev::Queue(a, d), &[]);
        self.queues.remove(&(a, d));
    }

    fn remove_card(&mut self, a: u8) {
        let ds: Vec<u8> = self
            .queues
            .range((a, 0)..=(a, 255))
            .map(|((_, d), _)| *d)
            .collect();
        for d in ds {
            self.remove_queue(a, d);
        }
        if let Some(old) = self.cards.get_mut(&a).and_then(|c| c.driver.take()) {
            self.uevent(
                "unbind",
                &Dev::Card(a),
                &[],
                DriverKey::Is(Some(old.name())),
            );
        }
        self.event("remove", &Dev::Card(a), &[]);
        self.cards.remove(&a);
    }

    /// Bound queues and all queues, as `bindings` counts them.
    pub(crate) fn binding_counts(&self) -> (usize, usize) {
        let bound = self.queues.values().filter(|q| q.driver.is_some()).count();
        (bound, self.queues.len())
    }

    pub(crate) fn check_bindings_complete(&mut self) {
        let (bound, all) = self.binding_counts();
        if self.scans >= 1 && bound == all && self.probed {
            self.probed = false;
            self.complete_count += 1;
            let keys = [
                "BINDINGS=complete".to_string(),
                format!("COMPLETECOUNT={}", self.complete_count),
            ];
            self.event("change", &Dev::ApRoot, &keys);
        }
    }

    // ---- the vfio_ap module -------------------------------------------------

    pub(crate) fn load_vfio_ap(&mut self) {
        if self.vfio_loaded {
            return;
        }
        self.uevent("add", &Dev::Matrix, &[], DriverKey::Is(None));
        self.vfio_loaded = true;
        self.event("bind", &Dev::Matrix, &[]);
        let free: Vec<(u8, u8)> = self
            .queues
            .iter()
            .filter(|(_, q)| q.driver.is_none())
            .map(|(k, _)| *k)
            .collect();
        for (a, d) in free {
            self.probe_queue(a, d);
        }
        self.check_bindings_complete();
        self.event(
            "change",
            &Dev::Matrix,
            &["MDEV_STATE=registered".to_string()],
        );
    }

    pub(crate) fn unload_vfio_ap(&mut self) -> Result<(), Errno> {
        if !self.vfio_loaded {
            return Ok(());
        }
        if let Some(m) = self.mdevs.iter().find(|m| m.in_use) {
            tracing::warn!("vfio_ap stays loaded: a guest uses mdev {}", m.uuid);
            return Err(libc::EBUSY);
        }
        while let Some(i) = self.mdevs.len().checked_sub(1) {
            self.remove_mdev(i);
        }
        self.event(
            "change",
            &Dev::Matrix,
            &["MDEV_STATE=unregistered".to_string()],
        );
        let bound: Vec<(u8, u8)> = self
            .queues
            .iter()
            .filter(|(_, q)| q.driver == Some(Drv::VfioAp))
            .map(|(k, _)| *k)
            .collect();
        for (a, d) in bound {
            self.unbind_queue(a, d);
        }
        self.uevent("unbind", &Dev::Matrix, &[], DriverKey::Is(Some("vfio_ap")));
        self.uevent("remove", &Dev::Matrix, &[], DriverKey::Is(None));
        self.vfio_loaded = false;
        Ok(())
    }

    /// Removes an mdev now (its guest has released it).
    pub(crate) fn remove_mdev(&mut self, i: usize) {
        let dev = Dev::Mdev(self.mdevs[i].uuid.clone());
        self.uevent("unbind", &dev, &[], DriverKey::Is(Some("vfio_ap_mdev")));
        self.mdevs.remove(i);
        self.event("remove", &dev, &[]);
    }

    pub(crate) fn new_iommu_group(&mut self) -> u32 {
        let g = self.next_iommu_group;
        self.next_iommu_group += 1;
        g
    }
}
