//! `org.apctl.Apd1.Manager` on the root object: every query and change
//! apctl (and any other tool) needs, as typed methods. Changes are
//! authorized here, from the caller's credentials, before the engine runs.

use std::sync::Arc;

use apbus::{
    AdapterInfo, ApqnInfo, Definition, DesiredState, Error, Finding, IdLists, MdevInfo, PlanStep,
    QueueInfo, Scope, Status,
};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{interface, Connection};

use super::auth::Authorizer;
use crate::engine::Engine;

/// The Manager interface object.
#[derive(Debug)]
pub struct ManagerIface {
    /// Does the work.
    pub engine: Arc<Engine>,
    /// Decides who may change things.
    pub auth: Authorizer,
}

impl ManagerIface {
    async fn allow(&self, conn: &Connection, hdr: &Header<'_>, what: &str) -> Result<(), Error> {
        self.auth.check(conn, hdr, what).await
    }
}

fn scope(s: &str) -> Result<Scope, Error> {
    Scope::parse(s).ok_or_else(|| {
        Error::Invalid(format!(
            "scope {s:?} is not one of \"\" (live and persistent), \"live\" or \"persistent\""
        ))
    })
}

#[interface(name = "org.apctl.Apd1.Manager")]
impl ManagerIface {
    /// Host summary, load errors and start failures.
    #[zbus(out_args("status"))]
    async fn get_status(&self) -> Result<Status, Error> {
        self.engine.status().await
    }

    /// Every mdev, defined or active (also those made by other tools).
    #[zbus(out_args("mdevs"))]
    async fn list_mdevs(&self) -> Result<Vec<MdevInfo>, Error> {
        self.engine.list_mdevs().await
    }

    /// One mdev with a verdict per APQN of its matrix.
    #[zbus(out_args("info", "apqns"))]
    async fn get_mdev(&self, mdev: &str) -> Result<(MdevInfo, Vec<ApqnInfo>), Error> {
        self.engine.get_mdev(mdev).await
    }

    /// Every queue with its owner.
    #[zbus(out_args("queues"))]
    async fn list_queues(&self) -> Result<Vec<QueueInfo>, Error> {
        self.engine.list_queues().await
    }

    /// Every adapter of the host configuration.
    #[zbus(out_args("adapters"))]
    async fn list_adapters(&self) -> Result<Vec<AdapterInfo>, Error> {
        self.engine.list_adapters().await
    }

    /// Stores a new definition; returns its UUID.
    #[zbus(out_args("uuid"))]
    async fn define(
        &self,
        definition: Definition,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let what = match definition.name.as_str() {
            "" => "define an mdev".to_string(),
            n => format!("define mdev {n}"),
        };
        self.allow(conn, &hdr, &what).await?;
        self.engine.define(definition).await
    }

    /// Forgets a definition; an active mdev keeps running.
    async fn undefine(
        &self,
        mdev: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        self.allow(conn, &hdr, &format!("undefine mdev {mdev}"))
            .await?;
        self.engine.undefine(mdev).await
    }

    /// Creates the mdev from its definition and assigns everything, all or nothing.
    async fn start(
        &self,
        mdev: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        self.allow(conn, &hdr, &format!("start mdev {mdev}"))
            .await?;
        self.engine.start(mdev).await
    }

    /// Removes the mdev (the definition stays).
    async fn stop(
        &self,
        mdev: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        self.allow(conn, &hdr, &format!("stop mdev {mdev}")).await?;
        self.engine.stop(mdev).await
    }

    /// Adds ids; `scope` is `""` (live if active and persistent if defined),
    /// `"live"` or `"persistent"`.
    async fn assign(
        &self,
        mdev: &str,
        ids: IdLists,
        scope: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        self.allow(conn, &hdr, &format!("assign to mdev {mdev}"))
            .await?;
        let scope = self::scope(scope)?;
        self.engine.assign(mdev, ids, scope, true).await
    }

    /// Removes ids; `scope` as for `assign`.
    async fn unassign(
        &self,
        mdev: &str,
        ids: IdLists,
        scope: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        self.allow(conn, &hdr, &format!("unassign from mdev {mdev}"))
            .await?;
        let scope = self::scope(scope)?;
        self.engine.assign(mdev, ids, scope, false).await
    }

    /// Changes apmask and aqmask as one validated step (kernel syntax,
    /// absolute or relative; `""` leaves a mask alone); with `persistent`
    /// the resulting masks are stored for boot. Returns the new masks.
    #[zbus(out_args("apmask", "aqmask"))]
    async fn set_masks(
        &self,
        apmask: &str,
        aqmask: &str,
        persistent: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, String), Error> {
        self.allow(conn, &hdr, "change the AP masks").await?;
        self.engine.set_masks(apmask, aqmask, persistent).await
    }

    /// Configures an adapter on or off (the card's `config`).
    async fn configure_adapter(
        &self,
        adapter: u32,
        on: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        let what = format!(
            "configure adapter {adapter} {}",
            if on { "on" } else { "off" }
        );
        self.allow(conn, &hdr, &what).await?;
        self.engine.configure_adapter(adapter, on).await
    }

    /// Validates the stored definitions against each other and the host.
    #[zbus(out_args("findings"))]
    async fn check(&self) -> Result<Vec<Finding>, Error> {
        self.engine.check().await
    }

    /// Validates a desired state against the host.
    #[zbus(out_args("findings"))]
    async fn check_state(&self, state: DesiredState) -> Result<Vec<Finding>, Error> {
        self.engine.check_state(state).await
    }

    /// The steps that would bring the host to `state`, in order; writes nothing.
    #[zbus(out_args("steps"))]
    async fn plan(&self, state: DesiredState, prune: bool) -> Result<Vec<PlanStep>, Error> {
        self.engine.plan(state, prune).await
    }

    /// Applies `state`, rolling back on failure; returns the steps done.
    #[zbus(out_args("steps"))]
    async fn apply(
        &self,
        state: DesiredState,
        prune: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<PlanStep>, Error> {
        self.allow(conn, &hdr, "apply a desired state").await?;
        self.engine.apply(state, prune).await
    }

    /// The current state: persistent masks (or live ones) and every definition.
    #[zbus(out_args("state"))]
    async fn export(&self) -> Result<DesiredState, Error> {
        self.engine.export().await
    }

    /// Stores several definitions at once, all or nothing; returns their UUIDs.
    #[zbus(out_args("uuids"))]
    async fn import(
        &self,
        definitions: Vec<Definition>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<String>, Error> {
        self.allow(conn, &hdr, "import definitions").await?;
        self.engine.import(definitions).await
    }

    /// A host or mdev event for people and `apctl monitor`.
    #[zbus(signal)]
    pub async fn event(
        emitter: &SignalEmitter<'_>,
        kind: &str,
        uuid: &str,
        message: &str,
    ) -> zbus::Result<()>;
}
