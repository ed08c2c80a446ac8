//! Joining a function's output to its input batch, by kind: a scalar's column is appended, a filter
//! keeps rows, a table function's rows are joined to the rows they came from. The host does this for a
//! single function; a pipeline does it in the worker between its steps. Everything is checked, as the
//! output may come from another process.
//!
//! It lives here, beside the protocol, rather than in the Python worker crate: it has no Python in
//! it, and a host built without THREAD mode must not link libpython to use it.

use crate::batch::{Column, ColumnBuilder, ColumnData, DataType, Field, RecordBatch};
use crate::protocol::UdfKind;
use serde::{Deserialize, Serialize};

/// How a table function's rows join the input row they came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Join {
    /// One output row per produced row; an input row the function yields nothing for is dropped
    /// (PyFlink's `JOIN LATERAL TABLE(f(x))`, or `CROSS JOIN`).
    #[default]
    Inner,
    /// As `Inner`, and an input row the function yields nothing for is kept once, its function
    /// columns null (PyFlink's `LEFT JOIN LATERAL TABLE(f(x)) ON TRUE`).
    LeftOuter,
}

impl std::str::FromStr for Join {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "inner" => Ok(Join::Inner),
            "left" | "left_outer" | "left-outer" => Ok(Join::LeftOuter),
            other => Err(format!("join {other:?}: expected inner or left")),
        }
    }
}

/// What a function returned for one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// One value per input row (scalar and vectorized functions, filters, pipelines: a struct of the
    /// output columns), or per produced row (table functions: a struct of the result columns).
    pub result: Column,
    /// Table functions: for each produced row, the input row it came from.
    pub input_rows: Option<Vec<u32>>,
}

impl Output {
    /// One value per input row.
    pub fn per_row(result: Column) -> Self {
        Self { result, input_rows: None }
    }
}

/// The columns a function of `kind` returning `result_type` adds to its input, named `outputs` if
/// given, else `default` (scalars) or the declared names (table functions).
pub fn added_fields(
    kind: UdfKind,
    result_type: &DataType,
    outputs: Option<Vec<String>>,
    default: &str,
) -> Result<Vec<Field>, String> {
    Ok(match (kind, result_type) {
        (UdfKind::Scalar | UdfKind::Vectorized, t) => {
            vec![Field::new(
                outputs.and_then(|o| o.into_iter().next()).unwrap_or_else(|| default.to_owned()),
                t.clone(),
            )]
        }
        (UdfKind::Filter, _) => Vec::new(),
        (UdfKind::Table, DataType::Struct(fields)) => match outputs {
            Some(names) if names.len() != fields.len() => {
                return Err(format!(
                    "{} result column names given for a table function of {} columns",
                    names.len(),
                    fields.len()
                ))
            }
            Some(names) => names.into_iter().zip(fields).map(|(n, f)| Field::new(n, f.data_type.clone())).collect(),
            None => fields.clone(),
        },
        (UdfKind::Pipeline | UdfKind::Stream, DataType::Struct(fields)) => fields.clone(),
        (kind, t) => return Err(format!("a {} function reported result type {t}", kind.name())),
    })
}

/// `batch` joined with what a function of `kind` returned for it; `fields` are the columns it adds;
/// `join` says what becomes of input rows a table function yields nothing for.
pub fn assemble(
    kind: UdfKind,
    batch: RecordBatch,
    output: Output,
    fields: &[Field],
    join: Join,
) -> Result<RecordBatch, String> {
    let rows = batch.num_rows();
    match kind {
        UdfKind::Aggregate => Err("an aggregate's batches give no rows; its groups come at finish".into()),
        UdfKind::Stream => Err("a stream stage's rows are merged by the stream job, not joined to its input".into()),
        UdfKind::Scalar | UdfKind::Vectorized => {
            let field = fields.first().ok_or("a scalar function adds one column")?;
            batch.with_column(field.clone(), output.result).map_err(|e| e.to_string())
        }
        UdfKind::Filter => {
            let keep = &output.result;
            let ColumnData::Bool(bits) = &keep.data else {
                return Err(format!("a filter answered {} values", keep.data_type()));
            };
            if keep.len() != rows {
                return Err(format!("a filter answered {} values for {rows} rows", keep.len()));
            }
            // Null (None) drops the row, as False does.
            let indices: Vec<u32> = (0..rows).filter(|&i| !keep.is_null(i) && bits.get(i)).map(|i| i as u32).collect();
            Ok(batch.take(&indices))
        }
        UdfKind::Table => {
            let input_rows = output.input_rows.ok_or("a table function's answer has no input rows")?;
            let ColumnData::Struct { columns, .. } = output.result.data else {
                return Err("a table function's answer is not a struct column".into());
            };
            if input_rows.iter().any(|&r| r as usize >= rows)
                || input_rows.windows(2).any(|w| w[0] > w[1])
                || columns.len() != fields.len()
                || columns.iter().any(|c| c.len() != input_rows.len())
            {
                return Err("a table function's answer does not match its input".into());
            }
            let (input_rows, columns) = match join {
                Join::Inner => (input_rows, columns),
                Join::LeftOuter => with_unmatched_rows(rows, &input_rows, columns, fields)?,
            };
            let mut out = batch.take(&input_rows);
            for (f, c) in fields.iter().zip(columns) {
                out = out.with_column(f.clone(), c).map_err(|e| e.to_string())?;
            }
            Ok(out)
        }
        UdfKind::Pipeline => {
            let n = output.result.len();
            let ColumnData::Struct { columns, .. } = output.result.data else {
                return Err("a pipeline's answer is not a struct column".into());
            };
            let schema = crate::batch::Schema::new(fields.to_vec());
            RecordBatch::try_new(schema, columns, n).map_err(|e| e.to_string())
        }
    }
}

/// A left outer join's rows: every produced row, and after the rows of each input row (or in its
/// place) one row of nulls for an input row that produced none. `input_rows` is non-decreasing.
fn with_unmatched_rows(
    rows: usize,
    input_rows: &[u32],
    columns: Vec<Column>,
    fields: &[Field],
) -> Result<(Vec<u32>, Vec<Column>), String> {
    let produced = input_rows.len() as u32;
    let (mut joined, mut picks) = (Vec::with_capacity(rows.max(input_rows.len())), Vec::new());
    let mut next = 0;
    for row in 0..rows as u32 {
        let start = next;
        while next < input_rows.len() && input_rows[next] == row {
            next += 1;
        }
        if start == next {
            joined.push(row);
            // The null row appended after the produced ones.
            picks.push(produced);
        } else {
            joined.extend_from_slice(&input_rows[start..next]);
            picks.extend(start as u32..next as u32);
        }
    }
    if joined.len() == input_rows.len() {
        return Ok((joined, columns));
    }
    let columns = columns
        .into_iter()
        .zip(fields)
        .map(|(column, field)| {
            let mut null = ColumnBuilder::new(&field.data_type, 1);
            null.push_null();
            let padded = Column::concat(&field.data_type, &[&column, &null.finish()]).map_err(|e| e.to_string())?;
            Ok(padded.take(&picks))
        })
        .collect::<Result<_, String>>()?;
    Ok((joined, columns))
}
