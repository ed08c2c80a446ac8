//! Aggregate functions in both modes, with one and several workers: per-group results equal a plain
//! reference, whatever worker each group lived in; bad declarations and failures are clear errors.

mod common;

use common::*;
use host::{Mode, Pool, PoolBuilder};
use ipc::batch::{DataType, Field, RecordBatch, Schema, Value};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::BTreeMap;

fn schema() -> Schema {
    Schema::new(vec![Field::new("k", DataType::Utf8), Field::new("x", DataType::Int64)])
}

fn aggs(name: &str, mode: Mode, workers: usize) -> PoolBuilder {
    Pool::builder(format!("{}:{name}", udf_file("aggs.py")), schema())
        .mode(mode)
        .workers(workers)
        .worker_exe(worker_exe())
        .group_by(["k"])
        .args(["x"])
}

fn batch(rows: &[(Option<&str>, Option<i64>)]) -> RecordBatch {
    let values: Vec<Vec<Value>> = rows
        .iter()
        .map(|(k, x)| vec![k.map_or(Value::Null, |k| Value::Utf8(k.into())), x.map_or(Value::Null, Value::Int64)])
        .collect();
    RecordBatch::from_rows(schema(), &values).unwrap()
}

fn sorted(b: &RecordBatch) -> Vec<Vec<Value>> {
    let mut rows = b.to_rows();
    rows.sort_by_key(|r| format!("{r:?}"));
    rows
}

