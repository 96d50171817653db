//! apd: the single writer of AP crypto configuration on an s390 host.
//!
//! Start-up: undo a change an earlier apd was killed in the middle of
//! (its intent journal), read the host, serve org.apctl.Apd1, restore the persistent
//! masks and autostart mdevs, tell systemd READY, then follow uevents until
//! SIGTERM/SIGINT, when the write in progress finishes (or rolls back)
//! before the bus name is released.

mod cli;
mod convert;
mod dbus;
mod desired;
mod engine;
#[cfg(test)]
mod follow_tests;
mod lock;
mod memory;
mod ops;
mod remedy;
mod restore;
mod uevents;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use apbus::bus::BusChoice;
use clap::Parser as _;
use libap::store::Store;
use libap::sysfs::SimSysfs;
use libap::{DirSysfs, Sysfs};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;
use zbus::fdo::RequestNameFlags;

use cli::Cli;
use engine::Engine;
use uevents::Feed;

/// How long a change waits for s390-tools to release the configuration
/// lock before it is refused as Busy.
const LOCK_WAIT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cli.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: the journal and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    // Before any thread starts.
    memory::tune();
    let bus = match cli::bus_choice(&cli.bus) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("apd: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("apd")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("apd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli, bus)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("apd: {e}");
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&e)]);
            ExitCode::FAILURE
        }
    };
    // Every write ended under the writer before `run` returned; what may
    // still run on a blocking thread is an abandoned read of the host,
    // which dropping the runtime would wait for (a second or more on a big
    // host through FUSE).
    runtime.shutdown_background();
    code
}

