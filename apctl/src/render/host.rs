//! `status`, `masks` and `queues` for people.

use super::ids::{adapters, domains};
use super::json::MasksJson;
use super::style::{Color, Style};
use super::table::{self, Table};
use apbus::{QueueInfo, QueueInfoRef, Status};
use libap::ApMask;
use std::borrow::Cow;
use std::io::{self, Write};

/// The `status` view.
/// `warnings`: apd's check warnings that status repeats (mdevs mdevctl
/// defines too), one sentence each.
pub fn status(s: &Status, warnings: &[String], style: Style) -> String {
    let mut out = String::new();
    let vfio = if s.vfio_ap_loaded {
        "vfio_ap loaded"
    } else {
        "vfio_ap NOT loaded (mdevs start when it is)"
    };
    out.push_str(&style.paint(
        &format!("apd {} is running on {}, {vfio}", s.version, s.backend),
        Some(Color::Bold),
    ));
    out.push('\n');
    let mut field = |label: &str, value: String| {
        out.push_str(&format!("  {label:<19}{value}\n"));
    };
    field("Adapters:", s.adapters.to_string());
    field(
        "Queues:",
        format!(
            "{} ({} host, {} free for vfio_ap, {} assigned to mdevs)",
            s.queues, s.queues_host, s.queues_free, s.queues_assigned
        ),
    );
    field(
        "Mdevs:",
        format!("{} defined, {} active", s.defined, s.active),
    );
    field("apmask:", s.apmask.trim().to_string());
    field("aqmask:", s.aqmask.trim().to_string());
    let (pap, paq) = (s.persistent_apmask.trim(), s.persistent_aqmask.trim());
    field(
        "Persistent masks:",
        if pap.is_empty() && paq.is_empty() {
            "none (the masks are left as the kernel boots them)".to_string()
        } else if pap == s.apmask.trim() && paq == s.aqmask.trim() {
            "stored, the same as the live masks".to_string()
        } else {
            "stored, different from the live masks (apctl masks shows both)".to_string()
        },
    );
    if s.load_errors.is_empty() && s.start_failures.is_empty() && warnings.is_empty() {
        field("Problems:", "none".to_string());
        return out;
    }
    out.push('\n');
    if !s.load_errors.is_empty() {
        out.push_str(&style.paint(
            "Definition files that did not load (skipped, left untouched):",
            Some(Color::Red),
        ));
        out.push('\n');
        for (path, error) in &s.load_errors {
            out.push_str(&format!("  {path}: {error}\n"));
        }
    }
    if !s.start_failures.is_empty() {
        out.push_str(&style.paint(
            "Definitions that failed to start or apply (retried when the host changes):",
            Some(Color::Red),
        ));
        out.push('\n');
        for (uuid, name, error) in &s.start_failures {
            let who = if name.is_empty() {
                uuid.clone()
            } else {
                format!("{name} ({uuid})")
            };
            out.push_str(&format!("  {who}: {error}\n"));
        }
    }
    if !warnings.is_empty() {
        out.push_str(&style.paint(
            "Definitions mdevctl has too (apctl check warns the same):",
            Some(Color::Yellow),
        ));
        out.push('\n');
        for w in warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
    }
    out
}

/// Ids 0..=max whose bit is clear in `mask`: what the mask gives to vfio_ap.
/// `None` when the mask is not in the kernel's read format.
pub fn cleared_ids(mask: &str, max: u32) -> Option<Vec<u32>> {
    let m = ApMask::parse_absolute(mask.trim_end_matches('\n')).ok()?;
    Some(
        (0..=max.min(255))
            .filter(|&id| u8::try_from(id).is_ok_and(|b| !m.contains(b)))
            .collect(),
    )
}

/// The data of `masks`: live and persistent masks and what they give to vfio_ap.
pub fn masks_json(s: &Status, max_adapter: u32, max_domain: u32) -> MasksJson {
    let opt = |m: &str| {
        let m = m.trim();
        if m.is_empty() {
            None
        } else {
            Some(m.to_string())
        }
    };
    MasksJson {
        apmask: s.apmask.trim().to_string(),
        aqmask: s.aqmask.trim().to_string(),
        persistent_apmask: opt(&s.persistent_apmask),
        persistent_aqmask: opt(&s.persistent_aqmask),
        vfio_adapters: cleared_ids(&s.apmask, max_adapter).unwrap_or_default(),
        vfio_domains: cleared_ids(&s.aqmask, max_domain).unwrap_or_default(),
        chzdev: None,
    }
}

