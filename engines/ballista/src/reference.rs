//! [`FunctionRef`]: a udfpool function as it travels in a Ballista plan — by reference: its SQL
//! name, its file and function name, the file's SHA-256, the pool settings, and the result types its
//! sender learnt. Each machine builds its own function (and pools) from it; an executor first checks
//! that its copy of the file is the one the client planned with.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_datafusion_err, plan_datafusion_err, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use udfpool_datafusion::{Definition, PoolSettings};

/// What precedes a [`FunctionRef`] in a plan's function bytes, so that other functions' bytes are
/// never mistaken for one.
const MAGIC: &[u8] = b"udfpool-function-v1\n";

/// A scalar (or vectorized) function, or an aggregate (or vectorized aggregate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// [`PythonUdf`](udfpool_datafusion::PythonUdf).
    Scalar,
    /// [`PythonUdaf`](udfpool_datafusion::PythonUdaf).
    Aggregate,
}

/// A udfpool function by reference (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FunctionRef {
    /// Scalar or aggregate.
    pub kind: Kind,
    /// The name in SQL.
    pub name: String,
    /// `/path/to/file.py:name`, as registered (an absolute path travels best).
    pub function: String,
    /// The SHA-256 of the file where the sender read it (hex).
    pub file_sha256: String,
    /// The pool settings (`python.execution-mode`, `udfpool.*`, job parameters).
    pub config: Vec<(String, String)>,
    /// Workers per pool, where set.
    pub workers: Option<usize>,
    /// Argument types and the result type for them, as Arrow's type names.
    pub result_types: Vec<(Vec<String>, String)>,
}

impl FunctionRef {
    /// The reference of a function of `kind` defined by `def`; reads its file to hash it.
    pub fn of(kind: Kind, def: &Definition) -> Result<Self> {
        let (name, function) = (def.name(), def.function());
        let file_sha256 = sha256_of_file(file_of(function))
            .map_err(|e| plan_datafusion_err!("udfpool function {name} ({function}) cannot travel: {e}"))?;
        Ok(Self {
            kind,
            name: name.to_owned(),
            function: function.to_owned(),
            file_sha256,
            config: def.settings().config.clone(),
            workers: def.settings().workers,
            result_types: def
                .result_types()
                .into_iter()
                .map(|(args, result)| (args.iter().map(ToString::to_string).collect(), result.to_string()))
                .collect(),
        })
    }

    /// The bytes that carry it in a plan.
    pub fn encode(&self, buf: &mut Vec<u8>) -> Result<()> {
        buf.extend_from_slice(MAGIC);
        serde_json::to_writer(buf, self)
            .map_err(|e| exec_datafusion_err!("encoding udfpool function {}: {e}", self.name))
    }

    /// The reference in `buf`, or `None` where `buf` carries something else.
    pub fn decode(buf: &[u8]) -> Result<Option<Self>> {
        let Some(json) = buf.strip_prefix(MAGIC) else { return Ok(None) };
        serde_json::from_slice(json).map(Some).map_err(|e| exec_datafusion_err!("a udfpool function reference: {e}"))
    }

    /// The same function, settings and file, whatever result types are known: what makes two
    /// references build the same pools.
    pub fn identity(&self) -> Self {
        Self { result_types: Vec::new(), ..self.clone() }
    }

    /// Checks that this machine's file is the one the sender hashed.
    pub fn check_file(&self, machine: &str) -> Result<()> {
        let file = file_of(&self.function);
        let here = sha256_of_file(file).map_err(|e| {
            exec_datafusion_err!(
                "udfpool function {}: {e} on this {machine}; every machine that runs it needs the file at the same path",
                self.name
            )
        })?;
        if here != self.file_sha256 {
            return Err(exec_datafusion_err!(
                "udfpool function {}: {file} on this {machine} (sha256 {here}) is not the file the query was planned \
                 with (sha256 {}); every machine needs the same file at the same path",
                self.name,
                self.file_sha256
            ));
        }
        Ok(())
    }

    /// The pool settings it carries (the worker executable is this machine's own).
    pub fn settings(&self) -> PoolSettings {
        PoolSettings { config: self.config.clone(), workers: self.workers, worker_exe: None }
    }

    /// The result types it carries, as Arrow types.
    pub fn typed_result_types(&self) -> Result<Vec<(Vec<DataType>, DataType)>> {
        let parse = |t: &str| {
            t.parse::<DataType>().map_err(|e| exec_datafusion_err!("udfpool function {}: type {t:?}: {e}", self.name))
        };
        self.result_types
            .iter()
            .map(|(args, result)| Ok((args.iter().map(|a| parse(a)).collect::<Result<_>>()?, parse(result)?)))
            .collect()
    }
}

/// The file part of `path/to/file.py:name`.
fn file_of(function: &str) -> &str {
    function.rsplit_once(':').map_or(function, |(file, _)| file)
}

fn sha256_of_file(path: &str) -> std::result::Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Fields, TimeUnit};
    use std::sync::Arc;

    /// A reference survives its bytes, result types included (Arrow's type names parse back), and
    /// other bytes are not taken for one.
    #[test]
    fn a_reference_round_trips_through_its_bytes() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "def f(x):\n    return x\n").unwrap();
        let udf = udfpool_datafusion::PythonUdf::new(
            "f",
            format!("{}:f", file.path().display()),
            PoolSettings::default().workers(3),
        );
        let def = udf.definition();
        let types = [
            DataType::Int64,
            DataType::Utf8,
            DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
            DataType::Struct(Fields::from(vec![Field::new("a", DataType::Int32, true)])),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ];
        for t in &types {
            def.add_result_type(vec![t.clone(), DataType::Boolean], t.clone());
        }
        let r = FunctionRef::of(Kind::Scalar, def).unwrap();
        let mut buf = Vec::new();
        r.encode(&mut buf).unwrap();
        let back = FunctionRef::decode(&buf).unwrap().unwrap();
        assert_eq!(back, r);
        assert_eq!(back.typed_result_types().unwrap(), def.result_types());
        assert_eq!(back.settings().workers, Some(3));
        back.check_file("test").unwrap();
        assert!(FunctionRef::decode(b"something else").unwrap().is_none());

        std::fs::write(file.path(), "def f(x):\n    return x + 1\n").unwrap();
        let e = back.check_file("executor").unwrap_err().to_string();
        assert!(e.contains("on this executor") && e.contains("is not the file the query was planned with"), "{e}");
    }
}
