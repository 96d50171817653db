//! `list` and `show` for people.

use super::ids::{adapters, domains};
use super::style::{Color, Style};
use super::table::{Cell, Table};
use super::yes_no;
use apbus::{ApqnInfo, IdLists, MdevInfo};
use std::cmp::Ordering;

/// The order of `list` rows and JSON elements: named mdevs by name, then
/// unnamed ones by UUID.
pub fn list_order(a: &MdevInfo, b: &MdevInfo) -> Ordering {
    (a.name.is_empty(), &a.name, &a.uuid).cmp(&(b.name.is_empty(), &b.name, &b.uuid))
}

/// The `list` table. `mdevs` must already be filtered and sorted.
pub fn list(mdevs: &[MdevInfo], style: Style) -> String {
    if mdevs.is_empty() {
        return "No mdevs. Define one with: apctl define --name NAME -a LIST -d LIST\n".to_string();
    }
    let mut t = Table::new(&[
        "NAME",
        "UUID",
        "DEFINED",
        "ACTIVE",
        "AUTOSTART",
        "ADAPTERS",
        "DOMAINS",
        "CONTROL DOMAINS",
    ]);
    let mut any_differs = false;
    for m in mdevs {
        let differs = m.active && m.defined && m.differs;
        any_differs |= differs;
        let active = match (m.active, differs) {
            (true, true) => Cell::colored("yes*", Color::Yellow),
            (true, false) => Cell::colored("yes", Color::Green),
            (false, _) => Cell::plain("no"),
        };
        t.row(vec![
            super::or_dash(&m.name).into(),
            m.uuid.to_ascii_lowercase().into(),
            yes_no(m.defined).into(),
            active,
            yes_no(m.autostart).into(),
            adapters(&m.ids.adapters).into(),
            domains(&m.ids.domains).into(),
            domains(&m.ids.control_domains).into(),
        ]);
    }
    let mut out = t.render(style);
    if any_differs {
        out.push_str(
            "\n* the live assignment differs from the definition; apctl show MDEV shows both\n",
        );
    }
    out
}

fn state_line(m: &MdevInfo) -> String {
    let active = if m.active { "active" } else { "inactive" };
    let defined = match (m.defined, m.autostart) {
        (true, true) => "defined, starts at boot",
        (true, false) => "defined, started by hand",
        (false, _) => "not defined (made by another tool)",
    };
    format!("{active}; {defined}")
}

fn ids_line(ids: &IdLists) -> String {
    format!(
        "adapters {}, domains {}, control domains {}",
        adapters(&ids.adapters),
        domains(&ids.domains),
        domains(&ids.control_domains)
    )
}

/// Wraps APQNs eight to a line, continuation lines indented to `indent`.
fn apqn_lines(apqns: &[String], indent: usize) -> String {
    if apqns.is_empty() {
        return "-".to_string();
    }
    let mut sorted = apqns.to_vec();
    sorted.sort();
    sorted
        .chunks(8)
        .map(|c| c.join(" "))
        .collect::<Vec<_>>()
        .join(&format!("\n{}", " ".repeat(indent)))
}

/// The `show` view: the mdev, then one row per APQN saying whether the guest
/// can use it and, if not, why.
pub fn show(m: &MdevInfo, apqns: &[ApqnInfo], style: Style) -> String {
    const LABEL: usize = 19;
    let mut out = String::new();
    let uuid = m.uuid.to_ascii_lowercase();
    let title = if m.name.is_empty() {
        uuid.clone()
    } else {
        format!("{} ({uuid})", m.name)
    };
    out.push_str(&style.paint(&title, Some(Color::Bold)));
    out.push('\n');
    let mut field = |label: &str, value: String| {
        out.push_str(&format!("  {label:<w$}{value}\n", w = LABEL - 2));
    };
    field("State:", state_line(m));
    let which = if m.active { "live" } else { "defined" };
    field(
        "Adapters:",
        format!("{} ({which})", adapters(&m.ids.adapters)),
    );
    field("Domains:", domains(&m.ids.domains));
    field("Control domains:", domains(&m.ids.control_domains));
    if m.active {
        field("Guest matrix:", apqn_lines(&m.guest_matrix, LABEL));
    }
    if m.active && m.defined && m.differs {
        field("Definition:", ids_line(&m.persistent));
    }
    if !m.start_error.is_empty() {
        field("Start error:", m.start_error.clone());
    }
    out.push('\n');
    if apqns.is_empty() {
        out.push_str(
            "No APQNs: the matrix needs at least one adapter and one domain (apctl assign MDEV -a LIST -d LIST).\n",
        );
        return out;
    }
    let mut sorted: Vec<&ApqnInfo> = apqns.iter().collect();
    sorted.sort_by(|a, b| a.apqn.cmp(&b.apqn));
    let mut t = Table::new(&["APQN", "IN GUEST", "USABLE", "WHY NOT"]);
    for a in sorted {
        let usable = if a.usable {
            Cell::colored("yes", Color::Green)
        } else {
            Cell::colored("no", Color::Red)
        };
        t.row(vec![
            a.apqn.clone().into(),
            yes_no(a.in_guest_matrix).into(),
            usable,
            super::or_dash(&a.reason).into(),
        ]);
    }
    out.push_str(&t.render(style));
    out
}

/// One line per mdev for `__complete-mdevs`: names and UUIDs; with
/// `describe`, `value<TAB>description` as fish wants.
pub fn completion_words(mdevs: &[MdevInfo], describe: bool) -> String {
    let mut out = String::new();
    for m in mdevs {
        let uuid = m.uuid.to_ascii_lowercase();
        let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
        let name = clean(&m.name);
        if describe {
            if !name.is_empty() {
                out.push_str(&format!("{name}\t{uuid}\n"));
            }
            let what = if name.is_empty() {
                "unnamed mdev".to_string()
            } else {
                name
            };
            out.push_str(&format!("{uuid}\t{what}\n"));
        } else {
            if !name.is_empty() {
                out.push_str(&format!("{name}\n"));
            }
            out.push_str(&format!("{uuid}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::json::MdevJson;

    /// `list` with a thousand mdevs: one row each, one JSON object each,
    /// built from one `ListMdevs` answer (no per-mdev work beyond formatting).
    #[test]
    fn a_thousand_mdevs() {
        let mut mdevs: Vec<MdevInfo> = (0..1000u32)
            .map(|i| MdevInfo {
                uuid: format!("00000000-0000-4000-8000-{i:012x}"),
                name: format!("guest{i}"),
                defined: true,
                active: i % 2 == 0,
                autostart: true,
                ids: IdLists {
                    adapters: vec![i % 256],
                    domains: vec![(i / 256) % 256],
                    control_domains: vec![],
                },
                ..Default::default()
            })
            .collect();
        mdevs.sort_by(list_order);
        let table = list(&mdevs, Style::PLAIN);
        assert_eq!(table.lines().count(), 1001);
        let json: Vec<MdevJson> = mdevs.iter().map(MdevJson::from).collect();
        assert_eq!(json.len(), 1000);
        assert_eq!(completion_words(&mdevs, false).lines().count(), 2000);
    }

    #[test]
    fn order_is_named_first() {
        let a = MdevInfo {
            uuid: "b".into(),
            name: "alpha".into(),
            ..Default::default()
        };
        let b = MdevInfo {
            uuid: "a".into(),
            ..Default::default()
        };
        assert_eq!(list_order(&a, &b), Ordering::Less);
    }
}
