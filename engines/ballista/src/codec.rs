//! Ballista's extension codecs with udfpool functions: a plan's udfpool scalar and aggregate
//! functions travel as [`FunctionRef`]s (the function bytes DataFusion's plan format keeps for a
//! function); everything else goes to Ballista's own codecs.
//!
//! One [`Functions`] per process remembers what it decoded, so every task of every query that names
//! the same function, file and settings gets the same function object, and with it the pools it
//! started: an executor starts a function's workers once, not once per task.

use crate::reference::{FunctionRef, Kind};
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{exec_datafusion_err, Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use udfpool_datafusion::{Definition, PythonUdaf, PythonUdf};

/// The udfpool functions a process has decoded (see the module docs), and whether it checks their
/// files: an executor does (it runs them), a scheduler or client does not (they only plan).
#[derive(Debug)]
pub struct Functions {
    machine: &'static str,
    check_files: bool,
    scalars: Mutex<HashMap<FunctionRef, Arc<ScalarUDF>>>,
    aggregates: Mutex<HashMap<FunctionRef, Arc<AggregateUDF>>>,
}

impl Functions {
    /// For a process that runs the functions (an executor): each file is checked against its hash.
    pub fn running(machine: &'static str) -> Arc<Self> {
        Arc::new(Self { machine, check_files: true, scalars: Mutex::default(), aggregates: Mutex::default() })
    }

    /// For a process that only plans (a scheduler, a client): the files need not be there.
    pub fn planning(machine: &'static str) -> Arc<Self> {
        Arc::new(Self { machine, check_files: false, scalars: Mutex::default(), aggregates: Mutex::default() })
    }

    /// The logical and the physical codec over these functions.
    pub fn codecs(self: &Arc<Self>) -> (Arc<LogicalCodec>, Arc<PhysicalCodec>) {
        (
            Arc::new(LogicalCodec { inner: BallistaLogicalExtensionCodec::default(), functions: self.clone() }),
            Arc::new(PhysicalCodec { inner: BallistaPhysicalExtensionCodec::default(), functions: self.clone() }),
        )
    }

    fn encode_udf(node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<bool> {
        let Some(udf) = python_udf(node) else { return Ok(false) };
        FunctionRef::of(Kind::Scalar, udf.definition())?.encode(buf)?;
        Ok(true)
    }

    fn encode_udaf(node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<bool> {
        let Some(udaf) = python_udaf(node) else { return Ok(false) };
        FunctionRef::of(Kind::Aggregate, udaf.definition())?.encode(buf)?;
        Ok(true)
    }

    fn reference(&self, buf: &[u8], kind: Kind) -> Result<Option<FunctionRef>> {
        let Some(r) = FunctionRef::decode(buf)? else { return Ok(None) };
        if r.kind != kind {
            return Err(exec_datafusion_err!(
                "udfpool function {}: a {:?} function where a {kind:?} was expected",
                r.name,
                r.kind
            ));
        }
        Ok(Some(r))
    }

    fn decode_udf(&self, buf: &[u8]) -> Result<Option<Arc<ScalarUDF>>> {
        self.decode(
            buf,
            Kind::Scalar,
            &self.scalars,
            |r| Arc::new(PythonUdf::new(&r.name, &r.function, r.settings()).into_udf()),
            |udf| python_udf(udf).map(PythonUdf::definition),
        )
    }

    fn decode_udaf(&self, buf: &[u8]) -> Result<Option<Arc<AggregateUDF>>> {
        self.decode(
            buf,
            Kind::Aggregate,
            &self.aggregates,
            |r| Arc::new(PythonUdaf::new(&r.name, &r.function, r.settings()).into_udaf()),
            |udaf| python_udaf(udaf).map(PythonUdaf::definition),
        )
    }

    /// The function `buf` refers to, if it refers to one of `kind`: the one this process built for
    /// the same reference, or one `make` builds (its file checked first where this process runs
    /// functions); either way it learns the result types the reference carries.
    fn decode<F: Clone>(
        &self,
        buf: &[u8],
        kind: Kind,
        known: &Mutex<HashMap<FunctionRef, F>>,
        make: impl FnOnce(&FunctionRef) -> F,
        def: impl Fn(&F) -> Option<&Definition>,
    ) -> Result<Option<F>> {
        let Some(r) = self.reference(buf, kind)? else { return Ok(None) };
        let mut known = known.lock().unwrap_or_else(PoisonError::into_inner);
        let function = match known.get(&r.identity()) {
            Some(f) => f.clone(),
            None => {
                if self.check_files {
                    r.check_file(self.machine)?;
                }
                let f = make(&r);
                known.insert(r.identity(), f.clone());
                f
            }
        };
        let def = def(&function).expect("made by make as a udfpool function");
        for (args, result) in r.typed_result_types()? {
            def.add_result_type(args, result);
        }
        Ok(Some(function))
    }
}

/// The udfpool function behind `node`, if it is one.
fn python_udf(node: &ScalarUDF) -> Option<&PythonUdf> {
    let any: &dyn Any = node.inner().as_ref();
    any.downcast_ref()
}

/// The udfpool aggregate behind `node`, if it is one.
fn python_udaf(node: &AggregateUDF) -> Option<&PythonUdaf> {
    let any: &dyn Any = node.inner().as_ref();
    any.downcast_ref()
}

/// The function methods both codecs share: udfpool functions as references, others to Ballista's.
macro_rules! udfpool_functions {
    () => {
        fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
            match self.functions.decode_udf(buf)? {
                Some(udf) => Ok(udf),
                None => self.inner.try_decode_udf(name, buf),
            }
        }

        fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
            if Functions::encode_udf(node, buf)? {
                return Ok(());
            }
            self.inner.try_encode_udf(node, buf)
        }

        fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
            match self.functions.decode_udaf(buf)? {
                Some(udaf) => Ok(udaf),
                None => self.inner.try_decode_udaf(name, buf),
            }
        }

        fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
            if Functions::encode_udaf(node, buf)? {
                return Ok(());
            }
            self.inner.try_encode_udaf(node, buf)
        }
    };
}

/// Ballista's logical codec, with udfpool functions.
#[derive(Debug)]
pub struct LogicalCodec {
    inner: BallistaLogicalExtensionCodec,
    functions: Arc<Functions>,
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        self.inner.try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    udfpool_functions!();
}

/// Ballista's physical codec, with udfpool functions.
#[derive(Debug)]
pub struct PhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
    functions: Arc<Functions>,
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        self.inner.try_encode(node, buf, proto_converter)
    }

    udfpool_functions!();
}
