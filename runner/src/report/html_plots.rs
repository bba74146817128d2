//! The plots of the HTML report, drawn with `plotters` (SVG backend only, its built-in text
//! layout: no fonts or system libraries): latency histograms (linear and log axis),
//! percentile curves of several versions, and a metric over the kept loops.
//!
//! A result file may hold anything: only finite values of sane size are drawn, and every
//! coordinate is kept inside its axis range (plotters maps a point far outside it to a pixel
//! that overflows `i32`; found by the `result` fuzz target).

use plotters::prelude::*;

use super::view::fmt_num;
use crate::model::Histogram;

/// Series colours (Tableau 10): readable on light and dark backgrounds.
const PALETTE: [(u8, u8, u8); 10] = [
    (78, 121, 167),
    (242, 142, 43),
    (89, 161, 79),
    (225, 87, 89),
    (118, 183, 178),
    (237, 201, 72),
    (176, 122, 161),
    (255, 157, 167),
    (156, 117, 95),
    (186, 176, 172),
];
/// Axis and label colour: mid grey, readable in both colour schemes.
const AXIS: RGBColor = RGBColor(128, 134, 142);
const PLOT_W: u32 = 640;
const PLOT_H: u32 = 280;

pub(super) fn color(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

pub(super) fn css_color(i: usize) -> String {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Insert our attributes into plotters' `<svg` tag and drop the (unneeded in HTML)
/// namespace URL, so the document holds no `http://` at all.
pub(super) fn finish_svg(svg: String, attrs: &str) -> String {
    let svg = svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
    svg.replacen(
        "<svg ",
        &format!("<svg class=\"plot\" role=\"img\" {attrs} "),
        1,
    )
}

pub(super) fn err_str<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draw the axes and grid in the report's style (a macro: plotters' mesh is generic over
/// coordinate types whose bounds are long to spell out).
macro_rules! draw_mesh {
    ($chart:expr, $x_desc:expr, $y_desc:expr, $x_fmt:expr) => {{
        let mut mesh = $chart.configure_mesh();
        mesh.axis_style(AXIS)
            .bold_line_style(AXIS.mix(0.25))
            .light_line_style(TRANSPARENT)
            .label_style(("sans-serif", 13).into_font().color(&AXIS))
            .axis_desc_style(("sans-serif", 14).into_font().color(&AXIS))
            .x_desc($x_desc)
            .y_desc($y_desc)
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter($x_fmt)
            .y_label_formatter(&|y: &f64| fmt_num(*y));
        mesh.draw().map_err(err_str)
    }};
}

/// Bars of one histogram, on a linear or log latency axis.
pub(super) fn histogram_svg(
    hist: &Histogram,
    v: usize,
    log: bool,
    units: &str,
) -> Result<String, String> {
    // Only drawable buckets (a result file may hold anything).
    let buckets: Vec<_> = hist
        .buckets
        .iter()
        .filter(|b| {
            b.count > 0
                && b.lower.is_finite()
                && b.upper.is_finite()
                && b.upper > b.lower
                && b.upper.abs() < 1e15
                && b.lower.abs() < 1e15
                && (!log || b.upper > 0.0)
        })
        .collect();
    if buckets.is_empty() {
        return Err("the histogram has no observations".into());
    }
    // The range of all buckets (stored buckets may come in any order).
    let lowest = buckets.iter().map(|b| b.lower).fold(f64::MAX, f64::min);
    let highest = buckets.iter().map(|b| b.upper).fold(f64::MIN, f64::max);
    let ymax = buckets.iter().map(|b| b.count).max().unwrap_or(1) as f64 * 1.08;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (PLOT_W, PLOT_H)).into_drawing_area();
        let mut builder = ChartBuilder::on(&root);
        builder
            .margin(10)
            .x_label_area_size(42)
            .y_label_area_size(58);
        let fill = color(v).mix(0.85).filled();
        let x_desc = format!("latency ({units}){}", if log { ", log scale" } else { "" });
        // Every bar inside the axis range [lo, hi]: plotters' pixel arithmetic overflows for a
        // point far outside it.
        let bars = |lo: f64, hi: f64| -> Vec<Rectangle<(f64, f64)>> {
            buckets
                .iter()
                .map(|b| {
                    let x = |v: f64| v.clamp(lo, hi);
                    Rectangle::new([(x(b.lower), 0.0), (x(b.upper), b.count as f64)], fill)
                })
                .collect()
        };
        if log {
            let lo = lowest.max(highest * 1e-6).max(1e-6);
            let hi = highest.max(lo * 1.01);
            let mut chart = builder
                .build_cartesian_2d((lo..hi).log_scale().base(2.0), 0f64..ymax)
                .map_err(err_str)?;
            let fmt = |x: &f64| fmt_num(*x);
            draw_mesh!(chart, x_desc.as_str(), "requests", &fmt)?;
            chart.draw_series(bars(lo, hi)).map_err(err_str)?;
        } else {
            let lo = if lowest <= highest * 0.2 { 0.0 } else { lowest };
            // A range wide enough to tell its ends apart at this magnitude.
            let hi = highest.max(lo + lo.abs() * 1e-9 + f64::EPSILON);
            let mut chart = builder
                .build_cartesian_2d(lo..hi, 0f64..ymax)
                .map_err(err_str)?;
            let fmt = |x: &f64| fmt_num(*x);
            draw_mesh!(chart, x_desc.as_str(), "requests", &fmt)?;
            chart.draw_series(bars(lo, hi)).map_err(err_str)?;
        }
        root.present().map_err(err_str)?;
    }
    Ok(svg)
}

