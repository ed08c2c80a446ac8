//! `report.md`: the conclusions a reader wants first, then every figure in tables.

use super::{Breakdown, Measurement, Results};
use std::fmt::Write;

pub(super) fn find<'a>(
    r: &'a Results,
    workload: &str,
    mode: &str,
    batch: usize,
    workers: usize,
) -> Option<&'a Measurement> {
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

/// The stages that exist only because of PROCESS mode's transport.
const TRANSPORT: [&str; 9] = [
    "host_encode",
    "ring_write",
    "queued",
    "wake_up",
    "decode",
    "result_encode",
    "ring_back",
    "result_waiting",
    "host_decode",
];

fn us(x: f64) -> String {
    if x >= 1000.0 {
        format!("{:.2} ms", x / 1e3)
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn breakdown_of<'a>(r: &'a Results, workload: &str, mode: &str, batch: usize) -> Option<&'a Breakdown> {
    r.breakdown.iter().find(|b| b.workload == workload && b.mode == mode && b.batch_size == batch)
}

/// One sentence on where PROCESS's extra time goes at `batch`.
fn breakdown_conclusion(r: &Results, workload: &str, batch: usize) -> Option<String> {
    let p = breakdown_of(r, workload, "process", batch)?;
    let t = breakdown_of(r, workload, "thread", batch)?;
    let mut transport: Vec<(&str, f64)> = TRANSPORT.iter().map(|&s| (s, p.stage_us(s))).collect();
    transport.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = transport.iter().map(|x| x.1).sum();
    let top: Vec<String> = transport.iter().take(3).map(|(s, v)| format!("{s} {}", us(*v))).collect();
    let convert = |b: &Breakdown| b.stage_us("to_python") + b.stage_us("from_python");
    Some(format!(
        "  Stage breakdown at batch {batch} (µs per batch, 1 batch in flight): PROCESS's transport stages take {} \
         (largest: {}); conversion to and from Python takes {} in PROCESS and {} in THREAD, the UDF calls {} and {}; \
         THREAD waits {} for the GIL. Traced latency is {:.2}x (PROCESS) and {:.2}x (THREAD) the untraced one.",
        us(total),
        top.join(", "),
        us(convert(p)),
        us(convert(t)),
        us(p.stage_us("udf_calls")),
        us(t.stage_us("udf_calls")),
        us(t.stage_us("gil_wait")),
        p.traced_us_per_batch.median / p.untraced_us_per_batch.median,
        t.traced_us_per_batch.median / t.untraced_us_per_batch.median,
    ))
}

