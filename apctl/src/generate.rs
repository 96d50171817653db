//! Shell completions (clap_complete) and man pages (clap_mangen), generated
//! from the clap definitions, with the dynamic mdev completion and the
//! hand-written man sections added. The checked-in copies in `completions/`
//! and `man/` are compared with these by `tests/generated.rs`.

use crate::cli::{Cli, CompletionShell};
use clap::CommandFactory;
use clap_complete::Shell;

/// The subcommands whose first argument is an MDEV.
pub const MDEV_COMMANDS: &[&str] = &["show", "undefine", "start", "stop", "assign", "unassign"];

/// The completion script for `shell`, as `apctl completions SHELL` prints it.
pub fn completion(shell: CompletionShell) -> String {
    let mut cmd = visible_command();
    let mut buf = Vec::new();
    let sh = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    clap_complete::generate(sh, &mut cmd, "apctl", &mut buf);
    let script = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        CompletionShell::Bash => format!("{script}{}", bash_mdevs()),
        CompletionShell::Zsh => zsh_with_mdevs(&script),
        CompletionShell::Fish => format!("{script}{}", fish_mdevs()),
    }
}

/// The command line without hidden subcommands: clap_complete would offer
/// `__complete-mdevs` among the words, and people should not see it.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    let mut cmd = clap::Command::new("apctl")
        .about(full.get_about().cloned().unwrap_or_default())
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true);
    cmd = cmd.args(full.get_arguments().filter(|a| !a.is_hide_set()).cloned());
    cmd.subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}

/// The file name of each shell's script in `completions/`.
pub fn completion_file(shell: CompletionShell) -> &'static str {
    match shell {
        CompletionShell::Bash => "apctl.bash",
        CompletionShell::Zsh => "_apctl",
        CompletionShell::Fish => "apctl.fish",
    }
}

/// bash: a wrapper around clap's `_apctl` that completes the MDEV argument
/// from `apctl __complete-mdevs`, passing on `--bus` if given.
fn bash_mdevs() -> String {
    format!(
        r#"
# Dynamic completion of MDEV (names and UUIDs from apd), added by apctl.
_apctl_mdevs() {{
    local i word sub="" bus=() positionals=0 takes_value=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        if ((takes_value)); then
            takes_value=0
            continue
        fi
        case "$word" in
            --bus) takes_value=1; bus=(--bus "${{COMP_WORDS[i+1]}}") ;;
            --bus=*) bus=("$word") ;;
            -a|-d|-c|--adapters|--domains|--control-domains) takes_value=1 ;;
            -*) ;;
            *) if [[ -z "$sub" ]]; then sub="$word"; else ((positionals++)); fi ;;
        esac
    done
    case "$sub" in
        {cmds})
            if ((positionals == 0)) && ((takes_value == 0)) && [[ "${{COMP_WORDS[COMP_CWORD]}}" != -* ]]; then
                local IFS=$'\n'
                COMPREPLY=($(compgen -W "$(apctl "${{bus[@]}}" __complete-mdevs 2>/dev/null)" -- "${{COMP_WORDS[COMP_CWORD]}}"))
                return 0
            fi
            ;;
    esac
    _apctl "$@"
}}
if [[ "${{BASH_VERSINFO[0]}}" -eq 4 && "${{BASH_VERSINFO[1]}}" -ge 4 || "${{BASH_VERSINFO[0]}}" -gt 4 ]]; then
    complete -F _apctl_mdevs -o nosort -o bashdefault -o default apctl
else
    complete -F _apctl_mdevs -o bashdefault -o default apctl
fi
"#,
        cmds = MDEV_COMMANDS.join("|")
    )
}