/// Percentile curves of several versions on a "nines" axis (0%, 90%, 99%, 99.9%, ...).
pub(super) fn percentiles_svg(
    series: &[(usize, &Histogram)],
    units: &str,
) -> Result<String, String> {
    let max_count = series.iter().map(|(_, h)| h.count).max().unwrap_or(0);
    if max_count == 0 {
        return Err("no observations".into());
    }
    // Up to the percentile the data can resolve (at most 99.99%).
    let nines = ((max_count as f64).log10().floor()).clamp(1.0, 4.0);
    let steps = 160usize;
    let mut curves = Vec::new();
    let mut ymax: f64 = 0.0;
    for (v, hist) in series {
        let pts: Vec<(f64, f64)> = (0..=steps)
            .filter_map(|i| {
                let t = nines * i as f64 / steps as f64;
                let p = 100.0 * (1.0 - 10f64.powf(-t));
                hist.percentile(p.max(0.0)).map(|y| (t, y))
            })
            .collect();
        let pts: Vec<(f64, f64)> = pts
            .into_iter()
            .filter(|p| p.1.is_finite() && p.1.abs() < 1e15)
            .collect();
        ymax = pts.iter().map(|p| p.1).fold(ymax, f64::max);
        curves.push((*v, pts));
    }
    let ymax = if ymax > 0.0 { ymax * 1.08 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (PLOT_W, PLOT_H)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .margin_right(30)
            .x_label_area_size(42)
            .y_label_area_size(58)
            .build_cartesian_2d(0f64..nines, 0f64..ymax)
            .map_err(err_str)?;
        let fmt = |t: &f64| {
            let p = 100.0 * (1.0 - 10f64.powf(-*t));
            format!("{}%", fmt_num((p * 1000.0).round() / 1000.0))
        };
        let mut mesh = chart.configure_mesh();
        mesh.axis_style(AXIS)
            .bold_line_style(AXIS.mix(0.25))
            .light_line_style(TRANSPARENT)
            .label_style(("sans-serif", 13).into_font().color(&AXIS))
            .axis_desc_style(("sans-serif", 14).into_font().color(&AXIS))
            .x_desc("percentile")
            .y_desc(format!("latency ({units})"))
            .x_labels(nines as usize + 1)
            .x_label_formatter(&fmt)
            .y_label_formatter(&|y: &f64| fmt_num(*y))
            .y_labels(6);
        mesh.draw().map_err(err_str)?;
        for (v, pts) in curves {
            chart
                .draw_series(LineSeries::new(pts, color(v).stroke_width(2)))
                .map_err(err_str)?;
        }
        root.present().map_err(err_str)?;
    }
    Ok(svg)
}

