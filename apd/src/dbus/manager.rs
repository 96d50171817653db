//! `org.apctl.Apd1.Manager` on the root object: every query and change
//! apctl (and any other tool) needs, as typed methods. Changes are
//! authorized here, from the caller's credentials, before the engine runs.

use std::sync::Arc;

use apbus::{
    AdapterInfo, ApqnInfo, Definition, DesiredState, Error, Finding, IdLists, MdevInfo, PlanStep,
    Scope, Status,
};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{interface, Connection};

use super::auth::Authorizer;
use super::gate::{estimate, Gated, ReadGate, Ticket};
use crate::engine::{Engine, QueueList, State};

/// The Manager interface object.
#[derive(Debug)]
pub struct ManagerIface {
    /// Does the work.
    pub engine: Arc<Engine>,
    /// Decides who may change things.
    pub auth: Authorizer,
    /// Bounds what reads cost.
    pub gate: Arc<ReadGate>,
}

impl ManagerIface {
    async fn allow(&self, conn: &Connection, hdr: &Header<'_>, what: &str) -> Result<(), Error> {
        self.auth.check(conn, hdr, what).await
    }

    /// A read's turn at the gate, its reply's size estimated from the model.
    async fn admit(
        &self,
        hdr: &Header<'_>,
        size: impl FnOnce(&State) -> usize,
    ) -> Result<Ticket, Error> {
        let bytes = size(&self.engine.state());
        self.gate.enter(hdr, bytes).await
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
    async fn get_status(&self, #[zbus(header)] hdr: Header<'_>) -> Result<Gated<Status>, Error> {
        let ticket = self.admit(&hdr, estimate::status).await?;
        Ok(Gated::new(self.engine.status().await?, ticket))
    }

    /// Every mdev, defined or active (also those made by other tools).
    #[zbus(out_args("mdevs"))]
    async fn list_mdevs(
        &self,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Gated<Vec<MdevInfo>>, Error> {
        let ticket = self.admit(&hdr, estimate::mdevs).await?;
        Ok(Gated::new(self.engine.list_mdevs().await?, ticket))
    }

    /// One mdev with a verdict per APQN of its matrix.
    #[zbus(out_args("info", "apqns"))]
    async fn get_mdev(
        &self,
        mdev: &str,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(Gated<MdevInfo>, Vec<ApqnInfo>), Error> {
        let ticket = self.admit(&hdr, |s| estimate::one_mdev(s, mdev)).await?;
        let (info, apqns) = self.engine.get_mdev(mdev).await?;
        Ok((Gated::new(info, ticket), apqns))
    }

    /// Every queue with its owner.
    #[zbus(out_args("queues"))]
    async fn list_queues(
        &self,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Gated<QueueList>, Error> {
        let ticket = self.admit(&hdr, estimate::queues).await?;
        Ok(Gated::new(self.engine.list_queues().await?, ticket))
    }

    /// Every adapter of the host configuration.
    #[zbus(out_args("adapters"))]
    async fn list_adapters(
        &self,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Gated<Vec<AdapterInfo>>, Error> {
        let ticket = self.admit(&hdr, estimate::adapters).await?;
        Ok(Gated::new(self.engine.list_adapters().await?, ticket))
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
    async fn check(&self, #[zbus(header)] hdr: Header<'_>) -> Result<Gated<Vec<Finding>>, Error> {
        let ticket = self.admit(&hdr, estimate::definitions).await?;
        Ok(Gated::new(self.engine.check().await?, ticket))
    }

    /// Validates a desired state against the host.
    #[zbus(out_args("findings"))]
    async fn check_state(
        &self,
        state: DesiredState,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Gated<Vec<Finding>>, Error> {
        let ticket = self.admit(&hdr, |s| estimate::desired(s, &state)).await?;
        Ok(Gated::new(self.engine.check_state(state).await?, ticket))
    }

    /// The steps that would bring the host to `state`, in order; writes nothing.
    #[zbus(out_args("steps"))]
    async fn plan(
        &self,
        state: DesiredState,
        prune: bool,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<Gated<Vec<PlanStep>>, Error> {
        let ticket = self.admit(&hdr, |s| estimate::desired(s, &state)).await?;
        Ok(Gated::new(self.engine.plan(state, prune).await?, ticket))
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
    async fn export(&self, #[zbus(header)] hdr: Header<'_>) -> Result<Gated<DesiredState>, Error> {
        let ticket = self.admit(&hdr, estimate::definitions).await?;
        Ok(Gated::new(self.engine.export().await?, ticket))
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
