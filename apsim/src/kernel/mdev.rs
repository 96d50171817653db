//! vfio_ap: the mdev type (`create`), and each mdev's assignment
//! attributes, matrix views and `remove` (§4, §5, §6).

use super::tree::{MdevAttr, TypeAttr, Written};
use super::{apqn, Dev, DriverKey, Kernel, Mdev};
use crate::bits::Bits;
use crate::parse;
use crate::Errno;

/// Instances of vfio_ap-passthrough the kernel allows.
pub(crate) const MAX_INSTANCES: usize = 65536;
/// `ap_config` reads at most this many bytes of a write.
const AP_CONFIG_STRLEN: usize = 201;

/// Which dimension an assign/unassign attribute changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dim {
    Adapter,
    Domain,
    Control,
}

/// `matrix`/`guest_matrix` text: one `%02x.%04x` line per APQN, adapters
/// outer; `aa.` or `.dddd` lines when the other dimension is empty.
fn matrix_text(apm: &Bits, aqm: &Bits) -> String {
    let mut s = String::new();
    match (apm.is_empty(), aqm.is_empty()) {
        (false, false) => {
            for a in apm.iter() {
                for d in aqm.iter() {
                    s.push_str(&apqn(a, d));
                    s.push('\n');
                }
            }
        }
        (false, true) => {
            for a in apm.iter() {
                s.push_str(&format!("{a:02x}.\n"));
            }
        }
        (true, false) => {
            for d in aqm.iter() {
                s.push_str(&format!(".{d:04x}\n"));
            }
        }
        (true, true) => {}
    }
    s
}

impl Kernel {
    pub(crate) fn show_type(&self, t: TypeAttr) -> String {
        match t {
            TypeAttr::Name => "VFIO AP Passthrough Device\n".to_string(),
            TypeAttr::DeviceApi => "vfio-ap\n".to_string(),
            TypeAttr::AvailableInstances => {
                format!("{}\n", self.mdev_limit.saturating_sub(self.mdevs.len()))
            }
            TypeAttr::Create => String::new(),
        }
    }

    /// `mdev_supported_types/vfio_ap-passthrough/create`.
    pub(crate) fn store_create(&mut self, data: &[u8]) -> Result<(), Errno> {
        if !(36..=37).contains(&data.len()) {
            return Err(libc::EINVAL);
        }
        let s = parse::cstr(data);
        if !parse::uuid_is_valid(s) {
            return Err(libc::EINVAL);
        }
        let uuid = String::from_utf8_lossy(&s[..36]).to_ascii_lowercase();
        if self.mdev_index(&uuid).is_some() {
            return Err(libc::EEXIST);
        }
        if self.mdevs.len() >= self.mdev_limit {
            return Err(libc::EUSERS);
        }
        let iommu_group = self.new_iommu_group();
        self.mdevs.push(Mdev::new(uuid.clone(), iommu_group));
        let dev = Dev::Mdev(uuid);
        self.uevent("add", &dev, &[], DriverKey::Is(None));
        self.uevent("bind", &dev, &[], DriverKey::Current);
        Ok(())
    }

    pub(crate) fn show_mdev(&self, uuid: &str, attr: MdevAttr) -> Result<String, Errno> {
        let m = &self.mdevs[self.mdev_index(uuid).ok_or(libc::ENODEV)?];
        Ok(match attr {
            MdevAttr::Matrix => matrix_text(&m.apm, &m.aqm),
            MdevAttr::GuestMatrix => matrix_text(&m.shadow_apm, &m.shadow_aqm),
            MdevAttr::ControlDomains => m.adm.iter().map(|d| format!("{d:04x}\n")).collect(),
            MdevAttr::ApConfig => {
                format!("{},{},{}\n", m.apm.to_hex(), m.aqm.to_hex(), m.adm.to_hex())
            }
            _ => return Err(libc::EACCES),
        })
    }

