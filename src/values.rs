//! Values of every column type from CSV text and JSON, and back to JSON: the command's file formats.
//!
//! | type | CSV field | JSON |
//! |---|---|---|
//! | integers, floats | `42`, `1.5`, `NaN`, `inf` | number (or `"NaN"`, `"inf"`, `"-inf"`) |
//! | bool | `true` / `false` | `true` / `false` |
//! | decimal | `-12.50` | `"-12.50"` (a string keeps it exact) or an integer |
//! | utf8 | the text | string |
//! | binary | the raw bytes | base64 string |
//! | date, time, timestamp | `2024-02-29`, `12:30:00.25`, `2024-02-29T12:30:00.25` | the same, as strings |
//! | timestamp_tz | `2024-02-29T12:30:00Z` or with `+02:00` | the same, as a string (written in UTC, `Z`) |
//! | list | JSON text: `[1, 2]` | array |
//! | map | JSON text | object (keys as text of the key type), or an array of `[key, value]` pairs |
//! | struct | JSON text | object by field name, or an array by position |
//!
//! An empty CSV field and a JSON `null` (or missing key) are null. Errors say what could not be used
//! as what; the caller adds the file, line and column.

use base64::Engine;
use ipc::batch::{BuildError, Column, ColumnBuilder, ColumnData, DataType};
use ipc::temporal;
use serde_json::Value as J;

pub(crate) fn short(s: &str) -> String {
    if s.len() > 80 {
        format!("{}...", &s[..s.floor_char_boundary(80)])
    } else {
        s.to_owned()
    }
}

fn built(e: BuildError) -> String {
    e.to_string()
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

pub(crate) fn parse_float(s: &str) -> Option<f64> {
    match s.trim().to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

/// Appends a CSV field (raw bytes) to a column of type `t`.
pub fn push_text(b: &mut ColumnBuilder, t: &DataType, field: &[u8]) -> Result<(), String> {
    if field.is_empty() {
        b.push_null();
        return Ok(());
    }
    if *t == DataType::Binary {
        return b.push_binary(field).map_err(built);
    }
    let s = std::str::from_utf8(field).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
    push_str_as(b, t, s)
}

/// Appends a value given as text (a CSV field, or a JSON map key) to a column of type `t`.
fn push_str_as(b: &mut ColumnBuilder, t: &DataType, s: &str) -> Result<(), String> {
    let fail = |why: String| format!("cannot parse {:?} as {t}{why}", short(s));
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let x: i64 = s.trim().parse().map_err(|_| fail(String::new()))?;
            b.push_int(x).map_err(built)
        }
        DataType::Float64 => {
            b.push_f64(parse_float(s).ok_or_else(|| fail(String::new()))?);
            Ok(())
        }
        DataType::Float32 => b.push_f32(parse_float(s).ok_or_else(|| fail(String::new()))?).map_err(built),
        DataType::Bool => {
            b.push_bool(parse_bool(s).ok_or_else(|| fail(String::new()))?);
            Ok(())
        }
        DataType::Utf8 => b.push_str(s).map_err(built),
        DataType::Binary => b.push_binary(s.as_bytes()).map_err(built),
        DataType::Decimal { precision, scale } => {
            let x = temporal::parse_decimal(s, *precision, *scale).map_err(|e| fail(format!(": {e}")))?;
            b.push_decimal(x).map_err(built)
        }
        DataType::Date => push_temporal(b, temporal::parse_date(s).map(i64::from), &fail),
        DataType::Time => push_temporal(b, temporal::parse_time(s), &fail),
        DataType::Timestamp => push_temporal(b, temporal::parse_timestamp(s), &fail),
        DataType::TimestampTz => push_temporal(b, temporal::parse_timestamp_tz(s), &fail),
        DataType::List(_) | DataType::Map(..) | DataType::Struct(_) => {
            let v: J = serde_json::from_str(s).map_err(|e| fail(format!(": not JSON ({e})")))?;
            push_json(b, t, &v)
        }
    }
}