fn breakdown_tables(s: &mut String, r: &Results) {
    if r.breakdown.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "## Stage breakdown (µs per batch, median of {} repeats; 1 worker, 1 batch in flight)\n\n\
         Measured with `udfpool.trace-stages=true`: each stage is timed once per batch on the monotonic clock both \
         processes share. `unaccounted` is traced latency outside every stage (the host's own loop). `untraced` is \
         the latency of the same pool with tracing switched off, interleaved with the traced runs; the difference is \
         what tracing costs, within this machine's noise.\n",
        r.settings.repeats
    );
    for w in &r.settings.workloads {
        let batches: Vec<usize> =
            r.settings.batch_sizes.iter().copied().filter(|&b| breakdown_of(r, w, "process", b).is_some()).collect();
        if batches.is_empty() {
            continue;
        }
        let _ = writeln!(s, "### {w}\n");
        let with_sub = batches.iter().any(|&b| breakdown_of(r, w, "subinterpreter", b).is_some());
        let modes: &[(&str, &str)] = if with_sub {
            &[("thread", "T"), ("process", "P"), ("subinterpreter", "S")]
        } else {
            &[("thread", "T"), ("process", "P")]
        };
        let mut head = String::from("| stage |");
        let mut rule = String::from("|---|");
        for b in &batches {
            for (_, tag) in modes {
                head += &format!(" {tag} {b} |");
                rule += "---:|";
            }
        }
        let _ = writeln!(s, "{head}\n{rule}");
        // DataStream workloads: the host's routing before the worker's stages, its merge after.
        let mut stage_names: Vec<&str> = vec!["route", "gil_wait"];
        stage_names.extend(host::Stage::PROCESS.iter().map(|s| s.name()));
        stage_names.push("merge");
        let row = |label: &str, f: &dyn Fn(&Breakdown) -> Option<f64>| -> String {
            let mut line = format!("| {label} |");
            for &b in &batches {
                for (mode, _) in modes {
                    let v = breakdown_of(r, w, mode, b).and_then(f);
                    line += &format!(" {} |", v.map_or("–".into(), us));
                }
            }
            line
        };
        for name in stage_names {
            let measured = |b: &usize| {
                modes
                    .iter()
                    .any(|(m, _)| breakdown_of(r, w, m, *b).is_some_and(|d| d.stages.iter().any(|x| x.stage == name)))
            };
            if !batches.iter().any(measured) {
                continue;
            }
            let _ = writeln!(
                s,
                "{}",
                row(name, &|b: &Breakdown| b.stages.iter().any(|x| x.stage == name).then(|| b.stage_us(name)))
            );
        }
        let _ = writeln!(s, "{}", row("unaccounted", &|b: &Breakdown| Some(b.unaccounted_us())));
        let _ = writeln!(s, "{}", row("**traced latency**", &|b: &Breakdown| Some(b.traced_us_per_batch.median)));
        let _ = writeln!(s, "{}", row("untraced latency", &|b: &Breakdown| Some(b.untraced_us_per_batch.median)));
        let _ = writeln!(s);
    }
}

/// The batch size peers ran at: the measured one nearest 1024.
pub(super) fn peer_batch(r: &Results) -> usize {
    r.settings.batch_sizes.iter().copied().min_by_key(|b| b.abs_diff(1024)).unwrap_or(1024)
}

/// Every system's figure for `workload` beside the peers': (name, description, measurement), udfpool's
/// THREAD and PROCESS first (1 worker, the peers' batch size), then each peer configuration measured.
pub(super) fn systems<'a>(r: &'a Results, workload: &str) -> Vec<(&'static str, &'static str, &'a Measurement)> {
    let batch = peer_batch(r);
    let udfpool = [
        ("udfpool_thread", "udfpool THREAD: in-process (CPython embedded in the host)"),
        ("udfpool_process", "udfpool PROCESS: out-of-process workers, shared-memory rings"),
    ];
    let mut out: Vec<_> = udfpool
        .iter()
        .zip(["thread", "process"])
        .filter_map(|(&(name, what), mode)| Some((name, what, find(r, workload, mode, batch, 1)?)))
        .collect();
    for (_, config, what) in super::PEER_CONFIGS {
        if let Some(m) = find(r, workload, config, batch, 1) {
            out.push((config, what, m));
        }
    }
    out
}

/// Each system's own pair of ways to run a UDF: (label, first, second); the ratio is second / first.
const PAIRS: [(&str, &str, &str); 5] = [
    ("udfpool PROCESS / THREAD", "udfpool_thread", "udfpool_process"),
    ("DuckDB arrow / native", "duckdb_native", "duckdb_arrow"),
    ("Polars map_batches / map_elements", "polars_elements", "polars_batches"),
    ("PySpark Arrow / pickled", "pyspark_pickled", "pyspark_arrow"),
    ("PyFlink PROCESS / THREAD", "pyflink_thread", "pyflink_process"),
];

