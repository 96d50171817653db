//! `org.apctl.Apd1.Mdev`: one object per mdev, defined or active (also
//! those another tool created).
//!
//! The kernel sends no uevent when another tool writes an mdev's
//! attributes, so the assignment properties re-read the live matrix on
//! every read by a client; a difference from what was published makes
//! the engine re-publish (and emit `PropertiesChanged`). The signals
//! themselves carry what is published: the engine has just read (or, for
//! its own writes, predicted) it.

use std::sync::Arc;

use apbus::{IdLists, MdevInfo};
use zbus::interface;

use crate::engine::Engine;

/// The interface object of one mdev.
#[derive(Debug)]
pub struct MdevIface {
    /// What was last published.
    pub info: MdevInfo,
    /// For live re-reads.
    pub engine: Arc<Engine>,
    /// Set while the publisher adds this object (InterfacesAdded carries
    /// what the getters give): they then give `info` instead of
    /// re-reading the mdev (1,000 reads at the end of a boot).
    /// `PropertiesChanged` is built from `info` directly.
    pub announcing: bool,
}

impl MdevIface {
    /// The live assignment and guest matrix when the mdev is active (the
    /// published values otherwise, or when the re-read fails).
    async fn live(&self) -> (IdLists, Vec<String>) {
        if !self.info.active || self.announcing {
            return (self.info.ids.clone(), self.info.guest_matrix.clone());
        }
        match self.engine.live_view(&self.info.uuid).await {
            Some(view) => {
                if view.ids != self.info.ids || view.guest_matrix != self.info.guest_matrix {
                    // Shown now, published (with PropertiesChanged) soon.
                    self.engine
                        .schedule_refresh("an mdev changed behind apd's back");
                }
                (view.ids, view.guest_matrix)
            }
            None => (self.info.ids.clone(), self.info.guest_matrix.clone()),
        }
    }
}

#[interface(name = "org.apctl.Apd1.Mdev")]
impl MdevIface {
    /// Lowercase UUID.
    #[zbus(property)]
    async fn uuid(&self) -> String {
        self.info.uuid.clone()
    }

    /// Name, empty for none.
    #[zbus(property)]
    async fn name(&self) -> String {
        self.info.name.clone()
    }

    /// A definition is stored.
    #[zbus(property)]
    async fn defined(&self) -> bool {
        self.info.defined
    }

    /// The mdev exists.
    #[zbus(property)]
    async fn active(&self) -> bool {
        self.info.active
    }

    /// Started at boot.
    #[zbus(property)]
    async fn autostart(&self) -> bool {
        self.info.autostart
    }

    /// Assigned adapters (live when active, else the definition).
    #[zbus(property)]
    async fn adapters(&self) -> Vec<u32> {
        self.live().await.0.adapters
    }

    /// Assigned usage domains.
    #[zbus(property)]
    async fn domains(&self) -> Vec<u32> {
        self.live().await.0.domains
    }

    /// Assigned control domains.
    #[zbus(property)]
    async fn control_domains(&self) -> Vec<u32> {
        self.live().await.0.control_domains
    }

    /// The kernel's guest matrix, `"05.0004"` strings.
    #[zbus(property)]
    async fn guest_matrix(&self) -> Vec<String> {
        self.live().await.1
    }

    /// Why the last automatic start failed; empty when none failed.
    #[zbus(property)]
    async fn start_error(&self) -> String {
        self.info.start_error.clone()
    }
}