/// The `masks` view.
pub fn masks(m: &MasksJson, style: Style) -> String {
    let none = "- (none stored: boot keeps the kernel's masks)";
    let mut t = Table::new(&["MASK", "VALUE"]);
    t.row(vec!["apmask".into(), m.apmask.clone().into()]);
    t.row(vec!["aqmask".into(), m.aqmask.clone().into()]);
    t.row(vec![
        "persistent apmask".into(),
        m.persistent_apmask
            .clone()
            .unwrap_or_else(|| none.into())
            .into(),
    ]);
    t.row(vec![
        "persistent aqmask".into(),
        m.persistent_aqmask
            .clone()
            .unwrap_or_else(|| none.into())
            .into(),
    ]);
    let mut out = t.render(style);
    out.push('\n');
    out.push_str(&format!(
        "Given to vfio_ap: adapters {} (every queue of these adapters)\n",
        adapters(&m.vfio_adapters)
    ));
    out.push_str(&format!(
        "                  domains {} (these domains on every adapter)\n",
        domains(&m.vfio_domains)
    ));
    if let Some(c) = &m.chzdev {
        out.push('\n');
        out.push_str(&chzdev_view(m, c, style));
    }
    out
}

/// chzdev's persistent masks under the `masks` view.
fn chzdev_view(m: &MasksJson, c: &super::json::ChzdevJson, style: Style) -> String {
    let mut out = style.paint(
        &format!(
            "chzdev's persistent masks ({}, set by udev at boot):",
            c.file
        ),
        Some(Color::Bold),
    );
    out.push('\n');
    if let Some(p) = &c.problem {
        out.push_str(&format!("  cannot be shown: {p}\n"));
        return out;
    }
    let unset = "- (not set by chzdev)".to_string();
    out.push_str(&format!(
        "  apmask  {}\n",
        c.apmask.clone().unwrap_or_else(|| unset.clone())
    ));
    out.push_str(&format!(
        "  aqmask  {}\n",
        c.aqmask.clone().unwrap_or_else(|| unset.clone())
    ));
    let differs = |ours: &Option<String>, theirs: &Option<String>| {
        ours.is_some() && theirs.is_some() && ours != theirs
    };
    if differs(&m.persistent_apmask, &c.apmask) || differs(&m.persistent_aqmask, &c.aqmask) {
        out.push_str(&style.paint(
            &format!(
                "warning: apd and chzdev store different masks for boot; both write them and the \
                 last one wins: keep one (change chzdev's in {}, or apd's with apctl masks --persistent)",
                c.file
            ),
            Some(Color::Yellow),
        ));
        out.push('\n');
    }
    out
}

/// How an owner looks in the table: `host`, `free`, or the mdev's name (its
/// UUID when it has none).
pub fn owner_text<'q>(q: &QueueInfoRef<'q>) -> Cow<'q, str> {
    match q.owner {
        "mdev" if !q.owner_name.is_empty() => Cow::Borrowed(q.owner_name),
        // apd sends UUIDs in lower case: copy only one that is not.
        "mdev" if q.owner_uuid.bytes().any(|b| b.is_ascii_uppercase()) => {
            Cow::Owned(q.owner_uuid.to_ascii_lowercase())
        }
        "mdev" => Cow::Borrowed(q.owner_uuid),
        other => Cow::Borrowed(other),
    }
}

/// The columns of `queues`.
const QUEUE_HEADERS: [&str; 7] = [
    "APQN", "TYPE", "MODE", "CONFIG", "ONLINE", "DRIVER", "OWNER",
];

