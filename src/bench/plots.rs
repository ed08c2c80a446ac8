//! The report's SVG plots, drawn with plotters' SVG backend (text is left to the viewer's fonts, so no
//! font library is needed): rows/s against batch size per mode, the stage breakdown as stacked bars,
//! rows/s against workers per mode, and every system's rows/s beside the peers'. One file per workload
//! and plot.

use super::{Breakdown, Measurement, Results};
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (760, 440);
const FONT: &str = "sans-serif";

/// The colour of each mode's line, the same in every plot.
fn mode_colour(mode: &str) -> RGBColor {
    match mode {
        "thread" => RGBColor(31, 119, 180),
        "process" => RGBColor(214, 39, 40),
        "floor" => RGBColor(90, 90, 90),
        _ => RGBColor(44, 160, 44),
    }
}

/// Thirteen distinguishable colours, one per stage.
const STAGE_COLOURS: [RGBColor; 13] = [
    RGBColor(31, 119, 180),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(255, 127, 14),
    RGBColor(152, 223, 138),
    RGBColor(197, 176, 213),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const UNACCOUNTED: RGBColor = RGBColor(220, 220, 220);

fn stage_colour(stage: &str) -> RGBColor {
    let i = host::Stage::ALL.iter().position(|s| s.name() == stage).unwrap_or(0);
    STAGE_COLOURS[i % STAGE_COLOURS.len()]
}

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a plot: {e}")
}

/// Writes every plot the results support into `dir`; returns their file names, in report order.
pub fn write_all(r: &Results, dir: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for w in &r.settings.workloads {
        let name = format!("rows_per_sec_{w}.svg");
        if rows_per_batch_size(r, w, &dir.join(&name))? {
            written.push(name);
        }
        let name = format!("stages_{w}.svg");
        if stages(r, w, &dir.join(&name))? {
            written.push(name);
        }
        let name = format!("scaling_{w}.svg");
        if scaling(r, w, &dir.join(&name))? {
            written.push(name);
        }
        let name = format!("systems_{w}.svg");
        if systems(r, w, &dir.join(&name))? {
            written.push(name);
        }
    }
    Ok(written)
}

fn series<'a>(r: &'a Results, f: impl Fn(&Measurement) -> bool + 'a) -> impl Iterator<Item = &'a Measurement> + 'a {
    r.results.iter().filter(move |m| f(m))
}

fn y_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    (hi > 0.0).then_some((lo, hi))
}

/// rows/s against rows per batch, log-log, one line per mode, at the fewest workers measured.
fn rows_per_batch_size(r: &Results, workload: &str, path: &Path) -> Result<bool> {
    let workers = r.settings.workers.iter().copied().min().unwrap_or(1);
    let here = |m: &Measurement| m.workload == workload && (m.workers == workers || m.mode == "floor");
    let Some((lo, hi)) = y_range(series(r, here).map(|m| m.rows_per_sec.median)) else { return Ok(false) };
    let (bmin, bmax) = (
        r.settings.batch_sizes.iter().copied().min().unwrap_or(1) as f64,
        r.settings.batch_sizes.iter().copied().max().unwrap_or(1) as f64,
    );
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{workload}: rows/s against batch size ({workers} worker(s))"), (FONT, 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        // y is drawn as log10(rows/s) on a linear axis: plotters' log axis labels only powers of ten,
        // too few when all figures lie within one decade.
        .build_cartesian_2d((bmin * 0.8..bmax * 1.25).log_scale(), (lo * 0.7).log10()..(hi * 1.4).log10())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("rows per batch (log)")
        .y_desc("rows per second (log)")
        .y_labels(8)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| rate(10f64.powf(*y)))
        .draw()
        .map_err(err)?;
    let lines = ["thread", "process", "floor", "multiprocessing"].map(|mode| {
        let points = series(r, |m| here(m) && m.mode == mode)
            .map(|m| (m.batch_size as f64, m.rows_per_sec.median.log10()))
            .collect();
        (mode, points)
    });
    draw_mode_lines(&mut chart, lines.to_vec(), SeriesLabelPosition::LowerRight)?;
    root.present().map_err(err)?;
    Ok(true)
}

