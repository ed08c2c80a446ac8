//! Reading records from CSV (with a header), JSON Lines, Parquet or Arrow IPC files into record
//! batches, streaming. Parquet and Arrow files carry their schema and are read by [`crate::columnar`];
//! the rest of this module is about the text formats.
//!
//! Column types come from `--schema name:type,...` (any type, nested ones included: see
//! [`crate::values`] for how each is written) or are inferred from the first
//! [`INFER_ROWS`] records: int64 if every non-empty value parses as one, else float64, else bool
//! (`true`/`false`), else utf8. An empty CSV field and a JSON `null` or missing key are null. Binary
//! values are a CSV field's raw bytes, or base64 strings in JSON. Every error names the file, the line,
//! the column and the value.

use crate::columnar::{expand_input, Columnar, ColumnarReader};
use crate::line_cap::{LineCap, LineTooLong};
use crate::values::{parse_bool, parse_float, push_json, push_text, short};
use ipc::batch::{ColumnBuilder, DataType, Field, RecordBatch, Schema, Value};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

/// Rows a batch's columns reserve room for up front; larger batches grow as they fill, so a huge
/// `--batch-size` over a small file allocates only what the rows need.
const PREALLOCATE_ROWS: usize = 64 * 1024;

/// Records examined to infer column types.
pub const INFER_ROWS: usize = 1000;

/// Bad input, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read (or a side file written). The cause is the error's `source`, which
    /// `{:#}` (anyhow's chain) prints after the path; it is not repeated in the message itself.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A record or value is malformed.
    #[error("{path}:{line}: {message}")]
    Bad {
        /// The file.
        path: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong, naming the column and value.
        message: String,
    },
    /// The `--schema` argument is malformed or does not match the file.
    #[error("--schema: {0}")]
    Schema(String),
    /// A Parquet or Arrow file is malformed, or cannot be read as udfpool batches.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A value in a Parquet or Arrow file has no exact udfpool equivalent.
    #[error("{path}: {}column {column:?}: {message}", row.map(|r| format!("row {r}, ")).unwrap_or_default())]
    Value {
        /// The file.
        path: String,
        /// 1-based row within the file, where one value is at fault.
        row: Option<u64>,
        /// The column (with the path to a nested field).
        column: String,
        /// What is wrong.
        message: String,
    },
}

/// Input and output file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
    /// Parquet, or Arrow IPC (file or stream).
    Columnar(Columnar),
}

impl Format {
    /// The format a file name suggests: `.csv`; `.jsonl`/`.ndjson`/`.json`; `.parquet`/`.pq`;
    /// `.arrow`/`.feather`/`.ipc`; `.arrows`. A directory's format is that of the first columnar file
    /// in it (by name); a glob pattern's, that of its extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        if path.is_dir() {
            let first = crate::columnar::expand_input(path).ok()?.into_iter().next()?;
            return Format::from_path(&first);
        }
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
            _ => Columnar::from_extension(&ext).map(Format::Columnar),
        }
    }
}

/// Parses `name:type,name:type`.
pub fn parse_schema_arg(s: &str) -> Result<Vec<(String, DataType)>, InputError> {
    let mut declared: Vec<(String, DataType)> = Vec::new();
    for pair in split_top_level(s).into_iter().filter(|p| !p.trim().is_empty()) {
        let (name, ty) =
            pair.split_once(':').ok_or_else(|| InputError::Schema(format!("{pair:?} is not name:type")))?;
        let name = name.trim();
        let ty = ty.parse::<DataType>().map_err(|e| InputError::Schema(format!("column {name:?}: {e}")))?;
        if declared.iter().any(|(n, _)| n == name) {
            return Err(InputError::Schema(format!("column {name:?} is declared twice")));
        }
        declared.push((name.to_owned(), ty));
    }
    Ok(declared)
}

/// `s` split at the commas outside brackets: `a:int64,m:map<utf8, int32>` is two parts.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// One raw record before typing: a value per column as text (CSV) or JSON, or a line that could not
/// even be split into values (kept so it is reported in its turn, or written to the bad-rows file).
enum Raw {
    Csv(csv::ByteRecord),
    Json(serde_json::Map<String, serde_json::Value>),
    Bad { text: String, message: String },
}

