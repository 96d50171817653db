//! Shared by the `apd_*` end-to-end tests: a blocking D-Bus client built on
//! the apbus proxies (what apctl and other tools use), signal recorders,
//! and the seed documents' definitions.

#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};

use apbus::proxy::{HostProxy, ManagerProxy, MdevProxy};
use apbus::{Definition, IdLists};
use e2e::Host;
use zbus::export::futures_core::Stream;

/// Guest1 of the seed documents: adapters 5,6 × domains 4,0xab.
pub const GUEST1_UUID: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
/// Guest2: adapter 5 × domains 0x47,0xff.
pub const GUEST2_UUID: &str = "4b4b9d22-7c3a-4bd1-a0f1-0c8d2f3e9a11";

/// The seed's masks, giving adapters 5,6 and domains 4,0x47,0xab,0xff to vfio_ap.
pub const SEED_APMASK: &str = "-5,-6";
pub const SEED_AQMASK: &str = "-4,-0x47,-0xab,-0xff";

/// A definition for the bus.
pub fn def(uuid: &str, name: &str, autostart: bool, a: &[u32], d: &[u32], c: &[u32]) -> Definition {
    Definition {
        uuid: uuid.to_string(),
        name: name.to_string(),
        autostart,
        ids: IdLists {
            adapters: a.to_vec(),
            domains: d.to_vec(),
            control_domains: c.to_vec(),
        },
    }
}

pub fn guest1(autostart: bool) -> Definition {
    def(GUEST1_UUID, "guest1", autostart, &[5, 6], &[4, 0xab], &[])
}

pub fn guest2(autostart: bool) -> Definition {
    def(GUEST2_UUID, "guest2", autostart, &[5], &[0x47, 0xff], &[])
}

pub fn ids(a: &[u32], d: &[u32], c: &[u32]) -> IdLists {
    IdLists {
        adapters: a.to_vec(),
        domains: d.to_vec(),
        control_domains: c.to_vec(),
    }
}

/// A blocking client on a host's bus: its own runtime (which also runs
/// the signal recorders in the background) and one connection.
pub struct Client {
    rt: tokio::runtime::Runtime,
    conn: zbus::Connection,
}

impl Client {
    pub fn new(host: &Host) -> Client {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let address = host.bus_address().to_string();
        let conn = rt
            .block_on(async {
                zbus::connection::Builder::address(address.as_str())?
                    .build()
                    .await
            })
            .expect("connect to the host's bus");
        Client { rt, conn }
    }

    pub fn run<T>(&self, f: impl Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    pub fn manager(&self) -> ManagerProxy<'static> {
        self.run(ManagerProxy::new(&self.conn))
            .expect("Manager proxy")
    }

