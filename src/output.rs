//! Writing record batches as JSON Lines: one object per row, keys in column order.
//!
//! Values are written as [`crate::values`] describes (and the JSON Lines reader reads back): non-finite
//! floats as the strings `"NaN"`, `"inf"` and `"-inf"`, binary as base64, decimals and temporal values
//! as strings, nested values as arrays and objects.

use ipc::batch::RecordBatch;
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
            crate::values::write_json(&mut line, col, row);
        }
        line.push_str("}\n");
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}
