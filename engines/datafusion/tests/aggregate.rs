//! udfpool aggregates in DataFusion queries, in both modes and over one and several partitions (so
//! through DataFusion's partial and final aggregates, whose states are pickled accumulators): results
//! equal DataFusion's own aggregates, with GROUP BY or without, FILTER, a lone DISTINCT, a udfpool
//! scalar function inside; what is not supported yet fails with its reason.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::prelude::{CsvReadOptions, SessionConfig, SessionContext};
use udfpool_datafusion::{PoolSettings, PythonUdaf, PythonUdf};

mod common;
use common::*;

async fn context(settings: &PoolSettings, partitions: usize) -> SessionContext {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions));
    let udfs = root().join("examples/udfs.py").display().to_string();
    let tests = root().join("tests/udfs").display().to_string();
    ctx.register_udf(PythonUdf::new("plus_one", format!("{udfs}:plus_one"), settings.clone()).into_udf());
    ctx.register_udaf(PythonUdaf::new("total", format!("{udfs}:total"), settings.clone()).into_udaf());
    // Sum without merge, and a vectorized mean (pandas).
    ctx.register_udaf(PythonUdaf::new("no_merge", format!("{tests}/aggs.py:total"), settings.clone()).into_udaf());
    ctx.register_udaf(PythonUdaf::new("mean", format!("{tests}/vectorized.py:mean"), settings.clone()).into_udaf());
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    ctx.register_csv("t", data.to_str().unwrap(), CsvReadOptions::new()).await.unwrap();
    // The table reads the file when queried: keep it.
    std::mem::forget(dir);
    ctx
}

fn settings(mode: &str) -> PoolSettings {
    PoolSettings::default().config("python.execution-mode", mode).worker_exe(worker_exe())
}

