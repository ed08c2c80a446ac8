//! Column types, their names, and the Flink SQL spellings they are parsed from.
//!
//! Canonical names (what [`DataType`]'s `Display` writes and `FromStr` reads back): `bool`, `int8`,
//! `int16`, `int32`, `int64`, `float32`, `float64`, `decimal(p, s)`, `utf8`, `binary`, `date`, `time`,
//! `timestamp`, `timestamp_tz`, `list<T>`, `map<K, V>`, `struct<name: T, ...>`. Flink's spellings are
//! aliases, case-insensitive: `TINYINT`, `SMALLINT`, `INT`, `BIGINT`, `FLOAT`, `DOUBLE`,
//! `DECIMAL(20, 10)`, `BOOLEAN`, `STRING`, `VARCHAR(n)`, `BYTES`, `DATE`, `TIME(p)`, `TIMESTAMP(3)`,
//! `TIMESTAMP_LTZ(3)`, `TIMESTAMP(3) WITH LOCAL TIME ZONE`, `ARRAY<BIGINT>`, `MAP<STRING, INT>`,
//! `ROW<a INT, b STRING>`. Every column is nullable at every level; `NOT NULL` is refused rather than
//! ignored. Times and timestamps are kept in microseconds whatever precision is declared.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest decimal precision (digits): Flink's, and what an `i128` holds with room to spare.
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// The type of a column. Every column, and every value inside a nested one, is nullable.
///
/// Serialized as its canonical name, so the decoder's recursion is the parser's, whose depth is
/// bounded ([`crate::batch::MAX_NESTING`]) whatever bytes arrive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum DataType {
    /// `bool` / Flink `BOOLEAN`.
    Bool,
    /// `int8` / Flink `TINYINT`.
    Int8,
    /// `int16` / Flink `SMALLINT`.
    Int16,
    /// `int32` / Flink `INT`.
    Int32,
    /// `int64` / Flink `BIGINT`.
    Int64,
    /// `float32` / Flink `FLOAT`.
    Float32,
    /// `float64` / Flink `DOUBLE`.
    Float64,
    /// `decimal(precision, scale)` / Flink `DECIMAL(p, s)`: exact, `precision` digits of which `scale`
    /// after the point; stored as the unscaled integer.
    Decimal {
        /// Total digits, 1..=38.
        precision: u8,
        /// Digits after the point, 0..=precision.
        scale: u8,
    },
    /// `utf8` / Flink `STRING`.
    Utf8,
    /// `binary` / Flink `BYTES`.
    Binary,
    /// `date` / Flink `DATE`: days since 1970-01-01.
    Date,
    /// `time` / Flink `TIME`: microseconds since midnight.
    Time,
    /// `timestamp` / Flink `TIMESTAMP`: a naive date-time, microseconds since 1970-01-01T00:00.
    Timestamp,
    /// `timestamp_tz` / Flink `TIMESTAMP_LTZ`: an instant, microseconds since 1970-01-01T00:00Z.
    TimestampTz,
    /// `list<T>` / Flink `ARRAY<T>`.
    List(Box<DataType>),
    /// `map<K, V>` / Flink `MAP<K, V>`.
    Map(Box<DataType>, Box<DataType>),
    /// `struct<a: T, ...>` / Flink `ROW<a T, ...>`: named fields, handed to Python as a `Row`.
    Struct(Vec<Field>),
}

/// A type name that is not one udfpool knows, or a malformed one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{message} in type {text:?}; valid types: bool (BOOLEAN), int8 (TINYINT), int16 (SMALLINT), int32 (INT), \
int64 (BIGINT), float32 (FLOAT), float64 (DOUBLE), decimal(p, s) (DECIMAL(p, s)), utf8 (STRING), binary (BYTES), \
date (DATE), time (TIME), timestamp (TIMESTAMP), timestamp_tz (TIMESTAMP_LTZ), list<T> (ARRAY<T>), \
map<K, V> (MAP<K, V>), struct<name: T, ...> (ROW<name T, ...>)"
)]
pub struct ParseTypeError {
    /// What is wrong.
    pub message: String,
    /// The whole text being parsed.
    pub text: String,
}

impl DataType {
    /// The primitive types, in declaration order (everything but decimal and the nested types).
    pub const PRIMITIVES: [DataType; 13] = [
        DataType::Bool,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Float32,
        DataType::Float64,
        DataType::Utf8,
        DataType::Binary,
        DataType::Date,
        DataType::Time,
        DataType::Timestamp,
        DataType::TimestampTz,
    ];

