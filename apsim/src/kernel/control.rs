//! The test control surface under `.apsim/` (design.md, "apsim control
//! surface"): log, error injection, slow writes, LPAR changes, guests
//! opening mdevs, and loading/unloading vfio_ap.

use super::tree::Ctl;
use super::Kernel;
use crate::bits::Bits;
use crate::topology::{AdapterSpec, CardType};
use crate::Errno;

/// The next `remaining` writes to `path` fail with `errno`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Injection {
    pub(crate) path: String,
    pub(crate) errno: Errno,
    pub(crate) remaining: u32,
}

/// Adapter type for `lpar add adapter N` without a TYPE, when firmware
/// never knew adapter N.
const DEFAULT_TYPE: CardType = CardType {
    generation: 8,
    mode: crate::topology::Mode::Cca,
};

const ERRNO_NAMES: &[(&str, Errno)] = &[
    ("EPERM", libc::EPERM),
    ("ENOENT", libc::ENOENT),
    ("EINTR", libc::EINTR),
    ("EIO", libc::EIO),
    ("ENXIO", libc::ENXIO),
    ("E2BIG", libc::E2BIG),
    ("EAGAIN", libc::EAGAIN),
    ("ENOMEM", libc::ENOMEM),
    ("EACCES", libc::EACCES),
    ("EFAULT", libc::EFAULT),
    ("EBUSY", libc::EBUSY),
    ("EEXIST", libc::EEXIST),
    ("ENODEV", libc::ENODEV),
    ("ENOTDIR", libc::ENOTDIR),
    ("EISDIR", libc::EISDIR),
    ("EINVAL", libc::EINVAL),
    ("ENOSPC", libc::ENOSPC),
    ("EROFS", libc::EROFS),
    ("ERANGE", libc::ERANGE),
    ("EDEADLK", libc::EDEADLK),
    ("ENOSYS", libc::ENOSYS),
    ("EUSERS", libc::EUSERS),
    ("EOPNOTSUPP", libc::EOPNOTSUPP),
    ("EADDRINUSE", libc::EADDRINUSE),
    ("EADDRNOTAVAIL", libc::EADDRNOTAVAIL),
    ("ENOTCONN", libc::ENOTCONN),
    ("ETIMEDOUT", libc::ETIMEDOUT),
    ("ECONNREFUSED", libc::ECONNREFUSED),
    ("ECANCELED", libc::ECANCELED),
];

/// An errno by name (`EBUSY`) or positive number (`16`).
pub(crate) fn parse_errno(s: &str) -> Option<Errno> {
    if let Some((_, e)) = ERRNO_NAMES.iter().find(|(n, _)| *n == s) {
        return Some(*e);
    }
    s.parse::<Errno>().ok().filter(|e| (1..4096).contains(e))
}

/// An id in decimal or `0x` hex.
fn parse_id(s: &str) -> Option<u8> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// One command: UTF-8, one trailing newline allowed, words split on white space.
fn words(data: &[u8]) -> Result<Vec<&str>, Errno> {
    let text = std::str::from_utf8(data).map_err(|_| libc::EINVAL)?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.contains('\n') {
        return Err(libc::EINVAL);
    }
    Ok(text.split_whitespace().collect())
}

fn bad(what: &str) -> Errno {
    tracing::warn!("apsim control: {what}");
    libc::EINVAL
}

impl Kernel {
    pub(crate) fn show_control(&self, c: Ctl) -> String {
        match c {
            Ctl::Log => self.log_lines().iter().map(|l| format!("{l}\n")).collect(),
            Ctl::VfioAp => format!("{}\n", u8::from(self.vfio_loaded)),
            Ctl::Requests => format!("{}\n", self.fuse_requests),
            _ => String::new(),
        }
    }

    pub(crate) fn store_control(&mut self, c: Ctl, data: &[u8]) -> Result<(), Errno> {
        let w = words(data)?;
        match c {
            Ctl::Log | Ctl::Requests => Err(libc::EACCES),
            Ctl::Inject => self.ctl_inject(&w),
            Ctl::Delay => self.ctl_delay(&w),
            Ctl::Lpar => self.ctl_lpar(&w),
            Ctl::InUse => self.ctl_in_use(&w),
            Ctl::VfioAp => match w.as_slice() {
                ["1"] => {
                    self.load_vfio_ap();
                    Ok(())
                }
                ["0"] => self.unload_vfio_ap(),
                _ => Err(bad("vfio_ap takes 1 (load) or 0 (unload)")),
            },
        }
    }

