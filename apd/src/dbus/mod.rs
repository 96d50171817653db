//! The D-Bus face of apd: the connection, the root object (ObjectManager,
//! Manager, Host), one Mdev object per mdev, and the publisher that turns
//! each new snapshot of the model into property changes, added/removed
//! objects and `Event` signals.

pub mod auth;
mod changed;
pub mod gate;
pub mod host;
pub mod manager;
pub mod mdev;
pub mod private;
mod queue_list;
pub mod socket;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use apbus::bus::BusChoice;
use apbus::{AdapterInfo, MdevInfo, ROOT_PATH};
use uuid::Uuid;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::Value;
use zbus::Connection;

use crate::convert::adapter_info;
use crate::engine::{Change, Engine, State, Update};
use changed::changed;
use host::{HostIface, HostProps};
use manager::ManagerIface;
use mdev::MdevIface;

/// What apd shows on the bus at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The Host interface's properties.
    pub host: HostProps,
    /// Every mdev object, by UUID (the order of their lowercase text).
    /// A publish replaces only the mdevs that may have changed
    /// ([`Shown`]); the others keep their value (comparing one is a
    /// pointer comparison; no text is made for them).
    pub mdevs: BTreeMap<Uuid, Arc<MdevInfo>>,
}

impl Snapshot {
    /// What the bus shows of the model `s`, built whole.
    #[cfg(test)]
    pub fn of(s: &State) -> Snapshot {
        Snapshot::after(s, None)
    }

    /// What the bus shows of the model `s`, from `last` (what the bus
    /// showed of the model `was`) with [`Shown`] applied.
    #[cfg(test)]
    pub fn after(s: &State, last: Option<(&State, &Snapshot)>) -> Snapshot {
        let mut snap = last.map(|(_, snap)| snap.clone()).unwrap_or_default();
        let shown = Shown::of(s, last.map(|(was, _)| was), &snap.host.adapters);
        snap.show(shown);
        snap
    }

    /// Makes the snapshot show `shown`: its Host properties, and each mdev
    /// it names made again (or gone).
    pub fn show(&mut self, shown: Shown) {
        self.host = shown.host;
        for (u, info) in shown.mdevs {
            match info {
                Some(info) => self.mdevs.insert(u, info),
                None => self.mdevs.remove(&u),
            };
        }
    }
}

/// What the bus is to show of a model, given the model it shows: the
/// Host properties, and the mdevs whose definition, live state or start
/// failure differ, each made again (None: its object goes), in UUID
/// order. A publish costs what changed, not the number of mdevs: the
/// others are neither made, nor copied, nor compared on the bus's side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shown {
    /// The Host interface's properties.
    pub host: HostProps,
    /// The mdevs made again, by UUID.
    pub mdevs: Vec<(Uuid, Option<Arc<MdevInfo>>)>,
}

impl Shown {
    /// What the bus is to show of the model `s` when it shows the model
    /// `was` (None: nothing yet, every mdev is made), with the adapters
    /// `adapters`, kept while the cards are.
    pub fn of(s: &State, was: Option<&State>, adapters: &Arc<Vec<AdapterInfo>>) -> Shown {
        let h = &s.host;
        let (pa, pq) = s.persistent_mask_strings();
        let adapters = match was {
            Some(was) if was.host.cards == h.cards => adapters.clone(),
            _ => Arc::new(h.cards.values().map(adapter_info).collect()),
        };
        let stale = match was {
            Some(was) => stale_mdevs(s, was),
            None => s.all_uuids().into_iter().collect(),
        };
        let mdevs = stale
            .into_iter()
            .map(|u| {
                let shown = s.defs.contains_key(&u) || h.mdevs.contains_key(&u);
                (u, shown.then(|| Arc::new(s.mdev_info(u))))
            })
            .collect();
        Shown {
            host: HostProps {
                ap_mask: h.apmask.to_string(),
                aq_mask: h.aqmask.to_string(),
                persistent_ap_mask: pa,
                persistent_aq_mask: pq,
                max_adapter_id: u32::from(h.max_adapter_id),
                max_domain_id: u32::from(h.max_domain_id),
                vfio_ap_loaded: h.vfio_ap_loaded,
                adapters,
                load_errors: s.load_errors.clone(),
            },
            mdevs,
        }
    }
}

