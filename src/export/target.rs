//! Where an export is written, and how it gets there without harming what is at its path. `-`, and the very
//! file stdout already is (`/dev/stdout`, or the file stdout is redirected to), go to stdout. A path that
//! exists and is not a regular file — a terminal, `/dev/null`, `/dev/full`, a FIFO, or a symlink to one — is
//! written through: opened write-only, never created, truncated or renamed. A regular file, existing or not,
//! is written to an unpredictable temporary file created exclusively beside it (`O_EXCL`: a symlink planted
//! there is never followed) and renamed over it once complete, so a reader sees the whole file or none, and
//! removed on every path that does not complete it. Temporary files not yet renamed are listed process-wide,
//! so a process that must exit at once can remove them all first (`remove_unfinished`).
//!
//! Also the checks made before a run starts (`check_outputs`): no two outputs on one file, no output that is
//! one of the run's inputs.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Where an output goes, resolved from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    Stdout,
    /// An existing file that is not a regular one (a device, a FIFO), written through as it is.
    Through(PathBuf),
    /// A regular file, existing (its path with symlinks resolved, so the link stays a link) or to be made.
    Regular(PathBuf),
}

/// A file's identity: (device, inode).
fn id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// The identity of what stdout is, if it is open.
fn stdout_id() -> Option<(u64, u64)> {
    let fd = io::stdout().as_fd().try_clone_to_owned().ok()?;
    File::from(fd).metadata().ok().map(|m| id(&m))
}

/// Resolve where `path` writes. A symlink to nothing is refused: following it would create a file wherever
/// it points, and replacing it would destroy the link.
pub(crate) fn place(path: &Path) -> io::Result<Place> {
    if path == Path::new("-") {
        return Ok(Place::Stdout);
    }
    match std::fs::metadata(path) {
        Ok(m) if stdout_id() == Some(id(&m)) => Ok(Place::Stdout),
        Ok(m) if m.is_file() => Ok(Place::Regular(std::fs::canonicalize(path)?)),
        Ok(_) => Ok(Place::Through(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "it is a symlink to a missing file; give the file itself or another path",
                ));
            }
            Ok(Place::Regular(path.to_path_buf()))
        }
        Err(e) => Err(e),
    }
}

/// An export being written: the writers write into it and call `finish` once the file is complete. Dropped
/// unfinished (an error, a panic), a temporary file is removed.
pub(crate) struct Output {
    out: BufWriter<File>,
    unfinished: Option<Unfinished>,
}

impl Output {
    pub(crate) fn open(path: &Path) -> io::Result<Output> {
        let (file, unfinished) = match place(path)? {
            Place::Stdout => {
                let fd = io::stdout().as_fd().try_clone_to_owned()?;
                (File::from(fd), None)
            }
            // No create, no truncate: whatever is there stays what it is; and a terminal opened here never
            // becomes the process's controlling terminal.
            Place::Through(p) => {
                let file = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOCTTY)
                    .open(p)?;
                (file, None)
            }
            Place::Regular(target) => {
                let (file, unfinished) = Unfinished::create(target)?;
                (file, Some(unfinished))
            }
        };
        Ok(Output {
            out: BufWriter::new(file),
            unfinished,
        })
    }

    /// Write out what is buffered (a failed flush is an error: a full disk, `/dev/full`) and, for a regular
    /// file, sync it and rename it into place.
    pub(crate) fn finish(self) -> io::Result<()> {
        let file = self
            .out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        match self.unfinished {
            None => Ok(()),
            Some(unfinished) => {
                file.sync_all()?;
                drop(file);
                unfinished.persist()
            }
        }
    }
}

impl Write for Output {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The temporary files made and not yet renamed into place or removed. `closed` once `remove_unfinished` has
/// run: the process is exiting, and no temporary file may be made after the sweep.
struct Registry {
    next: u64,
    temps: BTreeMap<u64, PathBuf>,
    closed: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next: 0,
    temps: BTreeMap::new(),
    closed: false,
});

/// The registry, even after a panic elsewhere (its state is a plain list, valid at every point).
fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Remove every temporary file not yet renamed into place, and make no more: for a process about to exit
/// at once (a second SIGINT), so that it leaves none behind. Returns how many were removed.
pub fn remove_unfinished() -> usize {
    let mut registry = registry();
    registry.closed = true;
    let temps = std::mem::take(&mut registry.temps);
    temps
        .values()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count()
}

/// `tempfile` adds ` at path "…"` to its errors: the temporary file's random name, which is no help to whoever
/// reads the one-line error about the export (it names the export's path). Keep the OS error alone.
fn plain(e: io::Error) -> io::Error {
    let message = e.to_string();
    match message.find(" at path \"") {
        Some(at) => match message[..at]
            .strip_suffix(')')
            .and_then(|m| m.rsplit_once("(os error "))
            .and_then(|(_, code)| code.parse().ok())
        {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), &message[..at]),
        },
        None => e,
    }
}

/// A temporary file beside its target, listed in the registry until it is renamed or removed.
struct Unfinished {
    key: u64,
    temp: Option<tempfile::TempPath>,
    target: PathBuf,
}

