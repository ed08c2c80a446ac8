//! Writing record batches: JSON Lines here (one object per row, keys in column order), Parquet and
//! Arrow IPC through [`crate::columnar`], all behind [`BatchWriter`].
//!
//! Values are written as [`crate::values`] describes (and the JSON Lines reader reads back): non-finite
//! floats as the strings `"NaN"`, `"inf"` and `"-inf"`, binary as base64, decimals and temporal values
//! as strings, nested values as arrays and objects.

use crate::columnar::ColumnarWriter;
use crate::input::Format;
use crate::output_file::OutputFile;
use anyhow::{bail, Context};
use ipc::batch::{RecordBatch, Schema};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes every row of `batch` as a JSON object on its own line.
pub fn write_jsonl(out: &mut (impl Write + ?Sized), batch: &RecordBatch) -> std::io::Result<()> {
    let keys: Vec<String> =
        batch.schema().fields.iter().map(|f| serde_json::to_string(&f.name).expect("strings serialize")).collect();
    let mut line = String::new();
    for row in 0..batch.num_rows() {
        line.clear();
        line.push('{');
        for (c, (col, key)) in batch.columns().iter().zip(&keys).enumerate() {
            if c > 0 {
                line.push(',');
            }
            line.push_str(key);
            line.push(':');
            crate::values::write_json(&mut line, col, row);
        }
        line.push_str("}\n");
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Where a run's result batches go: JSON Lines on standard output, or a file — JSON Lines, Parquet
/// or Arrow IPC — written aside and put in place by [`BatchWriter::finish`] ([`OutputFile`]), so a
/// failed or interrupted run leaves no output that looks complete.
pub struct BatchWriter {
    path: PathBuf,
    sink: Sink,
}

enum Sink {
    Stdout(std::io::BufWriter<std::io::StdoutLock<'static>>),
    JsonLines(OutputFile, std::io::BufWriter<std::fs::File>),
    Columnar(Box<ColumnarWriter>),
}

impl BatchWriter {
    /// Creates `path` (`-`: standard output, JSON Lines) for batches of `schema`, in `format` if given,
    /// else the one its extension names (JSON Lines for any other extension).
    pub fn create(path: &Path, format: Option<Format>, schema: &Schema) -> anyhow::Result<Self> {
        let stdout = path.as_os_str() == "-";
        let format = format.or_else(|| (!stdout).then(|| Format::from_path(path)).flatten());
        let sink = match format {
            None | Some(Format::JsonLines) if stdout => Sink::Stdout(std::io::BufWriter::new(std::io::stdout().lock())),
            None | Some(Format::JsonLines) => {
                let (output, file) =
                    OutputFile::create(path).with_context(|| format!("cannot create {}", path.display()))?;
                Sink::JsonLines(output, std::io::BufWriter::new(file))
            }
            Some(Format::Csv) => {
                bail!("{}: CSV output is not supported; write .jsonl, .parquet, .arrow or .arrows", path.display())
            }
            Some(Format::Columnar(_)) if stdout => {
                bail!("Parquet and Arrow output go to a file, not standard output")
            }
            Some(Format::Columnar(c)) => Sink::Columnar(Box::new(ColumnarWriter::create(path, c, schema)?)),
        };
        Ok(Self { path: path.to_owned(), sink })
    }

    /// The output's path (`-` for standard output).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: arrow_array::RecordBatch) -> anyhow::Result<()> {
        let failed = || format!("cannot write {}", self.path.display());
        let out: &mut dyn Write = match &mut self.sink {
            Sink::Stdout(out) => out,
            Sink::JsonLines(_, out) => out,
            Sink::Columnar(w) => return Ok(w.write(batch)?),
        };
        let batch = ipc::arrow::from_arrow(&batch).with_context(failed)?;
        write_jsonl(out, &batch).with_context(failed)
    }

    /// Reopens a checkpointed job's JSON Lines output where the checkpoint left it (see
    /// [`OutputFile::resume`]).
    pub fn resume(path: &Path, temporary: Option<&Path>, len: u64) -> anyhow::Result<Self> {
        let (output, file) = OutputFile::resume(path, temporary, len)
            .with_context(|| format!("cannot reopen the unfinished output of {}", path.display()))?;
        Ok(Self { path: path.to_owned(), sink: Sink::JsonLines(output, std::io::BufWriter::new(file)) })
    }

    /// Whether [`checkpoint`](Self::checkpoint) can cover this output: a JSON Lines file, which can be
    /// cut back to a length.
    pub fn can_checkpoint(&self) -> bool {
        matches!(self.sink, Sink::JsonLines(..))
    }

    /// For a checkpoint: everything written so far goes to disk; returns where the output is being
    /// written and its length, and keeps that file if the run fails. `None` for outputs that cannot be
    /// resumed (see [`can_checkpoint`](Self::can_checkpoint)).
    pub fn checkpoint(&mut self) -> anyhow::Result<Option<(Option<PathBuf>, u64)>> {
        let failed = || format!("cannot write {}", self.path.display());
        let Sink::JsonLines(output, out) = &mut self.sink else { return Ok(None) };
        out.flush().with_context(failed)?;
        let file = out.get_ref();
        file.sync_data().with_context(failed)?;
        let len = std::io::Seek::stream_position(&mut &*file).with_context(failed)?;
        output.keep();
        Ok(Some((output.temporary().map(Path::to_owned), len)))
    }

    /// Stops writing after a failure or an interrupt: what went to standard output stays (flushed,
    /// best effort); a file is not put in place.
    pub fn abandon(self) {
        if let Sink::Stdout(mut out) = self.sink {
            let _ = out.flush();
        }
    }

    /// Completes the output: flushes it, and puts a file in place.
    pub fn finish(self) -> anyhow::Result<()> {
        let failed = || format!("cannot write {}", self.path.display());
        match self.sink {
            Sink::Stdout(mut out) => out.flush().with_context(failed),
            Sink::JsonLines(output, out) => {
                let file = out.into_inner().map_err(|e| e.into_error()).with_context(failed)?;
                output.commit(file).with_context(failed)
            }
            Sink::Columnar(w) => Ok(w.finish()?),
        }
    }
}