    /// The five types of udfpool's first version, which the benchmarks' workloads use.
    pub const BASIC: [DataType; 5] =
        [DataType::Bool, DataType::Int64, DataType::Float64, DataType::Utf8, DataType::Binary];

    /// A decimal type, checking `1 <= precision <= 38` and `scale <= precision`.
    pub fn decimal(precision: u8, scale: u8) -> Result<Self, String> {
        if !(1..=MAX_DECIMAL_PRECISION).contains(&precision) {
            return Err(format!("decimal precision {precision} is not in 1..=38"));
        }
        if scale > precision {
            return Err(format!("decimal scale {scale} is larger than its precision {precision}"));
        }
        Ok(DataType::Decimal { precision, scale })
    }

    /// The range of an integer type, if it is one.
    pub fn int_range(&self) -> Option<(i64, i64)> {
        Some(match self {
            DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
            DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
            DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
            DataType::Int64 => (i64::MIN, i64::MAX),
            _ => return None,
        })
    }

    /// Whether values of this type hold other values.
    pub fn is_nested(&self) -> bool {
        matches!(self, DataType::List(_) | DataType::Map(..) | DataType::Struct(_))
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => f.write_str("bool"),
            DataType::Int8 => f.write_str("int8"),
            DataType::Int16 => f.write_str("int16"),
            DataType::Int32 => f.write_str("int32"),
            DataType::Int64 => f.write_str("int64"),
            DataType::Float32 => f.write_str("float32"),
            DataType::Float64 => f.write_str("float64"),
            DataType::Decimal { precision, scale } => write!(f, "decimal({precision}, {scale})"),
            DataType::Utf8 => f.write_str("utf8"),
            DataType::Binary => f.write_str("binary"),
            DataType::Date => f.write_str("date"),
            DataType::Time => f.write_str("time"),
            DataType::Timestamp => f.write_str("timestamp"),
            DataType::TimestampTz => f.write_str("timestamp_tz"),
            DataType::List(t) => write!(f, "list<{t}>"),
            DataType::Map(k, v) => write!(f, "map<{k}, {v}>"),
            DataType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    // Names that are not plain words are backquoted, so the text parses back.
                    let plain = !field.name.is_empty() && field.name.chars().all(|c| c.is_alphanumeric() || c == '_');
                    if plain {
                        write!(f, "{}: {}", field.name, field.data_type)?;
                    } else {
                        write!(f, "`{}`: {}", field.name, field.data_type)?;
                    }
                }
                f.write_str(">")
            }
        }
    }
}

impl From<DataType> for String {
    fn from(t: DataType) -> String {
        t.to_string()
    }
}

impl TryFrom<String> for DataType {
    type Error = ParseTypeError;
    fn try_from(s: String) -> Result<Self, ParseTypeError> {
        s.parse()
    }
}

impl std::str::FromStr for DataType {
    type Err = ParseTypeError;

    /// Parses a canonical name or a Flink SQL spelling, case-insensitively (see the module docs).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = Parser { text: s, pos: 0, depth: 0 };
        let t = p.data_type()?;
        p.skip_ws();
        if p.pos != s.len() {
            return Err(p.error(format!("unexpected {:?} after the type", &s[p.pos..])));
        }
        Ok(t)
    }
}

