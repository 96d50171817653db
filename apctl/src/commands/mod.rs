//! One function per command: check the arguments, then (and only then)
//! connect to apd, call it, and render the answer.

pub mod host;
pub mod import;
pub mod matrix;
pub mod mdevs;
pub mod monitor;
pub mod state;

use std::path::PathBuf;

use crate::bus::{self, Apd, BusChoice};
use crate::cli::{Cli, Command};
use crate::error::CliError;
use crate::render::Style;

/// What a command leaves for the user: text for stdout and the exit status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Printed on stdout as is.
    pub stdout: String,
    /// 0, or 1 for `check` with errors (or `import-mdevctl` with skipped files).
    pub code: u8,
    /// Sentences for stderr (each printed as `apctl: <sentence>`), after stdout.
    pub notes: Vec<String>,
}

impl Outcome {
    /// Success with this output.
    pub fn print(stdout: impl Into<String>) -> Outcome {
        Outcome {
            stdout: stdout.into(),
            ..Outcome::default()
        }
    }

    /// Success, nothing to print.
    pub fn quiet() -> Outcome {
        Outcome::default()
    }
}

/// Global options every command sees.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `--json`.
    pub json: bool,
    /// Colour or not.
    pub style: Style,
    /// `--bus` / `APCTL_BUS`.
    pub bus: BusChoice,
    /// apd's private socket, tried before the bus when no bus is named.
    pub private: Option<PathBuf>,
}

impl Ctx {
    /// Connects to apd: on its private socket where that works (root,
    /// no bus named), else on the bus.
    pub async fn connect(&self) -> Result<Apd, CliError> {
        if let Some(path) = &self.private {
            match Apd::connect_private(path).await {
                Ok(apd) => return Ok(apd),
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "private socket unusable; using the bus");
                }
            }
        }
        self.connect_bus().await
    }

    /// Connects to apd's bus (signals are only there).
    pub async fn connect_bus(&self) -> Result<Apd, CliError> {
        Apd::connect(self.bus.clone()).await
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<Outcome, CliError> {
    let ctx = Ctx {
        json: cli.json,
        style: if cli.json {
            Style::PLAIN
        } else {
            Style::detect()
        },
        bus: bus::choose(cli.bus.as_deref())?,
        private: bus::private_socket(cli.bus.is_some()),
    };
    match cli.command {
        Command::Status => host::status(&ctx).await,
        Command::List(a) => mdevs::list(&ctx, &a).await,
        Command::Show(a) => mdevs::show(&ctx, &a).await,
        Command::Define(a) => mdevs::define(&ctx, &a).await,
        Command::Undefine(a) => mdevs::simple(&ctx, mdevs::Simple::Undefine, &a.mdev).await,
        Command::Start(a) => mdevs::simple(&ctx, mdevs::Simple::Start, &a.mdev).await,
        Command::Stop(a) => mdevs::simple(&ctx, mdevs::Simple::Stop, &a.mdev).await,
        Command::Assign(a) => mdevs::assign(&ctx, &a, true).await,
        Command::Unassign(a) => mdevs::assign(&ctx, &a, false).await,
        Command::Masks(a) => host::masks(&ctx, &a).await,
        Command::Queues(a) => host::queues(&ctx, &a).await,
        Command::Config(a) => host::config(&ctx, &a).await,
        Command::Check(a) => state::check(&ctx, &a).await,
        Command::Apply(a) => state::apply(&ctx, &a).await,
        Command::ImportMdevctl(a) => import::import_mdevctl(&ctx, &a).await,
        Command::Export(a) => state::export(&ctx, &a).await,
        Command::Monitor => monitor::monitor(&ctx).await,
        Command::Matrix(a) => matrix::matrix(&ctx, &a).await,
        Command::Completions(a) => Ok(Outcome::print(crate::generate::completion(a.shell))),
        Command::CompleteMdevs(a) => Ok(mdevs::complete(&ctx, a.describe).await),
    }
}
