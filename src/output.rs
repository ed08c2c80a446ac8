//! Writing record batches as JSON Lines: one object per row, keys in column order.
//!
//! Non-finite floats have no JSON number: they are written as the strings `"NaN"`, `"inf"` and
//! `"-inf"` (which the JSON Lines reader accepts back for float64 columns). Binary values are base64.

use base64::Engine;
use ipc::batch::{ColumnData, RecordBatch};
use std::io::Write;

/// Writes every row of `batch` as a JSON object on its own line.
pub fn write_jsonl(out: &mut impl Write, batch: &RecordBatch) -> std::io::Result<()> {
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
            if col.is_null(row) {
                line.push_str("null");
                continue;
            }
            match &col.data {
                ColumnData::Bool(b) => line.push_str(if b.get(row) { "true" } else { "false" }),
                ColumnData::Int64(v) => line.push_str(&v.0[row].to_string()),
                ColumnData::Float64(v) => {
                    let x = v.0[row];
                    if x.is_nan() {
                        line.push_str("\"NaN\"");
                    } else if x.is_infinite() {
                        line.push_str(if x > 0.0 { "\"inf\"" } else { "\"-inf\"" });
                    } else {
                        line.push_str(&serde_json::to_string(&x).expect("finite floats serialize"));
                    }
                }
                ColumnData::Utf8(_) => line
                    .push_str(&serde_json::to_string(col.str_at(row).unwrap_or_default()).expect("strings serialize")),
                ColumnData::Binary(v) => {
                    line.push('"');
                    line.push_str(&base64::engine::general_purpose::STANDARD.encode(v.get(row)));
                    line.push('"');
                }
            }
        }
        line.push_str("}\n");
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}
