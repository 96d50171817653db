//! Aligned tables with a header row, like systemctl and lszcrypt: columns
//! separated by two spaces, no trailing blanks, widths from the visible text
//! (colour codes do not count).

use super::style::{Color, Style};

/// One cell: text and an optional colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// What is shown.
    pub text: String,
    /// Colour, when the style allows it.
    pub color: Option<Color>,
}

impl Cell {
    /// A cell without colour.
    pub fn plain(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            color: None,
        }
    }

    /// A coloured cell.
    pub fn colored(text: impl Into<String>, color: Color) -> Cell {
        Cell {
            text: text.into(),
            color: Some(color),
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::plain(text)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::plain(text)
    }
}

/// A table: headers and rows of cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty, extra cells are dropped).
    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, each ending in `\n`.
    pub fn render(&self, style: Style) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().take(n).enumerate() {
                widths[i] = widths[i].max(cell.text.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<Cell> = self
            .headers
            .iter()
            .map(|h| Cell::colored(h.clone(), Color::Bold))
            .collect();
        for row in std::iter::once(&header).chain(self.rows.iter()) {
            let mut line = String::new();
            let empty = Cell::plain("");
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).unwrap_or(&empty);
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(&style.paint(&cell.text, cell.color));
                if i + 1 < n {
                    let pad = width - cell.text.chars().count();
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_by_visible_width() {
        let mut t = Table::new(&["APQN", "OWNER"]);
        t.row(vec!["05.0004".into(), "guest1".into()]);
        t.row(vec!["06.0047".into(), Cell::colored("host", Color::Red)]);
        assert_eq!(
            t.render(Style::PLAIN),
            "APQN     OWNER\n05.0004  guest1\n06.0047  host\n"
        );
        let coloured = t.render(Style { color: true });
        assert!(
            coloured.contains("06.0047  \x1b[31mhost\x1b[0m\n"),
            "{coloured}"
        );
    }

    #[test]
    fn no_trailing_blanks() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["x".into(), "".into()]);
        assert_eq!(t.render(Style::PLAIN), "A  B\nx\n");
    }
}