/// zsh: clap describes MDEV with `_default`; point it at a function that
/// asks apd instead.
fn zsh_with_mdevs(script: &str) -> String {
    let helper = r#"
# Dynamic completion of MDEV (names and UUIDs from apd), added by apctl.
(( $+functions[_apctl_mdevs] )) ||
_apctl_mdevs() {
    local -a bus mdevs
    local i
    for ((i = 1; i < ${#words}; i++)); do
        case "${words[i]}" in
            --bus) bus=(--bus "${words[i+1]}") ;;
            --bus=*) bus=("${words[i]}") ;;
        esac
    done
    mdevs=("${(@f)$(apctl "${bus[@]}" __complete-mdevs --describe 2>/dev/null | sed 's/:/\\:/g; s/\t/:/')}")
    mdevs=(${mdevs:#})
    _describe -t mdevs 'mdev' mdevs
}
"#;
    let replaced = script.replace(
        ":mdev -- UUID or name of the mdev:_default'",
        ":mdev -- UUID or name of the mdev:_apctl_mdevs'",
    );
    // Define the helper before clap's `compdef`/autoload tail runs.
    match replaced.rfind("\nif [ \"$funcstack[1]\" = \"_apctl\" ]") {
        Some(at) => format!("{}{helper}{}", &replaced[..at], &replaced[at..]),
        None => format!("{replaced}{helper}"),
    }
}

/// fish: MDEV candidates with descriptions (the UUID for a name, the name
/// for a UUID).
fn fish_mdevs() -> String {
    format!(
        r#"
# Dynamic completion of MDEV (names and UUIDs from apd), added by apctl.
function __apctl_mdevs
    set -l bus
    set -l args (commandline -opc)
    for i in (seq (count $args))
        if test "$args[$i]" = --bus; and test $i -lt (count $args)
            set bus --bus $args[(math $i + 1)]
        else if string match -q -- '--bus=*' $args[$i]
            set bus $args[$i]
        end
    end
    apctl $bus __complete-mdevs --describe 2>/dev/null
end
complete -c apctl -n "__fish_seen_subcommand_from {cmds}" -f -a "(__apctl_mdevs)"
"#,
        cmds = MDEV_COMMANDS.join(" ")
    )
}

/// A hand-written man section, written as a tiny markup: paragraphs
/// separated by blank lines; lines starting with two spaces are an example
/// block shown as is; `* text` is a tagged item whose tag is up to ` :: `.
fn roff_section(title: &str, body: &str) -> String {
    let mut out = format!(".SH {}\n", title.to_uppercase());
    for para in body.trim_matches('\n').split("\n\n") {
        let lines: Vec<&str> = para.lines().collect();
        if lines.iter().all(|l| l.starts_with("  ")) {
            out.push_str(".PP\n.RS 4\n.nf\n");
            for l in lines {
                out.push_str(&escape(&l[2..]));
                out.push('\n');
            }
            out.push_str(".fi\n.RE\n");
        } else if let Some(item) = para.strip_prefix("* ") {
            let (tag, text) = item.split_once(" :: ").unwrap_or((item, ""));
            out.push_str(".TP\n");
            out.push_str(&format!("\\fB{}\\fR\n", escape(tag)));
            out.push_str(&escape(&text.replace('\n', " ")));
            out.push('\n');
        } else {
            out.push_str(".PP\n");
            out.push_str(&escape(&para.replace('\n', " ")));
            out.push('\n');
        }
    }
    out
}

/// Escapes text for roff: backslashes, hyphens as minus signs (so options
/// can be searched and copied), and a leading `.` or `'`.
fn escape(s: &str) -> String {
    let mut out = String::new();
    if s.starts_with('.') || s.starts_with('\'') {
        out.push_str("\\&");
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            c => out.push(c),
        }
    }
    out
}

const EXIT_STATUS: &str = "
* 0 :: Success (for check: no errors, maybe warnings).

* 1 :: Refused or failed: apd refused the change (nothing was changed), apd could not be reached, or check found errors. One sentence on standard error says what, why, and who is in the way.

* 2 :: Usage error: an unknown option, a missing argument, or a malformed value (an id list such as 5,,6 or 300, a mask, a UUID). Nothing is sent to apd.
";

const SEE_ALSO_SUB: &str = "apctl(8), apd(8), mdevctl(8), lszcrypt(8), chzcrypt(8)";

/// Hand-written sections of a page: `page` is `apctl` or the subcommand name.
fn extra_sections(page: &str) -> String {
    let mut s = String::new();
    let examples: Option<&str> = match page {
        "apctl" => Some(MAIN_EXAMPLES),
        "list" => Some(
            "
  apctl list
  apctl list --active --json | jq -r '.[].uuid'
",
        ),
        "show" => Some(
            "
Why can guest1 not use adapter 6?

  apctl show guest1

Give guest1's mdev to the libvirt domain guest1 (paste into <devices>):

  apctl show --libvirt guest1
  virsh edit guest1
",
        ),
        "define" => Some(
            "
Guest1 gets adapters 5 and 6 with domains 4 and 0xab, restored at boot; Guest2 gets adapter 5 with domains 0x47 and 0xff:

  apctl define --name guest1 --auto -a 5,6 -d 4,0xab
  apctl define --name guest2 --auto -a 5 -d 0x47,0xff
",
        ),
        "start" => Some(
            "
  apctl start guest1
",
        ),
        "stop" => Some(
            "
  apctl stop guest1
",
        ),
        "undefine" => Some(
            "
  apctl undefine guest2
",
        ),
        "assign" => Some(
            "
Hot plug domain 0x47 into the running guest2, and keep it in the definition:

  apctl assign guest2 -d 0x47

Refused while guest1 holds queue 05.0047:

  apctl: cannot assign domain 0x47 to guest2: queue 05.0047 is already assigned to guest1 (62177883-f1bb-47f0-914d-32a22e3a8804)
",
        ),
        "unassign" => Some(
            "
Take adapter 6 from guest1 only until the next start:

  apctl unassign guest1 -a 6 --live
",
        ),
        "masks" => Some(
            "
Give adapters 5 and 6 to vfio_ap (all their queues), or domains 4, 0x47, 0xab and 0xff on every adapter, as in the kernel's vfio-ap documentation, and keep the masks for boot:

  apctl masks --apmask -5,-6 --persistent
  apctl masks --aqmask -4,-0x47,-0xab,-0xff --persistent

Take adapter 5 back for the host (refused while an mdev holds one of its queues):

  apctl masks --apmask +5
",
        ),
        "queues" => Some(
            "
  apctl queues --adapter 5
  apctl queues --owner free
  apctl queues --owner guest1 --json
",
        ),
        "config" => Some(
            "
  apctl config 6 off
  apctl config 6 on
",
        ),
        "check" => Some(
            "
  apctl check
  apctl check host.toml
",
        ),
        "apply" => Some(
            "
  apctl apply --dry-run host.toml
  apctl apply host.toml
  apctl export > host.toml && apctl apply host.toml
",
        ),
        "import-mdevctl" => Some(
            "
  apctl import-mdevctl
  apctl import-mdevctl /backup/mdevctl.d/matrix
",
        ),
        "export" => Some(
            "
  apctl export > host.toml
  apctl export --format mdevctl /etc/mdevctl.d/matrix
",
        ),
        "monitor" => Some(
            "
  apctl monitor
  apctl monitor --json | jq .
",
        ),
        "completions" => Some(
            "
  apctl completions bash > /usr/share/bash-completion/completions/apctl
  apctl completions zsh > /usr/share/zsh/site-functions/_apctl
  apctl completions fish > /usr/share/fish/vendor_completions.d/apctl.fish
",
        ),
        _ => None,
    };
    if page == "apply" {
        s.push_str(&roff_section("Desired-state file", DESIRED_STATE));
    }
    if page == "apctl" {
        s.push_str(&roff_section("Environment", ENVIRONMENT));
        s.push_str(&roff_section("Files", FILES));
    }
    if let Some(ex) = examples {
        s.push_str(&roff_section("Examples", ex));
    }
    s.push_str(&roff_section("Exit status", EXIT_STATUS));
    let see_also = if page == "apctl" {
        let mut pages: Vec<String> = Cli::command()
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| format!("apctl-{}(8)", c.get_name()))
            .collect();
        pages.extend(["apd(8)", "mdevctl(8)", "lszcrypt(8)", "chzcrypt(8)"].map(String::from));
        pages.join(", ")
    } else {
        SEE_ALSO_SUB.to_string()
    };
    s.push_str(&roff_section("See also", &see_also));
    s
}

const ENVIRONMENT: &str = "
* APCTL_BUS :: The bus to reach apd on when --bus is absent: system, session or a D-Bus address.

* NO_COLOR :: When set and not empty, no colour is used. Colour is also off when standard output is not a terminal.

* APCTL_LOG :: Debug logging on standard error, e.g. APCTL_LOG=debug.
";

const FILES: &str = "
* /etc/apd/mdevs/UUID.toml :: One definition per mdev, kept by apd (never edit while apd runs; use apctl).

* /etc/apd/apd.toml :: apd's configuration, with the persistent masks.

* /etc/mdevctl.d/matrix/UUID :: mdevctl's definitions, read by apctl import-mdevctl and written by apctl export --format mdevctl.

* /sys/bus/ap, /sys/devices/vfio_ap/matrix :: The kernel interfaces apd writes; apctl never touches them.
";

const MAIN_EXAMPLES: &str = "
The example of the kernel's vfio-ap documentation: adapters 5 and 6 go to vfio_ap, Guest1 gets adapters 5 and 6 with domains 4 and 0xab, Guest2 adapter 5 with domains 0x47 and 0xff, both restored at boot:

  apctl masks --apmask -5,-6 --persistent
  apctl define --name guest1 --auto -a 5,6 -d 4,0xab
  apctl define --name guest2 --auto -a 5 -d 0x47,0xff
  apctl start guest1
  apctl start guest2
  apctl list

A queue held by one mdev cannot go to another:

  $ apctl assign guest2 -d 0xab
  apctl: cannot assign domain 0xab to guest2: queue 05.00ab is already assigned to guest1 (62177883-f1bb-47f0-914d-32a22e3a8804)

Scripts read JSON:

  apctl list --json | jq '.[] | select(.active) | .name'
";

const DESIRED_STATE: &str = "
A desired-state file (TOML) names the masks and the mdevs the host should have. apctl export prints the current state in this form, so that apctl export > host.toml && apctl apply host.toml changes nothing.

  [masks]                 # optional; absent = leave the masks alone
  apmask = \"0xf9ff...ff\"  # absolute kernel syntax only: 0x and 64 hex digits
  aqmask = \"0xf7ff...fe\"
  # or, instead of the hex masks:
  # vfio_adapters = [5, 6]              # these bits clear, all others set
  # vfio_domains = [4, 0x47, 0xab, 0xff]

  [[mdev]]                # one table per mdev, as in /etc/apd/mdevs
  uuid = \"62177883-f1bb-47f0-914d-32a22e3a8804\"   # optional: matched by name
  name = \"guest1\"
  autostart = true        # autostart mdevs are also started by apply
  adapters = [5, 6]
  domains = [4, 0xab]
  control_domains = []

[masks] are applied live and stored as the persistent masks. An [[mdev]] without uuid is matched to an existing definition by name, or defined with a new UUID. Mdevs the file does not name are left alone unless --prune, which stops and undefines them.

apd validates the whole state first (the same checks as apctl check FILE), then runs the plan in a safe order: masks that give queues to vfio_ap first, then definitions, assignments and starts, then masks that take queues back for the host. If a step fails, the steps already done are rolled back. With --dry-run the plan is printed and nothing is written; with --json the plan is an object whose steps array lists every change in order (an empty plan is \"steps\": []).
";

/// Every man page: `(file name, roff text)`, `apctl.8` first.
pub fn man_pages() -> Vec<(String, String)> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let version = root.get_version().unwrap_or_default().to_string();
    let mut pages = Vec::new();
    let render = |cmd: clap::Command, page: &str| -> (String, String) {
        let man = clap_mangen::Man::new(cmd)
            .section("8")
            .source(format!("apctl {version}"))
            .manual("System Administration");
        let mut buf = Vec::new();
        // Rendering into a Vec cannot fail.
        let _ = man.render(&mut buf);
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        text.push_str(&extra_sections(page));
        (man.get_filename(), text)
    };
    pages.push(render(root.clone(), "apctl"));
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(render(sub.clone(), sub.get_name()));
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_scripts_hook_mdevs() {
        let bash = completion(CompletionShell::Bash);
        assert!(bash.contains("complete -F _apctl_mdevs"), "bash");
        assert!(bash.contains("__complete-mdevs"));
        let zsh = completion(CompletionShell::Zsh);
        let fish = completion(CompletionShell::Fish);
        assert!(zsh.contains(":_apctl_mdevs'"), "zsh hook not placed");
        assert!(
            !zsh.contains("of the mdev:_default'"),
            "zsh hook missed one"
        );
        for script in [&bash, &zsh, &fish] {
            assert!(
                !script.contains("for shell completion"),
                "hidden command offered"
            );
        }
        assert!(
            fish.contains("__fish_seen_subcommand_from show undefine start stop assign unassign")
        );
    }

    #[test]
    fn a_page_per_visible_subcommand() {
        let pages = man_pages();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "apctl.8");
        for n in [
            "apctl-list.8",
            "apctl-apply.8",
            "apctl-masks.8",
            "apctl-import-mdevctl.8",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("complete-mdevs")));
        let apply = &pages
            .iter()
            .find(|(n, _)| n == "apctl-apply.8")
            .expect("apply")
            .1;
        assert!(apply.contains(".SH DESIRED-STATE FILE"));
        let main = &pages[0].1;
        for section in [
            ".SH EXIT STATUS",
            ".SH FILES",
            ".SH EXAMPLES",
            ".SH SEE ALSO",
        ] {
            assert!(main.contains(section), "{section}");
        }
        assert!(main.contains("apctl masks \\-\\-apmask \\-5,\\-6"));
    }

    #[test]
    fn roff_escapes() {
        assert_eq!(escape(".x -a \\"), "\\&.x \\-a \\e");
    }
}
