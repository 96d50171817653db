//! apctl: see the library crate; main only installs the panic guard.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Last line of defence: a bug must still end in one sentence, never in
    // a Rust backtrace or Debug text.
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "apctl: internal error{place}; nothing more was done. Please report it with the command you ran."
        );
    }));
    match std::panic::catch_unwind(apctl::main_exit) {
        Ok(code) => ExitCode::from(code),
        Err(_) => ExitCode::from(1),
    }
}