/// One sentence per workload on where udfpool stands among the systems, and each system's own pair.
fn peer_conclusion(r: &Results, workload: &str) -> Option<String> {
    if r.peers.iter().all(|p| p.status != "ran") {
        return None;
    }
    let all = systems(r, workload);
    let thread = all.iter().find(|x| x.0 == "udfpool_thread")?.2.rows_per_sec.median;
    let trusted: Vec<_> = all.iter().filter(|x| x.2.flag.is_none() && !x.0.starts_with("udfpool")).collect();
    let mut line = format!("  Beside other systems (batch {}):", peer_batch(r));
    match trusted.iter().max_by(|a, b| a.2.rows_per_sec.median.total_cmp(&b.2.rows_per_sec.median)) {
        Some(best) => {
            let _ = write!(
                line,
                " the fastest other is {} at {} rows/s, {:.2}x udfpool THREAD's {}",
                best.0,
                rate(best.2.rows_per_sec.median),
                best.2.rows_per_sec.median / thread,
                rate(thread)
            );
            let slowest = trusted.iter().min_by(|a, b| a.2.rows_per_sec.median.total_cmp(&b.2.rows_per_sec.median));
            if let Some(w) = slowest.filter(|w| w.0 != best.0) {
                let _ = write!(line, "; the slowest, {}, {:.3}x", w.0, w.2.rows_per_sec.median / thread);
            }
        }
        None => line += " no other system's figure is trustworthy",
    }
    let untrusted = all.iter().filter(|x| x.2.flag.is_some()).count();
    if untrusted > 0 {
        let _ = write!(line, " ({untrusted} figure(s) not trusted, see the table)");
    }
    let pairs: Vec<String> = PAIRS
        .iter()
        .filter_map(|(label, a, b)| {
            let get = |n: &str| all.iter().find(|x| x.0 == n && x.2.flag.is_none()).map(|x| x.2.rows_per_sec.median);
            Some(format!("{label} {:.2}x", get(b)? / get(a)?))
        })
        .collect();
    if !pairs.is_empty() {
        let _ = write!(line, ". Each system's own two ways, in rows/s: {}", pairs.join(", "));
    }
    Some(line + ".")
}

fn peers(s: &mut String, r: &Results) {
    if r.peers.is_empty() {
        return;
    }
    let batch = peer_batch(r);
    let _ = writeln!(
        s,
        "## Beside other systems\n\n\
         Each system calls the workload's own Python function once per value, written the way its users write a \
         UDF; what differs is how values reach Python and come back. A peer's rate is steady-state: the same query \
         at two input sizes, the big one calibrated so the difference lasts about {} s (three times that for \
         PySpark and PyFlink), and per repeat (N_big − N_small) / (T_big − T_small), so a run's start-up (a JVM \
         job, a session) is not charged to the UDF; median (min–max) of {} repeats, one core or worker each, batch \
         {batch} where the system takes one. A figure is not trusted, and its number not printed, when a big run was \
         not slower than its small one, when the steady-state work lasted under {} s, or when the repeats spread \
         over {:.0}%. udfpool's figures are from the tables above (warm pools: steady state too).\n",
        r.settings.peer_seconds,
        r.settings.repeats.max(2),
        super::steady::MIN_STEADY_SECONDS,
        super::steady::MAX_RELATIVE_SPREAD * 100.0,
    );
    for p in &r.peers {
        let version = p.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
        let _ = writeln!(s, "- {}{version}: {}", p.name, p.status);
    }
    let _ = writeln!(s);
    for w in &r.settings.workloads {
        let all = systems(r, w);
        let Some(thread) = all.iter().find(|x| x.0 == "udfpool_thread").map(|x| x.2.rows_per_sec.median) else {
            continue;
        };
        if all.iter().all(|x| x.0.starts_with("udfpool")) {
            continue;
        }
        let _ = writeln!(s, "### {w}\n\n| system | how | rows/s | / udfpool THREAD |\n|---|---|---:|---:|");
        for (name, what, m) in &all {
            let (figure, ratio) = match &m.flag {
                Some(why) => (format!("not trusted: {why}"), "–".to_owned()),
                None => (cell(Some(m)), format!("{:.2}", m.rows_per_sec.median / thread)),
            };
            let _ = writeln!(s, "| {name} | {what} | {figure} | {ratio} |");
        }
        let _ = writeln!(s);
    }
}

