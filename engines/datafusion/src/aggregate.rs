//! [`PythonUdaf`]: a udfpool aggregate or vectorized aggregate as a DataFusion aggregate function.
//!
//! DataFusion aggregates in phases: a partial aggregate per input partition, then a final aggregate
//! per partition of the groups (or one `Single` aggregate where the input is one partition). Each of
//! those keeps its groups' accumulators in one udfpool [`Aggregation`], keyed by DataFusion's group
//! index (`__group`) and started at its first row. The partial phase's state is each group's pickled
//! accumulator ([`Aggregation::finish_partials`]), which the final phase folds in with the function's
//! `merge` ([`Aggregation::merge`]); a vectorized aggregate's state is its group's rows. DataFusion's
//! `FILTER (WHERE ...)` arrives as udfpool's filter column, and a group with no accumulator when it is
//! emitted gets one from a filtered-out row: the function's value for no rows, as SQL wants.

use crate::{any_arguments, args_schema, Definition, PoolSettings};
use datafusion::arrow::array::{
    new_empty_array, new_null_array, Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::compute;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type, Schema, SchemaRef};
use datafusion::common::{exec_datafusion_err, exec_err, not_impl_err, plan_datafusion_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature};
use host::aggregate::Aggregation;
use std::sync::{Arc, Mutex};

/// A udfpool aggregate function (`udaf` or `vectorized_udaf`) as a DataFusion aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PythonUdaf {
    def: Definition,
    signature: Signature,
}

impl PythonUdaf {
    /// The aggregate `udf` (`path/to/file.py:name`) under the SQL name `name`. Each partition's
    /// accumulator starts one worker unless `settings` give a number.
    pub fn new(name: impl Into<String>, udf: impl Into<String>, settings: PoolSettings) -> Self {
        Self { def: Definition::new(name.into(), udf.into(), settings), signature: any_arguments() }
    }

    /// What it is: its name, function, settings and known result types.
    pub fn definition(&self) -> &Definition {
        &self.def
    }

    /// As an [`AggregateUDF`] to register.
    pub fn into_udaf(self) -> AggregateUDF {
        AggregateUDF::new_from_impl(self)
    }

    fn spec(&self, arg_types: &[DataType], result_type: DataType) -> Arc<Spec> {
        let mut fields = vec![Field::new("__group", DataType::Int64, false)];
        fields.extend(args_schema(arg_types).fields().iter().map(|f| f.as_ref().clone()));
        fields.push(Field::new("__keep", DataType::Boolean, true));
        Arc::new(Spec {
            name: self.def.name.clone(),
            udf: self.def.function.clone(),
            settings: self.def.settings.clone(),
            arg_types: arg_types.to_vec(),
            input: Arc::new(Schema::new(fields)),
            result_type,
        })
    }

    /// What accumulates `args`' groups; DISTINCT is refused (its seen values would not travel
    /// between the phases).
    fn groups(&self, args: &AccumulatorArgs) -> Result<Groups> {
        if args.is_distinct {
            return not_impl_err!(
                "{}(DISTINCT ...) with other aggregates: not yet in udfpool's DataFusion functions (a lone \
                 DISTINCT aggregate is planned as a GROUP BY and runs)",
                self.def.name
            );
        }
        let arg_types: Vec<DataType> = args.expr_fields.iter().map(|f| f.data_type().clone()).collect();
        Ok(Groups::new(self.spec(&arg_types, args.return_type().clone())))
    }
}

impl AggregateUDFImpl for PythonUdaf {
    fn name(&self) -> &str {
        &self.def.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if let Some(t) = self.def.result_type(arg_types) {
            return Ok(t);
        }
        let agg = self.spec(arg_types, DataType::Null).start().map_err(|e| plan_datafusion_err!("{e}"))?;
        let output = ipc::arrow::to_arrow_schema(&agg.output_schema());
        let result_type = output.fields().last().map_or(DataType::Null, |f| f.data_type().clone());
        self.def.add_result_type(arg_types.to_vec(), result_type.clone());
        Ok(result_type)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup { groups: self.groups(&args)?, value: None }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format_state_name(args.name, "accumulator"), DataType::Binary, true))])
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(self.groups(&args)?))
    }
}

/// What a session of one function over argument types needs.
#[derive(Debug)]
struct Spec {
    name: String,
    udf: String,
    settings: PoolSettings,
    arg_types: Vec<DataType>,
    /// A session's input: `__group` (DataFusion's group index), the arguments `a0`, `a1`, ..., and
    /// `__keep` (DataFusion's FILTER; true without one).
    input: SchemaRef,
    result_type: DataType,
}

