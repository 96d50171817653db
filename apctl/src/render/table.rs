//! Aligned tables with a header row, like systemctl and lszcrypt: columns
//! separated by two spaces, no trailing blanks, widths from the visible text
//! (colour codes do not count). [`Table`] holds its cells; [`stream`] writes
//! rows too many to hold (`queues`); both lay lines out with [`Layout`].

use super::style::{Color, Style};
use std::borrow::Cow;
use std::io::{self, Write};

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
        let mut layout = Layout::new(&self.headers);
        for row in &self.rows {
            layout.fit(row.iter().map(|c| c.text.as_str()));
        }
        let mut out = String::new();
        layout.push_header(&mut out, &self.headers, style);
        for row in &self.rows {
            layout.push_row(
                &mut out,
                row.iter().map(|c| (c.text.as_str(), c.color)),
                style,
            );
        }
        out
    }
}

/// The column widths of a table and how its lines are laid out: the one
/// place of the padding and colour rules, for [`Table`] and [`stream`].
#[derive(Debug, Clone)]
pub struct Layout {
    widths: Vec<usize>,
}

impl Layout {
    /// Columns as wide as their headers.
    pub fn new<H: AsRef<str>>(headers: &[H]) -> Layout {
        Layout {
            widths: headers.iter().map(|h| h.as_ref().chars().count()).collect(),
        }
    }

    /// Widens the columns to fit one row (cells past the headers are dropped).
    pub fn fit<'c>(&mut self, texts: impl IntoIterator<Item = &'c str>) {
        for (width, text) in self.widths.iter_mut().zip(texts) {
            *width = (*width).max(text.chars().count());
        }
    }

    /// Appends the header line, in bold.
    pub fn push_header<H: AsRef<str>>(&self, out: &mut String, headers: &[H], style: Style) {
        let cells = headers.iter().map(|h| (h.as_ref(), Some(Color::Bold)));
        self.push_row(out, cells, style);
    }

    /// Appends one line: cells padded to their column (colour codes do not
    /// count), two spaces between columns, no trailing blanks, `\n`.
    /// Missing cells are empty, extra cells are dropped.
    pub fn push_row<'c>(
        &self,
        out: &mut String,
        cells: impl IntoIterator<Item = (&'c str, Option<Color>)>,
        style: Style,
    ) {
        let start = out.len();
        let n = self.widths.len();
        let mut cells = cells.into_iter();
        for (i, width) in self.widths.iter().enumerate() {
            let (text, color) = cells.next().unwrap_or(("", None));
            if i > 0 {
                out.push_str("  ");
            }
            style.paint_into(out, text, color);
            if i + 1 < n {
                let pad = width.saturating_sub(text.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let kept = start + out[start..].trim_end().len();
        out.truncate(kept);
        out.push('\n');
    }
}

/// Writes a table whose rows are never held as cells: a first walk over
/// `rows` sizes the columns from borrowed text, a second writes each line
/// to `out` as it is made. The output is [`Table::render`]'s, byte for byte.
pub fn stream<'r, T, I, W, const N: usize>(
    out: &mut W,
    headers: &[&str; N],
    rows: I,
    cells: impl Fn(&'r T) -> [(Cow<'r, str>, Option<Color>); N],
    style: Style,
) -> io::Result<()>
where
    T: 'r,
    I: Iterator<Item = &'r T> + Clone,
    W: Write + ?Sized,
{
    let mut layout = Layout::new(headers.as_slice());
    for row in rows.clone() {
        layout.fit(cells(row).iter().map(|(text, _)| text.as_ref()));
    }
    // One line buffer for every row.
    let mut line = String::new();
    layout.push_header(&mut line, headers.as_slice(), style);
    out.write_all(line.as_bytes())?;
    for row in rows {
        line.clear();
        let row = cells(row);
        layout.push_row(&mut line, row.iter().map(|(t, c)| (t.as_ref(), *c)), style);
        out.write_all(line.as_bytes())?;
    }
    Ok(())
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

    type Row = [(String, Option<Color>); 3];

    fn as_cells(row: &Row) -> [(Cow<'_, str>, Option<Color>); 3] {
        row.clone().map(|(text, color)| (Cow::Owned(text), color))
    }

    /// What `stream` writes for these rows, and what `Table::render` makes.
    fn both(rows: &[Row], style: Style) -> (String, String) {
        let headers = ["APQN", "", "ÄNDERUNG"];
        let mut table = Table::new(&headers);
        for row in rows {
            table.row(
                row.iter()
                    .map(|(t, c)| Cell {
                        text: t.clone(),
                        color: *c,
                    })
                    .collect(),
            );
        }
        let mut streamed = Vec::new();
        stream(&mut streamed, &headers, rows.iter(), as_cells, style).expect("a Vec takes it");
        let streamed = String::from_utf8(streamed).expect("UTF-8 in, UTF-8 out");
        (streamed, table.render(style))
    }

    #[test]
    fn stream_writes_what_render_makes() {
        let red = Some(Color::Red);
        let rows: Vec<Row> = vec![
            [
                ("05.0004".into(), None),
                ("guest1".into(), None),
                ("x".into(), red),
            ],
            [
                ("".into(), None),
                ("a much wider cell".into(), Some(Color::Green)),
                ("".into(), None),
            ],
            [
                ("grüße".into(), Some(Color::Bold)),
                ("".into(), red),
                ("".into(), None),
            ],
            [
                ("trailing ".into(), None),
                ("".into(), None),
                ("".into(), None),
            ],
            [
                ("".into(), None),
                ("".into(), None),
                ("end  ".into(), Some(Color::Yellow)),
            ],
        ];
        for style in [Style::PLAIN, Style { color: true }] {
            let (streamed, rendered) = both(&rows, style);
            assert_eq!(streamed, rendered, "colour {}", style.color);
            let (streamed, rendered) = both(&[], style);
            assert_eq!(streamed, rendered, "no rows, colour {}", style.color);
        }
        // The case that matters is not trivial: widths come from every row.
        assert!(both(&rows, Style::PLAIN).0.starts_with("APQN       "));
    }

    proptest::proptest! {
        #[test]
        fn stream_is_render_for_any_rows(
            rows in proptest::collection::vec(
                proptest::array::uniform3((
                    "[a-z0-9 é.-]{0,12}",
                    proptest::option::of(proptest::sample::select(
                        vec![Color::Green, Color::Yellow, Color::Red, Color::Bold],
                    )),
                )),
                0..8,
            ),
            color in proptest::bool::ANY,
        ) {
            let (streamed, rendered) = both(&rows, Style { color });
            proptest::prop_assert_eq!(streamed, rendered);
        }
    }

    #[test]
    fn no_trailing_blanks() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["x".into(), "".into()]);
        assert_eq!(t.render(Style::PLAIN), "A  B\nx\n");
    }
}