/// The mdevs whose definition, live state or start failure differ between
/// the models `was` and `s` (a part `s` shares with `was` is not even
/// compared), and those whose guest matrix is computed from the whole
/// host, when the host changed.
fn stale_mdevs(s: &State, was: &State) -> BTreeSet<Uuid> {
    let h = &s.host;
    let mut stale = BTreeSet::new();
    if !Arc::ptr_eq(h, &was.host) {
        stale.extend(was.host.mdevs_changed(h));
        // Without the kernel's guest_matrix file it is computed from the
        // whole host: made afresh.
        stale.extend(
            h.mdevs
                .iter()
                .filter(|(_, m)| m.guest_matrix.is_none())
                .map(|(u, _)| *u),
        );
    }
    if !Arc::ptr_eq(&s.defs, &was.defs) {
        stale.extend(
            changed(&was.defs, &s.defs, |a, b| a == b)
                .iter()
                .map(|c| *c.0),
        );
    }
    let failures = changed(&was.start_failures, &s.start_failures, |a, b| {
        a.message == b.message
    });
    stale.extend(failures.iter().map(|c| *c.0));
    stale
}

/// An mdev object whose value changes: before (None: it is new) and
/// after (None: it goes).
type MdevChange<'a> = (Option<&'a Arc<MdevInfo>>, Option<&'a Arc<MdevInfo>>);

/// Shows the engine's changes on the bus, in order, until the engine
/// stops sending them: each model as properties, objects and the events
/// its difference means; each failed automatic start as a `start-failed`
/// event.
pub async fn follow(
    engine: Arc<Engine>,
    publisher: Publisher,
    mut updates: tokio::sync::mpsc::UnboundedReceiver<Update>,
) {
    while let Some(Update { change, shown }) = updates.recv().await {
        match change {
            Change::Model(state) => {
                publisher.publish_model(&engine, state, true).await;
            }
            Change::Baseline(state) => {
                publisher.publish_model(&engine, state, false).await;
            }
            Change::StartFailed { uuid, message } => {
                let ev = Event::new("start-failed", uuid.hyphenated().to_string(), message);
                publisher.emit(&[ev]).await;
            }
        }
        // The engine may have stopped waiting (it never does today).
        let _ = shown.send(());
    }
}

/// An `Event` signal: kind, UUID (or empty), sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// A kebab-case word, e.g. `mdev-started`.
    pub kind: &'static str,
    /// The mdev's UUID, or empty.
    pub uuid: String,
    /// One sentence for people.
    pub message: String,
}

impl Event {
    /// A new event.
    pub fn new(kind: &'static str, uuid: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            uuid: uuid.into(),
            message: message.into(),
        }
    }
}

/// Connects to the chosen bus (without a name yet), through a socket that
/// bounds the replies zbus builds itself ([`socket`]) wherever the bus is a
/// unix socket.
pub async fn connect(bus: &BusChoice) -> zbus::Result<Connection> {
    if let Ok(address) = bus.address() {
        if let Some((split, refused)) = socket::connect(&address).await? {
            let conn = zbus::connection::Builder::socket(split).build().await?;
            tokio::spawn(socket::answer_refused(conn.clone(), refused));
            return Ok(conn);
        }
    }
    tracing::warn!(%bus, "the bus is not a unix socket: introspection and GetManagedObjects are not bounded");
    bus.connection_builder().await?.build().await
}

/// What the root object serves: the bus's object and those of the private
/// socket's peers are made from one of these, so all share the engine, the
/// read gate and what the Host interface shows.
#[derive(Debug, Clone)]
pub struct Root {
    engine: Arc<Engine>,
    auth: auth::Authorizer,
    gate: Arc<gate::ReadGate>,
    host: HostIface,
}