impl Spec {
    fn start(&self) -> Result<Aggregation> {
        let input = ipc::arrow::from_arrow_schema(&self.input)
            .map_err(|e| plan_datafusion_err!("{}: argument types {:?}: {e}", self.name, self.arg_types))?;
        let args = (0..self.arg_types.len()).map(|i| format!("a{i}"));
        let mut builder =
            self.settings.builder(&self.udf, input).group_by(["__group"]).args(args).filter_column("__keep");
        if self.settings.workers.is_none() {
            builder = builder.workers(1);
        }
        builder.build_aggregate().map_err(|e| exec_datafusion_err!("{} ({}): {e}", self.name, self.udf))
    }

    fn failed(&self, e: impl std::fmt::Display) -> datafusion::error::DataFusionError {
        exec_datafusion_err!("{} ({}): {e}", self.name, self.udf)
    }
}

/// The accumulators of one DataFusion aggregate's groups, in one udfpool aggregation (started at the
/// first row or state, ended when the groups are emitted).
#[derive(Debug)]
struct Groups {
    spec: Arc<Spec>,
    /// A mutex only because DataFusion's `Accumulator` must be `Sync`: reached through `&mut self`
    /// (`get_mut`), it is never locked.
    session: Option<Mutex<Aggregation>>,
    /// Which groups have an accumulator in the session; its length is the number of groups
    /// DataFusion has told of.
    seen: Vec<bool>,
}

impl Groups {
    fn new(spec: Arc<Spec>) -> Self {
        Self { spec, session: None, seen: Vec::new() }
    }

    fn session(&mut self) -> Result<&mut Aggregation> {
        if self.session.is_none() {
            self.session = Some(Mutex::new(self.spec.start()?));
        }
        let session = self.session.as_mut().expect("started above");
        session.get_mut().map_err(|_| exec_datafusion_err!("{}: a session lock was poisoned", self.spec.name))
    }

    fn note_groups(&mut self, total: usize) {
        if self.seen.len() < total {
            self.seen.resize(total, false);
        }
    }

    /// Adds rows (the argument `values`, each row's group, and which rows the FILTER keeps); a
    /// filtered-out row still gives its group an accumulator.
    fn update(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        keep: Option<&BooleanArray>,
        total: usize,
    ) -> Result<()> {
        self.note_groups(total);
        if groups.is_empty() {
            return Ok(());
        }
        let keys = Int64Array::from_iter_values(groups.iter().map(|&g| g as i64));
        let keep = keep.cloned().unwrap_or_else(|| BooleanArray::from(vec![true; groups.len()]));
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(values.len() + 2);
        columns.push(Arc::new(keys));
        columns.extend(values.iter().cloned());
        columns.push(Arc::new(keep));
        let batch = RecordBatch::try_new(self.spec.input.clone(), columns)?;
        let spec = self.spec.clone();
        self.session()?.push(batch).map_err(|e| spec.failed(e))?;
        for &g in groups {
            self.seen[g] = true;
        }
        Ok(())
    }

