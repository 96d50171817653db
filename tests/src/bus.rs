//! A private D-Bus: one `dbus-daemon` per test, listening on a socket in the
//! test's temporary directory, with either a permissive policy or the
//! system bus defaults plus the policy file this repository ships (and, for
//! a bus that plays the system bus, polkit's); system services such as
//! polkitd can be started against it.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Stdio};
use std::time::Instant;

use tempfile::TempDir;

use crate::process::{liveness_timeout, Proc, POLL};

/// Which rules the private bus enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BusPolicy {
    /// Everyone may connect, own any name and call anything.
    #[default]
    Permissive,
    /// The system bus defaults (method calls and name ownership denied
    /// unless a policy file opens them) plus `systemd/org.apctl.Apd1.conf`,
    /// so tests exercise the policy that is installed on real hosts.
    Shipped,
    /// [`BusPolicy::Shipped`] plus the bus policy polkit installs
    /// (`org.freedesktop.PolicyKit1.conf`: polkitd's user owns
    /// `org.freedesktop.PolicyKit1`, everyone may call it) and root owning
    /// that name too: a bus that plays the system bus for a real polkitd
    /// ([`Bus::start_service`]).
    ShippedWithPolkit,
}

/// The bus name polkit's authority owns on the system bus.
pub const POLKIT_BUS_NAME: &str = "org.freedesktop.PolicyKit1";

/// Where distributions install polkit's bus policy (Debian: package
/// `polkitd`); the ones present are included by [`BusPolicy::ShippedWithPolkit`].
const POLKIT_BUS_POLICY_FILES: [&str; 2] = [
    "/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf",
    "/etc/dbus-1/system.d/org.freedesktop.PolicyKit1.conf",
];

/// The bus policy file this repository installs to `/usr/share/dbus-1/system.d/`.
pub fn shipped_policy_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("systemd")
        .join("org.apctl.Apd1.conf")
}

/// A running private `dbus-daemon`; dropping it kills the daemon.
#[derive(Debug)]
pub struct Bus {
    address: String,
    proc: Proc,
    // Kept open: the daemon must never see a closed stdout.
    _stdout: BufReader<ChildStdout>,
    // Dropped after `proc` (field order): the socket's directory.
    own_dir: Option<TempDir>,
}

impl Bus {
    /// A bus in a temporary directory of its own.
    pub fn start(policy: BusPolicy) -> Bus {
        let dir = tempfile::Builder::new()
            .prefix("ap-e2e-bus-")
            .tempdir()
            .expect("cannot create a temporary directory for the bus");
        let mut bus = Bus::start_in(dir.path(), policy);
        bus.own_dir = Some(dir);
        bus
    }

    /// A bus whose socket, configuration and log live in `dir`.
    pub fn start_in(dir: &Path, policy: BusPolicy) -> Bus {
        let rules = policy_rules(policy);
        Bus::start_with_rules(dir, &rules)
    }

    /// A bus in `dir` with the system bus defaults plus the bus policy
    /// `file` (e.g. one `make install` put into a staging root).
    pub fn start_with_policy_file(dir: &Path, file: &Path) -> Bus {
        let rules = format!(
            "{SYSTEM_DEFAULTS}  <include>{}</include>\n",
            xml_escape(&file.display().to_string())
        );
        Bus::start_with_rules(dir, &rules)
    }

    fn start_with_rules(dir: &Path, rules: &str) -> Bus {
        let socket = dir.join("bus");
        let config = dir.join("bus.conf");
        let log = dir.join("dbus-daemon.log");
        fs::write(&config, config_xml(&socket, rules))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let stderr = fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));

        let mut cmd = Command::new("dbus-daemon");
        cmd.arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .arg("--print-address=1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if !command_exists("dbus-daemon") {
            panic!(
                "dbus-daemon is not installed: install the `dbus-daemon` package \
                 (Debian/Ubuntu: apt-get install dbus-daemon; Fedora: dbus-daemon)"
            );
        }
        let mut proc = Proc::spawn("dbus-daemon", cmd);
        let stdout = proc_stdout(&mut proc);
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        // The daemon prints its address once it listens; EOF means it died.
        let n = stdout.read_line(&mut line).unwrap_or(0);
        let address = line.trim().to_owned();
        if n == 0 || address.is_empty() {
            let status = proc.stop().0;
            panic!(
                "dbus-daemon did not start ({status:?}); its log {}:\n{}",
                log.display(),
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        // Tests run clients under other uids (setpriv); the socket sits in
        // a private temporary directory, so opening it up is harmless.
        let _ = fs::set_permissions(&socket, fs::Permissions::from_mode(0o777));
        Bus {
            address,
            proc,
            _stdout: stdout,
            own_dir: None,
        }
    }

    /// The address clients connect to (`unix:path=...,guid=...`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The dbus-daemon's process id.
    pub fn pid(&self) -> u32 {
        self.proc.id()
    }

    /// Asks the bus whether `name` has an owner.
    pub fn name_has_owner(&self, name: &str) -> Result<bool, String> {
        let address = self.address.clone();
        let name = name.to_owned();
        // A thread of its own, so that callers inside an async runtime
        // (a #[tokio::test]) can use the harness too.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot build a tokio runtime: {e}"))?;
            runtime
                .block_on(async {
                    let conn = zbus::connection::Builder::address(address.as_str())?
                        .build()
                        .await?;
                    let proxy = zbus::fdo::DBusProxy::new(&conn).await?;
                    let bus_name = zbus::names::BusName::try_from(name.as_str())?;
                    Ok::<bool, zbus::Error>(proxy.name_has_owner(bus_name).await?)
                })
                .map_err(|e| format!("NameHasOwner({name}) on {address}: {e}"))
        })
        .join()
        .map_err(|_| "the D-Bus query thread panicked".to_owned())?
    }
}

