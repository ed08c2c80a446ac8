//! Parquet and Arrow IPC files in and out, batch by batch.
//!
//! Reading takes the schema from the file (no inference) and streams: Parquet row group by row group,
//! page by page, Arrow IPC message by message, so a file larger than memory runs in bounded memory.
//! A directory or a glob pattern is one input: its files in name order, all of one format and schema.
//! Writing goes aside and into place only when the run succeeded ([`OutputFile`]). Parquet output is
//! snappy-compressed (the codec pyarrow, DuckDB and Polars read fastest), in row groups of
//! [`ROW_GROUP_ROWS`] rows.

use crate::input::InputError;
use crate::output_file::OutputFile;
use arrow_array::RecordBatchReader;
use ipc::batch::{RecordBatch, Schema};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows per row group in Parquet output: bounds the writer's buffer, large enough for fast scans.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// The columnar file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columnar {
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
    /// Arrow IPC file format (`.arrow`, `.feather`, `.ipc`): Feather v2.
    ArrowFile,
    /// Arrow IPC stream format (`.arrows`).
    ArrowStream,
}

impl Columnar {
    /// The format a file extension names.
    pub fn from_extension(ext: &str) -> Option<Columnar> {
        match ext.to_ascii_lowercase().as_str() {
            "parquet" | "pq" => Some(Columnar::Parquet),
            "arrow" | "feather" | "ipc" => Some(Columnar::ArrowFile),
            "arrows" => Some(Columnar::ArrowStream),
            _ => None,
        }
    }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> InputError + '_ {
    move |source| InputError::Io { path: path.display().to_string(), source }
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> InputError {
    InputError::File { path: path.display().to_string(), message: message.to_string() }
}

/// The files an input names: the file itself, a directory's files with `ext` (in name order), or a
/// glob pattern's matches (in name order). None found is an error.
pub fn expand_input(path: &Path) -> Result<Vec<PathBuf>, InputError> {
    let text = path.display().to_string();
    let mut files: Vec<PathBuf> = if path.is_dir() {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(path).map_err(io_error(path))? {
            let p = entry.map_err(io_error(path))?.path();
            let columnar = p.extension().and_then(|e| e.to_str()).and_then(Columnar::from_extension).is_some();
            if p.is_file() && columnar {
                found.push(p);
            }
        }
        found
    } else if text.contains(['*', '?', '[']) && !path.exists() {
        let matches = glob::glob(&text).map_err(|e| file_error(path, format!("not a valid glob pattern: {e}")))?;
        matches.collect::<Result<Vec<_>, _>>().map_err(|e| file_error(path, e))?
    } else {
        return Ok(vec![path.to_owned()]);
    };
    files.sort();
    if files.is_empty() {
        return Err(file_error(path, "holds no Parquet or Arrow files"));
    }
    Ok(files)
}

/// Batches from one file, as Arrow.
type ArrowBatches = Box<dyn Iterator<Item = Result<arrow_array::RecordBatch, arrow_schema::ArrowError>> + Send>;

/// Opens one columnar file; its Arrow schema and its batches of at most `batch_size` rows.
fn open_one(
    path: &Path,
    format: Columnar,
    batch_size: usize,
) -> Result<(arrow_schema::SchemaRef, ArrowBatches), InputError> {
    let file = File::open(path).map_err(io_error(path))?;
    let not_a = |what: &str, e: &dyn std::fmt::Display| file_error(path, format!("not a readable {what} file: {e}"));
    Ok(match format {
        Columnar::Parquet => {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| not_a("Parquet", &e))?
                .with_batch_size(batch_size)
                .build()
                .map_err(|e| not_a("Parquet", &e))?;
            (reader.schema(), Box::new(reader))
        }
        Columnar::ArrowFile => {
            let reader = arrow_ipc::reader::FileReader::try_new(BufReader::new(file), None)
                .map_err(|e| not_a("Arrow IPC", &e))?;
            (reader.schema(), Box::new(reader))
        }
        Columnar::ArrowStream => {
            let reader = arrow_ipc::reader::StreamReader::try_new(BufReader::new(file), None)
                .map_err(|e| not_a("Arrow IPC stream", &e))?;
            (reader.schema(), Box::new(reader))
        }
    })
}

/// Streams udfpool batches out of Parquet or Arrow IPC files.
pub struct ColumnarReader {
    files: std::vec::IntoIter<PathBuf>,
    format: Columnar,
    batch_size: usize,
    schema: Schema,
    arrow_schema: arrow_schema::SchemaRef,
    current: Option<(PathBuf, ArrowBatches)>,
    /// Rows of the current file handed out so far (for errors' row numbers).
    file_rows: u64,
    /// A batch larger than `batch_size` (an Arrow IPC file's own batches), handed out in slices.
    pending: Option<(arrow_array::RecordBatch, usize)>,
    done: bool,
}

impl ColumnarReader {
    /// Opens `files` (all of `format`, one schema) for batches of at most `batch_size` rows.
    pub fn open(files: Vec<PathBuf>, format: Columnar, batch_size: usize) -> Result<Self, InputError> {
        let first = files.first().expect("expand_input returns at least one file").clone();
        let (arrow_schema, batches) = open_one(&first, format, batch_size)?;
        let schema = ipc::arrow::from_arrow_schema(&arrow_schema)
            .map_err(|e| file_error(&first, format!("column {:?}: {}", e.column, e.message)))?;
        let mut files = files.into_iter();
        files.next();
        Ok(Self {
            files,
            format,
            batch_size: batch_size.max(1),
            schema,
            arrow_schema,
            current: Some((first, batches)),
            file_rows: 0,
            pending: None,
            done: false,
        })
    }

