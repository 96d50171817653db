//! The command line, as clap (derive) definitions. Help texts here are also
//! the text of the generated man pages and shell completions.
//!
//! Id lists, masks, UUIDs and adapter ids are taken as plain strings and
//! checked by [`crate::args`] before any connection is made, so that a bad
//! value is refused with one short sentence that does not echo a huge input.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Where `import-mdevctl` reads by default: mdevctl's directory for the
/// vfio_ap parent device `matrix`.
pub const MDEVCTL_DIR: &str = "/etc/mdevctl.d/matrix";

/// apctl: pass s390 crypto adapters (AP queues) to KVM guests through vfio_ap.
#[derive(Debug, Parser)]
#[command(
    name = "apctl",
    version,
    about = "Pass s390 crypto adapters (AP queues) to KVM guests through vfio_ap",
    long_about = "apctl manages vfio_ap mediated devices (mdevs) and the AP bus masks that \
decide which crypto queues (APQNs) the host keeps and which KVM guests may get. \
It talks only to the daemon apd over D-Bus; apd validates every change against \
the host and the other mdevs, writes sysfs, persists definitions and restores \
them at boot.\n\n\
MDEV is an mdev's UUID or its name. LIST is a list of ids: decimal (5,6), hex \
(0x47), ranges (1-4) or a mix (1-4,0x47). Adapters are shown in decimal, \
domains in hex, queues as APQNs like 05.0004 (adapter.domain, hex, as lszcrypt shows them).",
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    /// The bus apd listens on: system, session, or a D-Bus address
    /// (unix:path=...). Default: $APCTL_BUS, else apd's private socket
    /// (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as
    /// systemctl's), else the system bus.
    #[arg(
        long,
        global = true,
        value_name = "BUS",
        env = "APCTL_BUS",
        hide_env_values = true
    )]
    pub bus: Option<String>,

    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of the design table.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show whether apd answers, a host summary and definitions that failed to load or start.
    Status,
    /// List every mdev, defined by apd or made by another tool.
    #[command(
        long_about = "List every mdev, one row each: defined by apd or made by another tool (then \
not defined). For an active mdev the ids are its live assignment; for an inactive \
one its definition. A * after ACTIVE marks an mdev whose live assignment differs \
from its definition (see apctl show)."
    )]
    List(ListArgs),
    /// Show one mdev: matrix, guest matrix, and per APQN whether the guest can use it and why not.
    #[command(
        long_about = "Show one mdev: its matrix, its guest matrix, and per APQN whether the guest \
can use it and, if not, why: the queue belongs to the host (which apmask and aqmask bits), the \
adapter is configured off or outside the LPAR, the queue is not bound to vfio_ap. For a defined \
mdev that is not active, each APQN says what a start would meet now: the host or another mdev \
(named) holding the queue, or nothing. With --libvirt, print instead the <hostdev> \
element a libvirt domain uses to pass the mdev to its guest (virsh edit GUEST, inside \
<devices>)."
    )]
    Show(ShowArgs),
    /// Store a new definition and print its UUID.
    #[command(
        long_about = "Store a new definition (persistent, started at boot when --auto) and print \
its UUID. Nothing is created in sysfs until 'apctl start' (or the next boot with \
--auto). Without --uuid apd generates the UUID."
    )]
    Define(DefineArgs),
    /// Forget a definition; an active mdev keeps running.
    Undefine(MdevArg),
    /// Create the mdev from its definition and assign everything, all or nothing.
    Start(MdevArg),
    /// Remove the mdev; the definition stays.
    Stop(MdevArg),
    /// Add adapters, domains or control domains to an mdev.
    #[command(
        long_about = "Add adapters, domains or control domains to an mdev. By default both the live \
mdev (if active) and its definition (if defined) change; --live or --persistent \
restricts the change to one of them. Refused, with nothing changed, when a new \
queue is owned by the host or assigned to another mdev."
    )]
    Assign(AssignArgs),
    /// Remove adapters, domains or control domains from an mdev.
    #[command(
        long_about = "Remove adapters, domains or control domains from an mdev (the reverse of \
assign). A running guest loses them at once (hot unplug)."
    )]
    Unassign(AssignArgs),
    /// Show or change the host's apmask and aqmask.
    #[command(
        long_about = "Without options: show the live and persistent apmask and aqmask and which \
adapters and domains they give to vfio_ap. With --apmask/--aqmask: change them \
as one validated step, in the kernel's syntax, absolute (0x followed by up to 64 \
hex digits) or relative (-5,-6 gives adapters 5 and 6 to vfio_ap, +5 takes 5 \
back for the host). A change that would take a queue assigned to an mdev back \
for the host is refused and names the mdev."
    )]
    Masks(MasksArgs),
    /// List queues (APQNs) like lszcrypt, with their owner: host, free, or an mdev.
    Queues(QueuesArgs),
    /// Configure an adapter on or off (the card's config attribute).
    #[command(
        long_about = "Configure an adapter on or off (the card's config attribute, SE/SCLP \
standby). A guest keeps an adapter configured off in its guest matrix but cannot \
use it until it is configured on again."
    )]
    Config(ConfigArgs),
    /// Validate all definitions, or a desired-state file, against each other and the host.
    #[command(
        long_about = "Validate all stored definitions (or the desired-state FILE) against each \
other and the host, e.g. two autostart definitions sharing an APQN. Findings are \
printed one per line. Exits 1 when there is an error, 0 when there are only \
warnings or none."
    )]
    Check(CheckArgs),
    /// Bring the host to the desired state in FILE: masks and mdevs. Prints the plan.
    #[command(
        long_about = "Bring the host to the desired state described in FILE (TOML; see \
apctl-apply(8) for the format): masks and mdev definitions. apd plans the \
changes, runs them in a safe order and rolls back on failure; apctl prints the \
plan. Mdevs the file does not name are left alone unless --prune."
    )]
    Apply(ApplyArgs),
    /// Adopt mdevctl's definitions of vfio_ap mdevs.
    #[command(
        name = "import-mdevctl",
        long_about = "Adopt mdevctl's definitions of vfio_ap mdevs: every good <uuid> JSON file in DIR \
(default /etc/mdevctl.d/matrix) becomes an apd definition. A file that does not parse, or \
that apd refuses, is skipped and named on stderr with the reason; the others are imported \
and the exit status is 1. Importing the same directory again changes nothing. \
Prints the UUIDs imported (or already defined exactly so)."
    )]
    ImportMdevctl(ImportArgs),
    /// Print the current state as a desired-state file, or write mdevctl files.
    #[command(
        long_about = "Print the current state (persistent masks and every definition) as a \
desired-state file, so that 'apctl export > host.toml && apctl apply host.toml' \
changes nothing. With --format mdevctl, write one mdevctl <uuid> file per \
definition into DIR (the directory that plays /etc/mdevctl.d/matrix)."
    )]
    Export(ExportArgs),
    /// Print host and mdev events as they happen, one line each, until Ctrl-C.
    #[command(
        long_about = "Print what happens on the host as it happens, one line per happening, until \
Ctrl-C: mdevs started, stopped or changed (with their adapters in decimal, domains in hex and \
guest matrix), definitions defined, changed or undefined, automatic starts that failed, \
adapters configured on or off, joining or leaving the LPAR, check-stopped or not, mask changes \
(what they give to vfio_ap), persistent masks, definition files that do not load, and apd \
leaving or returning to the bus. An mdev is named by its name, by its UUID when it has none. \
Lines look like: mdev-started guest1: adapters 5,6, domains 0x04,0xab, control domains -; \
guest matrix 05.0004,05.00ab,06.0004,06.00ab\n\n\
With --json, one JSON object per line: event (the kind: mdev-started, mdev-stopped, \
mdev-changed, definition-changed, start-failed, masks-changed, persistent-masks, \
adapter-config, adapter-state, vfio-ap, load-errors, apd-started, apd-stopped), uuid and name \
(of the mdev, or null), adapter (its id, or null), message (the line's text after the \
subject), and mdev (the mdev as list --json shows it, or null)."
    )]
    Monitor,
    /// Draw the LPAR as a grid: one row per adapter, one column per usage domain, each cell its owner.
    #[command(
        long_about = "Draw the LPAR as a grid: one row per adapter (decimal, with its card type), \
one column per usage domain (hex), each cell one queue (APQN) showing its owner: H the host, \
. free for vfio_ap, a letter per active mdev (the legend under the grid gives its name and \
UUID), * where two owners hold the same queue at once (written by another tool; apd never does), \
- where no queue device exists (not yet probed, or its adapter is leaving). \
A queue whoever owns it cannot use (adapter configured off or check-stopped, queue not bound \
to a driver, left out of the guest matrix) is red on a terminal and followed by ! without \
colour (NO_COLOR set, or stdout not a terminal); a row label ends in off or chkstop when the \
adapter is so.\n\n\
Only the LPAR's adapters and usage domains have cells; ids of -a/-d outside them are named \
under the grid, and an mdev's ids outside the LPAR appear in no cell (apctl show MDEV \
explains them). Wide hosts: the columns wrap into blocks of 16 domains, each with its own \
header row, so every line fits in 80 columns; -d picks the domains to see.\n\n\
With --json: {\"adapters\": [ids], \"domains\": [ids], \"cells\": [{\"apqn\", \"owner\": \
host|free|mdev|none, \"mdev\": uuid|null, \"name\", \"usable\", \"reason\", \"collides_with\": \
[host or UUIDs]}], \"mdevs\": [the active mdevs as in list --json]}; owner none is a cell \
shown - (no queue device there)."
    )]
    Matrix(MatrixArgs),
    /// Print a completion script for SHELL (bash, zsh, fish).
    #[command(
        long_about = "Print a completion script for SHELL. The scripts complete mdev names and \
UUIDs by asking apd (through 'apctl __complete-mdevs')."
    )]
    Completions(CompletionsArgs),
    /// Print mdev names and UUIDs, one a line, for shell completion.
    #[command(name = "__complete-mdevs", hide = true)]
    CompleteMdevs(CompleteMdevsArgs),
}