impl Raw {
    /// The record as text, for the bad-rows file.
    fn text(&self) -> String {
        match self {
            Raw::Csv(rec) => rec.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect::<Vec<_>>().join(","),
            Raw::Json(obj) => serde_json::Value::Object(obj.clone()).to_string(),
            Raw::Bad { text, .. } => text.clone(),
        }
    }
}

enum Source {
    Csv(csv::Reader<BufReader<LineCap<File>>>),
    Json(std::io::Lines<BufReader<LineCap<File>>>),
}

/// Where malformed records go when the user asked to keep going: a JSON Lines file, one object per
/// record with the input file, line, error and the raw record.
pub struct BadRows {
    path: String,
    out: std::io::BufWriter<File>,
    count: u64,
}

impl BadRows {
    /// Creates (truncates) the side file.
    pub fn create(path: &Path) -> Result<Self, InputError> {
        let p = path.display().to_string();
        let f = File::create(path).map_err(|source| InputError::Io { path: p.clone(), source })?;
        Ok(Self { path: p, out: std::io::BufWriter::new(f), count: 0 })
    }

    fn record(&mut self, error: &InputError, raw: &str) -> Result<(), InputError> {
        let InputError::Bad { path, line, message } = error else { unreachable!("only data errors are recorded") };
        let entry = serde_json::json!({ "file": path, "line": line, "error": message, "record": raw });
        self.count += 1;
        writeln!(self.out, "{entry}").map_err(|source| InputError::Io { path: self.path.clone(), source })
    }

    /// Records written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Flushes the file.
    pub fn finish(mut self) -> Result<u64, InputError> {
        self.out.flush().map_err(|source| InputError::Io { path: self.path.clone(), source })?;
        Ok(self.count)
    }
}

/// Streams record batches out of a file, whatever its format.
pub struct BatchReader(Reader);

enum Reader {
    Text(TextReader),
    Columnar(ColumnarReader),
}

impl BatchReader {
    /// Opens `path` (a file, or for Parquet and Arrow a directory or glob pattern of them). CSV and
    /// JSON Lines take their schema from `declared` types (any column not declared is inferred);
    /// Parquet and Arrow files from the file, so `declared` must be empty for them.
    pub fn open(
        path: &Path,
        format: Format,
        declared: &[(String, DataType)],
        batch_size: usize,
    ) -> Result<Self, InputError> {
        Ok(BatchReader(match format {
            Format::Columnar(c) => {
                if !declared.is_empty() {
                    return Err(InputError::Schema(format!(
                        "{} carries its own schema; --schema is for CSV and JSON Lines",
                        path.display()
                    )));
                }
                Reader::Columnar(ColumnarReader::open(expand_input(path)?, c, batch_size)?)
            }
            text => Reader::Text(TextReader::open(path, text, declared, batch_size)?),
        }))
    }

    /// The schema of the batches.
    pub fn schema(&self) -> &Schema {
        match &self.0 {
            Reader::Text(r) => r.schema(),
            Reader::Columnar(r) => r.schema(),
        }
    }

    /// Writes malformed records to `bad_rows` and goes on, instead of stopping at the first. Parquet
    /// and Arrow files have no malformed records: a value that cannot be read stops the run.
    pub fn with_bad_rows(self, bad_rows: BadRows) -> Self {
        match self.0 {
            Reader::Text(r) => BatchReader(Reader::Text(r.with_bad_rows(bad_rows))),
            columnar => BatchReader(columnar),
        }
    }

    /// The bad-rows file, if one was set (to finish it and read its count).
    pub fn take_bad_rows(&mut self) -> Option<BadRows> {
        match &mut self.0 {
            Reader::Text(r) => r.take_bad_rows(),
            Reader::Columnar(_) => None,
        }
    }
}

impl Iterator for BatchReader {
    type Item = Result<RecordBatch, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Reader::Text(r) => r.next(),
            Reader::Columnar(r) => r.next(),
        }
    }
}