    /// The schema of the batches (the first file's).
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The next Arrow batch of at most `batch_size` rows, and the file it came from.
    fn next_arrow(&mut self) -> Result<Option<(arrow_array::RecordBatch, PathBuf)>, InputError> {
        loop {
            let Some((path, batches)) = &mut self.current else { return Ok(None) };
            if let Some((batch, from)) = self.pending.take() {
                let len = self.batch_size.min(batch.num_rows() - from);
                if from + len < batch.num_rows() {
                    self.pending = Some((batch.clone(), from + len));
                }
                return Ok(Some((batch.slice(from, len), path.clone())));
            }
            match batches.next() {
                Some(Ok(batch)) if batch.num_rows() > self.batch_size => self.pending = Some((batch, 0)),
                Some(Ok(batch)) if batch.num_rows() == 0 => {}
                Some(Ok(batch)) => return Ok(Some((batch, path.clone()))),
                Some(Err(e)) => {
                    let at = self.file_rows;
                    return Err(file_error(path, format!("cannot read the rows after row {at}: {e}")));
                }
                None => {
                    let Some(next) = self.files.next() else {
                        self.current = None;
                        return Ok(None);
                    };
                    let (schema, batches) = open_one(&next, self.format, self.batch_size)?;
                    if schema.fields() != self.arrow_schema.fields() {
                        let first =
                            self.arrow_schema.fields().iter().map(|f| format!("{} {}", f.name(), f.data_type()));
                        let this = schema.fields().iter().map(|f| format!("{} {}", f.name(), f.data_type()));
                        return Err(file_error(
                            &next,
                            format!(
                                "has columns ({}), the input's first file has ({}); one input has one schema",
                                this.collect::<Vec<_>>().join(", "),
                                first.collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                    self.current = Some((next, batches));
                    self.file_rows = 0;
                }
            }
        }
    }
}

impl Iterator for ColumnarReader {
    type Item = Result<RecordBatch, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = match self.next_arrow() {
            Ok(None) => return None,
            Ok(Some((batch, path))) => ipc::arrow::from_arrow(&batch).map_err(|e| InputError::Value {
                path: path.display().to_string(),
                row: e.row.map(|r| self.file_rows + r as u64 + 1),
                column: e.column,
                message: e.message,
            }),
            Err(e) => Err(e),
        };
        match &result {
            Ok(b) => self.file_rows += b.num_rows() as u64,
            Err(_) => self.done = true,
        }
        Some(result)
    }
}

/// An output file in a columnar format, written aside and put in place by
/// [`ColumnarWriter::finish`] ([`OutputFile`]).
pub struct ColumnarWriter {
    file: OutputFile,
    sink: Sink,
    schema: arrow_schema::SchemaRef,
}

enum Sink {
    Parquet(parquet::arrow::ArrowWriter<BufWriter<File>>),
    ArrowFile(arrow_ipc::writer::FileWriter<BufWriter<File>>),
    ArrowStream(arrow_ipc::writer::StreamWriter<BufWriter<File>>),
}

impl ColumnarWriter {
    /// Creates the output for batches of `schema`.
    pub fn create(path: &Path, format: Columnar, schema: &Schema) -> Result<Self, InputError> {
        let (output, file) = OutputFile::create(path).map_err(io_error(path))?;
        let file = BufWriter::new(file);
        let arrow_schema = Arc::new(ipc::arrow::to_arrow_schema(schema));
        let failed = |e: &dyn std::fmt::Display| file_error(path, format!("cannot write: {e}"));
        let sink = match format {
            Columnar::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .build();
                Sink::Parquet(
                    parquet::arrow::ArrowWriter::try_new(file, arrow_schema.clone(), Some(props))
                        .map_err(|e| failed(&e))?,
                )
            }
            Columnar::ArrowFile => {
                Sink::ArrowFile(arrow_ipc::writer::FileWriter::try_new(file, &arrow_schema).map_err(|e| failed(&e))?)
            }
            Columnar::ArrowStream => Sink::ArrowStream(
                arrow_ipc::writer::StreamWriter::try_new(file, &arrow_schema).map_err(|e| failed(&e))?,
            ),
        };
        Ok(Self { file: output, sink, schema: arrow_schema })
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: arrow_array::RecordBatch) -> Result<(), InputError> {
        let path = self.file.path().to_owned();
        let failed = |e: &dyn std::fmt::Display| file_error(&path, format!("cannot write: {e}"));
        // The writers want the schema they were made with (a column past 2 GiB would be large_utf8).
        let batch = batch.with_schema(self.schema.clone()).map_err(|e| failed(&e))?;
        match &mut self.sink {
            Sink::Parquet(w) => w.write(&batch).map_err(|e| failed(&e)),
            Sink::ArrowFile(w) => w.write(&batch).map_err(|e| failed(&e)),
            Sink::ArrowStream(w) => w.write(&batch).map_err(|e| failed(&e)),
        }
    }

    /// Completes the file (footer, flush, sync) and puts it in place.
    pub fn finish(self) -> Result<(), InputError> {
        let path = self.file.path().to_owned();
        let failed = |e: &dyn std::fmt::Display| file_error(&path, format!("cannot write: {e}"));
        let file = match self.sink {
            Sink::Parquet(w) => w.into_inner().map_err(|e| failed(&e))?,
            Sink::ArrowFile(mut w) => {
                w.finish().map_err(|e| failed(&e))?;
                w.into_inner().map_err(|e| failed(&e))?
            }
            Sink::ArrowStream(mut w) => {
                w.finish().map_err(|e| failed(&e))?;
                w.into_inner().map_err(|e| failed(&e))?
            }
        };
        let file = file.into_inner().map_err(|e| failed(&e.error()))?;
        self.file.commit(file).map_err(io_error(&path))
    }
}
