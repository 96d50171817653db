//! What can go wrong, as one sentence and an exit status. Every failure the
//! user sees passes through here, so no D-Bus name, Debug output or panic
//! text reaches the terminal.

use std::fmt;

/// Exit status of a refusal or failure.
pub const EXIT_FAILED: u8 = 1;
/// Exit status of a usage error (clap's own errors use the same).
pub const EXIT_USAGE: u8 = 2;

/// A failure of apctl: one sentence (without the `apctl: ` prefix) and the
/// exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The sentence for people.
    pub sentence: String,
    /// 1 refused or failed, 2 usage error.
    pub code: u8,
}

impl CliError {
    /// A refusal or failure (exit 1).
    pub fn failed(sentence: impl Into<String>) -> Self {
        Self {
            sentence: sentence.into(),
            code: EXIT_FAILED,
        }
    }

    /// A bad argument, refused before anything is sent (exit 2).
    pub fn usage(sentence: impl Into<String>) -> Self {
        Self {
            sentence: sentence.into(),
            code: EXIT_USAGE,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sentence)
    }
}

impl std::error::Error for CliError {}

/// Shows user input inside a sentence: quoted, control characters escaped,
/// cut after 40 characters so that a huge argument does not flood the terminal.
pub fn quote_input(input: &str) -> String {
    const MAX: usize = 40;
    let mut out = String::from("\"");
    for (count, c) in input.chars().enumerate() {
        if count == MAX {
            out.push_str("...");
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&c.escape_default().to_string()),
            c => out.push(c),
        }
    }
    out.push('"');
    if input.chars().count() > MAX {
        out.push_str(&format!(" ({} characters)", input.chars().count()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_and_cuts() {
        assert_eq!(quote_input("5,,6"), "\"5,,6\"");
        assert_eq!(quote_input("a\nb\"c"), "\"a\\nb\\\"c\"");
        let huge = "9".repeat(100_000);
        let q = quote_input(&huge);
        assert!(q.len() < 80, "{q}");
        assert!(q.ends_with("(100000 characters)"), "{q}");
    }
}
