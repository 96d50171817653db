//! The libvirt domain XML that passes an mdev to a guest. libvirt's schema
//! (domaincommon.rng, `hostdevsubsysmdev`) wants, for vfio_ap, a
//! `<hostdev mode='subsystem' type='mdev' model='vfio-ap'>` whose
//! `<source><address uuid='...'/></source>` names the mdev; libvirt then
//! gives QEMU `-device vfio-ap,sysfsdev=/sys/bus/mdev/devices/<uuid>`.

/// The `<hostdev>` element for the mdev `uuid` (lower case, as sysfs names
/// it), indented for a domain's `<devices>`, ending in a newline.
pub fn hostdev(uuid: &str) -> String {
    let uuid = uuid.to_ascii_lowercase();
    format!(
        "<hostdev mode='subsystem' type='mdev' model='vfio-ap'>\n  <source>\n    <address uuid='{uuid}'/>\n  </source>\n</hostdev>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_element_names_the_mdev() {
        assert_eq!(
            hostdev("62177883-F1BB-47F0-914D-32A22E3A8804"),
            "<hostdev mode='subsystem' type='mdev' model='vfio-ap'>\n  \
             <source>\n    \
             <address uuid='62177883-f1bb-47f0-914d-32a22e3a8804'/>\n  \
             </source>\n\
             </hostdev>\n"
        );
    }
}
