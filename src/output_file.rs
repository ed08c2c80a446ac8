//! An output file written aside and put in place only when the run succeeded: a failed or interrupted
//! run leaves no file that looks complete, and an earlier file of that name stays until the new one
//! replaces it whole.
//!
//! The file is written as `.NAME.udfpool-PID.tmp` in the output's directory (so the final rename is
//! atomic) and renamed onto the output by [`OutputFile::commit`]; dropped uncommitted, the temporary
//! is removed. A path that exists and is not a regular file (`/dev/null`, a named pipe) is written
//! directly: renaming onto it would replace it. A symbolic link is followed: the file it names is
//! replaced.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Where an output is being written (see the module docs).
#[derive(Debug)]
pub struct OutputFile {
    /// The output, a symbolic link resolved.
    path: PathBuf,
    /// Where it is written until it is complete; `None` for a special file written directly.
    temporary: Option<PathBuf>,
}

/// A temporary name beside `path`, in the same directory.
pub fn temporary_beside(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.udfpool-{}.tmp", std::process::id()))
}

impl OutputFile {
    /// Opens the file to write for output `path`.
    pub fn create(path: &Path) -> io::Result<(Self, File)> {
        let special = std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file());
        let target = if path.exists() { std::fs::canonicalize(path)? } else { path.to_owned() };
        if special {
            let file = std::fs::OpenOptions::new().write(true).open(path)?;
            return Ok((Self { path: target, temporary: None }, file));
        }
        let temporary = temporary_beside(&target);
        let file = File::create(&temporary)?;
        Ok((Self { path: target, temporary: Some(temporary) }, file))
    }

    /// The output's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run succeeded: `file` (everything written and flushed) goes to disk and into place.
    pub fn commit(mut self, file: File) -> io::Result<()> {
        match self.temporary.take() {
            Some(temporary) => {
                file.sync_all()?;
                std::fs::rename(&temporary, &self.path)
            }
            None => Ok(()),
        }
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if let Some(temporary) = &self.temporary {
            // Not committed: the run failed; leave nothing that looks like output.
            let _ = std::fs::remove_file(temporary);
        }
    }
}