/// `list` filters.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only mdevs that have a definition.
    #[arg(long, conflicts_with = "active")]
    pub defined: bool,
    /// Only mdevs that exist now.
    #[arg(long)]
    pub active: bool,
}

/// A command that takes one mdev.
#[derive(Debug, Args)]
pub struct MdevArg {
    /// UUID or name of the mdev.
    #[arg(value_name = "MDEV")]
    pub mdev: String,
}

/// `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// UUID or name of the mdev.
    #[arg(value_name = "MDEV")]
    pub mdev: String,
    /// Print the libvirt <hostdev> element for the mdev (for a domain's <devices>).
    #[arg(long)]
    pub libvirt: bool,
}

/// The id lists of `define`, `assign`, `unassign`. Repeated options add up.
#[derive(Debug, Args, Default)]
pub struct IdListArgs {
    /// Adapters (APIDs), e.g. 5,6 or 1-4.
    #[arg(short = 'a', long = "adapters", value_name = "LIST")]
    pub adapters: Vec<String>,
    /// Usage domains (APQIs), e.g. 4,0xab.
    #[arg(short = 'd', long = "domains", value_name = "LIST")]
    pub domains: Vec<String>,
    /// Control domains, e.g. 0x47.
    #[arg(short = 'c', long = "control-domains", value_name = "LIST")]
    pub control_domains: Vec<String>,
}

