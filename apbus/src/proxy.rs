//! Client proxies for apd's interfaces. apd implements the same methods in
//! `apd/src/dbus/`; its introspection XML (`apd/org.apctl.Apd1.xml`) is
//! compared with the live service by a test.

use crate::{
    AdapterInfo, ApqnInfo, Definition, DesiredState, Error, Finding, IdLists, MdevInfo, PlanStep,
    QueueInfo, Status,
};

/// `org.apctl.Apd1.Manager` on `/org/apctl/Apd1`: every change and every
/// query apctl needs. An `mdev` argument is a UUID or a name.
#[zbus::proxy(
    interface = "org.apctl.Apd1.Manager",
    default_service = "org.apctl.Apd1",
    default_path = "/org/apctl/Apd1",
    gen_blocking = false
)]
pub trait Manager {
    /// Host summary, load errors and start failures.
    fn get_status(&self) -> Result<Status, Error>;
    /// Every mdev, defined or active (also those made by other tools).
    fn list_mdevs(&self) -> Result<Vec<MdevInfo>, Error>;
    /// One mdev with a verdict per APQN of its matrix.
    fn get_mdev(&self, mdev: &str) -> Result<(MdevInfo, Vec<ApqnInfo>), Error>;
    /// Every queue with its owner.
    fn list_queues(&self) -> Result<Vec<QueueInfo>, Error>;
    /// Every adapter of the host configuration.
    fn list_adapters(&self) -> Result<Vec<AdapterInfo>, Error>;

    /// Stores a new definition; returns its UUID.
    fn define(&self, definition: &Definition) -> Result<String, Error>;
    /// Forgets a definition; an active mdev keeps running.
    fn undefine(&self, mdev: &str) -> Result<(), Error>;
    /// Creates the mdev from its definition and assigns everything, all or nothing.
    fn start(&self, mdev: &str) -> Result<(), Error>;
    /// Removes the mdev (the definition stays).
    fn stop(&self, mdev: &str) -> Result<(), Error>;
    /// Adds ids; `scope` is `""` (live if active and persistent if defined),
    /// `"live"` or `"persistent"`.
    fn assign(&self, mdev: &str, ids: &IdLists, scope: &str) -> Result<(), Error>;
    /// Removes ids; `scope` as for `assign`.
    fn unassign(&self, mdev: &str, ids: &IdLists, scope: &str) -> Result<(), Error>;
    /// Changes apmask and aqmask as one validated step (kernel syntax,
    /// absolute or relative; `""` leaves a mask alone); with `persistent`
    /// the resulting masks are stored for boot. Returns the new masks.
    fn set_masks(
        &self,
        apmask: &str,
        aqmask: &str,
        persistent: bool,
    ) -> Result<(String, String), Error>;
    /// Configures an adapter on or off (the card's `config`).
    fn configure_adapter(&self, adapter: u32, on: bool) -> Result<(), Error>;

    /// Validates the stored definitions against each other and the host.
    fn check(&self) -> Result<Vec<Finding>, Error>;
    /// Validates a desired state against the host.
    fn check_state(&self, state: &DesiredState) -> Result<Vec<Finding>, Error>;
    /// The steps that would bring the host to `state`, in order; writes nothing.
    fn plan(&self, state: &DesiredState, prune: bool) -> Result<Vec<PlanStep>, Error>;
    /// Applies `state`, rolling back on failure; returns the steps done.
    fn apply(&self, state: &DesiredState, prune: bool) -> Result<Vec<PlanStep>, Error>;
    /// The current state: persistent masks (or live ones) and every definition.
    fn export(&self) -> Result<DesiredState, Error>;
    /// Stores several definitions at once, all or nothing; returns their UUIDs.
    fn import(&self, definitions: &[Definition]) -> Result<Vec<String>, Error>;

    /// A host or mdev event for people and `apctl monitor`: `kind` is a
    /// kebab-case word (`mdev-started`, `mdev-stopped`, `mdev-changed`,
    /// `adapter-config`, `masks-changed`, `start-failed`, `definition-changed`,
    /// `vfio-ap`), `uuid` the mdev's or empty, `message` one sentence.
    #[zbus(signal)]
    fn event(&self, kind: &str, uuid: &str, message: &str) -> zbus::Result<()>;
}

/// `org.apctl.Apd1.Host` on `/org/apctl/Apd1`: live host state as properties,
/// with `PropertiesChanged` on every change.
#[zbus::proxy(
    interface = "org.apctl.Apd1.Host",
    default_service = "org.apctl.Apd1",
    default_path = "/org/apctl/Apd1",
    gen_blocking = false
)]
pub trait Host {
    /// Current apmask, kernel read format.
    #[zbus(property)]
    fn ap_mask(&self) -> zbus::Result<String>;
    /// Current aqmask.
    #[zbus(property)]
    fn aq_mask(&self) -> zbus::Result<String>;
    /// Persistent apmask, empty for none.
    #[zbus(property)]
    fn persistent_ap_mask(&self) -> zbus::Result<String>;
    /// Persistent aqmask, empty for none.
    #[zbus(property)]
    fn persistent_aq_mask(&self) -> zbus::Result<String>;
    /// `ap_max_adapter_id`.
    #[zbus(property)]
    fn max_adapter_id(&self) -> zbus::Result<u32>;
    /// `ap_max_domain_id`.
    #[zbus(property)]
    fn max_domain_id(&self) -> zbus::Result<u32>;
    /// The vfio_ap matrix device is present.
    #[zbus(property)]
    fn vfio_ap_loaded(&self) -> zbus::Result<bool>;
    /// Adapters of the host configuration.
    #[zbus(property)]
    fn adapters(&self) -> zbus::Result<Vec<AdapterInfo>>;
    /// Definition files that did not load: (path, sentence).
    #[zbus(property)]
    fn load_errors(&self) -> zbus::Result<Vec<(String, String)>>;
}

/// `org.apctl.Apd1.Mdev` on `/org/apctl/Apd1/mdev/<uuid with _>`.
#[zbus::proxy(
    interface = "org.apctl.Apd1.Mdev",
    default_service = "org.apctl.Apd1",
    gen_blocking = false
)]
pub trait Mdev {
    /// Lowercase UUID.
    #[zbus(property)]
    fn uuid(&self) -> zbus::Result<String>;
    /// Name, empty for none.
    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;
    /// A definition is stored.
    #[zbus(property)]
    fn defined(&self) -> zbus::Result<bool>;
    /// The mdev exists.
    #[zbus(property)]
    fn active(&self) -> zbus::Result<bool>;
    /// Started at boot.
    #[zbus(property)]
    fn autostart(&self) -> zbus::Result<bool>;
    /// Assigned adapters (live when active, else the definition).
    #[zbus(property)]
    fn adapters(&self) -> zbus::Result<Vec<u32>>;
    /// Assigned usage domains.
    #[zbus(property)]
    fn domains(&self) -> zbus::Result<Vec<u32>>;
    /// Assigned control domains.
    #[zbus(property)]
    fn control_domains(&self) -> zbus::Result<Vec<u32>>;
    /// The kernel's guest matrix, `"05.0004"` strings.
    #[zbus(property)]
    fn guest_matrix(&self) -> zbus::Result<Vec<String>>;
    /// Why the last automatic start failed; empty when none failed.
    #[zbus(property)]
    fn start_error(&self) -> zbus::Result<String>;
}
