//! Writing an export beside its target and renaming it into place at the end, so a reader sees the whole file
//! or none, and an interrupted run never leaves half of one.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

/// Flush a file written beside its target, sync it, and rename it into place: a reader sees the whole file
/// or none.
pub(crate) fn commit(out: BufWriter<File>, temp: &Path, target: &Path) -> io::Result<()> {
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(temp, target)
}