    pub(crate) fn store_mdev(
        &mut self,
        uuid: &str,
        attr: MdevAttr,
        data: &[u8],
    ) -> Result<Written, Errno> {
        let i = self.mdev_index(uuid).ok_or(libc::ENODEV)?;
        let n = data.len();
        match attr {
            MdevAttr::AssignAdapter => self.assign(i, Dim::Adapter, data),
            MdevAttr::AssignDomain => self.assign(i, Dim::Domain, data),
            MdevAttr::AssignControlDomain => self.assign(i, Dim::Control, data),
            MdevAttr::UnassignAdapter => self.unassign(i, Dim::Adapter, data),
            MdevAttr::UnassignDomain => self.unassign(i, Dim::Domain, data),
            MdevAttr::UnassignControlDomain => self.unassign(i, Dim::Control, data),
            MdevAttr::ApConfig => self.store_ap_config(i, data),
            MdevAttr::Remove => return self.store_remove(i, data),
            MdevAttr::Matrix | MdevAttr::GuestMatrix | MdevAttr::ControlDomains => {
                Err(libc::EACCES)
            }
        }
        .map(|()| Written::Done(n))
    }

    fn max_id(&self, dim: Dim) -> u8 {
        match dim {
            Dim::Adapter => self.max_apid,
            Dim::Domain | Dim::Control => self.max_apqi,
        }
    }

    /// kstrtoul, then ENODEV above the maximum id.
    fn parse_id(&self, dim: Dim, data: &[u8]) -> Result<u8, Errno> {
        let id = parse::kstrtoul(data)?;
        u8::try_from(id)
            .ok()
            .filter(|id| *id <= self.max_id(dim))
            .ok_or(libc::ENODEV)
    }

    /// `assign_adapter`, `assign_domain`, `assign_control_domain` (§5).
    fn assign(&mut self, i: usize, dim: Dim, data: &[u8]) -> Result<(), Errno> {
        let id = self.parse_id(dim, data)?;
        let m = &self.mdevs[i];
        let (mut apm, mut aqm) = (m.apm, m.aqm);
        match dim {
            Dim::Control => {
                // Control domains are only checked against the maximum.
                self.mdevs[i].adm.set(id);
                return Ok(());
            }
            Dim::Adapter if apm.get(id) => return Ok(()),
            Dim::Domain if aqm.get(id) => return Ok(()),
            Dim::Adapter => apm.set(id),
            Dim::Domain => aqm.set(id),
        }
        self.validate_matrix(i, &apm, &aqm)?;
        let m = &mut self.mdevs[i];
        m.apm = apm;
        m.aqm = aqm;
        self.full_filter(i);
        Ok(())
    }

    /// EADDRNOTAVAIL if the host owns an APQN of the matrix, EADDRINUSE
    /// (logged per shared APQN) if another mdev has one.
    fn validate_matrix(&mut self, i: usize, apm: &Bits, aqm: &Bits) -> Result<(), Errno> {
        if !apm.and(&self.apmask).is_empty() && !aqm.and(&self.aqmask).is_empty() {
            return Err(libc::EADDRNOTAVAIL);
        }
        let me = self.mdevs[i].uuid.clone();
        let Some((other, a, d)) = self.first_overlap(Some(i), apm, aqm) else {
            return Ok(());
        };
        for ap in a.iter() {
            for dom in d.iter() {
                self.klog(format!(
                    "vfio_ap_mdev {me}: Userspace may not assign queue {} to mdev: already assigned to {other}",
                    apqn(ap, dom)
                ));
            }
        }
        Err(libc::EADDRINUSE)
    }

    /// `unassign_*`: ENODEV above the maximum; the guest loses only that id.
    fn unassign(&mut self, i: usize, dim: Dim, data: &[u8]) -> Result<(), Errno> {
        let id = self.parse_id(dim, data)?;
        let m = &mut self.mdevs[i];
        match dim {
            Dim::Adapter => {
                m.apm.clear(id);
                m.shadow_apm.clear(id);
            }
            Dim::Domain => {
                m.aqm.clear(id);
                m.shadow_aqm.clear(id);
            }
            Dim::Control => m.adm.clear(id),
        }
        Ok(())
    }