/// One stacked bar per batch size and mode: each stage's share of the traced batch latency, with the
/// latency written above the bar.
fn stages(r: &Results, workload: &str, path: &Path) -> Result<bool> {
    let mut bars: Vec<&Breakdown> = r.breakdown.iter().filter(|b| b.workload == workload).collect();
    if bars.is_empty() {
        return Ok(false);
    }
    let tag = |mode: &str| match mode {
        "thread" => "T",
        "process" => "P",
        _ => "S",
    };
    bars.sort_by_key(|b| (b.batch_size, tag(&b.mode)));
    let root = SVGBackend::new(path, (SIZE.0 + 160, SIZE.1)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (left, legend) = root.split_horizontally(SIZE.0);
    let labels: Vec<String> = bars.iter().map(|b| format!("{} {}", tag(&b.mode), b.batch_size)).collect();
    let mut chart = ChartBuilder::on(&left)
        .caption(format!("{workload}: where a batch's time goes (1 worker, 1 batch in flight)"), (FONT, 17))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(56)
        // Integer ranges are inclusive in plotters: 0..n-1 gives n segments.
        .build_cartesian_2d((0..bars.len() - 1).into_segmented(), 0f64..112f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("T = THREAD, P = PROCESS, S = SUBINTERPRETER; rows per batch")
        .y_desc("% of the batch's latency")
        .x_labels(bars.len())
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|y| if *y <= 100.0 { format!("{y:.0}") } else { String::new() })
        .draw()
        .map_err(err)?;
    for (i, b) in bars.iter().enumerate() {
        let total = b.traced_us_per_batch.median.max(1e-9);
        let mut y = 0.0;
        let parts = b
            .stages
            .iter()
            .map(|s| (stage_colour(s.stage), s.us_per_batch.median))
            .chain([(UNACCOUNTED, b.unaccounted_us())]);
        for (colour, us) in parts {
            let h = (us / total * 100.0).min(100.0 - y);
            if h > 0.0 {
                let mut bar =
                    Rectangle::new([(SegmentValue::Exact(i), y), (SegmentValue::Exact(i + 1), y + h)], colour.filled());
                bar.set_margin(0, 0, 8, 8);
                chart.draw_series([bar]).map_err(err)?;
                y += h;
            }
        }
        let label = if total >= 1000.0 { format!("{:.1} ms", total / 1e3) } else { format!("{total:.1} µs") };
        chart.draw_series([Text::new(label, (SegmentValue::Exact(i), 103.0), (FONT, 11))]).map_err(err)?;
    }
    let names: Vec<&str> = host::Stage::ALL
        .iter()
        .map(|s| s.name())
        .filter(|name| bars.iter().any(|b| b.stages.iter().any(|s| s.stage == *name)))
        .collect();
    let mut y = 50;
    for name in names.iter().copied().chain(["unaccounted"]) {
        let colour = if name == "unaccounted" { UNACCOUNTED } else { stage_colour(name) };
        legend.draw(&Rectangle::new([(6, y), (18, y + 12)], colour.filled())).map_err(err)?;
        legend.draw(&Text::new(name.to_owned(), (24, y), (FONT, 13))).map_err(err)?;
        y += 20;
    }
    root.present().map_err(err)?;
    Ok(true)
}

/// rows/s against workers per mode, at the batch size nearest 1024; needs two or more worker counts.
fn scaling(r: &Results, workload: &str, path: &Path) -> Result<bool> {
    let workers = &r.settings.workers;
    if workers.len() < 2 {
        return Ok(false);
    }
    let batch = r.settings.batch_sizes.iter().copied().min_by_key(|b| b.abs_diff(1024)).unwrap_or(1024);
    let here = |m: &Measurement| m.workload == workload && m.batch_size == batch && m.mode != "floor";
    let Some((_, hi)) = y_range(series(r, here).map(|m| m.rows_per_sec.median)) else { return Ok(false) };
    let most = workers.iter().copied().max().unwrap_or(1) as f64;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    draw_scaling(&root, r, workload, batch, most, hi, here)?;
    root.present().map_err(err)?;
    Ok(true)
}

fn draw_scaling(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    r: &Results,
    workload: &str,
    batch: usize,
    most: f64,
    hi: f64,
    here: impl Fn(&Measurement) -> bool,
) -> Result<()> {
    let mut chart = ChartBuilder::on(root)
        .caption(format!("{workload}: rows/s against workers (batch {batch})"), (FONT, 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0.5f64..most + 0.5, 0f64..hi * 1.15)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("workers (threads or processes)")
        .y_desc("rows per second")
        .x_labels(most as usize + 1)
        .x_label_formatter(&|x| if x.fract() == 0.0 { format!("{x:.0}") } else { String::new() })
        .y_label_formatter(&|y| rate(*y))
        .draw()
        .map_err(err)?;
    let lines = ["thread", "process", "multiprocessing"].map(|mode| {
        let points =
            series(r, |m| here(m) && m.mode == mode).map(|m| (m.workers as f64, m.rows_per_sec.median)).collect();
        (mode, points)
    });
    draw_mode_lines(&mut chart, lines.to_vec(), SeriesLabelPosition::UpperLeft)
}

/// A line with dots per mode (modes without points are left out), and the legend.
fn draw_mode_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    lines: Vec<(&'static str, Vec<(f64, f64)>)>,
    legend_at: SeriesLabelPosition,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (mode, mut points) in lines.into_iter().filter(|(_, p)| !p.is_empty()) {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let colour = mode_colour(mode);
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(err)?
            .label(mode)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(legend_at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// One bar per system (udfpool's modes and every trusted peer figure): rows/s on a log axis.
fn systems(r: &Results, workload: &str, path: &Path) -> Result<bool> {
    let bars: Vec<_> = super::report::systems(r, workload).into_iter().filter(|x| x.2.flag.is_none()).collect();
    if bars.iter().all(|x| x.0.starts_with("udfpool")) {
        return Ok(false);
    }
    let Some((lo, hi)) = y_range(bars.iter().map(|x| x.2.rows_per_sec.median)) else { return Ok(false) };
    let root = SVGBackend::new(path, (SIZE.0 + 120, SIZE.1 + 60)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let names: Vec<&str> = bars.iter().map(|x| x.0).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{workload}: rows/s beside other systems (batch {}, log scale)", super::report::peer_batch(r)),
            (FONT, 18),
        )
        .margin(14)
        .x_label_area_size(90)
        .y_label_area_size(64)
        // log10(rows/s) on a linear axis, as in the batch-size plot.
        .build_cartesian_2d((0..bars.len() - 1).into_segmented(), (lo * 0.5).log10()..(hi * 2.0).log10())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc("rows per second (log)")
        .x_labels(bars.len())
        .x_label_style((FONT, 11).into_font().transform(FontTransform::Rotate90))
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => names.get(*i).map(|n| n.to_string()).unwrap_or_default(),
            _ => String::new(),
        })
        .y_labels(8)
        .y_label_formatter(&|y| rate(10f64.powf(*y)))
        .draw()
        .map_err(err)?;
    let floor = (lo * 0.5).log10();
    for (i, (name, _, m)) in bars.iter().enumerate() {
        let colour = if name.starts_with("udfpool") { mode_colour(&name[8..]) } else { RGBColor(127, 127, 127) };
        let top = m.rows_per_sec.median.log10();
        let mut bar =
            Rectangle::new([(SegmentValue::Exact(i), floor), (SegmentValue::Exact(i + 1), top)], colour.filled());
        bar.set_margin(0, 0, 6, 6);
        chart.draw_series([bar]).map_err(err)?;
        let label = rate(m.rows_per_sec.median);
        chart.draw_series([Text::new(label, (SegmentValue::Exact(i), top + 0.02), (FONT, 11))]).map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(true)
}
