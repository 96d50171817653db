//! `monitor`: tell what happens on the host, one line per happening, as
//! apd's signals arrive, until Ctrl-C (or SIGTERM), then exit 0.

use super::{Ctx, Outcome};
use crate::bus::Apd;
use crate::error::CliError;
use crate::output;
use crate::render::events::{value_to_json, MonitorEvent};
use crate::render::happenings::{Follower, Happening, HostView};
use apbus::proxy::HostProxy;
use futures_lite::StreamExt;
use std::collections::HashMap;
use tokio::signal::unix::{signal, SignalKind};
use zbus::message::Type as MessageType;
use zbus::proxy::CacheProperties;
use zbus::{MatchRule, Message, MessageStream};
use zvariant::{ObjectPath, OwnedValue};

/// Every signal apd sends on its objects.
fn apd_rule() -> Result<MatchRule<'static>, zbus::Error> {
    Ok(MatchRule::builder()
        .msg_type(MessageType::Signal)
        .sender(apbus::BUS_NAME)?
        .path_namespace(apbus::ROOT_PATH)?
        .build())
}

/// The bus telling us that apd took or dropped its name.
fn owner_rule() -> Result<MatchRule<'static>, zbus::Error> {
    Ok(MatchRule::builder()
        .msg_type(MessageType::Signal)
        .sender("org.freedesktop.DBus")?
        .interface("org.freedesktop.DBus")?
        .member("NameOwnerChanged")?
        .add_arg(apbus::BUS_NAME)?
        .build())
}

/// The mdev UUID of an object path, `None` for the root (host) object.
fn uuid_of(path: &str) -> Option<String> {
    apbus::uuid_from_path(path)
}

/// Decodes one signal; `None` for signals monitor does not show.
pub fn decode(msg: &Message) -> Option<MonitorEvent> {
    let header = msg.header();
    let member = header.member()?.as_str().to_string();
    let interface = header.interface()?.as_str().to_string();
    let path = header
        .path()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let body = msg.body();
    match (interface.as_str(), member.as_str()) {
        (apbus::MANAGER_INTERFACE, "Event") => {
            let (kind, uuid, message): (String, String, String) = body.deserialize().ok()?;
            Some(MonitorEvent::Event {
                kind,
                uuid,
                message,
            })
        }
        ("org.freedesktop.DBus.Properties", "PropertiesChanged") => {
            let (iface, changed, invalidated): (String, HashMap<String, OwnedValue>, Vec<String>) =
                body.deserialize().ok()?;
            let mut changed: Vec<(String, serde_json::Value)> = changed
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect();
            changed.sort_by(|a, b| a.0.cmp(&b.0));
            Some(MonitorEvent::PropertiesChanged {
                uuid: uuid_of(&path),
                interface: iface,
                changed,
                invalidated,
            })
        }
        ("org.freedesktop.DBus.ObjectManager", "InterfacesAdded") => {
            let (object, ifaces): (ObjectPath<'_>, HashMap<String, HashMap<String, OwnedValue>>) =
                body.deserialize().ok()?;
            let mut properties: Vec<(String, serde_json::Value)> = ifaces
                .get(apbus::MDEV_INTERFACE)
                .map(|props| {
                    props
                        .iter()
                        .map(|(k, v)| (k.clone(), value_to_json(v)))
                        .collect()
                })
                .unwrap_or_default();
            properties.sort_by(|a, b| a.0.cmp(&b.0));
            let mut interfaces: Vec<String> = ifaces.into_keys().collect();
            interfaces.sort();
            Some(MonitorEvent::Added {
                uuid: uuid_of(object.as_str()),
                interfaces,
                properties,
            })
        }
        ("org.freedesktop.DBus.ObjectManager", "InterfacesRemoved") => {
            let (object, mut interfaces): (ObjectPath<'_>, Vec<String>) =
                body.deserialize().ok()?;
            interfaces.sort();
            Some(MonitorEvent::Removed {
                uuid: uuid_of(object.as_str()),
                interfaces,
            })
        }
        ("org.freedesktop.DBus", "NameOwnerChanged") => {
            let (name, _old, new): (String, String, String) = body.deserialize().ok()?;
            if name != apbus::BUS_NAME {
                return None;
            }
            Some(if new.is_empty() {
                MonitorEvent::ApdStopped
            } else {
                MonitorEvent::ApdStarted
            })
        }
        _ => None,
    }
}

/// apd's view when monitor begins: what later signals change.
async fn current_view(apd: &Apd) -> Result<Follower, CliError> {
    let fail = |e: zbus::Error| apd.error(e.into());
    let host = HostProxy::builder(&apd.connection)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(fail)?;
    let view = HostView {
        ap_mask: host.ap_mask().await.map_err(fail)?,
        aq_mask: host.aq_mask().await.map_err(fail)?,
        persistent_ap_mask: host.persistent_ap_mask().await.map_err(fail)?,
        persistent_aq_mask: host.persistent_aq_mask().await.map_err(fail)?,
        max_adapter_id: host.max_adapter_id().await.map_err(fail)?,
        max_domain_id: host.max_domain_id().await.map_err(fail)?,
        vfio_ap_loaded: host.vfio_ap_loaded().await.map_err(fail)?,
        adapters: host.adapters().await.map_err(fail)?,
        load_errors: host.load_errors().await.map_err(fail)?,
    };
    let mdevs = apd.manager.list_mdevs().await.map_err(|e| apd.error(e))?;
    Ok(Follower::new(view, &mdevs))
}

fn print(h: &Happening, json: bool) -> bool {
    let line = if json { h.json().to_string() } else { h.line() };
    output::line(&line)
}

/// Streams happenings until Ctrl-C or SIGTERM. Output goes straight to
/// stdout, one line each, flushed at once; a closed stdout ends monitor
/// quietly.
pub async fn monitor(ctx: &Ctx) -> Result<Outcome, CliError> {
    // apd's signals are sent on the bus only, never on its private socket.
    let apd = ctx.connect_bus().await?;
    let bad_rule = |e: zbus::Error| CliError::failed(format!("cannot watch apd: {e}"));
    let signals =
        MessageStream::for_match_rule(apd_rule().map_err(bad_rule)?, &apd.connection, None)
            .await
            .map_err(|e| apd.error(e.into()))?;
    let owners =
        MessageStream::for_match_rule(owner_rule().map_err(bad_rule)?, &apd.connection, None)
            .await
            .map_err(|e| apd.error(e.into()))?;
    let mut stream = signals.or(owners);
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| CliError::failed(format!("cannot watch for SIGTERM: {e}")))?;
    // Read after subscribing: a change in between arrives as a signal too.
    let mut follower = current_view(&apd).await?;
    output::note(&format!("watching apd on {} (Ctrl-C to stop)", apd.link));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            next = stream.next() => {
                let Some(first) = next else { break };
                // apd sends the signals of one change back to back: take
                // those already here, so that a change told by two
                // properties (both persistent masks) is one line.
                let mut batch = vec![first];
                while let Some(Some(more)) = futures_lite::future::poll_once(stream.next()).await {
                    batch.push(more);
                }
                let mut happenings: Vec<Happening> = batch
                    .iter()
                    .filter_map(|item| item.as_ref().ok().and_then(decode))
                    .flat_map(|event| follower.feed(&event))
                    .collect();
                happenings.extend(follower.flush());
                if !happenings.iter().all(|h| print(h, ctx.json)) {
                    break;
                }
            }
        }
    }
    Ok(Outcome::quiet())
}