    /// Folds partial states (pickled accumulators; null: nothing to fold) into `groups`' accumulators.
    fn merge(&mut self, states: &ArrayRef, groups: &[usize], total: usize) -> Result<()> {
        self.note_groups(total);
        let valid: Vec<u32> = (0..groups.len()).filter(|&i| states.is_valid(i)).map(|i| i as u32).collect();
        if valid.is_empty() {
            return Ok(());
        }
        let take = UInt32Array::from(valid);
        let keys = Int64Array::from_iter_values(take.values().iter().map(|&i| groups[i as usize] as i64));
        let states = compute::take(states.as_ref(), &take, None)?;
        let spec = self.spec.clone();
        let session = self.session()?;
        let schema = Arc::new(ipc::arrow::to_arrow_schema(&session.partials_schema()));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(keys), states])?;
        session.merge(batch).map_err(|e| spec.failed(e))?;
        for &i in take.values() {
            self.seen[groups[i as usize]] = true;
        }
        Ok(())
    }

    /// The session, to end it.
    fn take_session(&mut self) -> Result<Option<Aggregation>> {
        self.session
            .take()
            .map(|s| {
                s.into_inner().map_err(|_| exec_datafusion_err!("{}: a session lock was poisoned", self.spec.name))
            })
            .transpose()
    }

    /// Gives every group without an accumulator one, from a filtered-out row.
    fn fill_unseen(&mut self) -> Result<()> {
        let unseen: Vec<usize> = (0..self.seen.len()).filter(|&g| !self.seen[g]).collect();
        if unseen.is_empty() {
            return Ok(());
        }
        let n = unseen.len();
        let values: Vec<ArrayRef> = self.spec.arg_types.iter().map(|t| new_null_array(t, n)).collect();
        let total = self.seen.len();
        self.update(&values, &unseen, Some(&BooleanArray::from(vec![false; n])), total)
    }

    /// Every group's value, in group order; the session ends.
    fn values(&mut self) -> Result<ArrayRef> {
        self.fill_unseen()?;
        let groups = std::mem::take(&mut self.seen).len();
        let Some(session) = self.take_session()? else { return Ok(new_empty_array(&self.spec.result_type)) };
        let finished = session.finish().map_err(|e| self.spec.failed(e))?;
        let (values, rows) = group_rows(&finished, groups)?;
        // Impossible unless a worker lost a group: every group was given an accumulator above.
        if let Some(g) = rows.iter().position(Option::is_none) {
            return exec_err!("{}: group {g} has no value", self.spec.name);
        }
        Ok(compute::take(values.as_ref(), &UInt32Array::from(rows), None)?)
    }

    /// Every group's pickled accumulator, in group order (null for a group that has none); the
    /// session ends.
    fn states(&mut self) -> Result<ArrayRef> {
        let groups = std::mem::take(&mut self.seen).len();
        let Some(session) = self.take_session()? else { return Ok(new_null_array(&DataType::Binary, groups)) };
        let partials = session.finish_partials().map_err(|e| self.spec.failed(e))?;
        in_group_order(&partials, groups)
    }

    /// Emits the first `n` groups with `emit` (values or states) and keeps the others, their indices
    /// shifted down by `n`, in a fresh session: the groups travel as partial accumulators, so this
    /// needs the function's `merge` (DataFusion asks it only of ordered input, or under memory
    /// pressure).
    fn emit_first(&mut self, n: usize, emit: fn(&mut Self) -> Result<ArrayRef>) -> Result<ArrayRef> {
        let groups = std::mem::take(&mut self.seen).len();
        let partials = match self.take_session()? {
            Some(session) => Some(session.finish_partials().map_err(|e| self.spec.failed(e))?),
            None => None,
        };
        let mut first = Groups::new(self.spec.clone());
        first.note_groups(n.min(groups));
        if let Some(partials) = partials {
            // (rows of `partials`, their groups) for the first `n` groups, and for the rest shifted.
            let (mut head, mut tail) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
            for (row, &g) in partials.column(0).as_primitive::<Int64Type>().values().iter().enumerate() {
                let (side, g) = if (g as usize) < n { (&mut head, g as usize) } else { (&mut tail, g as usize - n) };
                side.0.push(row as u32);
                side.1.push(g);
            }
            let states = |rows: Vec<u32>| compute::take(partials.column(1).as_ref(), &UInt32Array::from(rows), None);
            first.merge(&states(head.0)?, &head.1, n.min(groups))?;
            self.merge(&states(tail.0)?, &tail.1, groups.saturating_sub(n))?;
        }
        self.note_groups(groups.saturating_sub(n));
        emit(&mut first)
    }

    fn emit(&mut self, emit_to: EmitTo, emit: fn(&mut Self) -> Result<ArrayRef>) -> Result<ArrayRef> {
        match emit_to {
            EmitTo::First(n) if n < self.seen.len() => self.emit_first(n, emit),
            _ => emit(self),
        }
    }
}

/// Each group's row of `batch` (group index in column 0), for groups `0..groups`.
fn group_rows(batch: &RecordBatch, groups: usize) -> Result<(ArrayRef, Vec<Option<u32>>)> {
    let keys = batch.column(0).as_primitive::<Int64Type>();
    let mut rows = vec![None; groups];
    for (row, &g) in keys.values().iter().enumerate() {
        match usize::try_from(g).ok().and_then(|g| rows.get_mut(g)) {
            Some(slot) => *slot = Some(row as u32),
            None => return exec_err!("a worker answered for group {g}, of {groups}"),
        }
    }
    Ok((batch.column(batch.num_columns() - 1).clone(), rows))
}