/// Streams record batches out of a CSV or JSON Lines file.
struct TextReader {
    path: String,
    source: Source,
    schema: Schema,
    /// For CSV: the header names, in file order, mapping to schema columns (same order).
    buffered: VecDeque<(u64, Raw)>,
    batch_size: usize,
    line: u64,
    done: bool,
    bad_rows: Option<BadRows>,
}

fn bad(path: &str, line: u64, message: String) -> InputError {
    InputError::Bad { path: path.to_owned(), line, message }
}

/// The type of a CSV column from its sampled values (with their lines): int64, float64, bool or utf8.
/// An integer beyond int64's range in a column that would be float64 is an error (its line and what
/// to declare instead): inferring float64 would round it, and every other integer of the column with
/// it, silently.
fn infer(samples: &[(u64, Option<String>)], name: &str) -> Result<DataType, (u64, String)> {
    let present: Vec<(u64, &str)> = samples.iter().filter_map(|(l, s)| Some((*l, s.as_deref()?))).collect();
    Ok(if present.is_empty() {
        DataType::Utf8
    } else if present.iter().all(|(_, s)| s.trim().parse::<i64>().is_ok()) {
        DataType::Int64
    } else if present.iter().all(|(_, s)| parse_float(s).is_some()) {
        let integer = |s: &str| {
            let digits = s.trim().strip_prefix(['-', '+']).unwrap_or(s.trim());
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        };
        if let Some((line, s)) = present.iter().find(|(_, s)| integer(s) && s.trim().parse::<i64>().is_err()) {
            return Err((*line, beyond_int64(s.trim(), name)));
        }
        DataType::Float64
    } else if present.iter().all(|(_, s)| parse_bool(s).is_some()) {
        DataType::Bool
    } else {
        DataType::Utf8
    })
}

/// Why an integer beyond int64 is not inferred, and what to declare instead.
fn beyond_int64(value: &str, name: &str) -> String {
    format!(
        "{} is an integer beyond int64's range, which inference would make float64 and round; declare the \
         column with --schema {name}:decimal(38, 0) to keep it exactly, or {name}:float64 to accept rounding",
        short(value)
    )
}

fn merge_json_type(a: Option<DataType>, v: &serde_json::Value) -> Option<DataType> {
    use serde_json::Value as J;
    let t = match v {
        J::Null => return a,
        J::Bool(_) => DataType::Bool,
        J::Number(n) if n.is_i64() => DataType::Int64,
        J::Number(_) => DataType::Float64,
        _ => DataType::Utf8,
    };
    Some(match (a, t) {
        (None, t) => t,
        (Some(x), y) if x == y => x,
        (Some(DataType::Int64), DataType::Float64) | (Some(DataType::Float64), DataType::Int64) => DataType::Float64,
        _ => DataType::Utf8,
    })
}

