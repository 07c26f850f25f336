//! The plot of a run (SVG, drawn with `plotters`): per node, successful operations per second,
//! failures per second, and the p99 latency of each second, one panel each, with every fault
//! window shaded and labelled and the heal and recovery marked.

use std::path::Path;

use plotters::prelude::*;

use crate::check::stats::{series, Bucket};
use crate::check::Indexed;
use crate::error::ChaosError;
use crate::history::PhaseName;

const WIDTH: u32 = 1400;
const PANEL: u32 = 330;

fn plot_error(e: impl std::fmt::Display) -> ChaosError {
    ChaosError::Plot(e.to_string())
}

/// The shade of a nemesis.
fn shade(kind: &str) -> RGBColor {
    match kind {
        "kill" | "wipe" => RGBColor(90, 90, 90),
        "pause" => RGBColor(40, 90, 220),
        "slow" | "lossy" => RGBColor(230, 140, 0),
        _ => RGBColor(220, 40, 40),
    }
}

fn node_color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 7] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
    ];
    COLORS[i % COLORS.len()]
}

/// One panel's metric.
#[derive(Clone, Copy)]
enum Metric {
    Ok,
    Failed,
    P99,
}

impl Metric {
    fn title(self) -> &'static str {
        match self {
            Metric::Ok => "successful operations per second, per node",
            Metric::Failed => "failed or unknown operations per second, per node",
            Metric::P99 => "p99 latency of successful operations (ms, log scale), per node",
        }
    }

    fn value(self, bucket: &Bucket) -> Option<f64> {
        match self {
            Metric::Ok => Some(bucket.ok as f64),
            Metric::Failed => Some(bucket.failed as f64),
            Metric::P99 => bucket.p99_ms,
        }
    }
}

/// Draws `plot.svg` for a history.
pub fn draw(history: &Indexed, path: &Path) -> Result<(), ChaosError> {
    let per_node = series(history, 1_000_000);
    let seconds = per_node.values().map(Vec::len).max().unwrap_or(1).max(1) as f64;
    let root = SVGBackend::new(path, (WIDTH, PANEL * 3 + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (title, body) = root.split_vertically(40);
    title
        .draw_text(
            &format!(
                "seed {}: {} nodes, N={}, R={} W={} ({} / {}); shaded: fault windows",
                history.meta.seed,
                history.meta.nodes.len(),
                history.meta.replication,
                history.meta.read_quorum,
                history.meta.write_quorum,
                history.meta.read_level,
                history.meta.write_level
            ),
            &("sans-serif", 18).into_font().color(&BLACK),
            (10, 12),
        )
        .map_err(plot_error)?;
    let panels = body.split_evenly((3, 1));
    for (area, metric) in panels.iter().zip([Metric::Ok, Metric::Failed, Metric::P99]) {
        panel(history, &per_node, area, metric, seconds)?;
    }
    root.present().map_err(plot_error)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn panel(
    history: &Indexed,
    per_node: &std::collections::BTreeMap<String, Vec<Bucket>>,
    area: &Area,
    metric: Metric,
    seconds: f64,
) -> Result<(), ChaosError> {
    let top = per_node
        .values()
        .flatten()
        .filter_map(|b| metric.value(b))
        .fold(1.0f64, f64::max);
    match metric {
        Metric::P99 => {
            let mut chart = ChartBuilder::on(area)
                .caption(metric.title(), ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..seconds, (0.1f64..top * 1.5).log_scale())
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc("seconds since the workload started")
                .y_desc("ms")
                .light_line_style(WHITE)
                .draw()
                .map_err(plot_error)?;
            windows(history, &mut chart, 0.1, top * 1.5)?;
            lines(per_node, &mut chart, metric)?;
            legend(&mut chart)
        }
        _ => {
            let mut chart = ChartBuilder::on(area)
                .caption(metric.title(), ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..seconds, 0f64..top * 1.15)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc("seconds since the workload started")
                .y_desc("ops/s")
                .light_line_style(WHITE)
                .draw()
                .map_err(plot_error)?;
            windows(history, &mut chart, 0.0, top * 1.15)?;
            lines(per_node, &mut chart, metric)?;
            legend(&mut chart)
        }
    }
}

type Chart<'a, 'b, Y> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>;

/// Shades each fault window and labels it; marks the heal and the recovery.
fn windows<Y>(
    history: &Indexed,
    chart: &mut Chart<'_, '_, Y>,
    low: f64,
    high: f64,
) -> Result<(), ChaosError>
where
    Y: Ranged<ValueType = f64>,
{
    let start = history
        .phases
        .get(&PhaseName::WorkloadStart)
        .copied()
        .unwrap_or(0) as f64
        / 1e6;
    let _ = start;
    for fault in &history.faults {
        let (a, b) = (fault.start_us as f64 / 1e6, fault.end_us as f64 / 1e6);
        let color = shade(&fault.kind);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a, low), (b, high)],
                color.mix(0.12).filled(),
            )))
            .map_err(plot_error)?;
        let label = format!("{} {}", fault.id, fault.kind);
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (a, high),
                ("sans-serif", 12).into_font().color(&color),
            )))
            .map_err(plot_error)?;
    }
    for (name, label) in [
        (PhaseName::Heal, "heal"),
        (PhaseName::Recovered, "recovered"),
    ] {
        if let Some(t) = history.phases.get(&name) {
            let x = *t as f64 / 1e6;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, low), (x, high)],
                    BLACK.mix(0.5).stroke_width(1),
                )))
                .map_err(plot_error)?;
            let y = if matches!(name, PhaseName::Heal) {
                high
            } else {
                low
            };
            chart
                .draw_series(std::iter::once(Text::new(
                    label.to_string(),
                    (x, y),
                    ("sans-serif", 12).into_font().color(&BLACK),
                )))
                .map_err(plot_error)?;
        }
    }
    Ok(())
}

fn lines<Y>(
    per_node: &std::collections::BTreeMap<String, Vec<Bucket>>,
    chart: &mut Chart<'_, '_, Y>,
    metric: Metric,
) -> Result<(), ChaosError>
where
    Y: Ranged<ValueType = f64>,
{
    for (i, (node, buckets)) in per_node.iter().enumerate() {
        let color = node_color(i);
        // p99 has no value in a second without successes: the line breaks there.
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (second, bucket) in buckets.iter().enumerate() {
            match metric.value(bucket) {
                Some(v) => segments
                    .last_mut()
                    .map(|s| s.push((second as f64 + 0.5, v)))
                    .unwrap_or(()),
                None => segments.push(Vec::new()),
            }
        }
        let mut first = true;
        for segment in segments.into_iter().filter(|s| !s.is_empty()) {
            let drawn = chart
                .draw_series(LineSeries::new(segment, color.stroke_width(1)))
                .map_err(plot_error)?;
            if first {
                drawn.label(node.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
                first = false;
            }
        }
    }
    Ok(())
}

fn legend<'a, Y>(chart: &mut Chart<'a, 'a, Y>) -> Result<(), ChaosError>
where
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(plot_error)
}