/// A recursive-descent parser over a type string.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> ParseTypeError {
        ParseTypeError { message: message.into(), text: self.text.to_owned() }
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    /// Consumes `c` (after whitespace) if it is next.
    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), ParseTypeError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(format!("expected '{c}' at {:?}", self.rest())))
        }
    }

    /// A word: letters, digits and `_`, or a backquoted name.
    fn word(&mut self) -> Result<String, ParseTypeError> {
        self.skip_ws();
        if let Some(quoted) = self.rest().strip_prefix('`') {
            let end = quoted.find('`').ok_or_else(|| self.error("unterminated `name`"))?;
            let name = quoted[..end].to_owned();
            self.pos += end + 2;
            return Ok(name);
        }
        let len = self.rest().find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.error(format!("expected a name at {:?}", self.rest())));
        }
        let w = self.rest()[..len].to_owned();
        self.pos += len;
        Ok(w)
    }

    /// Consumes the keyword (case-insensitive, whole word) if it is next.
    fn keyword(&mut self, kw: &str) -> bool {
        self.skip_ws();
        let r = self.rest();
        let matches = r.len() >= kw.len()
            && r[..kw.len()].eq_ignore_ascii_case(kw)
            && !r[kw.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_');
        if matches {
            self.pos += kw.len();
        }
        matches
    }

    fn number(&mut self) -> Result<u32, ParseTypeError> {
        self.skip_ws();
        let len = self.rest().find(|c: char| !c.is_ascii_digit()).unwrap_or(self.rest().len());
        self.rest()[..len]
            .parse()
            .map_err(|_| self.error(format!("expected a number at {:?}", self.rest())))
            .inspect(|_| self.pos += len)
    }

    /// Optional `(n)` or `(n, m)`: the numbers given.
    fn params(&mut self) -> Result<Vec<u32>, ParseTypeError> {
        let mut out = Vec::new();
        if self.eat('(') {
            out.push(self.number()?);
            while self.eat(',') {
                out.push(self.number()?);
            }
            self.expect(')')?;
        }
        Ok(out)
    }

    fn open_bracket(&mut self) -> Result<char, ParseTypeError> {
        if self.eat('<') {
            Ok('>')
        } else if self.eat('(') {
            Ok(')')
        } else {
            Err(self.error(format!("expected '<' at {:?}", self.rest())))
        }
    }

    fn data_type(&mut self) -> Result<DataType, ParseTypeError> {
        if self.depth >= crate::batch::MAX_NESTING {
            return Err(self.error(format!("types nested more than {} deep", crate::batch::MAX_NESTING)));
        }
        self.depth += 1;
        let t = self.data_type_inner();
        self.depth -= 1;
        t
    }

    fn data_type_inner(&mut self) -> Result<DataType, ParseTypeError> {
        let name = self.word()?.to_ascii_lowercase();
        let t = match name.as_str() {
            "bool" | "boolean" => DataType::Bool,
            "int8" | "tinyint" => DataType::Int8,
            "int16" | "smallint" => DataType::Int16,
            "int32" | "int" | "integer" => DataType::Int32,
            "int64" | "bigint" | "long" => DataType::Int64,
            "float32" | "float" | "real" => DataType::Float32,
            "float64" | "double" => {
                self.keyword("precision");
                DataType::Float64
            }
            "decimal" | "dec" | "numeric" => {
                let p = self.params()?;
                let (precision, scale) = match p.as_slice() {
                    [] => (10, 0),
                    [p] => (*p, 0),
                    [p, s] => (*p, *s),
                    _ => return Err(self.error("DECIMAL takes (precision) or (precision, scale)")),
                };
                let small = |n: u32| u8::try_from(n).unwrap_or(u8::MAX);
                DataType::decimal(small(precision), small(scale)).map_err(|m| self.error(m))?
            }
            "utf8" | "string" | "str" | "varchar" | "char" | "text" => {
                self.params()?;
                DataType::Utf8
            }
            "binary" | "bytes" | "varbinary" => {
                self.params()?;
                DataType::Binary
            }
            "date" => DataType::Date,
            "time" => {
                self.params()?;
                if self.keyword("without") {
                    self.time_zone_words()?;
                }
                DataType::Time
            }
            "timestamp" => {
                self.params()?;
                if self.keyword("with") {
                    self.keyword("local");
                    self.time_zone_words()?;
                    DataType::TimestampTz
                } else {
                    if self.keyword("without") {
                        self.time_zone_words()?;
                    }
                    DataType::Timestamp
                }
            }
            "timestamp_ltz" | "timestamp_tz" | "timestamptz" => {
                self.params()?;
                DataType::TimestampTz
            }
            "list" | "array" => {
                let close = self.open_bracket()?;
                let t = self.data_type()?;
                self.expect(close)?;
                DataType::List(Box::new(t))
            }
            "map" => {
                let close = self.open_bracket()?;
                let k = self.data_type()?;
                self.expect(',')?;
                let v = self.data_type()?;
                self.expect(close)?;
                DataType::Map(Box::new(k), Box::new(v))
            }
            "struct" | "row" => {
                let close = self.open_bracket()?;
                let mut fields: Vec<Field> = Vec::new();
                if !self.eat(close) {
                    loop {
                        let name = self.word()?;
                        self.eat(':');
                        let t = self.data_type()?;
                        if fields.iter().any(|f| f.name == name) {
                            return Err(self.error(format!("field {name:?} appears twice")));
                        }
                        fields.push(Field::new(name, t));
                        if self.eat(close) {
                            break;
                        }
                        self.expect(',')?;
                    }
                }
                DataType::Struct(fields)
            }
            other => return Err(self.error(format!("unknown type {other:?}"))),
        };
        if self.keyword("not") {
            return Err(self.error("NOT NULL is not supported: udfpool columns are nullable at every level"));
        }
        self.keyword("null");
        Ok(t)
    }

    fn time_zone_words(&mut self) -> Result<(), ParseTypeError> {
        if self.keyword("time") && self.keyword("zone") {
            Ok(())
        } else {
            Err(self.error(format!("expected TIME ZONE at {:?}", self.rest())))
        }
    }
}