impl TextReader {
    /// Opens `path`, determining the schema from `declared` types (any column not declared is inferred).
    fn open(
        path: &Path,
        format: Format,
        declared: &[(String, DataType)],
        batch_size: usize,
    ) -> Result<Self, InputError> {
        let p = path.display().to_string();
        let file = File::open(path).map_err(|source| InputError::Io { path: p.clone(), source })?;
        let mut buffered = VecDeque::new();
        let (source, names, line) = match format {
            Format::Csv => {
                let mut r = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(true)
                    .from_reader(BufReader::new(LineCap::new(file)));
                let headers = r.byte_headers().map_err(|e| csv_error(&p, e))?.clone();
                let names: Vec<String> = headers
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        String::from_utf8(h.to_vec())
                            .map_err(|_| bad(&p, 1, format!("header of column {} is not valid UTF-8", i + 1)))
                    })
                    .collect::<Result<_, _>>()?;
                let mut seen = std::collections::HashSet::with_capacity(names.len());
                if let Some((i, name)) = names.iter().enumerate().find(|(_, n)| !seen.insert(n.as_str())) {
                    return Err(bad(
                        &p,
                        1,
                        format!("column {} of the header, {name:?}, names an earlier column too", i + 1),
                    ));
                }
                let mut line = 1;
                for _ in 0..INFER_ROWS {
                    match read_csv(&mut r, &p, line)? {
                        Some((l, raw)) => {
                            line = l;
                            buffered.push_back((line, raw));
                        }
                        None => break,
                    }
                }
                (Source::Csv(r), names, line)
            }
            // Columnar formats never get here (`BatchReader::open` reads them).
            Format::JsonLines | Format::Columnar(_) => {
                let mut lines = BufReader::new(LineCap::new(file)).lines();
                let mut names: Vec<String> = Vec::new();
                // Names in first-seen order, and a set to ask "seen?" in constant time (wide objects).
                let mut seen = std::collections::HashSet::new();
                let mut line = 0;
                while buffered.len() < INFER_ROWS {
                    let Some(text) = lines.next() else { break };
                    line += 1;
                    too_long(&p, &text)?;
                    if let Some(raw) = parse_json_line(text) {
                        if let Raw::Json(obj) = &raw {
                            for k in obj.keys() {
                                if seen.insert(k.clone()) {
                                    names.push(k.clone());
                                }
                            }
                        }
                        buffered.push_back((line, raw));
                    }
                }
                (Source::Json(lines), names, line)
            }
        };
        for (name, _) in declared {
            if !names.contains(name) && format == Format::Csv {
                return Err(InputError::Schema(format!("column {name:?} is not in {p}; it has: {}", names.join(", "))));
            }
        }
        let mut names = names;
        for (name, _) in declared {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let fields = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                if let Some((_, t)) = declared.iter().find(|(n, _)| n == name) {
                    return Ok(Field::new(name.clone(), t.clone()));
                }
                let t = match format {
                    Format::Csv => {
                        let samples: Vec<(u64, Option<String>)> = buffered
                            .iter()
                            .map(|(line, r)| match r {
                                Raw::Csv(rec) => (
                                    *line,
                                    rec.get(i)
                                        .filter(|f| !f.is_empty())
                                        .map(|f| String::from_utf8_lossy(f).into_owned()),
                                ),
                                _ => (*line, None),
                            })
                            .collect();
                        infer(&samples, name)
                            .map_err(|(line, message)| bad(&p, line, format!("column {name:?}: {message}")))?
                    }
                    // Columnar formats never get here (`BatchReader::open` reads them).
                    Format::JsonLines | Format::Columnar(_) => {
                        let mut t = None;
                        for (line, r) in &buffered {
                            if let Raw::Json(o) = r {
                                if let Some(v) = o.get(name) {
                                    if v.as_u64().is_some_and(|u| i64::try_from(u).is_err()) {
                                        return Err(bad(
                                            &p,
                                            *line,
                                            format!("column {name:?}: {}", beyond_int64(&v.to_string(), name)),
                                        ));
                                    }
                                    t = merge_json_type(t, v);
                                }
                            }
                        }
                        t.unwrap_or(DataType::Utf8)
                    }
                };
                Ok(Field::new(name.clone(), t))
            })
            .collect::<Result<Vec<_>, InputError>>()?;
        Ok(Self {
            path: p,
            source,
            schema: Schema::new(fields),
            buffered,
            batch_size: batch_size.max(1),
            line,
            done: false,
            bad_rows: None,
        })
    }

    /// The schema of the batches.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    fn next_raw(&mut self) -> Result<Option<(u64, Raw)>, InputError> {
        if let Some(r) = self.buffered.pop_front() {
            return Ok(Some(r));
        }
        if self.done {
            return Ok(None);
        }
        match &mut self.source {
            Source::Csv(r) => match read_csv(r, &self.path, self.line)? {
                Some((line, raw)) => {
                    self.line = line;
                    Ok(Some((line, raw)))
                }
                None => {
                    self.done = true;
                    Ok(None)
                }
            },
            Source::Json(lines) => loop {
                let Some(text) = lines.next() else {
                    self.done = true;
                    return Ok(None);
                };
                self.line += 1;
                too_long(&self.path, &text)?;
                if let Some(raw) = parse_json_line(text) {
                    return Ok(Some((self.line, raw)));
                }
            },
        }
    }

    /// Appends one record to the builders; on error some builders may hold one value more than
    /// others, and the caller rolls them back.
    fn push_row(&self, builders: &mut [ColumnBuilder], line: u64, raw: &Raw) -> Result<(), InputError> {
        let fields = &self.schema.fields;
        match raw {
            Raw::Csv(rec) => {
                if rec.len() != fields.len() {
                    return Err(bad(
                        &self.path,
                        line,
                        format!("{} fields, the header has {}", rec.len(), fields.len()),
                    ));
                }
                for ((b, f), field) in builders.iter_mut().zip(fields).zip(rec.iter()) {
                    push_text(b, &f.data_type, field)
                        .map_err(|m| bad(&self.path, line, format!("column {:?}: {m}", f.name)))?;
                }
            }
            Raw::Json(obj) => {
                for (b, f) in builders.iter_mut().zip(fields) {
                    let v = obj.get(&f.name).unwrap_or(&serde_json::Value::Null);
                    push_json(b, &f.data_type, v)
                        .map_err(|m| bad(&self.path, line, format!("column {:?}: {m}", f.name)))?;
                }
                if let Some(k) = obj.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
                    return Err(bad(
                        &self.path,
                        line,
                        format!(
                            "key {k:?} is not a column (columns come from the first {INFER_ROWS} lines or --schema)"
                        ),
                    ));
                }
            }
            Raw::Bad { message, .. } => return Err(bad(&self.path, line, message.clone())),
        }
        Ok(())
    }

    /// Writes malformed records to `bad_rows` and goes on, instead of stopping at the first.
    pub fn with_bad_rows(mut self, bad_rows: BadRows) -> Self {
        self.bad_rows = Some(bad_rows);
        self
    }

    /// The bad-rows file, if one was set (to finish it and read its count).
    pub fn take_bad_rows(&mut self) -> Option<BadRows> {
        self.bad_rows.take()
    }
}

