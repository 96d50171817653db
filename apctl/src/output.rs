//! Writing to the terminal without ever panicking: a closed pipe
//! (`apctl list | head -1`) ends apctl quietly instead of a Rust panic.

use std::io::Write;

/// Writes `text` to stdout; false when stdout is closed or broken.
pub fn stdout(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).is_ok() && out.flush().is_ok()
}

/// Lets `write` write to a buffered, locked stdout, for output too big to
/// hold as one String; false when stdout is closed or broken, which ends
/// apctl as quietly as [`stdout`] does.
pub fn stream(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> bool {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    write(&mut out).is_ok() && out.flush().is_ok()
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
