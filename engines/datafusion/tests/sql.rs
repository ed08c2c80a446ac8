//! udfpool functions in DataFusion queries, in both modes: results equal DataFusion's own expressions,
//! over several partitions; a function that cannot load fails the query's planning with its reason.

use datafusion::arrow::array::{Array, Int64Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{CsvReadOptions, SessionConfig, SessionContext};
use udfpool_datafusion::{PoolSettings, PythonUdf};

mod common;
use common::*;

async fn context(mode: &str, partitions: usize) -> SessionContext {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions));
    let settings = PoolSettings::default().config("python.execution-mode", mode).workers(2).worker_exe(worker_exe());
    let udfs = root().join("examples/udfs.py");
    for name in ["plus_one", "shout"] {
        ctx.register_udf(PythonUdf::new(name, format!("{}:{name}", udfs.display()), settings.clone()).into_udf());
    }
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    ctx.register_csv("t", data.to_str().unwrap(), CsvReadOptions::new()).await.unwrap();
    // The table reads the file when queried: keep it.
    std::mem::forget(dir);
    ctx
}

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalar_functions_equal_datafusions_own_expressions_in_both_modes() {
    for mode in MODES {
        let ctx = context(mode, 4).await;
        // Row by row, filtered, nulls included.
        let batches = rows(
            &ctx,
            "SELECT plus_one(x) AS a, x + 1 AS b, shout(name) AS c, upper(name) || '!' AS d FROM t WHERE id % 3 <> 1",
        )
        .await;
        let mut n = 0;
        for b in &batches {
            let (a, bb) = (
                b.column(0).as_any().downcast_ref::<Int64Array>().unwrap(),
                b.column(1).as_any().downcast_ref::<Int64Array>().unwrap(),
            );
            let (c, d) = (
                b.column(2).as_any().downcast_ref::<StringArray>().unwrap(),
                b.column(3).as_any().downcast_ref::<StringArray>().unwrap(),
            );
            for i in 0..b.num_rows() {
                assert_eq!(a.is_null(i), bb.is_null(i), "{mode}: row {i}");
                if !a.is_null(i) {
                    assert_eq!(a.value(i), bb.value(i), "{mode}");
                }
                assert_eq!(c.is_null(i), d.is_null(i), "{mode}");
                if !c.is_null(i) {
                    assert_eq!(c.value(i), d.value(i), "{mode}");
                }
            }
            n += b.num_rows();
        }
        assert_eq!(n, 667, "{mode}: 1000 rows, a third filtered out");
        // Inside an aggregate over 4 partitions, which call the function from several threads.
        let sums = rows(&ctx, "SELECT count(*) FROM (SELECT name, sum(plus_one(x)) AS s, sum(x + 1) AS e FROM t GROUP BY name) WHERE s = e").await;
        let equal = sums[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        let groups = rows(&ctx, "SELECT count(DISTINCT name) FROM t").await;
        assert_eq!(equal, groups[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0), "{mode}");
    }
}

#[tokio::test]
async fn a_function_that_cannot_load_fails_planning_with_its_reason() {
    let ctx = SessionContext::new();
    let settings =
        PoolSettings::default().config("python.execution-mode", "thread").workers(1).worker_exe(worker_exe());
    ctx.register_udf(PythonUdf::new("nope", "/no/such/file.py:f", settings).into_udf());
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    ctx.register_csv("t", data.to_str().unwrap(), CsvReadOptions::new()).await.unwrap();
    let err = match ctx.sql("SELECT nope(x) FROM t").await {
        Ok(df) => df.collect().await.unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("nope (/no/such/file.py:f)") && err.contains("/no/such/file.py"), "{err}");
}

/// `udfpool-sql`: a query over a CSV table with a udfpool function, written to JSON Lines.
#[test]
fn the_sql_command_writes_a_query_with_a_udf_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_udfpool-sql"))
        .arg("SELECT id, plus_one(x) AS y FROM t WHERE id < 3 ORDER BY id")
        .arg("--table")
        .arg(format!("t={}", data(dir.path()).display()))
        .arg("--udf")
        .arg(format!("{}:plus_one", root().join("examples/udfs.py").display()))
        .args(["--mode", "process", "--workers", "1", "--output"])
        .arg(&out)
        .env("UDFPOOL_WORKER", worker_exe())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, "{\"id\":0}\n{\"id\":1,\"y\":-191}\n{\"id\":2,\"y\":682}\n", "{text}");
}

