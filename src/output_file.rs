//! An output file written aside and put in place only when the run succeeded: a failed or interrupted
//! run leaves no file that looks complete, and an earlier file of that name stays until the new one
//! replaces it whole.
//!
//! The file is written as `.NAME.udfpool-PID.tmp` in the output's directory (so the final rename is
//! atomic) and renamed onto the output by [`OutputFile::commit`]; dropped uncommitted, the temporary
//! is removed. A path that exists and is not a regular file (`/dev/null`, a named pipe) is written
//! directly: renaming onto it would replace it. A symbolic link is followed: the file it names is
//! replaced.
//!
//! A DataStream job with checkpoints keeps its temporary after a failure ([`OutputFile::keep`]): the
//! checkpoint records its name and length, and `--resume` reopens it cut back to that length
//! ([`OutputFile::resume`]).

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
    /// Keep the temporary if the run fails: a checkpoint refers to it.
    keep: bool,
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
            return Ok((Self { path: target, temporary: None, keep: false }, file));
        }
        let temporary = temporary_beside(&target);
        let file = File::create(&temporary)?;
        Ok((Self { path: target, temporary: Some(temporary), keep: false }, file))
    }

    /// Reopens the temporary an earlier run of a checkpointed job left for output `path`, cut back to
    /// `len` bytes (what the checkpoint covers), positioned at its end; kept if this run fails too.
    /// `temporary` is `None` where that run wrote a special file directly.
    pub fn resume(path: &Path, temporary: Option<&Path>, len: u64) -> io::Result<(Self, File)> {
        let target = if path.exists() { std::fs::canonicalize(path)? } else { path.to_owned() };
        let Some(temporary) = temporary else {
            let file = std::fs::OpenOptions::new().write(true).open(path)?;
            return Ok((Self { path: target, temporary: None, keep: true }, file));
        };
        let mut file = std::fs::OpenOptions::new().write(true).open(temporary)?;
        let found = file.metadata()?.len();
        if found < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} holds {found} bytes; the checkpoint covers {len}", temporary.display()),
            ));
        }
        file.set_len(len)?;
        io::Seek::seek(&mut file, io::SeekFrom::End(0))?;
        Ok((Self { path: target, temporary: Some(temporary.to_owned()), keep: true }, file))
    }

    /// From now on the temporary stays if the run fails (a checkpoint refers to it).
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Where the output is written until it is complete (`None`: written directly).
    pub fn temporary(&self) -> Option<&Path> {
        self.temporary.as_deref()
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
        if let Some(temporary) = self.temporary.as_ref().filter(|_| !self.keep) {
            // Not committed: the run failed; leave nothing that looks like output.
            let _ = std::fs::remove_file(temporary);
        }
    }
}