impl Root {
    /// The Manager interface for the bus (`auth`) or a peer.
    fn manager(&self, auth: auth::Authorizer) -> ManagerIface {
        ManagerIface {
            engine: self.engine.clone(),
            auth,
            gate: self.gate.clone(),
        }
    }

    /// Serves Manager and Host at the root of a peer's connection on the
    /// private socket, from its first message on (no ObjectManager, no
    /// mdev objects, no signals: those stay on the bus).
    pub fn serve_peer<'a>(
        &self,
        builder: zbus::connection::Builder<'a>,
    ) -> zbus::Result<zbus::connection::Builder<'a>> {
        builder
            .serve_at(ROOT_PATH, self.manager(self.auth.for_private_socket()))?
            .serve_at(ROOT_PATH, self.host.clone())
    }
}

/// Registers the root object's interfaces on the bus.
pub async fn serve_root(
    conn: &Connection,
    engine: Arc<Engine>,
    auth: auth::Authorizer,
) -> zbus::Result<Root> {
    let root = Root {
        engine,
        auth,
        gate: gate::ReadGate::new(Some(conn.clone())),
        host: HostIface::default(),
    };
    let server = conn.object_server();
    server.at(ROOT_PATH, zbus::fdo::ObjectManager).await?;
    server
        .at(ROOT_PATH, root.manager(root.auth.clone()))
        .await?;
    server.at(ROOT_PATH, root.host.clone()).await?;
    Ok(root)
}

/// Publishes snapshots; one at a time.
#[derive(Debug)]
pub struct Publisher {
    conn: Connection,
    last: tokio::sync::Mutex<Snapshot>,
    /// The model `last` shows, when it came from one.
    last_model: tokio::sync::Mutex<Option<Arc<State>>>,
    /// Whether the mdev objects of `last` are on the bus (not after a
    /// [`Change::Baseline`], until the next model).
    exported: AtomicBool,
}

impl Publisher {
    /// A publisher on `conn` (whose root object is served).
    pub fn new(conn: Connection) -> Self {
        Self {
            conn,
            last: tokio::sync::Mutex::new(Snapshot::default()),
            last_model: tokio::sync::Mutex::new(None),
            exported: AtomicBool::new(true),
        }
    }

    /// Makes the bus show the model `state`: changed properties with
    /// `PropertiesChanged`, new and gone mdev objects with
    /// InterfacesAdded/Removed, and the events the change means. Only the
    /// mdevs that may have changed since the model before are made and
    /// compared ([`Shown`]). Failures to emit are logged, never fatal.
    /// With `export` false (a [`Change::Baseline`]) the mdev objects are
    /// left off the bus until the next model.
    pub async fn publish_model(&self, engine: &Arc<Engine>, state: Arc<State>, export: bool) {
        let mut last_model = self.last_model.lock().await;
        let mut last = self.last.lock().await;
        let shown = Shown::of(&state, last_model.as_deref(), &last.host.adapters);
        // The first snapshot means nothing happened: apd just started.
        let first = last_model.is_none();
        let changes: Vec<MdevChange<'_>> = shown
            .mdevs
            .iter()
            .map(|(u, new)| (last.mdevs.get(u), new.as_ref()))
            .filter(|(old, new)| old != new)
            .collect();
        let events = if first {
            Vec::new()
        } else {
            events(&last.host, &shown.host, &changes)
        };
        if let Err(e) = self.apply_host(&last.host, &shown.host).await {
            tracing::warn!(error = %e, "cannot publish the host properties");
        }
        let on_bus = self.exported.swap(export, Ordering::SeqCst);
        if on_bus && export {
            if let Err(e) = self.apply_mdevs(engine, &changes).await {
                tracing::warn!(error = %e, "cannot publish the mdev objects");
            }
        }
        drop(changes);
        last.show(shown);
        if !on_bus && export {
            // After the baseline: every object goes on the bus as shown now.
            let all: Vec<MdevChange<'_>> = last.mdevs.values().map(|m| (None, Some(m))).collect();
            if let Err(e) = self.apply_mdevs(engine, &all).await {
                tracing::warn!(error = %e, "cannot publish the mdev objects");
            }
        }
        drop(last);
        *last_model = Some(state);
        drop(last_model);
        self.emit(&events).await;
    }