/// `define`.
#[derive(Debug, Args)]
pub struct DefineArgs {
    /// The UUID to use; default: apd generates one.
    #[arg(long, value_name = "UUID")]
    pub uuid: Option<String>,
    /// A name to refer to the mdev by (e.g. the guest's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Start the mdev at boot (and with apply).
    #[arg(long, conflicts_with = "manual")]
    pub auto: bool,
    /// Start the mdev only with 'apctl start' (the default).
    #[arg(long)]
    pub manual: bool,
    /// The matrix.
    #[command(flatten)]
    pub ids: IdListArgs,
}

/// `assign` and `unassign`.
#[derive(Debug, Args)]
pub struct AssignArgs {
    /// UUID or name of the mdev.
    #[arg(value_name = "MDEV")]
    pub mdev: String,
    /// The ids to add or remove.
    #[command(flatten)]
    pub ids: IdListArgs,
    /// Change only the live mdev (refused when it is not active).
    #[arg(long, conflicts_with = "persistent")]
    pub live: bool,
    /// Change only the definition (refused when there is none).
    #[arg(long)]
    pub persistent: bool,
}

/// `masks`.
#[derive(Debug, Args)]
pub struct MasksArgs {
    /// New apmask, kernel syntax: 0x... (absolute) or -5,-6 / +5 (relative).
    #[arg(long, value_name = "SPEC", allow_hyphen_values = true)]
    pub apmask: Option<String>,
    /// New aqmask, kernel syntax: 0x... (absolute) or -4,-0x47 / +4 (relative).
    #[arg(long, value_name = "SPEC", allow_hyphen_values = true)]
    pub aqmask: Option<String>,
    /// Also store the resulting masks, applied at boot.
    #[arg(long)]
    pub persistent: bool,
    /// chzdev's udev rule with persistent AP masks, shown when it exists.
    #[arg(
        long,
        value_name = "FILE",
        env = "APCTL_CHZDEV_RULE",
        default_value = libap::chzdev::RULE_FILE,
        value_hint = clap::ValueHint::FilePath
    )]
    pub chzdev_rule: PathBuf,
}

