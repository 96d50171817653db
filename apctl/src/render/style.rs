//! Colour, only for people: off when stdout is not a terminal, when
//! `NO_COLOR` is set (https://no-color.org), or for `TERM=dumb`.

use std::io::IsTerminal;

/// A colour for emphasis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    /// Good: active, usable.
    Green,
    /// Attention: warnings, differs.
    Yellow,
    /// Bad: errors, unusable.
    Red,
    /// Headers.
    Bold,
}

/// Whether to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    /// ANSI colours on.
    pub color: bool,
}

impl Style {
    /// No colour: files, pipes, golden files.
    pub const PLAIN: Style = Style { color: false };

    /// Colour when stdout is a terminal and neither `NO_COLOR` nor `TERM=dumb` say no.
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Style {
            color: !no_color && !dumb && std::io::stdout().is_terminal(),
        }
    }

    /// `text` in `color` (unchanged without colour).
    pub fn paint(&self, text: &str, color: Option<Color>) -> String {
        let mut out = String::new();
        self.paint_into(&mut out, text, color);
        out
    }

    /// Appends `text` in `color` to `out`: [`Style::paint`] without a
    /// String of its own, for tables written row by row.
    pub fn paint_into(&self, out: &mut String, text: &str, color: Option<Color>) {
        match (self.color, color) {
            (true, Some(c)) => {
                let code = match c {
                    Color::Green => "32",
                    Color::Yellow => "33",
                    Color::Red => "31",
                    Color::Bold => "1",
                };
                out.push_str("\x1b[");
                out.push_str(code);
                out.push('m');
                out.push_str(text);
                out.push_str("\x1b[0m");
            }
            _ => out.push_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_never_colours() {
        assert_eq!(Style::PLAIN.paint("yes", Some(Color::Green)), "yes");
        let c = Style { color: true };
        assert_eq!(c.paint("no", Some(Color::Red)), "\x1b[31mno\x1b[0m");
        assert_eq!(c.paint("x", None), "x");
    }
}