fn push_temporal(
    b: &mut ColumnBuilder,
    parsed: Result<i64, String>,
    fail: &dyn Fn(String) -> String,
) -> Result<(), String> {
    let x = parsed.map_err(|e| fail(format!(": {e}")))?;
    b.push_temporal(x).map_err(built)
}

/// Appends a JSON value to a column of type `t`.
pub fn push_json(b: &mut ColumnBuilder, t: &DataType, v: &J) -> Result<(), String> {
    let fail = || format!("cannot use {} as {t}", short(&v.to_string()));
    match (t, v) {
        (_, J::Null) => b.push_null(),
        (DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64, J::Number(n)) => {
            b.push_int(n.as_i64().ok_or_else(fail)?).map_err(built)?
        }
        (DataType::Float64, J::Number(n)) => b.push_f64(n.as_f64().ok_or_else(fail)?),
        (DataType::Float32, J::Number(n)) => b.push_f32(n.as_f64().ok_or_else(fail)?).map_err(built)?,
        (DataType::Float64 | DataType::Float32, J::String(s)) => {
            let x = parse_float(s).ok_or_else(fail)?;
            if *t == DataType::Float32 {
                b.push_f32(x).map_err(built)?
            } else {
                b.push_f64(x)
            }
        }
        (DataType::Bool, J::Bool(x)) => b.push_bool(*x),
        (DataType::Utf8, J::String(s)) => b.push_str(s).map_err(built)?,
        (DataType::Binary, J::String(s)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("{}: not base64 ({e})", short(s)))?;
            b.push_binary(&bytes).map_err(built)?
        }
        (DataType::Decimal { .. }, J::Number(n)) if n.is_i64() || n.is_u64() => push_str_as(b, t, &n.to_string())?,
        (DataType::Decimal { .. }, J::Number(_)) => {
            return Err(format!("{}: give decimals as strings in JSON, to keep them exact", fail()))
        }
        (
            DataType::Decimal { .. } | DataType::Date | DataType::Time | DataType::Timestamp | DataType::TimestampTz,
            J::String(s),
        ) => push_str_as(b, t, s)?,
        (DataType::List(item), J::Array(items)) => {
            for (i, x) in items.iter().enumerate() {
                push_json(b.child(0), item, x).map_err(|e| format!("item {i}: {e}"))?;
            }
            b.close_entry().map_err(built)?;
        }
        (DataType::Map(k, val), J::Object(entries)) => {
            for (key, x) in entries {
                push_str_as(b.child(0), k, key).map_err(|e| format!("key {key:?}: {e}"))?;
                push_json(b.child(1), val, x).map_err(|e| format!("value of key {key:?}: {e}"))?;
            }
            b.close_entry().map_err(built)?;
        }
        (DataType::Map(k, val), J::Array(pairs)) => {
            for (i, pair) in pairs.iter().enumerate() {
                let [key, x] = pair.as_array().map(Vec::as_slice).unwrap_or_default() else {
                    return Err(format!("entry {i}: {} is not a [key, value] pair", short(&pair.to_string())));
                };
                push_json(b.child(0), k, key).map_err(|e| format!("key of entry {i}: {e}"))?;
                push_json(b.child(1), val, x).map_err(|e| format!("value of entry {i}: {e}"))?;
            }
            b.close_entry().map_err(built)?;
        }
        (DataType::Struct(fields), J::Object(obj)) => {
            if let Some(k) = obj.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
                return Err(format!("{}: {k:?} is not one of its fields", fail()));
            }
            for (i, f) in fields.iter().enumerate() {
                let x = obj.get(&f.name).unwrap_or(&J::Null);
                push_json(b.child(i), &f.data_type, x).map_err(|e| format!("field {:?}: {e}", f.name))?;
            }
            b.close_entry().map_err(built)?;
        }
        (DataType::Struct(fields), J::Array(items)) => {
            if items.len() != fields.len() {
                return Err(format!("{}: {} values for {} fields", fail(), items.len(), fields.len()));
            }
            for (i, (f, x)) in fields.iter().zip(items).enumerate() {
                push_json(b.child(i), &f.data_type, x).map_err(|e| format!("field {:?}: {e}", f.name))?;
            }
            b.close_entry().map_err(built)?;
        }
        _ => return Err(fail()),
    }
    Ok(())
}

