//! `matrix`: the LPAR as a grid of APQNs, one row per adapter, one column
//! per usage domain, each cell its owner. [`build`] turns what apd serves
//! (adapters, queues, mdevs, per-APQN verdicts) into a [`Grid`]; [`text`]
//! draws it for people and [`json`] for scripts.

use super::ids::{adapters as adapter_list, apqn as apqn_text, ascending, domains as domain_list};
use super::json::{MatrixCellJson, MatrixJson, MdevJson};
use super::style::{Color, Style};
use apbus::{AdapterInfo, ApqnInfo, MdevInfo, QueueInfo};
use libap::{ApMask, Apqn};
use std::collections::{BTreeMap, BTreeSet};

/// Domains per block: 16 columns of 3 characters beside the row labels
/// keep every block within 80 columns, however many domains the LPAR has.
pub const BLOCK: usize = 16;

/// Letters for mdevs, in legend order. `H` is the host's, so no mdev gets it.
const LETTERS: &str = "ABCDEFGIJKLMNOPQRSTUVWXYZabcdefgijklmnopqrstuvwxyz0123456789";
/// The letter of every mdev beyond [`LETTERS`].
const MORE: char = '#';

/// Who holds one APQN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The host's drivers (its apmask and aqmask bits are set).
    Host,
    /// vfio_ap's, in no mdev.
    Free,
    /// The matrix of this mdev (lowercase UUID).
    Mdev(String),
    /// No queue device exists at this place of the grid.
    None,
}

/// One cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridCell {
    /// Adapter and domain.
    pub apqn: Apqn,
    /// The owner apd names (`apctl queues`).
    pub owner: Owner,
    /// Further owners: the host or mdevs whose matrix holds the APQN too
    /// (foreign writes); empty when nobody collides.
    pub collides_with: Vec<Owner>,
    /// Whoever owns it can use it.
    pub usable: bool,
    /// Why not, one sentence.
    pub reason: Option<String>,
}

/// A row: one adapter of the LPAR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The adapter.
    pub adapter: AdapterInfo,
    /// One cell per column, in column order.
    pub cells: Vec<GridCell>,
}

/// The whole view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    /// The LPAR's usage domains shown, ascending.
    pub domains: Vec<u32>,
    /// The LPAR's adapters shown, ascending.
    pub rows: Vec<Row>,
    /// Every active mdev with its letter, in `list` order.
    pub legend: Vec<(char, MdevInfo)>,
    /// Adapters `-a` named that are not in the LPAR.
    pub missing_adapters: Vec<u32>,
    /// Domains `-d` named that are not the LPAR's usage domains.
    pub missing_domains: Vec<u32>,
}

/// What [`build`] needs: apd's answers and the `-a`/`-d` limits.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// `ListAdapters`.
    pub adapters: &'a [AdapterInfo],
    /// `ListQueues`.
    pub queues: &'a [QueueInfo],
    /// `ListMdevs`.
    pub mdevs: &'a [MdevInfo],
    /// `GetMdev`'s verdicts of each active mdev, by lowercase UUID.
    pub verdicts: &'a BTreeMap<String, Vec<ApqnInfo>>,
    /// `-a`.
    pub only_adapters: Option<&'a ApMask>,
    /// `-d`.
    pub only_domains: Option<&'a ApMask>,
}

fn parse_apqn(s: &str) -> Option<Apqn> {
    s.parse().ok()
}

fn wanted(filter: Option<&ApMask>, id: u32) -> bool {
    filter.is_none_or(|m| u8::try_from(id).is_ok_and(|b| m.contains(b)))
}