/// Values of one metric over the kept loops, one line per version, limit as a line.
pub(super) fn loops_svg(
    series: &[(usize, Vec<(f64, f64)>)],
    limits: &[f64],
    units: &str,
) -> Result<String, String> {
    let series: Vec<(usize, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(v, pts)| {
            let pts = pts
                .iter()
                .copied()
                .filter(|p| p.1.is_finite() && p.1.abs() < 1e15)
                .collect();
            (*v, pts)
        })
        .collect();
    let limits: Vec<f64> = limits
        .iter()
        .copied()
        .filter(|l| l.is_finite() && l.abs() < 1e15)
        .collect();
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let (xmin, xmax) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    if xmin > xmax {
        return Err("no values".into());
    }
    let ys = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .chain(limits.iter().copied());
    let (ymin, ymax) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let pad = ((ymax - ymin).abs() * 0.1).max(ymax.abs() * 0.05).max(1e-9);
    let (ylo, yhi) = (
        (ymin - pad).min(if ymin >= 0.0 { 0.0 } else { ymin - pad }),
        ymax + pad,
    );
    let (xlo, xhi) = (xmin - 0.5, xmax + 0.5);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (PLOT_W, PLOT_H)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(42)
            .y_label_area_size(58)
            .build_cartesian_2d(xlo..xhi, ylo..yhi)
            .map_err(err_str)?;
        let fmt = |x: &f64| {
            if x.fract().abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        };
        let y_desc = if units.is_empty() {
            "value".to_string()
        } else {
            format!("value ({units})")
        };
        draw_mesh!(chart, "loop", y_desc.as_str(), &fmt)?;
        for limit in &limits {
            chart
                .draw_series(LineSeries::new(
                    vec![(xlo, *limit), (xhi, *limit)],
                    RGBColor(207, 34, 46).mix(0.8).stroke_width(1),
                ))
                .map_err(err_str)?;
        }
        for (v, pts) in &series {
            let c = color(*v);
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(err_str)?;
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 3, c.filled())))
                .map_err(err_str)?;
        }
        root.present().map_err(err_str)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HistBucket;

    /// Found by the `result` fuzz target: a stored bucket reaching far past the last one
    /// (`5 .. 4.4e11` before `6 .. 7`) was drawn outside the axis range and plotters' pixel
    /// arithmetic overflowed. Every bucket now lies inside the range, on both axes.
    #[test]
    fn buckets_in_any_order_and_size_are_drawn_inside_the_axes() {
        let b = |lower: f64, upper: f64, count: u64| HistBucket {
            lower,
            upper,
            count,
        };
        let hist = Histogram {
            buckets: vec![
                b(1.25, 1.5, 6),
                b(5.0, 444_444_444_445.5, 918),
                b(6.0, 7.0, 3),
            ],
            count: 927,
            sum: 1.0,
            sum_sq: 1.0,
            min: 1.25,
            max: 7.0,
        };
        for log in [false, true] {
            let svg = histogram_svg(&hist, 1, log, "ms").expect("drawn");
            assert!(svg.matches("<rect").count() >= 3, "{svg}");
        }
        let tiny = Histogram {
            buckets: vec![b(1e14, 1e14 + 0.5, 1), b(1.0, 2.0, 1)],
            ..hist
        };
        assert!(histogram_svg(&tiny, 0, false, "ms").is_ok());
    }
}
