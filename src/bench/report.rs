//! `report.md`: the conclusions a reader wants first, then every figure in tables.

use super::{Measurement, Results};
use std::fmt::Write;

fn find<'a>(r: &'a Results, workload: &str, mode: &str, batch: usize, workers: usize) -> Option<&'a Measurement> {
    r.results.iter().find(|m| m.workload == workload && m.mode == mode && m.batch_size == batch && m.workers == workers)
}

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn cell(m: Option<&Measurement>) -> String {
    match m {
        Some(m) => {
            format!("{} ({}–{})", rate(m.rows_per_sec.median), rate(m.rows_per_sec.min), rate(m.rows_per_sec.max))
        }
        None => "–".into(),
    }
}

/// The report as Markdown.
pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "# udfpool bench report\n");
    let _ = writeln!(
        s,
        "Machine: {} ({} cores), kernel {}; Python {} ({}); udfpool {} (commit {}).\n",
        m.cpu, m.cores, m.kernel, m.python_version, m.python_library, m.udfpool_version, m.git_commit
    );
    let _ = writeln!(
        s,
        "Each figure is the median of {} interleaved repeats, with min–max, in rows per second. `floor` is the same \
         Python function in a list comprehension over a Python list inside the embedded interpreter (no \
         conversion, no transfer); `multiprocessing` is `multiprocessing.Pool(workers).map(f, xs, chunksize=batch)` \
         with warm workers.\n",
        r.settings.repeats
    );
    let workloads: Vec<&String> = r.settings.workloads.iter().collect();
    let batches = &r.settings.batch_sizes;
    let one = r.settings.workers.iter().copied().min().unwrap_or(1);
    let most = r.settings.workers.iter().copied().max().unwrap_or(1);
    let near_1024 = batches.iter().copied().min_by_key(|b| (*b as i64 - 1024).abs()).unwrap_or(1024);

    let _ = writeln!(s, "## Conclusions\n");
    for w in &workloads {
        let t = find(r, w, "thread", near_1024, one);
        let p = find(r, w, "process", near_1024, one);
        let f = find(r, w, "floor", near_1024, one);
        if let (Some(t), Some(p)) = (t, p) {
            let _ = write!(
                s,
                "- **{w}**, batch {near_1024}, {one} worker: PROCESS runs at {:.2}x THREAD's rows/s",
                p.rows_per_sec.median / t.rows_per_sec.median
            );
            if let Some(f) = f {
                let _ = write!(
                    s,
                    "; THREAD costs {:.2}x the Python floor per row",
                    t.ns_per_row.median / f.ns_per_row.median
                );
            }
            // Per-batch overhead of PROCESS over THREAD, and where it drops below 10% of the UDF's cost.
            let overheads: Vec<(usize, f64, Option<f64>)> = batches
                .iter()
                .filter_map(|&b| {
                    let (t, p) = (find(r, w, "thread", b, one)?, find(r, w, "process", b, one)?);
                    let extra_ns = p.ns_per_row.median - t.ns_per_row.median;
                    let udf_ns = find(r, w, "floor", b, one).map(|f| f.ns_per_row.median);
                    Some((b, extra_ns, udf_ns))
                })
                .collect();
            let per_batch: Vec<String> =
                overheads.iter().map(|(b, extra, _)| format!("{:.1} µs at {b}", extra * *b as f64 / 1e3)).collect();
            let _ = write!(s, ". PROCESS's extra time per batch: {}", per_batch.join(", "));
            match overheads.iter().find(|(_, extra, udf)| udf.is_some_and(|u| *extra < 0.1 * u)) {
                Some((b, _, _)) => {
                    let _ = write!(s, "; below 10% of the UDF's own cost from batch {b} on");
                }
                None if overheads.iter().any(|o| o.2.is_some()) => {
                    let _ = write!(s, "; not below 10% of the UDF's own cost at any measured batch size");
                }
                None => {}
            }
            let _ = writeln!(s, ".");
        }
        if most > one {
            let scale = |mode: &str| -> Option<f64> {
                Some(
                    find(r, w, mode, near_1024, most)?.rows_per_sec.median
                        / find(r, w, mode, near_1024, one)?.rows_per_sec.median,
                )
            };
            if let (Some(ts), Some(ps)) = (scale("thread"), scale("process")) {
                let _ = writeln!(
                    s,
                    "  Scaling from {one} to {most} workers (batch {near_1024}): THREAD {ts:.2}x, PROCESS {ps:.2}x{}.",
                    match (find(r, w, "process", near_1024, most), find(r, w, "thread", near_1024, most)) {
                        (Some(p), Some(t)) => format!(
                            "; with {most}, PROCESS is {:.2}x THREAD",
                            p.rows_per_sec.median / t.rows_per_sec.median
                        ),
                        _ => String::new(),
                    }
                );
            }
        }
    }
    let _ = writeln!(s, "\n## Results (rows/s: median (min–max))\n");
    let modes = ["thread", "process", "floor", "multiprocessing"];
    for w in &workloads {
        let _ = writeln!(s, "### {w}\n");
        let _ = writeln!(s, "| batch | workers | thread | process | floor | multiprocessing | process / thread |");
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|");
        for &b in batches {
            for &n in &r.settings.workers {
                let cells: Vec<String> =
                    modes.iter().map(|m| cell(find(r, w, m, b, if *m == "floor" { 1 } else { n }))).collect();
                let ratio = match (find(r, w, "process", b, n), find(r, w, "thread", b, n)) {
                    (Some(p), Some(t)) => format!("{:.2}", p.rows_per_sec.median / t.rows_per_sec.median),
                    _ => "–".into(),
                };
                let _ = writeln!(s, "| {b} | {n} | {} | {ratio} |", cells.join(" | "));
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "Not yet in this report: the per-stage breakdown of PROCESS time, plots, and PyFlink beside udfpool."
    );
    s
}