async fn run(cli: Cli, bus: BusChoice) -> Result<(), String> {
    // Caught from the start: a SIGTERM during the boot restore must not
    // kill apd between two writes of a start.
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel::<Feed>(4096);

    // The door to the kernel and where its uevents come from.
    // The journal outlives apd only where the kernel does (not --sim).
    // Without a place for it apd could change nothing: say so at once.
    let journal = match &cli.sim {
        Some(_) => None,
        None => {
            std::fs::create_dir_all(&cli.runtime_dir).map_err(|e| {
                format!(
                    "cannot create {} (--runtime-dir, where apd keeps its intent journal): {e}",
                    cli.runtime_dir.display()
                )
            })?;
            Some(libap::apply::Journal::new(&cli.runtime_dir))
        }
    };
    let (sysfs, backend): (Arc<dyn Sysfs>, String) = match &cli.sim {
        Some(path) => {
            let topo = apsim::Topology::from_file(path)
                .map_err(|e| format!("cannot load the simulated host {}: {e}", path.display()))?;
            let sim = apsim::Sim::new(topo);
            uevents::forward_blocking(sim.subscribe(), tx.clone());
            (
                Arc::new(SimSysfs(sim)),
                format!("simulator ({})", path.display()),
            )
        }
        None => {
            let source = match &cli.uevent_socket {
                Some(sock) => uevents::Source::Socket(sock.clone()),
                None => uevents::Source::Netlink,
            };
            uevents::spawn(source, tx.clone())
                .await
                .map_err(|e| format!("cannot listen for kernel uevents (netlink): {e}"))?;
            (
                Arc::new(DirSysfs::new(&cli.sysfs_root)),
                format!("sysfs {}", cli.sysfs_root.display()),
            )
        }
    };
    let store = Store::new(&cli.config_dir).beside_mdevctl(&cli.mdevctl_root);
    let lock = lock::ConfigLock::new(&cli.lock_file, LOCK_WAIT);
    let engine = Engine::new(sysfs, backend.clone(), store, journal, lock);

    let signalled = tokio::spawn({
        let engine = engine.clone();
        async move {
            let why = tokio::select! {
                _ = sigterm.recv() => "SIGTERM",
                _ = sigint.recv() => "SIGINT",
            };
            tracing::info!("{why}: finishing the change in progress, then exiting");
            // No new change starts; the boot restore stops between starts;
            // a whole read of the host is abandoned.
            engine.request_stop();
            why
        }
    });

    // A change an earlier apd was killed in the middle of is undone first:
    // its caller never got an answer, and the restore then starts afresh.
    restore::recover(&engine).await;
    // The definitions are read from disk while the host is read through
    // sysfs (after the recovery, which may give a file its old content).
    let store_read = restore::read_store(&engine);

    // The one whole read: from here on uevents and our own writes keep the
    // model current. No AP bus means the wrong root or not an s390 host.
    tracing::info!(%backend, "reading the host's AP configuration");
    match engine.read_host().await {
        Ok(host) => engine.state().set_host(host),
        Err(_) if engine.is_stopping() => {
            tracing::info!("stopped before the host was read");
            return Ok(());
        }
        Err(e) => return Err(format!("{} ({backend})", e.sentence())),
    }

    let conn = dbus::connect(&bus)
        .await
        .map_err(|e| format!("cannot connect to the {} bus: {e}", cli.bus))?;
    let auth = dbus::auth::Authorizer::new(nix::unistd::geteuid().as_raw(), bus.is_system());
    let root = dbus::serve_root(&conn, engine.clone(), auth)
        .await
        .map_err(|e| format!("cannot serve {}: {e}", apbus::ROOT_PATH))?;
    let updates = engine.subscribe();
    tokio::spawn(dbus::follow(
        engine.clone(),
        dbus::Publisher::new(conn.clone()),
        updates,
    ));
    tokio::spawn(engine.clone().follow_refresh_requests());

    // Restore under the writer, so that early callers wait for it.
    let writer = engine.boot_writer().await;
    restore::load_read(&engine, store_read.await).await;
    // The mdev objects go on the bus once, after the restore (which ends
    // with a publish); early callers wait for the writer meanwhile.
    engine.publish_baseline().await;
    let reply = conn
        .request_name_with_flags(apbus::BUS_NAME, RequestNameFlags::DoNotQueue.into())
        .await
        .map_err(|e| format!("cannot own {} on the bus: {e}", apbus::BUS_NAME))?;
    if reply != zbus::fdo::RequestNameReply::PrimaryOwner {
        return Err(format!(
            "{} is owned by another process (is apd already running?)",
            apbus::BUS_NAME
        ));
    }
    // Root's apctl skips the bus daemon through it; without it (no
    // runtime directory with --sim, or a bind refused) apctl uses the bus.
    let private = match &cli.sim {
        Some(_) => None,
        None => match dbus::private::PrivateSocket::bind(&cli.runtime_dir) {
            Ok(socket) => {
                tracing::debug!(path = %socket.path().display(), "listening on the private socket");
                Some(tokio::spawn(socket.serve(root)))
            }
            Err(e) => {
                tracing::warn!(dir = %cli.runtime_dir.display(), error = %e, "cannot listen on the private socket; apctl will use the bus");
                None
            }
        },
    };
    let summary = restore::boot(&engine).await;
    drop(writer);
    let _ = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&summary),
        ],
    );
    tracing::info!(bus = %cli.bus, %backend, "apd is ready");

    drop(tx);
    let events = tokio::spawn(event_loop(engine.clone(), rx));
    let why = signalled.await.unwrap_or("a failed signal task");
    tracing::debug!(why, "shutting down");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let _final = engine.shutdown().await;
    events.abort();
    if let Some(private) = private {
        // Its socket file goes with it.
        private.abort();
        let _ = private.await;
    }
    if let Err(e) = conn.release_name(apbus::BUS_NAME).await {
        tracing::warn!(error = %e, "cannot release the bus name");
    }
    tracing::info!("apd stopped");
    Ok(())
}

/// Follows uevents: drains each burst, re-reads what it made stale (a
/// handful of files per event, the whole host only after lost events),
/// publishes, and retries failed automatic starts when the change may help
/// them.
async fn event_loop(engine: Arc<Engine>, mut rx: mpsc::Receiver<Feed>) {
    while let Some(burst) = uevents::next_burst(&mut rx).await {
        if burst.stale.is_empty() {
            continue;
        }
        let Ok(_w) = engine.writer().await else {
            return;
        };
        tracing::debug!(events = burst.events, stale = ?burst.stale, "following uevents");
        engine.refresh(burst.stale).await;
        if burst.unblock {
            restore::retry(&engine).await;
        }
    }
}