impl Unfinished {
    /// Make `.NAME.XXXXXX.partial` beside `target` (random, created exclusively) with the mode a new file gets,
    /// or the existing target's mode and owner, so replacing a file does not change who may read it.
    fn create(target: PathBuf) -> io::Result<(File, Unfinished)> {
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let existing = std::fs::metadata(&target).ok();
        let mut registry = registry();
        if registry.closed {
            return Err(io::Error::other("pktpath is exiting"));
        }
        let mut builder = tempfile::Builder::new();
        let prefix = format!(".{}.", name.to_string_lossy());
        builder.prefix(&prefix).suffix(".partial");
        if existing.is_none() {
            // As File::create makes a file: 0666 less the umask.
            builder.permissions(Permissions::from_mode(0o666));
        }
        let (file, temp) = builder.tempfile_in(dir).map_err(plain)?.into_parts();
        if let Some(m) = &existing {
            file.set_permissions(Permissions::from_mode(m.mode() & 0o7777))?;
            // Best effort: only root may give a file away, and a file of our own needs nothing.
            let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
        }
        let key = registry.next;
        registry.next += 1;
        registry.temps.insert(key, temp.to_path_buf());
        Ok((
            file,
            Unfinished {
                key,
                temp: Some(temp),
                target,
            },
        ))
    }

    /// Rename the temporary file over the target, atomically; on failure it is removed.
    fn persist(mut self) -> io::Result<()> {
        let mut registry = registry();
        registry.temps.remove(&self.key);
        match self.temp.take() {
            Some(temp) => temp.persist(&self.target).map_err(|e| e.error),
            None => Ok(()),
        }
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let mut registry = registry();
        registry.temps.remove(&self.key);
        // Dropping the TempPath removes the file.
        drop(self.temp.take());
    }
}

/// How two paths are told to be one file: stdout, an existing file's (device, inode), or the path a new
/// file would get (its directory resolved).
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    Stdout,
    File(u64, u64),
    New(PathBuf),
}

fn identity(place: &Place) -> Identity {
    match place {
        Place::Stdout => Identity::Stdout,
        Place::Through(p) | Place::Regular(p) => match std::fs::metadata(p) {
            Ok(m) => Identity::File(m.dev(), m.ino()),
            Err(_) => {
                let dir = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
                Identity::New(dir.join(p.file_name().unwrap_or_default()))
            }
        },
    }
}

/// Does `path` write to stdout?
pub(crate) fn is_stdout(path: &Path) -> bool {
    matches!(place(path), Ok(Place::Stdout))
}

/// Does `path` write to stdout while stdout is a terminal (no place for binary data)?
pub(crate) fn is_terminal_stdout(path: &Path) -> bool {
    is_stdout(path) && io::stdout().is_terminal()
}

/// Before a run: every output (`(option, path)`) can be placed, no two are one file, and none is one of
/// `inputs` (which a run would overwrite while reading it). The error is one line naming the path and
/// saying what to do.
pub(crate) fn check_outputs(outputs: &[(&str, &Path)], inputs: &[&Path]) -> Result<(), String> {
    let mut placed = Vec::new();
    for &(option, path) in outputs {
        let at = place(path).map_err(|e| format!("{option} {}: {e}", path.display()))?;
        placed.push((option, path, identity(&at)));
    }
    for (i, (option, path, who)) in placed.iter().enumerate() {
        if let Some((first, first_path, _)) = placed[..i].iter().find(|(_, _, w)| w == who) {
            return Err(match who {
                Identity::Stdout => format!(
                    "{first} {} and {option} {} both write to stdout; give one of them a file",
                    first_path.display(),
                    path.display()
                ),
                _ => format!(
                    "{first} {} and {option} {} are the same file; give each output its own path",
                    first_path.display(),
                    path.display()
                ),
            });
        }
        let Identity::File(dev, ino) = *who else {
            continue;
        };
        for input in inputs {
            if std::fs::metadata(input).is_ok_and(|m| (m.dev(), m.ino()) == (dev, ino)) {
                return Err(format!(
                    "{option} {} is the input capture {}; write the output to another path",
                    path.display(),
                    input.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_target_is_written_beside_and_renamed_and_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t.json");
        std::fs::write(&target, b"old").unwrap();
        std::fs::set_permissions(&target, Permissions::from_mode(0o600)).unwrap();
        let mut out = Output::open(&target).unwrap();
        out.write_all(b"new").unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let temp = names.iter().find(|n| *n != "t.json").unwrap();
        assert!(
            temp.starts_with(".t.json.") && temp.ends_with(".partial"),
            "{temp}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"old", "not yet replaced");
        out.finish().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_unfinished_output_is_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let out = Output::open(&dir.path().join("a.json")).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(out);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_error_making_the_temporary_file_is_the_os_error_alone() {
        let e = Output::open(Path::new("/nonexistent-pktpath-dir/t.json"))
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "No such file or directory (os error 2)");
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn a_dangling_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("l.json");
        std::os::unix::fs::symlink(dir.path().join("missing"), &link).unwrap();
        let e = place(&link).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a symlink to a missing file; give the file itself or another path"
        );
        assert!(Output::open(&link).is_err());
        assert!(!dir.path().join("missing").exists());
    }

    #[test]
    fn two_outputs_on_one_file_or_on_an_input_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.out");
        let rel = dir.path().join(".").join("a.out");
        assert_eq!(
            check_outputs(&[("--export", &a), ("--pcap-out", &rel)], &[]),
            Err(format!(
                "--export {} and --pcap-out {} are the same file; give each output its own path",
                a.display(),
                rel.display()
            ))
        );
        std::fs::write(&a, b"capture").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        assert_eq!(
            check_outputs(&[("--export", &link)], &[&a]),
            Err(format!(
                "--export {} is the input capture {}; write the output to another path",
                link.display(),
                a.display()
            ))
        );
        let b = dir.path().join("b.out");
        assert_eq!(
            check_outputs(&[("--export", &a), ("--pcap-out", &b)], &[]),
            Ok(())
        );
        let dash = Path::new("-");
        assert_eq!(
            check_outputs(&[("--export", dash), ("--pcap-out", dash)], &[]),
            Err("--export - and --pcap-out - both write to stdout; give one of them a file".into())
        );
    }
}
