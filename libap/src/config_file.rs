//! Reading apd's own configuration files (`CFG/mdevs/<uuid>.toml`,
//! `CFG/apd.toml`) safely.
//!
//! apd runs as root and its reports (status, check, the log) are readable by
//! every uid, so two rules hold here (design.md, "Definitions on disk"):
//! - a file is opened without following a symlink, and only a regular file
//!   is read: a link to `/etc/shadow` planted in `mdevs/` is reported as a
//!   link, never opened; a FIFO or device node is never opened at all;
//! - a problem is reported by its position (line, column) and a fixed
//!   description, never with text found in the file: TOML parser messages
//!   quote the offending line, so they are not passed on.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// The largest configuration file read (a definition is a few hundred
/// bytes; this bounds what a stray large file costs apd).
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// What stands at a configuration path instead of a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A symbolic link (never followed).
    Symlink,
    /// A directory.
    Directory,
    /// A named pipe.
    Fifo,
    /// A character or block device node.
    Device,
    /// A unix socket.
    Socket,
}

impl FileKind {
    /// What `ft` is, or None for a regular file.
    pub fn of(ft: std::fs::FileType) -> Option<FileKind> {
        if ft.is_file() {
            None
        } else if ft.is_symlink() {
            Some(FileKind::Symlink)
        } else if ft.is_dir() {
            Some(FileKind::Directory)
        } else if ft.is_fifo() {
            Some(FileKind::Fifo)
        } else if ft.is_socket() {
            Some(FileKind::Socket)
        } else {
            Some(FileKind::Device)
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Symlink => "a symbolic link",
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a named pipe (FIFO)",
            FileKind::Device => "a device node",
            FileKind::Socket => "a socket",
        })
    }
}

/// Why a configuration file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Something other than a regular file stands there.
    NotRegular(FileKind),
    /// Larger than [`MAX_FILE_SIZE`].
    TooLarge(u64),
    /// Not UTF-8 text.
    NotUtf8,
    /// An OS error (open, stat or read).
    Io(std::io::Error),
}

/// Read a regular file without following a symlink: `Ok(None)` when
/// nothing is there. The type is checked before the open (so a FIFO or a
/// device is never opened) and again on the open file (so a file swapped
/// in between is caught).
pub fn read_regular(path: &Path) -> Result<Option<String>, ReadError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if let Some(kind) = FileKind::of(meta.file_type()) {
                return Err(ReadError::NotRegular(kind));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e)),
    }
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW on a link that replaced the file since the check.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(ReadError::NotRegular(FileKind::Symlink))
        }
        Err(e) => return Err(ReadError::Io(e)),
    };
    read_open_file(file)
}

fn read_open_file(file: File) -> Result<Option<String>, ReadError> {
    let meta = file.metadata().map_err(ReadError::Io)?;
    if let Some(kind) = FileKind::of(meta.file_type()) {
        return Err(ReadError::NotRegular(kind));
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(ReadError::TooLarge(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One byte past the limit tells a file that grew after the stat.
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| ReadError::NotUtf8)
}

/// A place in a file, counted from 1 (columns in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text` (clamped to the text).
    pub fn at(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// What is wrong in a configuration file, said without quoting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Not TOML at all.
    Syntax,
    /// A key the format does not have.
    UnknownKey,
    /// A table where the format has none.
    UnexpectedTable,
    /// A required key is absent.
    MissingKey(&'static str),
    /// A key holds a value of the wrong type.
    WrongType {
        /// The key (the format's own name).
        key: &'static str,
        /// What it must hold.
        expected: &'static str,
    },
    /// `uuid` holds a string that is not a hyphenated UUID.
    NotAUuid,
    /// An id list holds a number outside 0..=255.
    IdOutOfRange(&'static str),
    /// `name` holds a name that cannot be used.
    BadName(&'static str),
    /// A mask key holds a string that is not an absolute mask.
    NotAMask(&'static str),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Syntax => f.write_str("not valid TOML"),
            Problem::UnknownKey => f.write_str("unknown key"),
            Problem::UnexpectedTable => f.write_str("a table where the format has none"),
            Problem::MissingKey(key) => write!(f, "the key {key} is missing"),
            Problem::WrongType { key, expected } => write!(f, "{key} must be {expected}"),
            Problem::NotAUuid => f.write_str("uuid is not a UUID (8-4-4-4-12 hex digits)"),
            Problem::IdOutOfRange(key) => write!(f, "{key} holds an id outside 0..=255"),
            Problem::BadName(reason) => write!(f, "name cannot be used: {reason}"),
            Problem::NotAMask(key) => write!(
                f,
                "{key} is not an absolute mask (0x followed by up to 64 hex digits)"
            ),
        }
    }
}

/// A [`Problem`] and where it is; the `Display` form is what reports show
/// after the file's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct FileError {
    /// What is wrong.
    pub problem: Problem,
    /// Where, when the problem has a place.
    pub at: Option<Position>,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(f, "{at}: {}", self.problem),
            None => write!(f, "{}", self.problem),
        }
    }
}

/// A parsed TOML document whose keys and values keep their places, so
/// problems are reported by position.
#[derive(Debug)]
pub struct Document<'a> {
    text: &'a str,
    table: toml::de::DeTable<'a>,
}