    /// Emits `Event` signals.
    pub async fn emit(&self, events: &[Event]) {
        let Ok(emitter) = SignalEmitter::new(&self.conn, ROOT_PATH) else {
            return;
        };
        for ev in events {
            tracing::info!(kind = ev.kind, uuid = %ev.uuid, "{}", ev.message);
            if let Err(e) = ManagerIface::event(&emitter, ev.kind, &ev.uuid, &ev.message).await {
                tracing::warn!(error = %e, "cannot emit an Event signal");
            }
        }
    }

    async fn apply_host(&self, old: &HostProps, new: &HostProps) -> zbus::Result<()> {
        if old == new {
            return Ok(());
        }
        let iface = self
            .conn
            .object_server()
            .interface::<_, HostIface>(ROOT_PATH)
            .await?;
        let guard = iface.get().await;
        guard.show(new.clone());
        let em = iface.signal_emitter();
        if old.ap_mask != new.ap_mask {
            guard.ap_mask_changed(em).await?;
        }
        if old.aq_mask != new.aq_mask {
            guard.aq_mask_changed(em).await?;
        }
        if old.persistent_ap_mask != new.persistent_ap_mask {
            guard.persistent_ap_mask_changed(em).await?;
        }
        if old.persistent_aq_mask != new.persistent_aq_mask {
            guard.persistent_aq_mask_changed(em).await?;
        }
        if old.max_adapter_id != new.max_adapter_id {
            guard.max_adapter_id_changed(em).await?;
        }
        if old.max_domain_id != new.max_domain_id {
            guard.max_domain_id_changed(em).await?;
        }
        if old.vfio_ap_loaded != new.vfio_ap_loaded {
            guard.vfio_ap_loaded_changed(em).await?;
        }
        if old.adapters != new.adapters {
            guard.adapters_changed(em).await?;
        }
        if old.load_errors != new.load_errors {
            guard.load_errors_changed(em).await?;
        }
        Ok(())
    }