/// The last column of `batch` (group index in column 0) in group order; null for a missing group.
fn in_group_order(batch: &RecordBatch, groups: usize) -> Result<ArrayRef> {
    let (values, rows) = group_rows(batch, groups)?;
    Ok(compute::take(values.as_ref(), &UInt32Array::from(rows), None)?)
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.update(values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.emit(emit_to, Self::values)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to, Self::states)?])
    }

    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        let states = values.first().ok_or_else(|| exec_datafusion_err!("{}: no state column", self.spec.name))?;
        self.merge(states, group_indices, total_num_groups)
    }

    fn convert_to_state(&self, _values: &[ArrayRef], _opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        not_impl_err!(
            "{}: rows as partial states (asked only where supports_convert_to_state says yes)",
            self.spec.name
        )
    }

    fn size(&self) -> usize {
        // The accumulators live in the workers.
        std::mem::size_of_val(self) + self.seen.capacity()
    }
}

/// An aggregate without GROUP BY: one group (index 0).
#[derive(Debug)]
struct OneGroup {
    groups: Groups,
    /// The value once evaluated (the session has ended).
    value: Option<ScalarValue>,
}

impl OneGroup {
    fn not_after_evaluate(&self) -> Result<()> {
        if self.value.is_some() {
            return not_impl_err!(
                "{}: more rows after its value was taken (a udfpool aggregate as a window function): not yet",
                self.groups.spec.name
            );
        }
        Ok(())
    }
}

impl Accumulator for OneGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.not_after_evaluate()?;
        let n = values.first().map_or(0, |v| v.len());
        self.groups.update(values, &vec![0; n], None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if let Some(v) = &self.value {
            return Ok(v.clone());
        }
        self.groups.note_groups(1);
        let value = ScalarValue::try_from_array(&self.groups.values()?, 0)?;
        self.value = Some(value.clone());
        Ok(value)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.not_after_evaluate()?;
        self.groups.note_groups(1);
        Ok(vec![ScalarValue::try_from_array(&self.groups.states()?, 0)?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.not_after_evaluate()?;
        let states =
            states.first().ok_or_else(|| exec_datafusion_err!("{}: no state column", self.groups.spec.name))?;
        self.groups.merge(states, &vec![0; states.len()], 1)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.groups.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Groups {
        let udf = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/udfs.py:total");
        let settings = PoolSettings::default().config("python.execution-mode", "thread");
        Groups::new(PythonUdaf::new("total", udf, settings).spec(&[DataType::Int64], DataType::Int64))
    }

    fn ints(values: &[i64]) -> Vec<ArrayRef> {
        vec![Arc::new(Int64Array::from(values.to_vec()))]
    }

    fn values(a: &ArrayRef) -> Vec<i64> {
        a.as_primitive::<Int64Type>().values().to_vec()
    }

    /// `EmitTo::First(n)` (DataFusion's ordered or memory-pressed aggregation) emits the first `n`
    /// groups, values or states, and keeps the rest under indices shifted down by `n`.
    #[test]
    fn emitting_the_first_groups_keeps_the_others_shifted() {
        let mut g = groups();
        g.update(&ints(&[1, 2, 3, 4, 5, 6]), &[0, 1, 2, 1, 0, 3], None, 4).unwrap();
        assert_eq!(values(&g.evaluate(EmitTo::First(1)).unwrap()), [6]);
        // Old groups 1, 2, 3 are now 0, 1, 2; more rows for the new 0 and a new group 3.
        g.update(&ints(&[10, 100]), &[0, 3], None, 4).unwrap();
        let states = g.state(EmitTo::First(2)).unwrap().remove(0);
        assert_eq!(states.len(), 2);
        // What was kept: old group 3 (6) and the new one (100).
        assert_eq!(values(&g.evaluate(EmitTo::All).unwrap()), [6, 100]);
        // The emitted states merge into another aggregate's groups.
        let mut other = groups();
        other.merge_batch(&[states], &[1, 0], 2).unwrap();
        assert_eq!(values(&other.evaluate(EmitTo::All).unwrap()), [3, 16]);
        // Emptied: a fresh start.
        assert_eq!(values(&g.evaluate(EmitTo::All).unwrap()), Vec::<i64>::new());
    }

    /// A FILTER that keeps none of a group's rows still gives the group the function's value for no
    /// rows; a group DataFusion knows of that got no row at all gets the same.
    #[test]
    fn filtered_out_and_unseen_groups_get_the_value_of_no_rows() {
        let mut g = groups();
        let keep = BooleanArray::from(vec![Some(true), Some(false), None]);
        g.update(&ints(&[1, 2, 3]), &[0, 1, 1], Some(&keep), 3).unwrap();
        assert_eq!(values(&g.evaluate(EmitTo::All).unwrap()), [1, 0, 0]);
    }
}