/// A value of a [`Document`] with its place in the text.
pub type Spanned<'a> = toml::Spanned<toml::de::DeValue<'a>>;

impl<'a> Document<'a> {
    /// Parse `text`: a syntax error is reported by position only.
    pub fn parse(text: &'a str) -> Result<Document<'a>, FileError> {
        match toml::de::DeTable::parse(text) {
            Ok(t) => Ok(Document {
                text,
                table: t.into_inner(),
            }),
            Err(e) => Err(FileError {
                problem: Problem::Syntax,
                at: e.span().map(|s| Position::at(text, s.start)),
            }),
        }
    }

    /// The error for `problem` at byte `offset`.
    pub fn error(&self, problem: Problem, offset: usize) -> FileError {
        FileError {
            problem,
            at: Some(Position::at(self.text, offset)),
        }
    }

    /// Refuse any top-level key outside `known`, reporting the first by
    /// position.
    pub fn only_keys(&self, known: &[&str]) -> Result<(), FileError> {
        let first = self
            .table
            .keys()
            .filter(|k| !known.contains(&k.get_ref().as_ref()))
            .map(|k| k.span().start)
            .min();
        match first {
            Some(offset) => Err(self.error(Problem::UnknownKey, offset)),
            None => Ok(()),
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Spanned<'a>> {
        self.table.get(key)
    }

    /// `key` as a string.
    pub fn string(&self, key: &'static str) -> Result<Option<(&str, usize)>, FileError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                toml::de::DeValue::String(s) => Ok(Some((s.as_ref(), v.span().start))),
                _ => Err(self.wrong_type(key, "a string", v)),
            },
        }
    }

    /// `key` as a boolean.
    pub fn boolean(&self, key: &'static str) -> Result<Option<bool>, FileError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                toml::de::DeValue::Boolean(b) => Ok(Some(*b)),
                _ => Err(self.wrong_type(key, "true or false", v)),
            },
        }
    }

    /// `key` as an array of ids 0..=255.
    pub fn ids(&self, key: &'static str) -> Result<Vec<u8>, FileError> {
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        let toml::de::DeValue::Array(items) = v.get_ref() else {
            return Err(self.wrong_type(key, "an array of integers", v));
        };
        items
            .iter()
            .map(|item| match item.get_ref() {
                toml::de::DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                    .ok()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| self.error(Problem::IdOutOfRange(key), item.span().start)),
                _ => Err(self.wrong_type(key, "an array of integers", item)),
            })
            .collect()
    }

    fn wrong_type(&self, key: &'static str, expected: &'static str, v: &Spanned<'_>) -> FileError {
        let problem = match v.get_ref() {
            toml::de::DeValue::Table(_) => Problem::UnexpectedTable,
            _ => Problem::WrongType { key, expected },
        };
        self.error(problem, v.span().start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(Position::at(t, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::at(t, 6), Position { line: 2, column: 1 });
        assert_eq!(Position::at(t, 9), Position { line: 2, column: 3 });
        // Inside a multi-byte character, and past the end: clamped.
        assert_eq!(Position::at(t, 8), Position { line: 2, column: 2 });
        assert_eq!(Position::at(t, 999), Position { line: 3, column: 1 });
    }

    #[test]
    fn syntax_errors_carry_no_text() {
        let e = Document::parse("x = 1\nSECRET-LINE-OF-SHADOW:$6$abc\n").expect_err("not toml");
        assert_eq!(e.problem, Problem::Syntax);
        assert_eq!(e.at.map(|p| p.line), Some(2));
        assert!(!e.to_string().contains("SECRET"), "{e}");
    }

    #[test]
    fn unknown_keys_are_found_by_position() {
        let d = Document::parse("a = 1\nSECRET = 2\nb = 3\n").expect("toml");
        let e = d.only_keys(&["a", "b"]).expect_err("unknown");
        assert_eq!(e.to_string(), "line 2, column 1: unknown key");
    }

    #[test]
    fn ids_are_checked_with_their_place() {
        let d = Document::parse("adapters = [1, 0x10, 256]\nd = \"x\"\nc = [1, \"x\"]\n")
            .expect("toml");
        assert_eq!(
            d.ids("adapters").expect_err("range").to_string(),
            "line 1, column 22: adapters holds an id outside 0..=255"
        );
        assert_eq!(
            d.ids("d").expect_err("type").to_string(),
            "line 2, column 5: d must be an array of integers"
        );
        assert!(d.ids("c").is_err());
        assert_eq!(d.ids("missing"), Ok(Vec::new()));
    }
}