impl Bus {
    /// Starts `cmd` as a system service of this bus and waits until it owns
    /// `bus_name`: `DBUS_SYSTEM_BUS_ADDRESS` is this bus's address (so the
    /// service takes it for the system bus), stdin is /dev/null, stdout and
    /// stderr are appended to `log`. Panics, with the log, when the service
    /// exits first or the liveness bound passes.
    pub fn start_service(&self, bus_name: &str, mut cmd: Command, log: &Path) -> BusService {
        let name = Path::new(cmd.get_program()).file_name().map_or_else(
            || "service".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot duplicate {}: {e}", log.display()));
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err);
        let mut service = BusService {
            proc: Proc::spawn(&name, cmd),
            name,
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + liveness_timeout();
        loop {
            if let Some(status) = service.proc.exited() {
                panic!(
                    "{} exited ({status}) before it owned {bus_name}; its log {}:\n{}",
                    service.name,
                    log.display(),
                    service.log()
                );
            }
            if self.name_has_owner(bus_name) == Ok(true) {
                return service;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not own {bus_name} within {:?} (does the bus policy let its user \
                     own the name?); its log {}:\n{}",
                    service.name,
                    liveness_timeout(),
                    log.display(),
                    service.log()
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

/// A service started by [`Bus::start_service`]; dropping it stops the
/// service's whole process group.
#[derive(Debug)]
pub struct BusService {
    name: String,
    log: PathBuf,
    proc: Proc,
}

impl BusService {
    /// The service's process id.
    pub fn pid(&self) -> u32 {
        self.proc.id()
    }

    /// Whether the service still runs.
    pub fn running(&mut self) -> bool {
        self.proc.exited().is_none()
    }

    /// The service's stdout and stderr so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }
}

fn proc_stdout(proc: &mut Proc) -> ChildStdout {
    proc.take_stdout()
        .expect("dbus-daemon was started with a piped stdout")
}

/// Whether `program` is found in PATH.
pub fn command_exists(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(program))
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
    })
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const HEADER: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
"#;

/// Everything open: any uid connects, owns any name, calls anything.
const PERMISSIVE: &str = r#"  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
"#;

/// The default policy of the system bus (Debian's /usr/share/dbus-1/system.conf):
/// names and method calls are closed until a service's policy file opens them.
const SYSTEM_DEFAULTS: &str = r#"  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
"#;

/// A polkitd that keeps running as root (built without a user of its own)
/// may own its name as well.
const POLKIT_ROOT_OWNS: &str = r#"  <policy user="root">
    <allow own="org.freedesktop.PolicyKit1"/>
  </policy>
"#;

/// The `<include>` of `systemd/org.apctl.Apd1.conf`.
fn shipped_include() -> String {
    let file = shipped_policy_file();
    let file = file.canonicalize().unwrap_or_else(|e| {
        panic!(
            "BusPolicy::Shipped needs the repository's bus policy {}: {e}",
            file.display()
        )
    });
    format!(
        "  <include>{}</include>\n",
        xml_escape(&file.display().to_string())
    )
}

fn policy_rules(policy: BusPolicy) -> String {
    match policy {
        BusPolicy::Permissive => PERMISSIVE.to_owned(),
        BusPolicy::Shipped => format!("{SYSTEM_DEFAULTS}{}", shipped_include()),
        BusPolicy::ShippedWithPolkit => {
            let mut rules = format!("{SYSTEM_DEFAULTS}{}{POLKIT_ROOT_OWNS}", shipped_include());
            for file in POLKIT_BUS_POLICY_FILES {
                rules.push_str(&format!(
                    "  <include ignore_missing=\"yes\">{}</include>\n",
                    xml_escape(file)
                ));
            }
            rules
        }
    }
}

fn config_xml(socket: &Path, rules: &str) -> String {
    let socket = xml_escape(&socket.display().to_string());
    format!(
        "{HEADER}<busconfig>\n  <listen>unix:path={socket}</listen>\n  <auth>EXTERNAL</auth>\n{rules}</busconfig>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissive_config_listens_on_the_socket_and_allows_everything() {
        let xml = config_xml(
            Path::new("/tmp/x&y/bus"),
            &policy_rules(BusPolicy::Permissive),
        );
        assert!(xml.contains("<listen>unix:path=/tmp/x&amp;y/bus</listen>"));
        assert!(xml.contains(r#"<allow own="*"/>"#));
        assert!(!xml.contains("<include>"));
    }

    #[test]
    fn the_polkit_config_adds_polkits_policy_to_the_shipped_one() {
        let shipped = config_xml(Path::new("/tmp/b/bus"), &policy_rules(BusPolicy::Shipped));
        let polkit = config_xml(
            Path::new("/tmp/b/bus"),
            &policy_rules(BusPolicy::ShippedWithPolkit),
        );
        assert!(shipped.contains("org.apctl.Apd1.conf</include>"));
        assert!(!shipped.contains(POLKIT_BUS_NAME));
        assert!(polkit.contains("org.apctl.Apd1.conf</include>"));
        assert!(polkit.contains(r#"<deny own="*"/>"#));
        assert!(polkit.contains(
            r#"<include ignore_missing="yes">/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf</include>"#
        ));
        assert!(polkit.contains(r#"<allow own="org.freedesktop.PolicyKit1"/>"#));
    }

    #[test]
    fn escaping_covers_markup() {
        assert_eq!(
            xml_escape(r#"<a b="c">&"#),
            "&lt;a b=&quot;c&quot;&gt;&amp;"
        );
    }
}