async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, String> {
    match ctx.sql(sql).await {
        Ok(df) => df.collect().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Every row's Int64 columns (nulls as None), checked to be Int64.
fn int_rows(batches: &[RecordBatch]) -> Vec<Vec<Option<i64>>> {
    let mut out = Vec::new();
    for b in batches {
        let columns: Vec<_> = b.columns().iter().map(|c| c.as_primitive::<Int64Type>()).collect();
        for row in 0..b.num_rows() {
            out.push(columns.iter().map(|c| c.is_valid(row).then(|| c.value(row))).collect());
        }
    }
    out
}

/// Each row's pairs of columns (0, 1), (2, 3), ... are equal.
fn assert_pairs_equal(batches: &[RecordBatch], what: &str) -> usize {
    let rows = int_rows(batches);
    for row in &rows {
        for pair in row.chunks(2) {
            assert_eq!(pair[0], pair[1], "{what}: {rows:?}");
        }
    }
    rows.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_equal_datafusions_own_in_both_modes() {
    for mode in MODES {
        for partitions in [1, 4] {
            let what = format!("{mode}, {partitions} partitions");
            let ctx = context(&settings(mode), partitions).await;
            let groups = query(
                &ctx,
                "SELECT total(x) AS a, COALESCE(sum(x), 0) AS b, \
                        total(plus_one(x)) FILTER (WHERE id % 3 = 0) AS c, \
                        COALESCE(sum(x + 1) FILTER (WHERE id % 3 = 0), 0) AS d, \
                        total(id) FILTER (WHERE id < 0) AS e, CAST(0 AS BIGINT) AS f \
                 FROM t GROUP BY name",
            )
            .await
            .unwrap();
            let names = int_rows(&query(&ctx, "SELECT count(DISTINCT name) FROM t").await.unwrap())[0][0].unwrap();
            let null_name = int_rows(&query(&ctx, "SELECT count(*) FROM t WHERE name IS NULL").await.unwrap())[0][0];
            let expected_groups = names as usize + usize::from(null_name != Some(0));
            assert_eq!(assert_pairs_equal(&groups, &what), expected_groups, "{what}");

            // Without GROUP BY: one row, also over no rows (the function's value for none).
            let all = query(&ctx, "SELECT total(x), COALESCE(sum(x), 0) FROM t").await.unwrap();
            assert_eq!(assert_pairs_equal(&all, &what), 1);
            let none = query(&ctx, "SELECT total(x), CAST(0 AS BIGINT) FROM t WHERE id < 0").await.unwrap();
            assert_eq!(assert_pairs_equal(&none, &what), 1);

            // A lone DISTINCT aggregate, which DataFusion plans as a GROUP BY.
            let distinct = query(&ctx, "SELECT total(DISTINCT x), COALESCE(sum(DISTINCT x), 0) FROM t GROUP BY name")
                .await
                .unwrap();
            assert_eq!(assert_pairs_equal(&distinct, &what), expected_groups);
        }
    }
}

/// What is not there yet, or cannot work, fails the query with the reason: a function without `merge`
/// where DataFusion aggregates in two phases, DISTINCT beside other aggregates, an aggregate as a
/// window function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_run_fails_with_its_reason() {
    for mode in MODES {
        let ctx = context(&settings(mode), 4).await;
        let e = query(&ctx, "SELECT name, no_merge(x) FROM t GROUP BY name").await.unwrap_err();
        assert!(e.contains("Sum has no merge method, which merging partial accumulators needs"), "{mode}: {e}");
        let e = query(&ctx, "SELECT total(DISTINCT x), total(x) FROM t GROUP BY name").await.unwrap_err();
        assert!(e.contains("total(DISTINCT ...) with other aggregates: not yet"), "{mode}: {e}");
        let e = query(&ctx, "SELECT total(x) OVER (PARTITION BY name ORDER BY id) FROM t").await.unwrap_err();
        assert!(e.contains("a udfpool aggregate as a window function): not yet"), "{mode}: {e}");
        // One partition: one phase, so no merge is needed.
        let ctx = context(&settings(mode), 1).await;
        let one = query(&ctx, "SELECT no_merge(x), COALESCE(sum(x), 0) FROM t GROUP BY name").await.unwrap();
        assert_pairs_equal(&one, mode);
    }
}

/// A vectorized aggregate (pandas) runs through both phases, its partial state the group's rows: the
/// mean of each group equals DataFusion's avg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectorized_aggregates_equal_datafusions_avg() {
    let python = venv_python(&["numpy", "pandas"]);
    for mode in MODES {
        let ctx = context(&settings(mode).config("python.executable", &python), 4).await;
        let batches = query(&ctx, "SELECT mean(x), avg(x) FROM t GROUP BY name").await.unwrap();
        let mut n = 0;
        for b in &batches {
            let (m, a) = (b.column(0).as_primitive::<Float64Type>(), b.column(1).as_primitive::<Float64Type>());
            for row in 0..b.num_rows() {
                n += 1;
                match (m.is_valid(row).then(|| m.value(row)), a.is_valid(row).then(|| a.value(row))) {
                    (Some(m), Some(a)) => assert!((m - a).abs() <= 1e-9 * a.abs().max(1.0), "{mode}: {m} vs {a}"),
                    // pandas' mean of no values is NaN where SQL's is null.
                    (m, None) => assert!(m.is_none_or(f64::is_nan), "{mode}: {m:?}"),
                    (None, a) => panic!("{mode}: no mean where avg is {a:?}"),
                }
            }
        }
        assert!(n >= 10, "{mode}: {n} groups");
    }
}

/// `udfpool-sql --udaf`: the groups it writes equal DataFusion's sum's.
#[test]
fn the_sql_command_runs_an_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let table = format!("t={}", data(dir.path()).display());
    let run = |sql: &str, out: &std::path::Path| {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_udfpool-sql"))
            .arg(sql)
            .args(["--table", &table, "--udaf"])
            .arg(format!("{}:total", root().join("examples/udfs.py").display()))
            .args(["--mode", "process", "--partitions", "3", "--output"])
            .arg(out)
            .env("UDFPOOL_WORKER", worker_exe())
            .status()
            .unwrap();
        assert!(status.success(), "{sql}");
        std::fs::read_to_string(out).unwrap()
    };
    let got = run("SELECT name, total(x) AS s FROM t GROUP BY name ORDER BY name", &dir.path().join("a.csv"));
    let want =
        run("SELECT name, COALESCE(sum(x), 0) AS s FROM t GROUP BY name ORDER BY name", &dir.path().join("b.csv"));
    assert_eq!(got, want);
    assert!(got.lines().count() > 10, "{got}");
}