/// Ids a filter names that are not among `present`.
fn missing(filter: Option<&ApMask>, present: &BTreeSet<u32>) -> Vec<u32> {
    filter
        .map(|m| {
            m.iter()
                .map(u32::from)
                .filter(|id| !present.contains(id))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an active mdev's matrix (adapters × domains) holds `apqn`.
fn holds(m: &MdevInfo, apqn: Apqn) -> bool {
    m.ids.adapters.contains(&u32::from(apqn.adapter))
        && m.ids.domains.contains(&u32::from(apqn.domain))
}

/// Why a queue nobody passes to a guest cannot be used, in libap's words.
fn queue_reason(owner: &Owner, q: &QueueInfo, card: &AdapterInfo, apqn: Apqn) -> Option<String> {
    let a = apqn.adapter;
    if !card.config || !q.config {
        return Some(format!(
            "adapter {a} is configured off (standby); configure it on with `apctl config {a} on`"
        ));
    }
    if card.chkstop || q.chkstop {
        return Some(format!(
            "queue {apqn} is check-stopped (hardware error); the adapter needs service"
        ));
    }
    if q.driver.is_empty() {
        return Some(format!(
            "queue {apqn} is not bound to any driver (echo {apqn} > /sys/bus/ap/drivers_probe)"
        ));
    }
    if *owner == Owner::Free && q.driver != "vfio_ap" {
        return Some(format!(
            "queue {apqn} is bound to {}, not to vfio_ap",
            q.driver
        ));
    }
    None
}

fn owner_name(o: &Owner, mdevs: &[MdevInfo]) -> String {
    match o {
        Owner::Host => "the host".to_string(),
        Owner::Mdev(u) => mdevs
            .iter()
            .find(|m| &m.uuid == u && !m.name.is_empty())
            .map(|m| format!("{} ({u})", m.name))
            .unwrap_or_else(|| u.clone()),
        Owner::Free | Owner::None => String::new(),
    }
}

/// One cell from the queue (if any), the active mdevs and their verdicts.
fn cell(apqn: Apqn, card: &AdapterInfo, q: Option<&QueueInfo>, inp: &Inputs<'_>) -> GridCell {
    let Some(q) = q else {
        return GridCell {
            apqn,
            owner: Owner::None,
            collides_with: Vec::new(),
            usable: false,
            reason: Some(format!(
                "queue {apqn} does not exist on this host (not yet probed, or its adapter is leaving)"
            )),
        };
    };
    let owner = match q.owner.as_str() {
        "host" => Owner::Host,
        "mdev" => Owner::Mdev(q.owner_uuid.to_ascii_lowercase()),
        _ => Owner::Free,
    };
    let mut collides_with: Vec<Owner> = inp
        .mdevs
        .iter()
        .filter(|m| m.active && holds(m, apqn))
        .map(|m| Owner::Mdev(m.uuid.to_ascii_lowercase()))
        .filter(|o| *o != owner)
        .collect();
    let owner = match owner {
        // An mdev apd did not name as owner holds it: it is the owner.
        Owner::Free if !collides_with.is_empty() => collides_with.remove(0),
        o => o,
    };
    if !collides_with.is_empty() {
        let mut all = vec![owner.clone()];
        all.extend(collides_with.iter().cloned());
        let names: Vec<String> = all.iter().map(|o| owner_name(o, inp.mdevs)).collect();
        return GridCell {
            apqn,
            owner,
            collides_with,
            usable: false,
            reason: Some(format!(
                "queue {apqn} is claimed by {} at once (written by another tool)",
                names.join(" and ")
            )),
        };
    }
    let verdict = match &owner {
        Owner::Mdev(u) => inp
            .verdicts
            .get(u)
            .and_then(|v| v.iter().find(|a| parse_apqn(&a.apqn) == Some(apqn))),
        _ => None,
    };
    let (usable, reason) = match verdict {
        Some(v) => (v.usable, (!v.reason.is_empty()).then(|| v.reason.clone())),
        None => {
            let r = queue_reason(&owner, q, card, apqn);
            (r.is_none(), r)
        }
    };
    GridCell {
        apqn,
        owner,
        collides_with,
        usable,
        reason,
    }
}

/// The grid of the LPAR's adapters and usage domains (limited by `-a`/`-d`).
pub fn build(inp: &Inputs<'_>) -> Grid {
    let queues: BTreeMap<Apqn, &QueueInfo> = inp
        .queues
        .iter()
        .filter_map(|q| parse_apqn(&q.apqn).map(|a| (a, q)))
        .collect();
    let lpar_adapters: BTreeSet<u32> = inp.adapters.iter().map(|a| a.id).collect();
    // Queues exist for every adapter × usage domain of the LPAR (kernel
    // spec §1), so their domains are the LPAR's usage domains.
    let lpar_domains: BTreeSet<u32> = queues.keys().map(|a| u32::from(a.domain)).collect();
    let domains: Vec<u32> = lpar_domains
        .iter()
        .copied()
        .filter(|d| wanted(inp.only_domains, *d))
        .collect();
    let mut cards: Vec<&AdapterInfo> = inp
        .adapters
        .iter()
        .filter(|a| wanted(inp.only_adapters, a.id))
        .collect();
    cards.sort_by_key(|a| a.id);
    let rows = cards
        .into_iter()
        .filter_map(|card| {
            let a = u8::try_from(card.id).ok()?;
            let cells = domains
                .iter()
                .filter_map(|&d| u8::try_from(d).ok())
                .map(|d| {
                    let apqn = Apqn::new(a, d);
                    cell(apqn, card, queues.get(&apqn).copied(), inp)
                })
                .collect();
            Some(Row {
                adapter: card.clone(),
                cells,
            })
        })
        .collect();
    let mut active: Vec<MdevInfo> = inp.mdevs.iter().filter(|m| m.active).cloned().collect();
    active.sort_by(super::mdevs::list_order);
    let legend = active
        .into_iter()
        .enumerate()
        .map(|(i, m)| (LETTERS.chars().nth(i).unwrap_or(MORE), m))
        .collect();
    Grid {
        domains,
        rows,
        legend,
        missing_adapters: missing(inp.only_adapters, &lpar_adapters),
        missing_domains: missing(inp.only_domains, &lpar_domains),
    }
}

impl Grid {
    /// The letter of an mdev.
    fn letter(&self, uuid: &str) -> char {
        self.legend
            .iter()
            .find(|(_, m)| m.uuid.eq_ignore_ascii_case(uuid))
            .map_or(MORE, |(l, _)| *l)
    }

    /// The character a cell shows for its owner.
    fn symbol(&self, c: &GridCell) -> char {
        if !c.collides_with.is_empty() {
            return '*';
        }
        match &c.owner {
            Owner::Host => 'H',
            Owner::Free => '.',
            Owner::Mdev(u) => self.letter(u),
            Owner::None => '-',
        }
    }

    /// Whether an mdev owns a cell of the grid.
    fn shows(&self, uuid: &str) -> bool {
        self.rows.iter().flat_map(|r| &r.cells).any(|c| {
            std::iter::once(&c.owner)
                .chain(&c.collides_with)
                .any(|o| matches!(o, Owner::Mdev(u) if u.eq_ignore_ascii_case(uuid)))
        })
    }
}

/// The row label: adapter in decimal, card type, and its state when the
/// state makes its queues unusable.
fn row_label(a: &AdapterInfo) -> String {
    let state = if !a.config {
        " off"
    } else if a.chkstop {
        " chkstop"
    } else {
        ""
    };
    format!("{:>3} {}{state}", a.id, a.card_type)
}

/// One cell as three characters: owner, mark, blank. Without colour an
/// unusable cell is marked `!`; with colour it is red instead.
fn draw_cell(grid: &Grid, c: &GridCell, style: Style) -> String {
    let symbol = grid.symbol(c).to_string();
    if !c.collides_with.is_empty() {
        return format!("{}  ", style.paint(&symbol, Some(Color::Yellow)));
    }
    if c.usable || c.owner == Owner::None {
        return format!("{symbol}  ");
    }
    if style.color {
        format!("{}  ", style.paint(&symbol, Some(Color::Red)))
    } else {
        format!("{symbol}! ")
    }
}

/// The grid for people: blocks of [`BLOCK`] domains, then the legend.
pub fn text(grid: &Grid, style: Style) -> String {
    let mut out = String::new();
    if grid.rows.is_empty() || grid.domains.is_empty() {
        out.push_str("No queue to show: ");
        out.push_str(&if grid.rows.is_empty() {
            "no adapter of the LPAR is selected".to_string()
        } else {
            "no usage domain of the LPAR is selected".to_string()
        });
        out.push_str(".\n");
        out.push_str(&missing_note(grid));
        return out;
    }
    let label_width = grid
        .rows
        .iter()
        .map(|r| row_label(&r.adapter).chars().count())
        .max()
        .unwrap_or(0)
        .max("ADAPTER".len());
    for (b, block) in grid.domains.chunks(BLOCK).enumerate() {
        if b > 0 {
            out.push('\n');
        }
        let mut header = format!("{:<label_width$}  ", "ADAPTER");
        for d in block {
            header.push_str(&format!("{d:02x} "));
        }
        out.push_str(&style.paint(header.trim_end(), Some(Color::Bold)));
        out.push('\n');
        for row in &grid.rows {
            let mut line = format!("{:<label_width$}  ", row_label(&row.adapter));
            for c in &row.cells[b * BLOCK..(b * BLOCK + block.len()).min(row.cells.len())] {
                line.push_str(&draw_cell(grid, c, style));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(&legend(grid, style));
    out.push_str(&missing_note(grid));
    out
}

fn legend(grid: &Grid, style: Style) -> String {
    let mut out = String::from(
        "Rows: adapters (decimal). Columns: usage domains (hex).\n\
         H host   . free for vfio_ap   * two owners at once (another tool wrote)\n",
    );
    let mark = if style.color { "red" } else { "!" };
    out.push_str(&format!(
        "{} not usable: adapter off or check-stopped, queue not bound, not in the\n\
         {:w$} guest matrix (apctl show MDEV or apctl --json matrix say why)\n",
        style.paint(mark, Some(Color::Red)),
        "",
        w = mark.len()
    ));
    let holes = grid
        .rows
        .iter()
        .flat_map(|r| &r.cells)
        .any(|c| c.owner == Owner::None);
    if holes {
        out.push_str("- no queue device (not yet probed, or its adapter is leaving)\n");
    }
    for (letter, m) in &grid.legend {
        let name = if m.name.is_empty() {
            "-"
        } else {
            m.name.as_str()
        };
        let mut line = format!("{letter}  {name}  {}", m.uuid.to_ascii_lowercase());
        if !grid.shows(&m.uuid) {
            line.push_str("  (no queue in this grid)");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn missing_note(grid: &Grid) -> String {
    let mut out = String::new();
    if !grid.missing_adapters.is_empty() {
        out.push_str(&format!(
            "Not in the LPAR (no row): adapters {}\n",
            adapter_list(&grid.missing_adapters)
        ));
    }
    if !grid.missing_domains.is_empty() {
        out.push_str(&format!(
            "Not usage domains of the LPAR (no column): domains {}\n",
            domain_list(&grid.missing_domains)
        ));
    }
    out
}

/// The grid for scripts.
pub fn json(grid: &Grid) -> MatrixJson {
    let owner_word = |o: &Owner| match o {
        Owner::Host => "host",
        Owner::Free => "free",
        Owner::Mdev(_) => "mdev",
        Owner::None => "none",
    };
    let cells = grid
        .rows
        .iter()
        .flat_map(|r| &r.cells)
        .map(|c| {
            let mdev = match &c.owner {
                Owner::Mdev(u) => grid.legend.iter().find(|(_, m)| &m.uuid == u),
                _ => None,
            };
            MatrixCellJson {
                apqn: apqn_text(u32::from(c.apqn.adapter), u32::from(c.apqn.domain)),
                owner: owner_word(&c.owner).to_string(),
                mdev: match &c.owner {
                    Owner::Mdev(u) => Some(u.clone()),
                    _ => None,
                },
                name: mdev.and_then(|(_, m)| (!m.name.is_empty()).then(|| m.name.clone())),
                usable: c.usable,
                reason: c.reason.clone(),
                collides_with: c
                    .collides_with
                    .iter()
                    .map(|o| match o {
                        Owner::Mdev(u) => u.clone(),
                        other => owner_word(other).to_string(),
                    })
                    .collect(),
            }
        })
        .collect();
    MatrixJson {
        adapters: ascending(&grid.rows.iter().map(|r| r.adapter.id).collect::<Vec<_>>()),
        domains: grid.domains.clone(),
        cells,
        mdevs: grid.legend.iter().map(|(_, m)| MdevJson::from(m)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(id: u32) -> AdapterInfo {
        AdapterInfo {
            id,
            card_type: "CEX7C".into(),
            config: true,
            online: true,
            ..Default::default()
        }
    }

    fn queue(apqn: &str, owner: &str, driver: &str) -> QueueInfo {
        QueueInfo {
            apqn: apqn.into(),
            config: true,
            online: true,
            owner: owner.into(),
            driver: driver.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_missing_queue_is_none_and_an_unbound_one_unusable() {
        let adapters = [card(1), card(2)];
        // 02.0004 has no device; 01.0004 is free but bound to no driver.
        let queues = [
            queue("01.0000", "host", "cex4queue"),
            queue("01.0004", "free", ""),
            queue("02.0000", "host", "cex4queue"),
        ];
        let g = build(&Inputs {
            adapters: &adapters,
            queues: &queues,
            mdevs: &[],
            verdicts: &BTreeMap::new(),
            only_adapters: None,
            only_domains: None,
        });
        assert_eq!(g.domains, vec![0, 4]);
        let hole = &g.rows[1].cells[1];
        assert_eq!(hole.owner, Owner::None);
        let unbound = &g.rows[0].cells[1];
        assert!(!unbound.usable);
        assert!(
            unbound
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("not bound to any driver")),
            "{unbound:?}"
        );
        let text = text(&g, Style::PLAIN);
        assert!(text.contains("  1 CEX7C  H  .!\n"), "{text}");
        assert!(text.contains("  2 CEX7C  H  -\n"), "{text}");
        assert!(text.contains("- no queue device"), "{text}");
        assert_eq!(json(&g).cells[3].owner, "none");
    }
}
