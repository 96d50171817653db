//! Writing to the terminal without ever panicking: a closed pipe
//! (`apctl list | head -1`) ends apctl quietly instead of a Rust panic.

use std::io::Write;

/// Writes `text` to stdout; false when stdout is closed or broken.
pub fn stdout(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).is_ok() && out.flush().is_ok()
}

/// Writes one line to stdout and flushes it (for `monitor`).
pub fn line(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").is_ok() && out.flush().is_ok()
}

/// `apctl: <sentence>` on stderr.
pub fn note(sentence: &str) {
    let mut err = std::io::stderr().lock();
    // Nothing useful is left to do when stderr itself is gone.
    let _ = writeln!(err, "apctl: {sentence}");
}