    async fn apply_mdevs(
        &self,
        engine: &Arc<Engine>,
        changes: &[MdevChange<'_>],
    ) -> zbus::Result<()> {
        let server = self.conn.object_server();
        for (gone, _) in changes.iter().filter(|c| c.1.is_none()) {
            if let Some(gone) = gone {
                server
                    .remove::<MdevIface, _>(apbus::mdev_path(&gone.uuid).as_str())
                    .await?;
            }
        }
        for &(before, info) in changes {
            let Some(info) = info else { continue };
            let path = apbus::mdev_path(&info.uuid);
            let Some(before) = before else {
                // InterfacesAdded carries every property, as published;
                // after it the getters read the live mdev again.
                let iface = MdevIface {
                    info: MdevInfo::clone(info),
                    engine: engine.clone(),
                    announcing: true,
                };
                server.at(path.as_str(), iface).await?;
                let iface = server.interface::<_, MdevIface>(path.as_str()).await?;
                iface.get_mut().await.announcing = false;
                continue;
            };
            let iface = server.interface::<_, MdevIface>(path.as_str()).await?;
            let mut guard = iface.get_mut().await;
            guard.info = MdevInfo::clone(info);
            emit_mdev_changes(iface.signal_emitter(), before, info).await?;
        }
        Ok(())
    }
}

/// One `PropertiesChanged` for everything that differs between `before`
/// and the published `info` ([`mdev_changes`]), not one signal per
/// property: a start changes Active and GuestMatrix together, and a boot
/// restore ends with 1,000 starts.
async fn emit_mdev_changes(
    em: &SignalEmitter<'_>,
    before: &MdevInfo,
    info: &MdevInfo,
) -> zbus::Result<()> {
    let changed = mdev_changes(before, info);
    if changed.is_empty() {
        return Ok(());
    }
    zbus::fdo::Properties::properties_changed(
        em,
        <MdevIface as zbus::object_server::Interface>::name(),
        changed,
        Cow::Borrowed(&[]),
    )
    .await
}

/// The Mdev properties whose values differ between `before` and `info`,
/// by their bus names, with the values the getters give while announcing.
fn mdev_changes<'a>(before: &MdevInfo, info: &'a MdevInfo) -> HashMap<&'static str, Value<'a>> {
    let mut c = HashMap::new();
    if before.name != info.name {
        c.insert("Name", Value::from(info.name.as_str()));
    }
    if before.defined != info.defined {
        c.insert("Defined", Value::from(info.defined));
    }
    if before.active != info.active {
        c.insert("Active", Value::from(info.active));
    }
    if before.autostart != info.autostart {
        c.insert("Autostart", Value::from(info.autostart));
    }
    if before.ids.adapters != info.ids.adapters {
        c.insert("Adapters", Value::from(info.ids.adapters.clone()));
    }
    if before.ids.domains != info.ids.domains {
        c.insert("Domains", Value::from(info.ids.domains.clone()));
    }
    if before.ids.control_domains != info.ids.control_domains {
        c.insert(
            "ControlDomains",
            Value::from(info.ids.control_domains.clone()),
        );
    }
    if before.guest_matrix != info.guest_matrix {
        c.insert("GuestMatrix", Value::from(info.guest_matrix.clone()));
    }
    if before.start_error != info.start_error {
        c.insert("StartError", Value::from(info.start_error.as_str()));
    }
    c
}

fn label(info: &MdevInfo) -> String {
    if info.name.is_empty() {
        info.uuid.clone()
    } else {
        format!("{} ({})", info.name, info.uuid)
    }
}

