//! Captures that can be read only once — stdin (`-`), a FIFO, a character device such as `/dev/stdin` — are
//! copied once into a temporary file: a replay reads its capture more than once (the survey, then the replay,
//! and the TUI's step back again), and a pipe cannot be rewound.
//!
//! The copy is an anonymous file (`tempfile::tempfile`: unpredictable, and unlinked as soon as it is made), so
//! it is gone when pktpath exits, however it exits. Each reader reads it at its own offset (`pread`), so
//! readers opened one after another — or side by side, as the TUI's export beside its debugger — never
//! disturb each other.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;
use std::sync::Arc;

/// The FILE argument that means "read the capture from stdin"; its name in the header and the summary too.
/// (A file really called `-` is `./-`.)
pub const STDIN: &str = "-";

/// Why a read-once input could not be copied. Display is one line naming the input.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "stdin is empty, expected a pcap or pcapng capture: pipe one in, as in `cat x.pcap | pktpath replay - --headless`"
    )]
    EmptyStdin,
    #[error(
        "stdin is a terminal: `pktpath replay -` reads the capture from stdin, so pipe one in (or give its path)"
    )]
    StdinIsTerminal,
    #[error("{name}: cannot make a temporary file to copy the capture into: {source}")]
    Temp {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{name}: cannot copy the capture into a temporary file: {source}")]
    Copy {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// A read-once input, copied whole into an anonymous temporary file. Cheap to clone: clones share the file.
#[derive(Debug, Clone)]
pub struct Spool {
    file: Arc<File>,
    size: u64,
}

/// Is `path` an input that can be read only once (a FIFO, a character device, a socket)? Regular files,
/// directories and paths that do not exist are left to the capture reader and its own errors.
pub fn reads_once(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| {
        let t = m.file_type();
        t.is_fifo() || t.is_char_device() || t.is_socket()
    })
}

impl Spool {
    /// Copy all of stdin. A terminal is refused rather than waited on: nothing was piped in.
    pub fn stdin() -> Result<Spool, SpoolError> {
        let stdin = io::stdin();
        if stdin.is_terminal() {
            return Err(SpoolError::StdinIsTerminal);
        }
        let spool = Spool::copy(STDIN, stdin.lock())?;
        if spool.size == 0 {
            return Err(SpoolError::EmptyStdin);
        }
        Ok(spool)
    }

    /// Copy all of the input at `path` (an empty one is the capture reader's to refuse, as for any file).
    pub fn path(path: &Path) -> Result<Spool, SpoolError> {
        let name = path.display().to_string();
        let input = File::open(path).map_err(|source| SpoolError::Copy {
            name: name.clone(),
            source,
        })?;
        Spool::copy(&name, input)
    }

    /// Copy `input` to its end into a new anonymous temporary file.
    pub fn copy(name: &str, mut input: impl Read) -> Result<Spool, SpoolError> {
        let mut file = tempfile::tempfile().map_err(|source| SpoolError::Temp {
            name: name.to_string(),
            source,
        })?;
        let copied = io::copy(&mut input, &mut file).and_then(|n| file.flush().map(|()| n));
        let size = copied.map_err(|source| SpoolError::Copy {
            name: name.to_string(),
            source,
        })?;
        Ok(Spool {
            file: Arc::new(file),
            size,
        })
    }

    /// The input's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// A reader of the copy from its first byte.
    pub fn reader(&self) -> SpoolReader {
        SpoolReader {
            file: Arc::clone(&self.file),
            at: 0,
        }
    }
}

/// Reads a `Spool` at its own offset.
pub struct SpoolReader {
    file: Arc<File>,
    at: u64,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_of_a_spool_read_it_whole_each_at_its_own_offset() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let spool = Spool::copy("test", &data[..]).unwrap();
        assert_eq!(spool.size(), data.len() as u64);
        let (mut a, mut b) = (spool.reader(), spool.clone().reader());
        let mut first = vec![0; 10];
        a.read_exact(&mut first).unwrap();
        let mut all_b = Vec::new();
        b.read_to_end(&mut all_b).unwrap();
        let mut rest_a = Vec::new();
        a.read_to_end(&mut rest_a).unwrap();
        assert_eq!(all_b, data);
        assert_eq!([first, rest_a].concat(), data);
    }

    #[test]
    fn only_pipes_devices_and_sockets_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(!reads_once(&file));
        assert!(!reads_once(dir.path()));
        assert!(!reads_once(&dir.path().join("missing")));
        assert!(reads_once(Path::new("/dev/null")));
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        assert!(reads_once(&fifo));
    }
}