fn float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("\"NaN\"");
    } else if x.is_infinite() {
        out.push_str(if x > 0.0 { "\"inf\"" } else { "\"-inf\"" });
    } else {
        out.push_str(&serde_json::to_string(&x).expect("finite floats serialize"));
    }
}

fn string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("strings serialize"));
}

/// Writes row `row` of `col` as JSON (see the module's table).
pub fn write_json(out: &mut String, col: &Column, row: usize) {
    if col.is_null(row) {
        out.push_str("null");
        return;
    }
    match &col.data {
        ColumnData::Bool(b) => out.push_str(if b.get(row) { "true" } else { "false" }),
        ColumnData::Int8(v) => out.push_str(&v.0[row].to_string()),
        ColumnData::Int16(v) => out.push_str(&v.0[row].to_string()),
        ColumnData::Int32(v) => out.push_str(&v.0[row].to_string()),
        ColumnData::Int64(v) => out.push_str(&v.0[row].to_string()),
        // Through f64 would print 0.1f32 as 0.10000000149011612; f32's own shortest form is 0.1.
        ColumnData::Float32(v) => match v.0[row] {
            x if x.is_finite() => out.push_str(&serde_json::to_string(&x).expect("finite floats serialize")),
            x => float(out, f64::from(x)),
        },
        ColumnData::Float64(v) => float(out, v.0[row]),
        ColumnData::Decimal { scale, values, .. } => string(out, &temporal::format_decimal(values.0[row], *scale)),
        ColumnData::Utf8(_) => string(out, col.str_at(row).unwrap_or_default()),
        ColumnData::Binary(v) => {
            out.push('"');
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(v.get(row)));
            out.push('"');
        }
        ColumnData::Date(v) => string(out, &temporal::format_date(v.0[row])),
        ColumnData::Time(v) => string(out, &temporal::format_time(v.0[row])),
        ColumnData::Timestamp(v) => string(out, &temporal::format_timestamp(v.0[row], false)),
        ColumnData::TimestampTz(v) => string(out, &temporal::format_timestamp(v.0[row], true)),
        ColumnData::List { offsets, values } => {
            out.push('[');
            for (n, i) in (offsets.0[row] as usize..offsets.0[row + 1] as usize).enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_json(out, values, i);
            }
            out.push(']');
        }
        ColumnData::Map { offsets, keys, values } => {
            let range = offsets.0[row] as usize..offsets.0[row + 1] as usize;
            // An object when keys are strings (null keys cannot be object keys); else [key, value] pairs.
            let as_object = matches!(keys.data, ColumnData::Utf8(_)) && range.clone().all(|i| !keys.is_null(i));
            out.push(if as_object { '{' } else { '[' });
            for (n, i) in range.enumerate() {
                if n > 0 {
                    out.push(',');
                }
                if as_object {
                    string(out, keys.str_at(i).unwrap_or_default());
                    out.push(':');
                    write_json(out, values, i);
                } else {
                    out.push('[');
                    write_json(out, keys, i);
                    out.push(',');
                    write_json(out, values, i);
                    out.push(']');
                }
            }
            out.push(if as_object { '}' } else { ']' });
        }
        ColumnData::Struct { names, columns, .. } => {
            out.push('{');
            for (n, (name, c)) in names.iter().zip(columns).enumerate() {
                if n > 0 {
                    out.push(',');
                }
                string(out, name);
                out.push(':');
                write_json(out, c, row);
            }
            out.push('}');
        }
    }
}