/// One row of `queues`, borrowed from the queue.
fn queue_cells<'r>(q: &'r QueueInfoRef<'_>) -> [(Cow<'r, str>, Option<Color>); 7] {
    let config = if q.config {
        ("on", None)
    } else {
        ("off", Some(Color::Red))
    };
    let online = if q.chkstop {
        ("checkstop", Some(Color::Red))
    } else if q.online {
        ("online", None)
    } else {
        ("offline", Some(Color::Yellow))
    };
    let owner = match q.owner {
        "free" => (Cow::Borrowed("free"), Some(Color::Green)),
        _ => (owner_text(q), None),
    };
    [
        plain(q.apqn),
        plain(super::dash_if_empty(q.card_type)),
        plain(super::dash_if_empty(q.mode)),
        (Cow::Borrowed(config.0), config.1),
        (Cow::Borrowed(online.0), online.1),
        plain(super::dash_if_empty(q.driver)),
        owner,
    ]
}

fn plain(text: &str) -> (Cow<'_, str>, Option<Color>) {
    (Cow::Borrowed(text), None)
}

/// Writes the `queues` table, lszcrypt style, row by row: `queues` must
/// already be filtered and in the order to show. Nothing per row is kept,
/// so 65,536 APQNs cost their reply and one line.
pub fn write_queues<'q, 'm: 'q, W: Write + ?Sized>(
    out: &mut W,
    queues: impl Iterator<Item = &'q QueueInfoRef<'m>> + Clone,
    style: Style,
) -> io::Result<()> {
    if queues.clone().next().is_none() {
        return out.write_all(b"No queues match.\n");
    }
    table::stream(out, &QUEUE_HEADERS, queues, queue_cells, style)
}

/// The `queues` table as text, in APQN order. `queues` must already be
/// filtered.
pub fn queues(queues: &[QueueInfo], style: Style) -> String {
    let mut sorted: Vec<QueueInfoRef<'_>> = queues.iter().map(QueueInfoRef::from).collect();
    sorted.sort_by(|a, b| a.apqn.cmp(b.apqn));
    let mut out = Vec::new();
    // Writing to a Vec cannot fail, and every cell is UTF-8 already.
    let _ = write_queues(&mut out, sorted.iter(), style);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::json::QueueJson;
    use super::*;

    /// A reader that goes away after `room` bytes, as `| head -1` does.
    struct ClosesAfter {
        room: usize,
        refused: usize,
    }

    impl Write for ClosesAfter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                self.refused += 1;
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_reader_stops_the_rows_at_once() {
        let queues: Vec<QueueInfo> = (0..4096u32)
            .map(|i| QueueInfo {
                apqn: format!("{:02x}.{:04x}", i / 256, i % 256),
                owner: "host".into(),
                ..QueueInfo::default()
            })
            .collect();
        let queues: Vec<QueueInfoRef<'_>> = queues.iter().map(QueueInfoRef::from).collect();
        let json = super::super::json::ArrayOf(queues.iter().map(QueueJson::from));
        for as_json in [false, true] {
            let mut reader = ClosesAfter {
                room: 100,
                refused: 0,
            };
            let written = if as_json {
                super::super::write_json(&mut reader, &json)
            } else {
                write_queues(&mut reader, queues.iter(), Style::PLAIN)
            };
            let kind = written.map_err(|e| e.kind());
            assert_eq!(kind, Err(io::ErrorKind::BrokenPipe), "json {as_json}");
            // The first refusal ends the writing: no row after it is tried.
            assert_eq!(reader.refused, 1, "json {as_json}");
        }
    }

    #[test]
    fn cleared_ids_follow_the_seed_masks() {
        let apmask = ApMask::full()
            .apply_write("-5,-6")
            .expect("relative")
            .to_string();
        assert_eq!(cleared_ids(&apmask, 255), Some(vec![5, 6]));
        let aqmask = ApMask::full()
            .apply_write("-4,-0x47,-0xab,-0xff")
            .expect("relative")
            .to_string();
        assert_eq!(cleared_ids(&aqmask, 255), Some(vec![4, 0x47, 0xab, 0xff]));
        assert_eq!(cleared_ids(&aqmask, 0x50), Some(vec![4, 0x47]));
        assert_eq!(cleared_ids("garbage", 255), None);
    }
}
