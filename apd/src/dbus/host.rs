//! `org.apctl.Apd1.Host` on the root object: live host state as
//! properties, updated (with `PropertiesChanged`) by the publisher.

use std::sync::{Arc, RwLock, RwLockReadGuard};

use apbus::AdapterInfo;
use zbus::interface;

/// The values the Host interface shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostProps {
    /// Current apmask, kernel read format.
    pub ap_mask: String,
    /// Current aqmask.
    pub aq_mask: String,
    /// Persistent apmask, empty for none.
    pub persistent_ap_mask: String,
    /// Persistent aqmask, empty for none.
    pub persistent_aq_mask: String,
    /// `ap_max_adapter_id`.
    pub max_adapter_id: u32,
    /// `ap_max_domain_id`.
    pub max_domain_id: u32,
    /// The vfio_ap matrix device is present.
    pub vfio_ap_loaded: bool,
    /// Adapters of the host; shared by the snapshots while the cards stay
    /// as they are (256 of them on a full machine).
    pub adapters: Arc<Vec<AdapterInfo>>,
    /// Definition files that did not load: (path, sentence).
    pub load_errors: Vec<(String, String)>,
}

/// The interface object; the publisher replaces `props` and emits the
/// changes. The bus's object and those of the private socket's peers
/// share one `props`, so each shows what the publisher last made.
#[derive(Debug, Default, Clone)]
pub struct HostIface {
    /// What is shown.
    pub props: Arc<RwLock<HostProps>>,
}

impl HostIface {
    /// What is shown now.
    pub fn shown(&self) -> RwLockReadGuard<'_, HostProps> {
        self.props.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Shows `props` from now on.
    pub fn show(&self, props: HostProps) {
        *self.props.write().unwrap_or_else(|p| p.into_inner()) = props;
    }
}

#[interface(name = "org.apctl.Apd1.Host")]
impl HostIface {
    /// Current apmask, kernel read format.
    #[zbus(property)]
    async fn ap_mask(&self) -> String {
        self.shown().ap_mask.clone()
    }

    /// Current aqmask.
    #[zbus(property)]
    async fn aq_mask(&self) -> String {
        self.shown().aq_mask.clone()
    }

    /// Persistent apmask, empty for none.
    #[zbus(property)]
    async fn persistent_ap_mask(&self) -> String {
        self.shown().persistent_ap_mask.clone()
    }

    /// Persistent aqmask, empty for none.
    #[zbus(property)]
    async fn persistent_aq_mask(&self) -> String {
        self.shown().persistent_aq_mask.clone()
    }

    /// `ap_max_adapter_id`.
    #[zbus(property)]
    async fn max_adapter_id(&self) -> u32 {
        self.shown().max_adapter_id
    }

    /// `ap_max_domain_id`.
    #[zbus(property)]
    async fn max_domain_id(&self) -> u32 {
        self.shown().max_domain_id
    }

    /// The vfio_ap matrix device is present.
    #[zbus(property)]
    async fn vfio_ap_loaded(&self) -> bool {
        self.shown().vfio_ap_loaded
    }

    /// Adapters of the host configuration.
    #[zbus(property)]
    async fn adapters(&self) -> Vec<AdapterInfo> {
        self.shown().adapters.to_vec()
    }

    /// Definition files that did not load: (path, sentence).
    #[zbus(property)]
    async fn load_errors(&self) -> Vec<(String, String)> {
        self.shown().load_errors.clone()
    }
}
