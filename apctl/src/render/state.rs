//! `check` findings and `apply` plans for people.

use super::style::{Color, Style};
use super::table::{Cell, Table};
use apbus::{Finding, PlanStep};

/// Whether a finding is an error (anything not a warning counts as one, so
/// an unknown severity is never ignored).
pub fn is_error(f: &Finding) -> bool {
    f.severity != "warning"
}

/// Findings, errors first, one line each, then a summary line. `what`
/// names what was checked ("the stored definitions", a file name).
pub fn findings(findings: &[Finding], what: &str, style: Style) -> String {
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| !is_error(f));
    let mut out = String::new();
    for f in &sorted {
        let (label, color) = if is_error(f) {
            ("error", Color::Red)
        } else {
            ("warning", Color::Yellow)
        };
        out.push_str(&style.paint(&format!("{label}:"), Some(color)));
        out.push(' ');
        out.push_str(&f.message);
        out.push('\n');
    }
    let errors = sorted.iter().filter(|f| is_error(f)).count();
    let warnings = sorted.len() - errors;
    if sorted.is_empty() {
        out.push_str(&format!("No problems found in {what}.\n"));
    } else {
        out.push_str(&format!(
            "{} in {what}.\n",
            match (errors, warnings) {
                (0, w) => plural(w, "warning"),
                (e, 0) => plural(e, "error"),
                (e, w) => format!("{} and {}", plural(e, "error"), plural(w, "warning")),
            }
        ));
    }
    out
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A plan: numbered steps in the order they run (or ran).
pub fn plan(steps: &[PlanStep], applied: bool, file: &str, style: Style) -> String {
    if steps.is_empty() {
        return format!("Nothing to do: the host already matches {file}.\n");
    }
    let mut out = String::new();
    let heading = if applied {
        format!("Applied {file}:")
    } else {
        format!("Plan for {file} (dry run, nothing changed):")
    };
    out.push_str(&style.paint(&heading, Some(Color::Bold)));
    out.push('\n');
    let mut t = Table::new(&["STEP", "ACTION", "TARGET", "DETAIL"]);
    for (i, s) in steps.iter().enumerate() {
        t.row(vec![
            Cell::plain((i + 1).to_string()),
            s.action.clone().into(),
            super::or_dash(&s.target).into(),
            s.detail.clone().into(),
        ]);
    }
    out.push_str(&t.render(style));
    out
}