/// A named column of a schema, or a named field of a struct.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// Column type.
    pub data_type: DataType,
}

impl Field {
    /// A field named `name` of type `data_type`.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Self {
        Self { name: name.into(), data_type }
    }
}

/// The columns of a batch, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Schema {
    /// The fields.
    pub fields: Vec<Field>,
}

impl Schema {
    /// A schema of these fields.
    pub fn new(fields: Vec<Field>) -> Self {
        Self { fields }
    }

    /// Index of the column called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> DataType {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn flink_spellings_parse_to_the_canonical_types() {
        assert_eq!(parse("TINYINT"), DataType::Int8);
        assert_eq!(parse("INT"), DataType::Int32);
        assert_eq!(parse("FLOAT"), DataType::Float32);
        assert_eq!(parse("DECIMAL(20, 10)"), DataType::Decimal { precision: 20, scale: 10 });
        assert_eq!(parse("decimal"), DataType::Decimal { precision: 10, scale: 0 });
        assert_eq!(parse("VARCHAR(20)"), DataType::Utf8);
        assert_eq!(parse("TIMESTAMP(3)"), DataType::Timestamp);
        assert_eq!(parse("TIMESTAMP(3) WITHOUT TIME ZONE"), DataType::Timestamp);
        assert_eq!(parse("TIMESTAMP(6) WITH LOCAL TIME ZONE"), DataType::TimestampTz);
        assert_eq!(parse("TIMESTAMP_LTZ(3)"), DataType::TimestampTz);
        assert_eq!(parse("ARRAY<BIGINT>"), DataType::List(Box::new(DataType::Int64)));
        assert_eq!(parse("MAP<STRING, INT>"), DataType::Map(Box::new(DataType::Utf8), Box::new(DataType::Int32)));
        assert_eq!(
            parse("ROW<a INT, `b c` ARRAY<ROW<x DOUBLE>>>"),
            DataType::Struct(vec![
                Field::new("a", DataType::Int32),
                Field::new("b c", DataType::List(Box::new(DataType::Struct(vec![Field::new("x", DataType::Float64)])))),
            ])
        );
    }

    #[test]
    fn canonical_names_round_trip() {
        for s in [
            "struct<`first name`: utf8, `a,b`: int8>",
            "decimal(38, 2)",
            "list<map<utf8, list<timestamp_tz>>>",
            "struct<a: int8, b: struct<c: date, d: time>, e: list<struct<>>>",
        ] {
            assert_eq!(parse(s).to_string(), s);
        }
        for t in DataType::PRIMITIVES {
            assert_eq!(parse(&t.to_string()), t);
        }
    }

    #[test]
    fn bad_types_say_what_is_wrong() {
        let e = |s: &str| s.parse::<DataType>().unwrap_err().message;
        assert_eq!(e("DECIMAL(39, 2)"), "decimal precision 39 is not in 1..=38");
        assert_eq!(e("DECIMAL(5, 6)"), "decimal scale 6 is larger than its precision 5");
        assert!(e("ARRAY<BIGINT").starts_with("expected '>'"));
        assert_eq!(e("nope"), "unknown type \"nope\"");
        assert!(e("INT NOT NULL").starts_with("NOT NULL is not supported"));
        assert_eq!(e("ROW<a INT, a INT>"), "field \"a\" appears twice");
        assert!("blob".parse::<DataType>().unwrap_err().to_string().contains("valid types"));
        let deep = format!("{}int8{}", "list<".repeat(100), ">".repeat(100));
        assert!(e(&deep).contains("nested more than 64 deep"));
    }
}