    pub fn host(&self) -> HostProxy<'static> {
        self.run(HostProxy::new(&self.conn)).expect("Host proxy")
    }

    pub fn mdev(&self, uuid: &str) -> MdevProxy<'static> {
        let path = apbus::mdev_path(uuid);
        self.run(async {
            MdevProxy::builder(&self.conn)
                .path(path)?
                // Properties are read fresh: apd re-reads the live matrix.
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await
        })
        .expect("Mdev proxy")
    }

    /// Records every `Event` signal as `kind uuid message`.
    pub fn record_events(&self) -> Recorder {
        let rec = Recorder::default();
        let items = rec.items.clone();
        let manager = self.manager();
        let mut stream = self
            .run(manager.receive_event())
            .expect("subscribe to Event");
        self.rt.spawn(async move {
            // The proxy's match rule is removed on drop, which needs the runtime.
            let _manager = manager;
            while let Some(sig) = next(&mut stream).await {
                if let Ok(a) = sig.args() {
                    let line = format!("{} {} {}", a.kind, a.uuid, a.message);
                    items.lock().expect("recorder lock").push(line);
                }
            }
        });
        rec
    }

    /// Records the names of the properties in every PropertiesChanged
    /// signal of `interface` at `path`.
    pub fn record_properties(&self, path: &str, interface: &'static str) -> Recorder {
        let rec = Recorder::default();
        let items = rec.items.clone();
        let path = path.to_string();
        let mut stream = self
            .run(async {
                let props = zbus::fdo::PropertiesProxy::builder(&self.conn)
                    .destination(apbus::BUS_NAME)?
                    .path(path)?
                    .build()
                    .await?;
                props.receive_properties_changed().await
            })
            .expect("subscribe to PropertiesChanged");
        self.rt.spawn(async move {
            while let Some(sig) = next(&mut stream).await {
                if let Ok(a) = sig.args() {
                    if a.interface_name.as_str() != interface {
                        continue;
                    }
                    let mut names: Vec<String> =
                        a.changed_properties.keys().map(|k| k.to_string()).collect();
                    names.sort();
                    for n in names {
                        items.lock().expect("recorder lock").push(n);
                    }
                }
            }
        });
        rec
    }

    /// Records the paths of InterfacesAdded (`+path`) and InterfacesRemoved
    /// (`-path`) of the ObjectManager.
    pub fn record_objects(&self) -> Recorder {
        let rec = Recorder::default();
        let items = rec.items.clone();
        let (mut added, mut removed) = self
            .run(async {
                let om = zbus::fdo::ObjectManagerProxy::builder(&self.conn)
                    .destination(apbus::BUS_NAME)?
                    .path(apbus::ROOT_PATH)?
                    .build()
                    .await?;
                Ok::<_, zbus::Error>((
                    om.receive_interfaces_added().await?,
                    om.receive_interfaces_removed().await?,
                ))
            })
            .expect("subscribe to the ObjectManager");
        let i2 = items.clone();
        self.rt.spawn(async move {
            while let Some(sig) = next(&mut added).await {
                if let Ok(a) = sig.args() {
                    items
                        .lock()
                        .expect("recorder lock")
                        .push(format!("+{}", a.object_path.as_str()));
                }
            }
        });
        self.rt.spawn(async move {
            while let Some(sig) = next(&mut removed).await {
                if let Ok(a) = sig.args() {
                    i2.lock()
                        .expect("recorder lock")
                        .push(format!("-{}", a.object_path.as_str()));
                }
            }
        });
        rec
    }

    /// The managed objects' paths.
    pub fn object_paths(&self) -> Vec<String> {
        self.run(async {
            let om = zbus::fdo::ObjectManagerProxy::builder(&self.conn)
                .destination(apbus::BUS_NAME)?
                .path(apbus::ROOT_PATH)?
                .build()
                .await?;
            let objects = om.get_managed_objects().await?;
            let mut v: Vec<String> = objects.keys().map(|p| p.to_string()).collect();
            v.sort();
            Ok::<_, zbus::Error>(v)
        })
        .expect("GetManagedObjects")
    }

    /// Introspection XML of `path`.
    pub fn introspect(&self, path: &str) -> String {
        self.run(async {
            let p = zbus::fdo::IntrospectableProxy::builder(&self.conn)
                .destination(apbus::BUS_NAME)?
                .path(path.to_string())?
                .build()
                .await?;
            p.introspect().await.map_err(zbus::Error::from)
        })
        .expect("Introspect")
    }
}

/// The next item of a stream (without a futures helper crate).
async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

/// What a background task has seen so far.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    items: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    pub fn items(&self) -> Vec<String> {
        self.items.lock().expect("recorder lock").clone()
    }

    pub fn any(&self, f: impl Fn(&str) -> bool) -> bool {
        self.items().iter().any(|i| f(i))
    }

    pub fn clear(&self) {
        self.items.lock().expect("recorder lock").clear();
    }
}

/// Whether the mdev exists in the mounted sysfs.
pub fn mdev_exists(host: &Host, uuid: &str) -> bool {
    host.sysfs()
        .join(format!("devices/vfio_ap/matrix/{uuid}"))
        .exists()
}

/// Skips (with the reason printed) when FUSE is missing.
#[macro_export]
macro_rules! need_fuse {
    () => {
        if !e2e::fuse_available() {
            eprintln!("skipped: FUSE is not available here (/dev/fuse, root or fusermount3)");
            return;
        }
    };
}