/// Reads the next CSV record; a record the csv parser rejects becomes `Raw::Bad`.
fn read_csv(
    r: &mut csv::Reader<BufReader<LineCap<File>>>,
    path: &str,
    prev_line: u64,
) -> Result<Option<(u64, Raw)>, InputError> {
    let mut rec = csv::ByteRecord::new();
    match r.read_byte_record(&mut rec) {
        Ok(false) => Ok(None),
        Ok(true) => {
            let line = rec.position().map_or(prev_line + 1, |p| p.line());
            // A quote that is never closed makes the rest of the file one value, which the csv parser
            // accepts: a record with a line break in a field that runs to the end of the file is
            // checked for one.
            if rec.iter().any(|f| f.contains(&b'\n') || f.contains(&b'\r')) {
                let start = rec.position().map_or(0, |p| p.byte());
                let at_end = r.get_ref().get_ref().get_ref().metadata().is_ok_and(|m| r.position().byte() >= m.len());
                if at_end && unterminated_quote(path, start)? {
                    return Err(bad(
                        path,
                        line,
                        "a quoted field opened in this record is never closed: the rest of the file would be one value; \
                         close the quote (a quote inside a quoted field is written twice: \"\")"
                            .into(),
                    ));
                }
            }
            Ok(Some((line, Raw::Csv(rec))))
        }
        Err(e) => match csv_error(path, e) {
            InputError::Bad { line, message, .. } => {
                Ok(Some((line.max(prev_line + 1), Raw::Bad { text: String::new(), message })))
            }
            other => Err(other),
        },
    }
}

