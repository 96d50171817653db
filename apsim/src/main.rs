//! `apsim mount --host HOST.toml --uevent-socket SOCK DIR`: the simulated
//! kernel as a FUSE sysfs, in the foreground until SIGTERM/SIGINT.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{SigSet, Signal};

use apsim::fuse::names::Names;
use apsim::{fuse, uevent_socket, Sim, Topology};

#[derive(Debug, Parser)]
#[command(
    name = "apsim",
    version,
    about = "Simulated s390 AP bus and vfio_ap sysfs"
)]
struct Cli {
    /// Log filter (error, warn, info, debug, trace or a tracing filter).
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mount a simulated /sys at DIR until SIGTERM or SIGINT.
    Mount {
        /// Host topology file (TOML).
        #[arg(long, value_name = "HOST.toml")]
        host: PathBuf,
        /// SOCK_SEQPACKET unix socket that streams kernel uevents.
        #[arg(long, value_name = "SOCK")]
        uevent_socket: PathBuf,
        /// Mount point.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // fuser reports what the simulator does on purpose (no flush, a lazy
    // unmount before its own) as errors: keep it quiet unless asked for.
    let directives = if cli.log_level.contains('=') || cli.log_level.contains(',') {
        cli.log_level.clone()
    } else {
        format!("{},fuser=off", cli.log_level)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,fuser=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let Command::Mount {
        host,
        uevent_socket,
        dir,
    } = cli.command;
    match mount(&host, &uevent_socket, &dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apsim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn mount(host: &Path, sock: &Path, dir: &Path) -> Result<(), String> {
    let topology = Topology::from_file(host).map_err(|e| e.to_string())?;
    // Signals go to the one thread that waits for them; block them before
    // any other thread starts so they inherit the mask.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals
        .thread_block()
        .map_err(|e| format!("cannot block SIGTERM/SIGINT: {e}"))?;

    let sim = Sim::new(topology);
    let listener = uevent_socket::listen_at(sock).map_err(|e| {
        format!(
            "cannot listen on uevent socket {}: {e} (is the directory there?)",
            sock.display()
        )
    })?;
    // Each burst of uevents passes the cache of names first: a client that
    // hears of a removal must not find the name cached (fuse::names).
    let names = Names::default();
    let raw = sim.subscribe();
    let (tx, events) = std::sync::mpsc::channel();
    let (s, n) = (sim.clone(), names.clone());
    std::thread::Builder::new()
        .name("apsim-names".into())
        .spawn(move || {
            while let Ok(first) = raw.recv() {
                let burst: Vec<Vec<u8>> = std::iter::once(first).chain(raw.try_iter()).collect();
                n.sync(&s);
                if burst.into_iter().any(|e| tx.send(e).is_err()) {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start the uevent thread: {e}"))?;
    std::thread::Builder::new()
        .name("apsim-uevents".into())
        .spawn(move || uevent_socket::forward(listener, events))
        .map_err(|e| format!("cannot start the uevent thread: {e}"))?;

    fuse::clear_stale_mount(dir)
        .map_err(|e| format!("cannot clear the stale mount at {}: {e}", dir.display()))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create mount point {}: {e}", dir.display()))?;

    let target = dir.to_path_buf();
    let sock_path = sock.to_path_buf();
    std::thread::Builder::new()
        .name("apsim-signals".into())
        .spawn(move || {
            if let Ok(sig) = signals.wait() {
                tracing::info!("apsim: {sig}: unmounting {}", target.display());
                let code = match umount2(&target, MntFlags::MNT_DETACH) {
                    Ok(()) => 0,
                    Err(e) => {
                        tracing::error!("apsim: unmount of {} failed: {e}", target.display());
                        1
                    }
                };
                // Leave at once: a writer blocked in `remove` (a guest that
                // never lets go) or a file still open would otherwise keep
                // the detached session, and this process, alive.
                let _ = std::fs::remove_file(&sock_path);
                std::process::exit(code);
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;

    let served = fuse::serve(sim, names, dir, || {
        let mut out = std::io::stdout();
        // Tests wait for this line.
        let _ = writeln!(out, "apsim: mounted {}", dir.display());
        let _ = out.flush();
    });
    let _ = std::fs::remove_file(sock);
    served.map_err(|e| {
        format!(
            "cannot mount or serve {}: {e} (is /dev/fuse there and are we root?)",
            dir.display()
        )
    })
}
