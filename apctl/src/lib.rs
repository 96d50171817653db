//! apctl, the admin CLI of apd: clap definitions ([`cli`]), client-side
//! checks ([`args`]), the bus connection ([`bus`]), one function per command
//! ([`commands`]), pure renderers for people and JSON ([`render`]), and the
//! generators of completions and man pages ([`generate`]).
//!
//! apctl talks only to apd, over D-Bus, through the proxies of `apbus`.

pub mod args;
pub mod bus;
pub mod cli;
pub mod commands;
pub mod convert;
pub mod error;
pub mod generate;
pub mod output;
pub mod render;

use clap::Parser;
use error::CliError;

/// Runs apctl with the process's arguments and returns the exit status.
pub fn main_exit() -> u8 {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version on stdout (exit 0) and usage errors
            // on stderr (exit 2).
            let code = u8::try_from(e.exit_code()).unwrap_or(error::EXIT_USAGE);
            let _ = e.print();
            return code;
        }
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            output::note(&format!("cannot start: {e}"));
            return error::EXIT_FAILED;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(outcome) => {
            // A closed stdout is the reader's choice (| head), not a failure.
            output::stdout(&outcome.stdout);
            for sentence in &outcome.notes {
                output::note(sentence);
            }
            outcome.code
        }
        Err(CliError { sentence, code }) => {
            output::note(&sentence);
            code
        }
    }
}

/// Debug logs on stderr when `APCTL_LOG` says so (e.g. `APCTL_LOG=debug`);
/// silent otherwise, since stderr carries the one-sentence errors.
fn init_logging() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("APCTL_LOG") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