#[test]
fn groups_equal_a_reference_in_every_mode_and_worker_count() {
    const KEYS: [Option<&str>; 5] = [Some("a"), Some("b"), Some("c"), Some("é"), None];
    let row = (0usize..KEYS.len(), prop_oneof![1 => Just(None), 5 => (-100i64..100).prop_map(Some)]);
    let batches = proptest::collection::vec(proptest::collection::vec(row, 0..25), 1..5);
    let mut runner = TestRunner::new(Config { cases: 12, failure_persistence: None, ..Config::default() });
    runner
        .run(&batches, |batches| {
            let mut reference: BTreeMap<String, (Value, i64)> = BTreeMap::new();
            for (k, x) in batches.iter().flatten() {
                let key = KEYS[*k].map_or(Value::Null, |k| Value::Utf8(k.into()));
                reference.entry(format!("{key:?}")).or_insert((key, 0)).1 += x.unwrap_or(0);
            }
            let mut expected: Vec<Vec<Value>> =
                reference.into_values().map(|(k, sum)| vec![k, Value::Int64(sum)]).collect();
            expected.sort_by_key(|r| format!("{r:?}"));
            for mode in MODES {
                for workers in [1, 3] {
                    let mut agg = aggs("total", mode, workers).build_aggregate().unwrap();
                    for b in &batches {
                        let rows: Vec<_> = b.iter().map(|(k, x)| (KEYS[*k], *x)).collect();
                        agg.push(arrow(batch(&rows))).unwrap();
                    }
                    let out = agg.finish().map(native).unwrap();
                    prop_assert_eq!(out.schema().fields[1].name.as_str(), "result");
                    prop_assert_eq!(sorted(&out), expected.clone(), "{} x{}", mode, workers);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn row_results_classes_and_a_global_aggregate() {
    for mode in MODES {
        let mut agg = aggs("stats", mode, 2).output_column("s").build_aggregate().unwrap();
        agg.push(arrow(batch(&[(Some("a"), Some(3)), (Some("b"), None), (Some("a"), Some(9))]))).unwrap();
        let out = agg.finish().map(native).unwrap();
        assert_eq!(out.schema().fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["k", "s"]);
        let s = |n, m: Option<i64>| Value::Struct(vec![Value::Int64(n), m.map_or(Value::Null, Value::Int64)]);
        assert_eq!(
            sorted(&out),
            vec![vec![Value::Utf8("a".into()), s(2, Some(9))], vec![Value::Utf8("b".into()), s(1, None)]],
            "{mode}"
        );
        // No key columns: one group of every row.
        let mut global = Pool::builder(format!("{}:total", udf_file("aggs.py")), schema())
            .mode(mode)
            .workers(2)
            .worker_exe(worker_exe())
            .args(["x"])
            .build_aggregate()
            .unwrap();
        global.push(arrow(batch(&[(Some("a"), Some(3)), (None, Some(4))]))).unwrap();
        global.push(arrow(batch(&[(Some("b"), Some(5))]))).unwrap();
        assert_eq!(global.finish().map(native).unwrap().to_rows(), vec![vec![Value::Int64(12)]], "{mode}");
        // No key columns and no arguments (COUNT(*)): every row counts.
        let mut count = Pool::builder(format!("{}:count_rows", udf_file("aggs.py")), schema())
            .mode(mode)
            .workers(2)
            .worker_exe(worker_exe())
            .args(Vec::<String>::new())
            .build_aggregate()
            .unwrap();
        count.push(arrow(batch(&[(Some("a"), Some(3)), (None, Some(4))]))).unwrap();
        count.push(arrow(batch(&[(Some("b"), Some(5))]))).unwrap();
        assert_eq!(count.finish().map(native).unwrap().to_rows(), vec![vec![Value::Int64(3)]], "{mode}");
    }
}

#[test]
fn bad_declarations_and_failures_are_clear_errors() {
    for mode in MODES {
        let e = Pool::builder(format!("{}:no_value", udf_file("aggs_bad.py")), schema())
            .mode(mode)
            .worker_exe(worker_exe())
            .build_aggregate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("NoValue must define get_value()"), "{mode}: {e}");
        let e = aggs("total", mode, 1).build().unwrap_err().to_string();
        assert!(e.contains("is an aggregate function: start it with build_aggregate"), "{mode}: {e}");
        let e = Pool::builder(format!("{}:plus_one", udf_file("types.py")), schema())
            .mode(mode)
            .worker_exe(worker_exe())
            .group_by(["k"])
            .args(["x"])
            .build_aggregate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("only aggregate functions group rows"), "{mode}: {e}");
        let mut agg = aggs("fails", mode, 2).build_aggregate().unwrap();
        let e = agg.push(arrow(batch(&[(Some("a"), Some(1)), (Some("b"), Some(13))]))).unwrap_err().to_string();
        assert!(e.contains("ValueError: 13 is unlucky"), "{mode}: {e}");
    }
}

/// A worker SIGKILLed between two batches takes its groups' accumulators with it: the replacement
/// rebuilds them from the parts the dead one had finished, so every group comes out exact. With the
/// replay switched off (`udfpool.stream-replay-rows=0`) the aggregation fails and says so, rather than
/// give groups with rows missing.
#[test]
fn a_dead_worker_is_replayed_or_fails_the_aggregation_loudly() {
    for replay_rows in ["1000000", "0"] {
        let mut agg = aggs("total", Mode::Process, 2)
            .config("udfpool.stream-replay-rows", replay_rows)
            .build_aggregate()
            .unwrap();
        let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let rows: Vec<(Option<&str>, Option<i64>)> = keys.iter().map(|k| (Some(k.as_str()), Some(1))).collect();
        agg.push(arrow(batch(&rows))).unwrap();
        let pid = agg.info().pids[0];
        // SAFETY: kill(2) on a pid this test's pool started; no memory is involved.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        assert!(eventually(std::time::Duration::from_secs(5), || !process_alive(pid)));
        let result = agg.push(arrow(batch(&rows))).and_then(|()| agg.finish().map(native));
        match (replay_rows, result) {
            ("0", result) => {
                let err = result.unwrap_err().to_string();
                assert!(err.contains("accumulators of its groups"), "{err}");
            }
            (_, result) => {
                let groups = result.unwrap().to_rows();
                assert_eq!(groups.len(), 40);
                assert!(groups.iter().all(|g| g[1] == Value::Int64(2)), "every group counts both batches: {groups:?}");
            }
        }
    }
}

fn changelog_schema() -> Schema {
    Schema::new(vec![
        Field::new("k", DataType::Utf8),
        Field::new("x", DataType::Int64),
        Field::new("keep", DataType::Bool),
        Field::new("op", DataType::Utf8),
    ])
}

/// Rows of (key, x, keep, row kind).
fn changelog(rows: &[(&str, i64, bool, &str)]) -> RecordBatch {
    let values: Vec<Vec<Value>> = rows
        .iter()
        .map(|&(k, x, keep, op)| {
            vec![Value::Utf8(k.into()), Value::Int64(x), Value::Bool(keep), Value::Utf8(op.into())]
        })
        .collect();
    RecordBatch::from_rows(changelog_schema(), &values).unwrap()
}

/// The semantics `sum_count` should have under DISTINCT, FILTER and retractions, written apart from
/// the runtime: a group exists from its first accumulating row until its rows are all retracted (a
/// retraction for a missing group is dropped); only rows whose `keep` is true reach the function;
/// under DISTINCT, a value is accumulated when its first copy arrives and retracted when its last goes.
fn changelog_reference(
    rows: &[(&str, i64, bool, &str)],
    distinct: bool,
    filter: bool,
    retracts: bool,
) -> Vec<Vec<Value>> {
    #[derive(Default)]
    struct Group {
        rows: i64,
        copies: BTreeMap<i64, i64>,
        n: i64,
        total: i64,
    }
    let mut groups: BTreeMap<&str, Group> = BTreeMap::new();
    for &(k, x, keep, op) in rows {
        let retract = retracts && (op == "-U" || op == "-D");
        if retract && !groups.contains_key(k) {
            continue;
        }
        let g = groups.entry(k).or_default();
        g.rows += if retract { -1 } else { 1 };
        if !filter || keep {
            let sign = if retract { -1 } else { 1 };
            let copies = g.copies.entry(x).or_default();
            let before = *copies;
            *copies = (before + sign).max(0);
            if !distinct || (retract && before == 1) || (!retract && before == 0) {
                g.n += sign;
                g.total += sign * x;
            }
        }
        if g.rows == 0 {
            groups.remove(k);
        }
    }
    groups
        .into_iter()
        .map(|(k, g)| vec![Value::Utf8(k.into()), Value::Struct(vec![Value::Int64(g.n), Value::Int64(g.total)])])
        .collect()
}

/// The groups `builder`'s aggregate makes of `batches` of changelog rows, sorted.
fn aggregate_changelog(builder: PoolBuilder, batches: &[Vec<(&str, i64, bool, &str)>]) -> Vec<Vec<Value>> {
    let mut agg = builder.build_aggregate().unwrap();
    for rows in batches {
        agg.push(arrow(changelog(rows))).unwrap();
    }
    sorted(&agg.finish().map(native).unwrap())
}

/// SQL's `agg(DISTINCT x) FILTER (WHERE keep)` over a changelog (`op`: Flink's row kinds), each option
/// alone and together, equal the reference in both modes with 1 and 3 workers.
#[test]
fn distinct_filter_and_retractions_equal_a_reference() {
    let kinds = prop_oneof![3 => Just("+I"), 1 => Just("-D"), 1 => Just("-U"), 1 => Just("+U")];
    let row = (0usize..3, 0i64..5, proptest::bool::weighted(0.7), kinds);
    let batches = proptest::collection::vec(proptest::collection::vec(row, 0..30), 1..4);
    let mut runner = TestRunner::new(Config { cases: 6, failure_persistence: None, ..Config::default() });
    runner
        .run(&batches, |batches| {
            let batches: Vec<Vec<(&str, i64, bool, &str)>> = batches
                .iter()
                .map(|b| b.iter().map(|&(k, x, keep, op)| (["a", "b", "c"][k], x, keep, op)).collect())
                .collect();
            let all: Vec<_> = batches.iter().flatten().copied().collect();
            for (distinct, filter, retracts) in
                [(false, false, true), (true, false, false), (false, true, true), (true, true, true)]
            {
                let expected = changelog_reference(&all, distinct, filter, retracts);
                for mode in MODES {
                    for workers in [1, 3] {
                        let mut b = Pool::builder(format!("{}:sum_count", udf_file("aggs.py")), changelog_schema())
                            .mode(mode)
                            .workers(workers)
                            .worker_exe(worker_exe())
                            .group_by(["k"])
                            .args(["x"])
                            .distinct(distinct);
                        if filter {
                            b = b.filter_column("keep");
                        }
                        if retracts {
                            b = b.row_kind_column("op");
                        }
                        let got = aggregate_changelog(b, &batches);
                        let what =
                            format!("{mode} x{workers}, distinct {distinct}, filter {filter}, retracts {retracts}");
                        prop_assert_eq!(got, expected.clone(), "{}", what);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

/// A retracting input needs `retract`; a row kind must be one of Flink's; the filter column must be
/// BOOLEAN; these options are for aggregates only; a vectorized aggregate filters and takes DISTINCT
/// values but cannot retract.
#[test]
fn changelog_options_refuse_what_cannot_work() {
    for mode in MODES {
        let builder = |name: &str| {
            Pool::builder(format!("{}:{name}", udf_file("aggs.py")), changelog_schema())
                .mode(mode)
                .workers(2)
                .worker_exe(worker_exe())
                .group_by(["k"])
                .args(["x"])
        };
        let e = builder("total").row_kind_column("op").build_aggregate().unwrap_err().to_string();
        assert!(e.contains("Sum has no retract method, and the input retracts rows"), "{mode}: {e}");
        let mut agg = builder("sum_count").row_kind_column("op").build_aggregate().unwrap();
        agg.push(arrow(changelog(&[("a", 1, true, "+I")]))).unwrap();
        let e = agg.push(arrow(changelog(&[("a", 1, true, "+I"), ("b", 2, true, "upsert")]))).unwrap_err().to_string();
        assert!(e.contains("row 2 of the input: column \"op\" holds \"upsert\", not a row kind"), "{mode}: {e}");
        let e = builder("sum_count").filter_column("op").build_aggregate().unwrap_err().to_string();
        assert!(e.contains("column \"op\" to filter by is utf8, not bool"), "{mode}: {e}");
        let e = Pool::builder(format!("{}:plus_one", udf_file("types.py")), changelog_schema())
            .mode(mode)
            .worker_exe(worker_exe())
            .args(["x"])
            .distinct(true)
            .build()
            .unwrap_err()
            .to_string();
        assert!(e.contains("are for aggregates"), "{mode}: {e}");
    }
}

/// Partial accumulators move between aggregations of one function, as an engine that aggregates in
/// two phases (DataFusion) moves them between partitions: each of several aggregations takes a part of
/// the input and gives its groups' pickled accumulators; another merges them all (a key arrives from
/// several) and its groups equal the reference, in both modes, whatever the workers on either side.
/// A function without `merge` is refused with the reason when partials meet.
#[test]
fn partial_accumulators_merge_across_aggregations() {
    let rows = proptest::collection::vec((0usize..3, -50i64..50), 0..30);
    let parts = proptest::collection::vec(rows, 1..4);
    let mut runner = TestRunner::new(Config { cases: 4, failure_persistence: None, ..Config::default() });
    runner
        .run(&parts, |parts| {
            let parts: Vec<Vec<(&str, i64, bool, &str)>> =
                parts.iter().map(|b| b.iter().map(|&(k, x)| (["a", "b", "c"][k], x, true, "+I")).collect()).collect();
            let all: Vec<_> = parts.iter().flatten().copied().collect();
            let expected = changelog_reference(&all, false, false, false);
            for mode in MODES {
                for (partial_workers, final_workers) in [(1, 1), (2, 3)] {
                    let builder = |workers| {
                        Pool::builder(format!("{}:sum_count", udf_file("aggs.py")), changelog_schema())
                            .mode(mode)
                            .workers(workers)
                            .worker_exe(worker_exe())
                            .group_by(["k"])
                            .args(["x"])
                    };
                    let mut merged = builder(final_workers).build_aggregate().unwrap();
                    for part in &parts {
                        let mut agg = builder(partial_workers).build_aggregate().unwrap();
                        agg.push(arrow(changelog(part))).unwrap();
                        let partials = agg.finish_partials().unwrap();
                        prop_assert_eq!(partials.schema().fields().len(), 2);
                        merged.merge(partials).unwrap();
                    }
                    let got = sorted(&merged.finish().map(native).unwrap());
                    prop_assert_eq!(got, expected.clone(), "{} {}->{}", mode, partial_workers, final_workers);
                }
            }
            Ok(())
        })
        .unwrap();
    for mode in MODES {
        let builder = || {
            Pool::builder(format!("{}:total", udf_file("aggs.py")), schema())
                .mode(mode)
                .workers(1)
                .worker_exe(worker_exe())
                .group_by(["k"])
                .args(["x"])
        };
        let mut agg = builder().build_aggregate().unwrap();
        agg.push(arrow(batch(&[(Some("a"), Some(1))]))).unwrap();
        let partials = agg.finish_partials().unwrap();
        let mut merged = builder().build_aggregate().unwrap();
        let e = merged.merge(partials).unwrap_err().to_string();
        assert!(e.contains("Sum has no merge method, which merging partial accumulators needs"), "{mode}: {e}");
        let e = builder().build_aggregate().unwrap().merge(arrow(batch(&[]))).unwrap_err().to_string();
        assert!(e.contains("partial accumulators of schema"), "{mode}: {e}");
    }
}

/// `table.optimizer.agg-phase-strategy=TWO_PHASE`: rows accumulate in whichever worker they land (a
/// hot key is spread over every worker), then the partial accumulators meet by key and `merge`; the
/// groups equal a one-phase run's. A function without `merge`, DISTINCT and a retracting input are
/// refused.
#[test]
fn two_phase_aggregation_merges_partial_accumulators() {
    let rows = proptest::collection::vec((0usize..3, -50i64..50, proptest::bool::ANY), 0..40);
    let batches = proptest::collection::vec(rows, 1..4);
    let mut runner = TestRunner::new(Config { cases: 6, failure_persistence: None, ..Config::default() });
    runner
        .run(&batches, |batches| {
            let batches: Vec<Vec<(&str, i64, bool, &str)>> = batches
                .iter()
                .map(|b| b.iter().map(|&(k, x, keep)| (["a", "b", "c"][k], x, keep, "+I")).collect())
                .collect();
            let all: Vec<_> = batches.iter().flatten().copied().collect();
            for filter in [false, true] {
                let expected = changelog_reference(&all, false, filter, false);
                for mode in MODES {
                    for workers in [1, 3] {
                        let mut b = Pool::builder(format!("{}:sum_count", udf_file("aggs.py")), changelog_schema())
                            .mode(mode)
                            .workers(workers)
                            .worker_exe(worker_exe())
                            .config("table.optimizer.agg-phase-strategy", "TWO_PHASE")
                            .group_by(["k"])
                            .args(["x"]);
                        if filter {
                            b = b.filter_column("keep");
                        }
                        let got = aggregate_changelog(b, &batches);
                        prop_assert_eq!(got, expected.clone(), "{} x{}, filter {}", mode, workers, filter);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    for mode in MODES {
        let builder = |name: &str| {
            Pool::builder(format!("{}:{name}", udf_file("aggs.py")), changelog_schema())
                .mode(mode)
                .workers(2)
                .worker_exe(worker_exe())
                .config("table.optimizer.agg-phase-strategy", "TWO_PHASE")
                .group_by(["k"])
                .args(["x"])
        };
        let e = builder("total").build_aggregate().unwrap_err().to_string();
        assert!(
            e.contains("Sum has no merge method, which table.optimizer.agg-phase-strategy=TWO_PHASE needs"),
            "{mode}: {e}"
        );
        for b in [builder("sum_count").distinct(true), builder("sum_count").row_kind_column("op")] {
            let e = b.build_aggregate().unwrap_err().to_string();
            assert!(e.contains("TWO_PHASE takes neither DISTINCT nor a retracting input"), "{mode}: {e}");
        }
    }
}

/// `udfpool.trace-stages` on an aggregation: the same groups as untraced, and the rows' way to the
/// accumulators (to Python, the groups' `add`) in its stages, in both modes.
#[test]
fn traced_aggregations_give_the_same_groups_and_report_their_stages() {
    let input: Vec<RecordBatch> = (0..4)
        .map(|b| {
            let rows: Vec<(Option<&str>, Option<i64>)> =
                (0..50).map(|i| (Some(["a", "b", "c"][i % 3]), Some((b * 50 + i) as i64))).collect();
            batch(&rows)
        })
        .collect();
    for mode in MODES {
        let groups: Vec<Vec<Vec<Value>>> = [false, true]
            .into_iter()
            .map(|trace| {
                let mut agg =
                    aggs("total", mode, 2).config("udfpool.trace-stages", trace.to_string()).build_aggregate().unwrap();
                for b in &input {
                    agg.push(arrow(b.clone())).unwrap();
                }
                let t = agg.stage_totals();
                if trace {
                    assert_eq!(t.rows, 200, "{mode}");
                    for s in [host::Stage::ToPython, host::Stage::UdfCalls] {
                        assert!(t.ns(s) > 0, "{mode}: {} is empty", s.name());
                    }
                } else {
                    assert_eq!(t.batches, 0, "{mode}");
                }
                sorted(&native(agg.finish().unwrap()))
            })
            .collect();
        assert_eq!(groups[0], groups[1], "{mode}: traced groups differ");
        assert_eq!(groups[0].len(), 3, "{mode}");
    }
}
