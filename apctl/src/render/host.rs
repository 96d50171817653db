//! `status`, `masks` and `queues` for people.

use super::ids::{adapters, domains};
use super::json::MasksJson;
use super::style::{Color, Style};
use super::table::{Cell, Table};
use apbus::{QueueInfo, Status};
use libap::ApMask;

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
pub fn owner_text(q: &QueueInfo) -> String {
    match q.owner.as_str() {
        "mdev" if !q.owner_name.is_empty() => q.owner_name.clone(),
        "mdev" => q.owner_uuid.to_ascii_lowercase(),
        other => other.to_string(),
    }
}

/// The `queues` table, lszcrypt style. `queues` must already be filtered.
pub fn queues(queues: &[QueueInfo], style: Style) -> String {
    if queues.is_empty() {
        return "No queues match.\n".to_string();
    }
    let mut sorted: Vec<&QueueInfo> = queues.iter().collect();
    sorted.sort_by(|a, b| a.apqn.cmp(&b.apqn));
    let mut t = Table::new(&[
        "APQN", "TYPE", "MODE", "CONFIG", "ONLINE", "DRIVER", "OWNER",
    ]);
    for q in sorted {
        let config = if q.config {
            Cell::plain("on")
        } else {
            Cell::colored("off", Color::Red)
        };
        let online = if q.chkstop {
            Cell::colored("checkstop", Color::Red)
        } else if q.online {
            Cell::plain("online")
        } else {
            Cell::colored("offline", Color::Yellow)
        };
        let owner = match q.owner.as_str() {
            "free" => Cell::colored("free", Color::Green),
            _ => Cell::plain(owner_text(q)),
        };
        t.row(vec![
            q.apqn.clone().into(),
            super::or_dash(&q.card_type).into(),
            super::or_dash(&q.mode).into(),
            config,
            online,
            super::or_dash(&q.driver).into(),
            owner,
        ]);
    }
    t.render(style)
}

#[cfg(test)]
mod tests {
    use super::*;

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