    /// `ap_config` write (§6): three absolute masks, all or nothing.
    fn store_ap_config(&mut self, i: usize, data: &[u8]) -> Result<(), Errno> {
        let s = parse::cstr(data);
        let s = &s[..s.len().min(AP_CONFIG_STRLEN)];
        let mut rest = Some(s);
        let mut masks = [Bits::empty(); 3];
        for mask in &mut masks {
            let field = parse::strsep(&mut rest, b",\n").ok_or(libc::EINVAL)?;
            *mask = parse::hex_mask(field)?;
        }
        let [apm, aqm, adm] = masks;
        self.validate_matrix(i, &apm, &aqm)?;
        let too_big = |b: &Bits, max: u8| b.iter().any(|id| id > max);
        if too_big(&apm, self.max_apid)
            || too_big(&aqm, self.max_apqi)
            || too_big(&adm, self.max_apqi)
        {
            return Err(libc::ENODEV);
        }
        let m = &mut self.mdevs[i];
        m.apm = apm;
        m.aqm = aqm;
        m.adm = adm;
        self.full_filter(i);
        Ok(())
    }

    /// `remove` (§4): blocks while a guest uses the mdev.
    fn store_remove(&mut self, i: usize, data: &[u8]) -> Result<Written, Errno> {
        let n = data.len();
        let value = parse::kstrtoul(data).map_err(|_| libc::EINVAL)?;
        if value == 0 || self.mdevs[i].removing {
            return Ok(Written::Done(n));
        }
        if self.mdevs[i].in_use {
            self.mdevs[i].removing = true;
            let uuid = self.mdevs[i].uuid.clone();
            self.relay_request(&uuid, 0);
            return Ok(Written::AwaitRelease { uuid, len: n });
        }
        self.remove_mdev(i);
        Ok(Written::Done(n))
    }

    /// vfio's device request to the user holding the mdev; logged every
    /// tenth time, as vfio_ap does.
    pub(crate) fn relay_request(&mut self, uuid: &str, count: u32) {
        if count % 10 == 0 {
            self.klog(format!(
                "vfio_ap_mdev {uuid}: Relaying device request to user (#{count})"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    #[test]
    fn create_checks_exists_before_no_instances_left() {
        let topo = Topology::from_toml_str("usage_domains = [1]").expect("topology");
        let mut k = Kernel::boot(&topo);
        k.mdev_limit = 2;
        let a = b"62177883-f1bb-47f0-914d-32a22e3a8804";
        let b = b"4B7D9E3A-1C2F-4A8B-9D6E-0F1A2B3C4D5E\n";
        assert_eq!(k.store_create(a), Ok(()));
        assert_eq!(k.store_create(b), Ok(()));
        assert_eq!(k.show_type(TypeAttr::AvailableInstances), "0\n");
        assert_eq!(
            k.store_create(b"00000000-0000-0000-0000-000000000000"),
            Err(libc::EUSERS)
        );
        assert_eq!(
            k.store_create(b"4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e"),
            Err(libc::EEXIST)
        );
        assert_eq!(k.mdevs[1].uuid, "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e");
    }

    #[test]
    fn matrix_text_shapes() {
        let a = Bits::from_ids([5, 6]);
        let d = Bits::from_ids([4, 0xab]);
        assert_eq!(matrix_text(&a, &d), "05.0004\n05.00ab\n06.0004\n06.00ab\n");
        assert_eq!(matrix_text(&a, &Bits::empty()), "05.\n06.\n");
        assert_eq!(matrix_text(&Bits::empty(), &d), ".0004\n.00ab\n");
        assert_eq!(matrix_text(&Bits::empty(), &Bits::empty()), "");
    }
}