fn ids(v: &[u32]) -> String {
    if v.is_empty() {
        return "none".to_string();
    }
    v.iter()
        .map(|i| format!("0x{i:02x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The events a change of snapshot means (the first snapshot, from an
/// empty one, means none: nothing happened, apd just started).
#[cfg(test)]
pub fn diff_events(old: &Snapshot, new: &Snapshot) -> Vec<Event> {
    if old == &Snapshot::default() {
        return Vec::new();
    }
    let changes: Vec<MdevChange<'_>> = changed(&old.mdevs, &new.mdevs, |a, b| a == b)
        .into_iter()
        .map(|(_, o, n)| (o, n))
        .collect();
    events(&old.host, &new.host, &changes)
}

/// The events of a change of the Host properties from `oh` to `nh` and
/// of the mdev objects `changes` (in UUID order).
fn events(oh: &HostProps, nh: &HostProps, changes: &[MdevChange<'_>]) -> Vec<Event> {
    let mut ev = Vec::new();
    if oh.vfio_ap_loaded != nh.vfio_ap_loaded {
        ev.push(Event::new(
            "vfio-ap",
            "",
            if nh.vfio_ap_loaded {
                "the vfio_ap module was loaded: mdevs can be created"
            } else {
                "the vfio_ap module was unloaded: every mdev is gone"
            },
        ));
    }
    if oh.ap_mask != nh.ap_mask || oh.aq_mask != nh.aq_mask {
        ev.push(Event::new(
            "masks-changed",
            "",
            format!(
                "the host masks changed: apmask {}, aqmask {}",
                nh.ap_mask, nh.aq_mask
            ),
        ));
    }
    adapter_events(&oh.adapters, &nh.adapters, &mut ev);
    for (o, n) in changes {
        let Some(n) = n else { continue };
        let o = o.map(|o| &**o);
        live_event(&n.uuid, o, n, &mut ev);
        definition_event(&n.uuid, o, n, &mut ev);
    }
    for (o, n) in changes {
        let (Some(o), None) = (o, n) else { continue };
        let uuid = &o.uuid;
        if o.active {
            ev.push(Event::new(
                "mdev-stopped",
                uuid,
                format!("mdev {} was stopped", label(o)),
            ));
        }
        if o.defined {
            ev.push(Event::new(
                "definition-changed",
                uuid,
                format!("the definition of mdev {} was undefined", label(o)),
            ));
        }
    }
    ev
}

/// The event of an mdev that is (still or now) in the snapshot, when its
/// live state changed: started, stopped, or a new assignment.
fn live_event(uuid: &str, o: Option<&MdevInfo>, n: &MdevInfo, ev: &mut Vec<Event>) {
    let was_active = o.is_some_and(|o| o.active);
    if n.active && !was_active {
        ev.push(Event::new(
            "mdev-started",
            uuid,
            format!("mdev {} was started", label(n)),
        ));
    } else if !n.active && was_active {
        ev.push(Event::new(
            "mdev-stopped",
            uuid,
            format!("mdev {} was stopped", label(n)),
        ));
    } else if let Some(o) = o.filter(|_| n.active) {
        if o.ids != n.ids || o.guest_matrix != n.guest_matrix {
            ev.push(Event::new(
                "mdev-changed",
                uuid,
                format!(
                    "mdev {} now has adapters {}, domains {}, control domains {}; guest matrix {}",
                    label(n),
                    ids(&n.ids.adapters),
                    ids(&n.ids.domains),
                    ids(&n.ids.control_domains),
                    if n.guest_matrix.is_empty() {
                        "empty".to_string()
                    } else {
                        n.guest_matrix.join(",")
                    }
                ),
            ));
        }
    }
}

/// The event of an mdev whose definition was made, changed or removed.
fn definition_event(uuid: &str, o: Option<&MdevInfo>, n: &MdevInfo, ev: &mut Vec<Event>) {
    let def_changed = match o {
        None => n.defined,
        Some(o) => {
            o.defined != n.defined
                || (n.defined
                    && (o.name != n.name
                        || o.autostart != n.autostart
                        || o.persistent != n.persistent))
        }
    };
    if def_changed {
        let what = if n.defined {
            if o.is_some_and(|o| o.defined) {
                "was changed"
            } else {
                "was defined"
            }
        } else {
            "was undefined"
        };
        ev.push(Event::new(
            "definition-changed",
            uuid,
            format!("the definition of mdev {} {what}", label(n)),
        ));
    }
}

fn adapter_events(old: &[AdapterInfo], new: &[AdapterInfo], ev: &mut Vec<Event>) {
    // Most publishes change no adapter: one comparison, then a lookup per
    // adapter, not a search of 256 per adapter.
    if old == new {
        return;
    }
    let old_ids: BTreeMap<_, _> = old.iter().map(|a| (a.id, a)).collect();
    let new_ids: BTreeSet<_> = new.iter().map(|a| a.id).collect();
    for n in new {
        match old_ids.get(&n.id) {
            None => ev.push(Event::new(
                "adapter-config",
                "",
                format!("adapter {} ({}) joined the host", n.id, n.card_type),
            )),
            Some(o) if o.config != n.config => ev.push(Event::new(
                "adapter-config",
                "",
                if n.config {
                    format!("adapter {} was configured on", n.id)
                } else {
                    format!(
                        "adapter {} was configured off (standby): guests keep it in their guest matrix but cannot use it until it is configured on",
                        n.id
                    )
                },
            )),
            Some(_) => {}
        }
    }
    for o in old {
        if !new_ids.contains(&o.id) {
            ev.push(Event::new(
                "adapter-config",
                "",
                format!("adapter {} left the host's AP configuration", o.id),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apbus::IdLists;

    #[test]
    fn the_snapshot_shows_defined_and_foreign_mdevs() {
        let s = crate::engine::test_state();
        let snap = Snapshot::of(&s);
        assert_eq!(snap.mdevs.len(), 2);
        assert_eq!(snap.host.persistent_ap_mask, "");
    }

    /// A snapshot built from the one before equals one built whole, and
    /// shares what did not change.
    #[test]
    fn a_snapshot_after_another_equals_a_whole_one() {
        let s1 = crate::engine::test_state();
        let first = Snapshot::of(&s1);
        let uuids: Vec<Uuid> = s1.all_uuids();
        let (g1, foreign) = (uuids[0].min(uuids[1]), uuids[0].max(uuids[1]));
        let changes: [&dyn Fn(&mut State); 5] = [
            &|_| {},
            &|s| {
                let host = Arc::make_mut(&mut s.host);
                let first = host.mdevs.keys().next().copied();
                if let Some(m) = first.and_then(|u| host.mdevs.get_mut(&u)) {
                    m.matrix.domains.insert(0x47);
                }
            },
            &|s| {
                if let Some(d) = s.defs_mut().values_mut().next() {
                    d.name = Some("renamed".into());
                }
            },
            &|s| {
                let host = Arc::make_mut(&mut s.host);
                host.mdevs.clear();
            },
            &|s| {
                // A kernel without guest_matrix: computed from the host.
                let host = Arc::make_mut(&mut s.host);
                let uuids: Vec<Uuid> = host.mdevs.keys().copied().collect();
                for u in uuids {
                    if let Some(m) = host.mdevs.get_mut(&u) {
                        m.guest_matrix = None;
                    }
                }
            },
        ];
        for change in changes {
            let mut s2 = s1.clone();
            change(&mut s2);
            let after = Snapshot::after(&s2, Some((&s1, &first)));
            assert_eq!(after, Snapshot::of(&s2));
            for u in [g1, foreign] {
                let same_inputs = s1.host.mdevs.get(&u) == s2.host.mdevs.get(&u)
                    && s1.defs.get(&u) == s2.defs.get(&u)
                    && s2
                        .host
                        .mdevs
                        .get(&u)
                        .is_none_or(|m| m.guest_matrix.is_some());
                let shared = matches!(
                    (first.mdevs.get(&u), after.mdevs.get(&u)),
                    (Some(a), Some(b)) if Arc::ptr_eq(a, b)
                );
                assert_eq!(shared, same_inputs, "{u}");
            }
        }
    }

    /// What a publish makes again is what changed: nothing for the same
    /// model, the one mdev whose definition changed, and every mdev for
    /// the first publish.
    #[test]
    fn a_publish_makes_only_what_changed() {
        let s1 = crate::engine::test_state();
        let adapters = Arc::default();
        let uuids = |shown: &Shown| shown.mdevs.iter().map(|(u, _)| *u).collect::<Vec<_>>();
        let mut all = s1.all_uuids();
        all.sort();
        assert_eq!(uuids(&Shown::of(&s1, None, &adapters)), all);
        assert!(Shown::of(&s1, Some(&s1), &adapters).mdevs.is_empty());
        let mut s2 = s1.clone();
        let renamed = s2
            .defs_mut()
            .values_mut()
            .next()
            .map(|d| {
                d.name = Some("renamed".into());
                d.uuid
            })
            .expect("a definition");
        assert_eq!(uuids(&Shown::of(&s2, Some(&s1), &adapters)), [renamed]);
    }

    /// A change of everything is one signal naming every Mdev property
    /// but Uuid (which never changes), each with the type the interface
    /// has (the introspection XML, checked against the live service); a
    /// change of one field names that one alone, and no change none.
    #[test]
    fn one_properties_changed_names_each_changed_property_with_its_type() {
        let xml = include_str!("../../org.apctl.Apd1.xml");
        let from = xml
            .find("<interface name=\"org.apctl.Apd1.Mdev\">")
            .expect("Mdev");
        let block = &xml[from..];
        let block = &block[..block.find("</interface>").expect("its end")];
        let want: BTreeMap<&str, String> = block
            .split("<property name=\"")
            .skip(1)
            .filter_map(|p| {
                let (name, rest) = p.split_once('"')?;
                let ty = rest.split("type=\"").nth(1)?.split('"').next()?;
                Some((name, ty.to_string()))
            })
            .filter(|(name, _)| *name != "Uuid")
            .collect();
        assert_eq!(want.len(), 9, "{block}");
        let before = mdev(U, false, true);
        let after = MdevInfo {
            uuid: U.into(),
            name: "guest2".into(),
            defined: false,
            active: true,
            autostart: true,
            ids: IdLists {
                adapters: vec![6],
                domains: vec![0xab],
                control_domains: vec![1],
            },
            guest_matrix: vec!["06.00ab".into()],
            start_error: "x".into(),
            ..MdevInfo::default()
        };
        let got: BTreeMap<&str, String> = mdev_changes(&before, &after)
            .iter()
            .map(|(k, v)| (*k, v.value_signature().to_string()))
            .collect();
        assert_eq!(got, want);
        assert!(mdev_changes(&after, &after).is_empty());
        let started = MdevInfo {
            active: true,
            ..before.clone()
        };
        let only: Vec<&str> = mdev_changes(&before, &started).into_keys().collect();
        assert_eq!(only, ["Active"]);
    }

    const U: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";

    fn mdev(uuid: &str, active: bool, defined: bool) -> MdevInfo {
        MdevInfo {
            uuid: uuid.into(),
            name: "guest1".into(),
            defined,
            active,
            ids: IdLists {
                adapters: vec![5],
                domains: vec![4],
                control_domains: vec![],
            },
            ..MdevInfo::default()
        }
    }

    fn snap(mdevs: &[MdevInfo]) -> Snapshot {
        Snapshot {
            host: HostProps {
                ap_mask: "0xff".into(),
                ..HostProps::default()
            },
            mdevs: mdevs
                .iter()
                .map(|m| (Uuid::parse_str(&m.uuid).expect("uuid"), Arc::new(m.clone())))
                .collect(),
        }
    }

    #[test]
    fn the_first_snapshot_is_silent() {
        assert!(diff_events(&Snapshot::default(), &snap(&[mdev(U, true, true)])).is_empty());
    }

    #[test]
    fn start_stop_and_define_events() {
        let kinds = |a: &Snapshot, b: &Snapshot| {
            diff_events(a, b)
                .into_iter()
                .map(|e| e.kind)
                .collect::<Vec<_>>()
        };
        let none = snap(&[]);
        let defined = snap(&[mdev(U, false, true)]);
        let active = snap(&[mdev(U, true, true)]);
        assert_eq!(kinds(&none, &defined), vec!["definition-changed"]);
        assert_eq!(kinds(&defined, &active), vec!["mdev-started"]);
        assert_eq!(kinds(&active, &defined), vec!["mdev-stopped"]);
        assert_eq!(
            kinds(&active, &none),
            vec!["mdev-stopped", "definition-changed"]
        );
        let mut changed = active.clone();
        if let Some(m) = changed.mdevs.values_mut().next() {
            Arc::make_mut(m).guest_matrix = vec!["05.0004".into()];
        }
        assert_eq!(kinds(&active, &changed), vec!["mdev-changed"]);
    }

    #[test]
    fn adapter_and_mask_events() {
        let a = |config| AdapterInfo {
            id: 5,
            card_type: "CEX7C".into(),
            config,
            ..AdapterInfo::default()
        };
        let mut on = snap(&[]);
        on.host.adapters = Arc::new(vec![a(true)]);
        let mut off = on.clone();
        off.host.adapters = Arc::new(vec![a(false)]);
        let ev = diff_events(&on, &off);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, "adapter-config");
        assert!(
            ev[0].message.contains("configured off"),
            "{}",
            ev[0].message
        );
        let mut masks = on.clone();
        masks.host.aq_mask = "0x00".into();
        assert_eq!(diff_events(&on, &masks)[0].kind, "masks-changed");
        let mut gone = on.clone();
        gone.host.adapters = Arc::default();
        assert!(diff_events(&on, &gone)[0].message.contains("left"));
    }
}