/// `udfpool-sql --job`: the query, tables, functions, aggregates and settings from a job file (paths
/// relative to it), flags beside it overriding; an unknown key is refused with its name.
#[test]
fn the_sql_command_takes_a_job_file() {
    let dir = tempfile::tempdir().unwrap();
    data(dir.path());
    std::fs::copy(root().join("examples/udfs.py"), dir.path().join("udfs.py")).unwrap();
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        r#"sql = "SELECT name, total(plus_one(x)) AS s FROM t WHERE id < 6 GROUP BY name ORDER BY name"
output = "out.csv"
partitions = 2
workers = 1

[tables]
t = "data.csv"

[functions]
plus_one = "udfs.py:plus_one"

[aggregates]
total = "udfs.py:total"

[settings]
"python.execution-mode" = "process"
"#,
    )
    .unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_udfpool-sql"))
            .arg("--job")
            .arg(&job)
            .args(extra)
            .env("UDFPOOL_WORKER", worker_exe())
            .output()
            .unwrap()
    };
    for extra in [&[][..], &["--mode", "thread"]] {
        let out = run(extra);
        assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
        // Rows 0..6 of examples/data.csv, each x plus one; linus's only x is null.
        assert_eq!(text, "name,s\ndennis,-560\ngrace,-334\nken,682\nlinus,0\nédith,194\n", "{extra:?}");
    }
    std::fs::write(&job, "sql = \"SELECT 1\"\ntable = {}\n").unwrap();
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unknown field `table`"), "{err}");
}

/// A udfpool table function in FROM with constant arguments, in both modes: its rows are what it
/// yields for them (its columns only), joinable like any table; a non-constant argument and a
/// function that is not a table function are refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_functions_yield_tables_in_both_modes() {
    use udfpool_datafusion::PythonUdtf;
    let kinds = root().join("tests/udfs/kinds.py").display().to_string();
    for mode in MODES {
        let ctx = context(mode, 2).await;
        let settings =
            PoolSettings::default().config("python.execution-mode", mode).config("sep", ";").worker_exe(worker_exe());
        for name in ["explode", "split", "is_even"] {
            let f = PythonUdtf::new(name, format!("{kinds}:{name}"), settings.clone());
            ctx.register_udtf(name, f.into_table_function());
        }
        let b = rows(&ctx, "SELECT i, label FROM explode(8) ORDER BY i").await;
        let i: Vec<i64> = b
            .iter()
            .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
            .collect();
        let label: Vec<String> = b
            .iter()
            .flat_map(|b| {
                b.column(1)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .iter()
                    .map(|s| s.unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!((i, label), (vec![0, 1], vec!["8-0".to_owned(), "8-1".to_owned()]), "{mode}");
        // A job parameter reaches its open(); joined with a table.
        let b = rows(&ctx, "SELECT count(*) FROM t JOIN split('ada;ken') s ON t.name = s.part").await;
        let joined = b[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        let direct = rows(&ctx, "SELECT count(*) FROM t WHERE name IN ('ada', 'ken')").await;
        assert_eq!(joined, direct[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0), "{mode}");
        assert!(joined > 0);
        for (sql, want) in [
            ("SELECT * FROM explode(x)", "argument 1 is x, not a constant"),
            ("SELECT * FROM is_even(2)", "not a table function (declare it with @udtf)"),
        ] {
            let err = match ctx.sql(sql).await {
                Ok(df) => df.collect().await.unwrap_err().to_string(),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(want), "{mode}: {sql}: {err}");
        }
    }
}