    fn ctl_inject(&mut self, w: &[&str]) -> Result<(), Errno> {
        let (path, errno, count) = match w {
            ["clear"] => {
                self.injections.clear();
                return Ok(());
            }
            [path, errno] => (path, errno, "1"),
            [path, errno, count] => (path, errno, *count),
            _ => return Err(bad("inject takes PATH ERRNO [COUNT] or clear")),
        };
        let errno = parse_errno(errno).ok_or_else(|| bad("inject: unknown errno"))?;
        let remaining = count
            .parse::<u32>()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| bad("inject: COUNT must be a positive number"))?;
        self.injections.push(Injection {
            path: (*path).to_string(),
            errno,
            remaining,
        });
        Ok(())
    }

    fn ctl_delay(&mut self, w: &[&str]) -> Result<(), Errno> {
        let [path, ms] = w else {
            return Err(bad("delay takes PATH MILLISECONDS"));
        };
        let ms: u64 = ms
            .parse()
            .map_err(|_| bad("delay: MILLISECONDS must be a number"))?;
        self.delays.retain(|(p, _)| p != path);
        if ms > 0 {
            self.delays.push(((*path).to_string(), ms));
        }
        Ok(())
    }

    /// Consumes one injected failure for a write to `canon`, if any.
    pub(crate) fn take_injection(&mut self, canon: &str) -> Option<Errno> {
        let i = self
            .injections
            .iter()
            .position(|inj| self.canonical(&inj.path) == canon)?;
        let inj = &mut self.injections[i];
        let errno = inj.errno;
        inj.remaining -= 1;
        if inj.remaining == 0 {
            self.injections.remove(i);
        }
        Some(errno)
    }

    /// Milliseconds each write to `canon` sleeps first.
    pub(crate) fn delay_for(&self, canon: &str) -> u64 {
        self.delays
            .iter()
            .find(|(p, _)| self.canonical(p) == canon)
            .map_or(0, |(_, ms)| *ms)
    }

    /// `lpar add|remove adapter|domain|control N [TYPE]`: firmware changes
    /// the LPAR's configuration and the bus scans at once.
    fn ctl_lpar(&mut self, w: &[&str]) -> Result<(), Errno> {
        let (op, kind, id, card_type) = match w {
            [op, kind, id] => (*op, *kind, *id, None),
            [op @ "add", kind @ "adapter", id, t] => (*op, *kind, *id, Some(*t)),
            _ => {
                return Err(bad(
                    "lpar takes add|remove adapter|domain|control N (add adapter N TYPE)",
                ))
            }
        };
        let id =
            parse_id(id).ok_or_else(|| bad("lpar: N must be an id 0..255 (decimal or 0x hex)"))?;
        let add = match op {
            "add" => true,
            "remove" => false,
            _ => return Err(bad("lpar: first word must be add or remove")),
        };
        let (mut apm, mut aqm, mut adm) = (self.host_apm, self.host_aqm, self.host_adm);
        let (set, max): (&mut Bits, u8) = match kind {
            "adapter" => (&mut apm, self.max_apid),
            "domain" => (&mut aqm, self.max_apqi),
            "control" => (&mut adm, self.max_apqi),
            _ => return Err(bad("lpar: second word must be adapter, domain or control")),
        };
        if id > max {
            return Err(bad("lpar: id above the maximum id"));
        }
        if set.get(id) == add {
            tracing::warn!("apsim control: lpar {op} {kind} {id}: already so");
            return Err(if add { libc::EEXIST } else { libc::ENOENT });
        }
        set.put(id, add);
        if add && kind == "adapter" {
            let card_type = match card_type {
                Some(t) => {
                    CardType::parse(t).ok_or_else(|| bad("lpar: TYPE must be like CEX7C"))?
                }
                None => self.specs.get(&id).map_or(DEFAULT_TYPE, |s| s.card_type),
            };
            self.specs.insert(
                id,
                AdapterSpec {
                    id,
                    card_type,
                    config: true,
                    chkstop: false,
                },
            );
        }
        self.scan(Some((apm, aqm, adm)));
        Ok(())
    }

    /// `in_use UUID 1|0`: a guest opens or releases the mdev.
    fn ctl_in_use(&mut self, w: &[&str]) -> Result<(), Errno> {
        let [uuid, value] = w else {
            return Err(bad("in_use takes UUID 1|0"));
        };
        let on = match *value {
            "1" => true,
            "0" => false,
            _ => return Err(bad("in_use: value must be 1 or 0")),
        };
        let i = self.mdev_index(&uuid.to_ascii_lowercase()).ok_or_else(|| {
            tracing::warn!("apsim control: in_use: no mdev {uuid}");
            libc::ENODEV
        })?;
        self.mdevs[i].in_use = on;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_and_numbers() {
        assert_eq!(parse_errno("EBUSY"), Some(libc::EBUSY));
        assert_eq!(parse_errno("16"), Some(16));
        assert_eq!(parse_errno("0"), None);
        assert_eq!(parse_errno("EWHAT"), None);
        assert_eq!(parse_errno("-5"), None);
    }

    #[test]
    fn command_words() {
        assert_eq!(
            words(b"lpar add adapter 5\n"),
            Ok(vec!["lpar", "add", "adapter", "5"])
        );
        assert_eq!(words(b"a\nb"), Err(libc::EINVAL));
        assert_eq!(words(&[0xff, 0xfe]), Err(libc::EINVAL));
        assert_eq!(parse_id("0x47"), Some(0x47));
        assert_eq!(parse_id("256"), None);
    }
}