/// `queues` filters.
#[derive(Debug, Args)]
pub struct QueuesArgs {
    /// Only queues of these adapters.
    #[arg(long, value_name = "LIST")]
    pub adapter: Option<String>,
    /// Only queues of these domains.
    #[arg(long, value_name = "LIST")]
    pub domain: Option<String>,
    /// Only queues owned by: host, free (for vfio_ap, in no mdev), or an mdev's name or UUID.
    #[arg(long, value_name = "OWNER")]
    pub owner: Option<String>,
}

/// `matrix` limits. Repeated options add up.
#[derive(Debug, Args)]
pub struct MatrixArgs {
    /// Only these adapters (rows), e.g. 5,6 or 1-4.
    #[arg(short = 'a', long = "adapters", value_name = "LIST")]
    pub adapters: Vec<String>,
    /// Only these usage domains (columns), e.g. 4,0xab.
    #[arg(short = 'd', long = "domains", value_name = "LIST")]
    pub domains: Vec<String>,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Configure the adapter on.
    On,
    /// Configure the adapter off (standby).
    Off,
}

/// `config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The adapter id, e.g. 5 or 0x0a.
    #[arg(value_name = "ADAPTER")]
    pub adapter: String,
    /// The new state.
    #[arg(value_name = "STATE")]
    pub state: OnOff,
}

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A desired-state file to check instead of the stored definitions.
    #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub file: Option<PathBuf>,
}

/// `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The desired-state file (TOML).
    #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub file: PathBuf,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also stop and undefine mdevs the file does not name.
    #[arg(long)]
    pub prune: bool,
}

/// `import-mdevctl`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// mdevctl's directory of vfio_ap definitions.
    #[arg(value_name = "DIR", default_value = MDEVCTL_DIR, value_hint = clap::ValueHint::DirPath)]
    pub dir: PathBuf,
    /// Remove each imported file from DIR (skipped files stay), so mdevctl no longer restores it.
    #[arg(long)]
    pub remove_source: bool,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// The desired-state file, on stdout.
    Toml,
    /// mdevctl's JSON files, one per definition, into DIR.
    Mdevctl,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to write.
    #[arg(long, value_enum, default_value_t = ExportFormat::Toml)]
    pub format: ExportFormat,
    /// With --format mdevctl: the directory to write the <uuid> files into.
    #[arg(value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub dir: Option<PathBuf>,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_name = "SHELL")]
    pub shell: CompletionShell,
}

/// The shells we generate completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// `__complete-mdevs`.
#[derive(Debug, Args)]
pub struct CompleteMdevsArgs {
    /// Print `value<TAB>description` lines (for fish).
    #[arg(long)]
    pub describe: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