/// The report as Markdown; `plots` are the SVG files beside it.
pub fn markdown(r: &Results, plots: &[String]) -> String {
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
            // (batch, PROCESS's extra ns per row, the floor's ns per row, whether the extra is within
            // the repeats' spread).
            let overheads: Vec<(usize, f64, Option<f64>, bool)> = batches
                .iter()
                .filter_map(|&b| {
                    let (t, p) = (find(r, w, "thread", b, one)?, find(r, w, "process", b, one)?);
                    let extra_ns = p.ns_per_row.median - t.ns_per_row.median;
                    let noise_ns = (p.ns_per_row.max - p.ns_per_row.min).max(t.ns_per_row.max - t.ns_per_row.min);
                    let udf_ns = find(r, w, "floor", b, one).map(|f| f.ns_per_row.median);
                    Some((b, extra_ns, udf_ns, extra_ns.abs() <= noise_ns))
                })
                .collect();
            let per_batch: Vec<String> = overheads
                .iter()
                .map(|&(b, extra, _, noise)| match noise {
                    true => format!("within noise at {b}"),
                    false if extra < 0.0 => format!("{:.1} µs less at {b}", -extra * b as f64 / 1e3),
                    false => format!("{:.1} µs at {b}", extra * b as f64 / 1e3),
                })
                .collect();
            let _ = write!(s, ". PROCESS's extra time per batch: {}", per_batch.join(", "));
            match overheads.iter().find(|(_, extra, udf, _)| udf.is_some_and(|u| *extra < 0.1 * u)) {
                Some((b, _, _, _)) => {
                    let _ = write!(s, "; below 10% of the UDF's own cost from batch {b} on");
                }
                None if overheads.iter().any(|o| o.2.is_some()) => {
                    let _ = write!(s, "; not below 10% of the UDF's own cost at any measured batch size");
                }
                None => {}
            }
            let _ = writeln!(s, ".");
        }
        if let Some(line) = subinterpreter_conclusion(r, w, near_1024, one, most) {
            let _ = writeln!(s, "{line}");
        }
        if let Some(line) = breakdown_conclusion(r, w, near_1024) {
            let _ = writeln!(s, "{line}");
        }
        if let Some(line) = peer_conclusion(r, w) {
            let _ = writeln!(s, "{line}");
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
    // SUBINTERPRETER's column only where it ran (builds against CPython 3.12 or newer).
    let with_sub = r.results.iter().any(|m| m.mode == "subinterpreter");
    let modes: &[&str] = if with_sub {
        &["thread", "process", "subinterpreter", "floor", "multiprocessing"]
    } else {
        &["thread", "process", "floor", "multiprocessing"]
    };
    for w in &workloads {
        let _ = writeln!(s, "### {w}\n");
        let _ = writeln!(s, "| batch | workers | {} | process / thread |", modes.join(" | "));
        let _ = writeln!(s, "|---:|---:|{}---:|", "---:|".repeat(modes.len()));
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
    breakdown_tables(&mut s, r);
    peers(&mut s, r);
    if !plots.is_empty() {
        let _ = writeln!(s, "## Plots\n");
        for p in plots {
            let _ = writeln!(s, "![{p}]({p})\n");
        }
    }
    s
}

/// SUBINTERPRETER mode against THREAD with one worker (what it costs without a GIL to share) and with
/// the most workers (what parallel Python gains), where it ran.
fn subinterpreter_conclusion(r: &Results, w: &str, batch: usize, one: usize, most: usize) -> Option<String> {
    let rate = |mode: &str, n: usize| find(r, w, mode, batch, n).map(|m| m.rows_per_sec.median);
    let (s1, t1) = (rate("subinterpreter", one)?, rate("thread", one)?);
    let mut line = format!("  SUBINTERPRETER, batch {batch}: {:.2}x THREAD's rows/s with {one} worker", s1 / t1);
    if most > one {
        if let (Some(sn), Some(tn)) = (rate("subinterpreter", most), rate("thread", most)) {
            line += &format!(
                ", {:.2}x THREAD with {most} (scaling {one} to {most}: SUBINTERPRETER {:.2}x, THREAD {:.2}x)",
                sn / tn,
                sn / s1,
                tn / t1
            );
        }
        if let (Some(sn), Some(pn)) = (rate("subinterpreter", most), rate("process", most)) {
            line += &format!(", {:.2}x PROCESS with {most}", sn / pn);
        }
    }
    Some(line + ".")
}