/// Whether the CSV text of `path` from byte `start` (a record's start) to its end leaves a quoted field
/// open, as RFC 4180 quoting reads it (the csv parser's: a quote opens a field only at its start, and a
/// doubled quote inside one is a quote).
fn unterminated_quote(path: &str, start: u64) -> Result<bool, InputError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |source| InputError::Io { path: path.to_owned(), source };
    let mut f = BufReader::new(File::open(path).map_err(io)?);
    f.seek(SeekFrom::Start(start)).map_err(io)?;
    let (mut in_quotes, mut field_start, mut quote_pending) = (false, true, false);
    for byte in f.bytes() {
        let b = byte.map_err(io)?;
        if in_quotes {
            if quote_pending {
                quote_pending = false;
                if b == b'"' {
                    continue; // a doubled quote: one quote inside the field
                }
                in_quotes = false; // the quote before this byte closed the field
            } else if b == b'"' {
                quote_pending = true;
                continue;
            } else {
                continue;
            }
        }
        if b == b'"' && field_start {
            in_quotes = true;
            field_start = false;
        } else {
            field_start = matches!(b, b',' | b'\n' | b'\r');
        }
    }
    Ok(in_quotes && !quote_pending)
}

fn csv_error(path: &str, e: csv::Error) -> InputError {
    let line = e.position().map_or(0, |p| p.line());
    match e.kind() {
        csv::ErrorKind::Io(io) => match LineTooLong::within(io) {
            Some(long) => bad(path, long.line, long.to_string()),
            None => InputError::Io { path: path.to_owned(), source: std::io::Error::other(e.to_string()) },
        },
        _ => bad(path, line, format!("malformed CSV: {e}")),
    }
}

/// A line longer than the cap stops the run (it is no record to divert to `--bad-rows`: its end was
/// never read).
fn too_long(path: &str, text: &std::io::Result<String>) -> Result<(), InputError> {
    match text.as_ref().err().and_then(LineTooLong::within) {
        Some(long) => Err(bad(path, long.line, long.to_string())),
        None => Ok(()),
    }
}

/// Parses one JSON Lines line: `None` for a blank line, `Raw::Bad` for anything but a JSON object.
fn parse_json_line(text: std::io::Result<String>) -> Option<Raw> {
    let text = match text {
        Ok(t) => t,
        Err(e) => return Some(Raw::Bad { text: String::new(), message: format!("cannot read line: {e}") }),
    };
    if text.trim().is_empty() {
        return None;
    }
    Some(match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(o)) => Raw::Json(o),
        Ok(other) => Raw::Bad { message: format!("expected a JSON object, got {}", short(&other.to_string())), text },
        Err(e) => Raw::Bad { message: format!("invalid JSON at column {}: {e}", e.column()), text },
    })
}

impl Iterator for TextReader {
    type Item = Result<RecordBatch, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut builders: Vec<ColumnBuilder> = self
            .schema
            .fields
            .iter()
            .map(|f| ColumnBuilder::new(&f.data_type, self.batch_size.min(PREALLOCATE_ROWS)))
            .collect();
        let mut rows = 0;
        while rows < self.batch_size {
            let (line, raw) = match self.next_raw() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    self.done = true;
                    self.buffered.clear();
                    return Some(Err(e));
                }
            };
            match self.push_row(&mut builders, line, &raw) {
                Ok(()) => rows += 1,
                Err(e) => {
                    // Roll back the values this record managed to append.
                    builders.iter_mut().for_each(|b| b.truncate(rows));
                    let recorded = match &mut self.bad_rows {
                        Some(side) => side.record(&e, &raw.text()),
                        None => Err(e),
                    };
                    if let Err(e) = recorded {
                        self.done = true;
                        self.buffered.clear();
                        return Some(Err(e));
                    }
                }
            }
        }
        if rows == 0 {
            return None;
        }
        let columns = builders.into_iter().map(ColumnBuilder::finish).collect();
        Some(
            RecordBatch::try_new(self.schema.clone(), columns, rows)
                .map_err(|e| bad(&self.path, self.line, e.to_string())),
        )
    }
}

/// Reads a whole file into batches (for tests and small inputs).
pub fn read_all(
    path: &Path,
    declared: &[(String, DataType)],
    batch_size: usize,
) -> Result<Vec<RecordBatch>, InputError> {
    let format = Format::from_path(path).unwrap_or(Format::Csv);
    BatchReader::open(path, format, declared, batch_size)?.collect()
}

/// Rows of values, as a test helper's view of a file.
pub fn rows_of(batches: &[RecordBatch]) -> Vec<Vec<Value>> {
    batches.iter().flat_map(|b| b.to_rows()).collect()
}
