//! Figures, drawn with `plotters` into PNG files (text with the bundled DejaVu Sans, so no
//! system font libraries are needed).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::{Error, Result};
use crate::fit::HistoryRow;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bundled file is a valid TrueType font; registration only fails for invalid data.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn draw_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::data(path, format!("could not draw the figure: {e}"))
}

/// Draws a figure of `size` pixels into `path`: the font registered, a white background, then
/// `draw`; into a temporary file (the image format follows the extension, so it keeps `.png`)
/// that is moved into place only when complete and removed when drawing fails.
fn figure(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    ensure_font();
    let tmp = path.with_extension("partial.png");
    let drawn = (|| {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        let err = draw_err(path);
        root.fill(&WHITE).map_err(&err)?;
        draw(&root)?;
        root.present().map_err(&err)
    })();
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The legend of a chart's labelled series, in its upper right corner.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    path: &Path,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(draw_err(path))
}

/// Blue (−1) – white (0) – red (+1).
fn diverging(v: f64) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    let t = |a: f64| (255.0 * a) as u8;
    if v >= 0.0 {
        RGBColor(255, t(1.0 - v), t(1.0 - v))
    } else {
        RGBColor(t(1.0 + v), t(1.0 + v), 255)
    }
}

/// The figure of a fit: loss per restart over iterations, and the empirical and best simulated
/// FC matrices side by side. Written to a temporary file and moved into place when complete.
pub fn fit_figure(
    path: &Path,
    history: &[HistoryRow],
    restarts: usize,
    fc_emp: &[f64],
    fc_sim: &[f64],
    n: usize,
    title: &str,
) -> Result<()> {
    figure(path, (1640, 540), |root| {
        let err = draw_err(path);
        let root = root.titled(title, ("sans-serif", 22)).map_err(&err)?;
        // Loss | empirical FC | simulated FC | colour bar.
        let panels = root.split_by_breakpoints([520, 1030, 1540], [] as [u32; 0]);
        // Loss curves, one per restart, on whole-number iterations.
        let iters = history.iter().map(|h| h.iteration).max().unwrap_or(0) + 1;
        let (lo, hi) = history
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), h| {
                (a.min(h.loss), b.max(h.loss))
            });
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let last = iters.max(2) as i64 - 1;
        let mut chart = ChartBuilder::on(&panels[0])
            .margin(15)
            .caption("loss per restart", ("sans-serif", 18))
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0i64..last, (lo - pad)..(hi + pad))
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("iteration")
            .y_desc("loss")
            .x_labels((last as usize + 1).min(10))
            .x_label_formatter(&|v| format!("{v}"))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(&err)?;
        for r in 0..restarts {
            let color = Palette99::pick(r);
            let series = chart
                .draw_series(LineSeries::new(
                    history
                        .iter()
                        .filter(|h| h.restart == r)
                        .map(|h| (h.iteration as i64, h.loss)),
                    color.stroke_width(2),
                ))
                .map_err(&err)?;
            // A legend entry per restart (up to 10; more would cover the curves).
            if restarts <= 10 {
                series.label(format!("restart {r}")).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            }
        }
        if restarts <= 10 {
            legend(&mut chart, path)?;
        }
        // FC matrices: row i (target region) drawn from the top, column j (source region).
        for (panel, (m, name)) in panels[1..3]
            .iter()
            .zip([(fc_emp, "empirical FC"), (fc_sim, "simulated FC (best)")])
        {
            let mut c = ChartBuilder::on(panel)
                .margin(15)
                .caption(name, ("sans-serif", 18))
                .x_label_area_size(35)
                .y_label_area_size(40)
                .build_cartesian_2d(0..n, 0..n)
                .map_err(&err)?;
            c.configure_mesh()
                .disable_mesh()
                .x_desc("region")
                .y_desc("region")
                .x_labels(6)
                .y_labels(6)
                .y_label_formatter(&|v| format!("{}", n - v))
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(&err)?;
            c.draw_series((0..n).flat_map(|i| {
                (0..n).map(move |j| {
                    Rectangle::new(
                        [(j, n - 1 - i), (j + 1, n - i)],
                        diverging(m[i * n + j]).filled(),
                    )
                })
            }))
            .map_err(&err)?;
        }
        // Colour bar of the FC panels (Pearson correlation, −1 … 1).
        let mut bar = ChartBuilder::on(&panels[3])
            .margin_top(60)
            .margin_bottom(50)
            .margin_right(15)
            .y_label_area_size(40)
            .build_cartesian_2d(0.0..1.0, -1.0..1.0)
            .map_err(&err)?;
        bar.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_desc("correlation")
            .y_labels(5)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(&err)?;
        let levels = 100;
        bar.draw_series((0..levels).map(|k| {
            let y0 = -1.0 + 2.0 * k as f64 / levels as f64;
            let y1 = y0 + 2.0 / levels as f64;
            Rectangle::new([(0.0, y0), (1.0, y1)], diverging(0.5 * (y0 + y1)).filled())
        }))
        .map_err(&err)?;
        Ok(())
    })
}

/// The figure of a spiking circuit: a raster (neuron id against time, populations in colour;
/// at most ~60,000 spikes drawn, evenly thinned) above the population rates per bin and, when
/// given, each population's power spectrum (`psds[k] = (freqs, psd)`, drawn up to 100 Hz on a
/// log scale) with the beta band (13–30 Hz) shaded. `spikes` is `[id, time_ms]` pairs
/// flattened, `rates` `[bins][populations]` flattened, `first_ids[k]` the first global id of
/// population `k`.
#[allow(clippy::too_many_arguments)]
pub fn circuit_figure(
    path: &Path,
    spikes: &[f64],
    n_neurons: usize,
    first_ids: &[usize],
    names: &[String],
    rates: &[f64],
    bin_ms: f64,
    duration_ms: f64,
    psds: &[Option<(Vec<f64>, Vec<f64>)>],
) -> Result<()> {
    let np = names.len();
    let pop_of = |id: usize| first_ids.iter().rposition(|&f| id >= f).unwrap_or(0);
    figure(path, (1200, 900), |root| {
        let err = draw_err(path);
        let (top, bottom) = root.split_vertically(560);
        let has_psd = psds.iter().any(Option::is_some);
        let (bottom, psd_area) = if has_psd {
            let (l, r) = bottom.split_horizontally(760);
            (l, Some(r))
        } else {
            (bottom, None)
        };
        let mut raster = ChartBuilder::on(&top)
            .margin(15)
            .caption("spikes", ("sans-serif", 18))
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..duration_ms, 0.0..n_neurons.max(1) as f64)
            .map_err(&err)?;
        raster
            .configure_mesh()
            .disable_mesh()
            .x_desc("time (ms)")
            .y_desc("neuron")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(&err)?;
        let n_spikes = spikes.len() / 2;
        let stride = n_spikes.div_ceil(60_000).max(1);
        raster
            .draw_series((0..n_spikes).step_by(stride).map(|s| {
                let (id, t) = (spikes[2 * s], spikes[2 * s + 1]);
                let c = Palette99::pick(pop_of(id as usize));
                Rectangle::new([(t, id), (t + duration_ms / 1200.0, id + 1.0)], c.filled())
            }))
            .map_err(&err)?;
        let bins = rates.len() / np.max(1);
        // The axis spans the 99.5th percentile of the rates after the first tenth of the run
        // (the initial transient would flatten everything else).
        let mut sorted: Vec<f64> = rates[(bins / 10) * np..].to_vec();
        sorted.sort_by(f64::total_cmp);
        let hi = sorted
            .get((sorted.len() as f64 * 0.995) as usize)
            .copied()
            .unwrap_or(1.0)
            .max(1.0)
            * 1.2;
        let mut rc = ChartBuilder::on(&bottom)
            .margin(15)
            .caption("population rates", ("sans-serif", 18))
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..duration_ms, 0.0..hi)
            .map_err(&err)?;
        rc.configure_mesh()
            .x_desc("time (ms)")
            .y_desc("rate (Hz)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(&err)?;
        for (k, name) in names.iter().enumerate() {
            let color = Palette99::pick(k);
            rc.draw_series(LineSeries::new(
                (0..bins).map(|b| ((b as f64 + 0.5) * bin_ms, rates[b * np + k])),
                color.stroke_width(1),
            ))
            .map_err(&err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        }
        legend(&mut rc, path)?;
        if let Some(area) = psd_area {
            // log10 PSD between 1 and 100 Hz.
            let points: Vec<Vec<(f64, f64)>> = psds
                .iter()
                .map(|p| match p {
                    Some((f, q)) => f
                        .iter()
                        .zip(q)
                        .filter(|(&f, &q)| (1.0..=100.0).contains(&f) && q > 0.0)
                        .map(|(&f, &q)| (f, q.log10()))
                        .collect(),
                    None => Vec::new(),
                })
                .collect();
            let (lo, hi) = points
                .iter()
                .flatten()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                    (a.min(p.1), b.max(p.1))
                });
            let (lo, hi) = if lo.is_finite() {
                (lo - 0.2, hi + 0.2)
            } else {
                (0.0, 1.0)
            };
            let mut pc = ChartBuilder::on(&area)
                .margin(15)
                .caption("power spectrum (mean V)", ("sans-serif", 18))
                .x_label_area_size(35)
                .y_label_area_size(50)
                .build_cartesian_2d(0.0..100.0, lo..hi)
                .map_err(&err)?;
            pc.configure_mesh()
                .x_desc("frequency (Hz)")
                .y_desc("log10 PSD (mV²/Hz)")
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| format!("{v:.1}"))
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(&err)?;
            pc.draw_series(std::iter::once(Rectangle::new(
                [(13.0, lo), (30.0, hi)],
                RGBColor(200, 200, 200).mix(0.4).filled(),
            )))
            .map_err(&err)?;
            for (k, pts) in points.into_iter().enumerate() {
                pc.draw_series(LineSeries::new(pts, Palette99::pick(k).stroke_width(2)))
                    .map_err(&err)?;
            }
        }
        Ok(())
    })
}

/// What [`cell_figure`] plots: membrane potentials (mV) or voltage-clamp currents (nA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellTraces {
    /// Voltages, mV.
    Voltage,
    /// Voltage-clamp currents, nA.
    ClampCurrent,
}

/// The figure of a multi-compartment cell (`neurodiff cell`): every recorded voltage (or clamp
/// current, `what`) against time, one line per record and batch element (at most 40 lines),
/// labelled `label [b]`. `traces[j]` is `(label, values)`, sampled every `dt` ms from `t = 0`.
pub fn cell_figure(
    path: &Path,
    traces: &[(String, Vec<f64>)],
    dt: f64,
    what: CellTraces,
) -> Result<()> {
    let (caption, y_desc) = match what {
        CellTraces::Voltage => ("membrane potential", "V (mV)"),
        CellTraces::ClampCurrent => ("voltage-clamp current", "I (nA)"),
    };
    let traces = &traces[..traces.len().min(40)];
    let n = traces.iter().map(|t| t.1.len()).max().unwrap_or(1).max(2);
    let (lo, hi) = traces
        .iter()
        .flat_map(|t| t.1.iter())
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    } else {
        (-80.0, 40.0)
    };
    let t_end = (n - 1) as f64 * dt;
    figure(path, (1100, 600), |root| {
        let err = draw_err(path);
        let mut chart = ChartBuilder::on(root)
            .margin(15)
            .caption(caption, ("sans-serif", 18))
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..t_end, lo..hi)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("time (ms)")
            .y_desc(y_desc)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(&err)?;
        // At most ~4000 points per line.
        let stride = n.div_ceil(4000).max(1);
        for (k, (label, v)) in traces.iter().enumerate() {
            let color = Palette99::pick(k);
            chart
                .draw_series(LineSeries::new(
                    v.iter()
                        .enumerate()
                        .step_by(stride)
                        .filter(|(_, x)| x.is_finite())
                        .map(|(i, &x)| (i as f64 * dt, x)),
                    color.stroke_width(1),
                ))
                .map_err(&err)?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart, path)?;
        Ok(())
    })
}

/// The figure of a circuit fit (`neurodiff circuit --fit`): the loss over iterations (log
/// scale) beside each parameter's path as a fraction of its bounds (0 = lower, 1 = upper).
/// `params[k] = (name, lower, upper)`, `values[i][k]` the value at iteration `i`.
pub fn circuit_fit_figure(
    path: &Path,
    loss: &[f64],
    params: &[(String, f64, f64)],
    values: &[Vec<f64>],
) -> Result<()> {
    figure(path, (1200, 480), |root| {
        let err = draw_err(path);
        let panels = root.split_evenly((1, 2));
        let last = loss.len().max(2) as i64 - 1;
        let positive: Vec<f64> = loss.iter().copied().filter(|v| *v > 0.0).collect();
        let lo = positive.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = positive.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() && hi.is_finite() {
            (lo * 0.8, hi * 1.25)
        } else {
            (1e-6, 1.0)
        };
        let mut chart = ChartBuilder::on(&panels[0])
            .margin(15)
            .caption("loss", ("sans-serif", 18))
            .x_label_area_size(35)
            .y_label_area_size(65)
            .build_cartesian_2d(0i64..last, (lo..hi).log_scale())
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("iteration")
            .y_desc("loss")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(&err)?;
        chart
            .draw_series(LineSeries::new(
                loss.iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(i, v)| (i as i64, *v)),
                BLUE.stroke_width(2),
            ))
            .map_err(&err)?;
        let mut chart = ChartBuilder::on(&panels[1])
            .margin(15)
            .caption("parameters within their bounds", ("sans-serif", 18))
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0i64..last, 0.0..1.0)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("iteration")
            .y_desc("(θ − lower) / (upper − lower)")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(&err)?;
        for (k, (name, a, b)) in params.iter().enumerate() {
            let color = Palette99::pick(k);
            chart
                .draw_series(LineSeries::new(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (i as i64, (v[k] - a) / (b - a))),
                    color.stroke_width(2),
                ))
                .map_err(&err)?
                .label(format!("{name} ∈ [{a}, {b}]"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart, path)?;
        Ok(())
    })
}

/// What the latent-model figure shows (`neurodiff latent fit|eval`, `latent.png`).
pub struct LatentFigure<'a> {
    /// Log-likelihood after each EM iteration.
    pub loglik: &'a [f64],
    /// Estimated delays (bins), their standard errors and, when known, the true delays,
    /// one entry per (across latent, non-reference region).
    pub delays: Vec<(f64, f64, Option<f64>)>,
    /// Time-varying delays (ADM): label, estimated `δ_r(t) − δ_0(t)` per bin and, when known,
    /// the true one. When present, the delay panel shows these trajectories.
    pub paths: Vec<(String, Vec<f64>, Option<Vec<f64>>)>,
    /// Latent traces of one trial: name, posterior mean and posterior s.d. per bin.
    pub traces: Vec<(String, Vec<f64>, Vec<f64>)>,
    /// Held-out neurons' PSTH: label, observed and predicted (trial means per bin).
    pub psth: Vec<(String, Vec<f64>, Vec<f64>)>,
}

fn range_of<'b>(vals: impl Iterator<Item = &'b f64>) -> (f64, f64) {
    let (lo, hi) = vals
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (-1.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

/// The figure of a latent-variable fit, four panels: EM convergence (log-likelihood per
/// iteration), estimated against true delays (±2 s.e.; estimates against their index when
/// no truth is given), a few latent traces of one trial with their posterior ±2 s.d. bands,
/// and the PSTH of held-out neurons against its co-smoothing prediction. Written to a
/// temporary file and moved into place when complete.
pub fn latent_figure(path: &Path, fig: &LatentFigure, title: &str) -> Result<()> {
    figure(path, (1300, 960), |root| {
        let err = draw_err(path);
        let root = root.titled(title, ("sans-serif", 22)).map_err(&err)?;
        let panels = root.split_evenly((2, 2));
        // Convergence.
        let n = fig.loglik.len().max(2);
        let (lo, hi) = range_of(fig.loglik.iter());
        let mut c = ChartBuilder::on(&panels[0])
            .margin(15)
            .caption("EM convergence", ("sans-serif", 18))
            .x_label_area_size(35)
            .y_label_area_size(80)
            .build_cartesian_2d(0..(n - 1), lo..hi)
            .map_err(&err)?;
        c.configure_mesh()
            .x_desc("EM iteration")
            .y_desc("log-likelihood (nats)")
            .y_label_formatter(&|v| format!("{v:.4e}"))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(&err)?;
        c.draw_series(LineSeries::new(
            fig.loglik.iter().enumerate().map(|(i, &v)| (i, v)),
            BLUE.stroke_width(2),
        ))
        .map_err(&err)?;
        // Delays.
        let with_truth = fig.delays.iter().all(|d| d.2.is_some()) && !fig.delays.is_empty();
        let (dlo, dhi) = range_of(
            fig.delays
                .iter()
                .flat_map(|d| {
                    [
                        d.0 - 2.0 * d.1.max(0.0),
                        d.0 + 2.0 * d.1.max(0.0),
                        d.2.unwrap_or(d.0),
                    ]
                })
                .collect::<Vec<_>>()
                .iter(),
        );
        let (dlo, dhi) = (dlo.min(-0.5) - 0.2, dhi.max(0.5) + 0.2);
        if !fig.paths.is_empty() {
            let tn = fig
                .paths
                .iter()
                .map(|p| p.1.len())
                .max()
                .unwrap_or(2)
                .max(2);
            let (plo, phi) = range_of(
                fig.paths
                    .iter()
                    .flat_map(|(_, e, t)| e.iter().chain(t.iter().flatten()))
                    .copied()
                    .collect::<Vec<_>>()
                    .iter(),
            );
            let (plo, phi) = (plo.min(-0.5), phi.max(0.5));
            let mut c = ChartBuilder::on(&panels[1])
                .margin(15)
                .caption(
                    "time-varying delay: estimated (solid) vs true (dashed)",
                    ("sans-serif", 18),
                )
                .x_label_area_size(35)
                .y_label_area_size(55)
                .build_cartesian_2d(0.0..(tn - 1) as f64, plo..phi)
                .map_err(&err)?;
            c.configure_mesh()
                .x_desc("time bin")
                .y_desc("delay (bins)")
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(&err)?;
            for (k, (label, est, tru)) in fig.paths.iter().enumerate() {
                let col = Palette99::pick(k).to_rgba();
                c.draw_series(LineSeries::new(
                    est.iter().enumerate().map(|(t, &v)| (t as f64, v)),
                    col.stroke_width(2),
                ))
                .map_err(&err)?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], col));
                if let Some(tru) = tru {
                    c.draw_series(DashedLineSeries::new(
                        tru.iter().enumerate().map(|(t, &v)| (t as f64, v)),
                        6,
                        4,
                        col.stroke_width(1),
                    ))
                    .map_err(&err)?;
                }
            }
            c.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(&err)?;
        } else if with_truth {
            let mut c = ChartBuilder::on(&panels[1])
                .margin(15)
                .caption("delays: estimated vs true (±2 s.e.)", ("sans-serif", 18))
                .x_label_area_size(35)
                .y_label_area_size(55)
                .build_cartesian_2d(dlo..dhi, dlo..dhi)
                .map_err(&err)?;
            c.configure_mesh()
                .x_desc("true delay (bins)")
                .y_desc("estimated delay (bins)")
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(&err)?;
            c.draw_series(LineSeries::new(
                vec![(dlo, dlo), (dhi, dhi)],
                BLACK.mix(0.4).stroke_width(1),
            ))
            .map_err(&err)?;
            for &(e, se, t) in &fig.delays {
                let t = t.unwrap_or(f64::NAN);
                if se.is_finite() {
                    c.draw_series(LineSeries::new(
                        vec![(t, e - 2.0 * se), (t, e + 2.0 * se)],
                        RED.stroke_width(2),
                    ))
                    .map_err(&err)?;
                }
                c.draw_series(std::iter::once(Circle::new((t, e), 5, RED.filled())))
                    .map_err(&err)?;
            }
        } else {
            let m = fig.delays.len().max(1);
            let mut c = ChartBuilder::on(&panels[1])
                .margin(15)
                .caption(
                    if fig.delays.is_empty() {
                        "no delays in this model"
                    } else {
                        "estimated delays (±2 s.e.)"
                    },
                    ("sans-serif", 18),
                )
                .x_label_area_size(35)
                .y_label_area_size(55)
                .build_cartesian_2d(-0.5..(m as f64 - 0.5), dlo..dhi)
                .map_err(&err)?;
            c.configure_mesh()
                .x_desc("across latent × region")
                .y_desc("delay (bins)")
                .x_labels(m.min(10))
                .x_label_formatter(&|v| format!("{v:.0}"))
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(&err)?;
            for (i, &(e, se, _)) in fig.delays.iter().enumerate() {
                let x = i as f64;
                if se.is_finite() {
                    c.draw_series(LineSeries::new(
                        vec![(x, e - 2.0 * se), (x, e + 2.0 * se)],
                        RED.stroke_width(2),
                    ))
                    .map_err(&err)?;
                }
                c.draw_series(std::iter::once(Circle::new((x, e), 5, RED.filled())))
                    .map_err(&err)?;
            }
        }
        // Latent traces with ±2 s.d.
        let tn = fig
            .traces
            .iter()
            .map(|t| t.1.len())
            .max()
            .unwrap_or(2)
            .max(2);
        let (lo, hi) = range_of(
            fig.traces
                .iter()
                .flat_map(|(_, m, s)| {
                    m.iter()
                        .zip(s)
                        .flat_map(|(a, b)| [a + 2.0 * b, a - 2.0 * b])
                })
                .collect::<Vec<_>>()
                .iter(),
        );
        let mut c = ChartBuilder::on(&panels[2])
            .margin(15)
            .caption("latents, trial 0 (mean ±2 s.d.)", ("sans-serif", 18))
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..(tn - 1) as f64, lo..hi)
            .map_err(&err)?;
        c.configure_mesh()
            .x_desc("time bin")
            .y_desc("latent")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(&err)?;
        for (k, (name, m, s)) in fig.traces.iter().enumerate() {
            let color = Palette99::pick(k);
            let band: Vec<(f64, f64)> = m
                .iter()
                .zip(s)
                .enumerate()
                .map(|(t, (a, b))| (t as f64, a + 2.0 * b))
                .chain(
                    m.iter()
                        .zip(s)
                        .enumerate()
                        .rev()
                        .map(|(t, (a, b))| (t as f64, a - 2.0 * b)),
                )
                .collect();
            c.draw_series(std::iter::once(Polygon::new(band, color.mix(0.2).filled())))
                .map_err(&err)?;
            c.draw_series(LineSeries::new(
                m.iter().enumerate().map(|(t, &v)| (t as f64, v)),
                color.stroke_width(2),
            ))
            .map_err(&err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        }
        if !fig.traces.is_empty() {
            legend(&mut c, path)?;
        }
        // PSTH of held-out neurons: observed (solid) and predicted (dashed).
        let tn = fig.psth.iter().map(|t| t.1.len()).max().unwrap_or(2).max(2);
        let (lo, hi) = range_of(
            fig.psth
                .iter()
                .flat_map(|(_, a, b)| a.iter().chain(b))
                .collect::<Vec<_>>()
                .into_iter(),
        );
        let mut c = ChartBuilder::on(&panels[3])
            .margin(15)
            .caption(
                "held-out neurons: PSTH (line) vs co-smoothing (dots)",
                ("sans-serif", 18),
            )
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..(tn - 1) as f64, lo..hi)
            .map_err(&err)?;
        c.configure_mesh()
            .x_desc("time bin")
            .y_desc("trial mean")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(&err)?;
        for (k, (name, obs, pred)) in fig.psth.iter().enumerate() {
            let color = Palette99::pick(k);
            c.draw_series(LineSeries::new(
                obs.iter().enumerate().map(|(t, &v)| (t as f64, v)),
                color.stroke_width(2),
            ))
            .map_err(&err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
            c.draw_series(
                pred.iter()
                    .enumerate()
                    .map(|(t, &v)| Circle::new((t as f64, v), 2, Palette99::pick(k).filled())),
            )
            .map_err(&err)?;
        }
        if !fig.psth.is_empty() {
            legend(&mut c, path)?;
        }
        Ok(())
    })
}

/// The figure of `neurodiff train`: loss and accuracy per iteration (left, middle) and the two
/// readout cells' membrane potential in example held-out trials (right; `traces[i] = (label,
/// V in mV per sample)`, sample `k` at `k dt` ms).
pub fn train_figure(
    path: &Path,
    loss: &[f64],
    accuracy: &[f64],
    traces: &[(String, Vec<f64>)],
    dt: f64,
) -> Result<()> {
    figure(path, (1500, 450), |root| {
        let err = draw_err(path);
        let panels = root.split_evenly((1, 3));
        let last = loss.len().max(2) as f64 - 1.0;
        for (i, (name, ys)) in [
            ("loss (cross-entropy)", loss),
            ("training accuracy", accuracy),
        ]
        .into_iter()
        .enumerate()
        {
            let (lo, hi) = range_of(ys.iter());
            let (lo, hi) = if i == 1 {
                (lo.min(0.4), 1.0)
            } else {
                (lo.min(0.0), hi)
            };
            let mut chart = ChartBuilder::on(&panels[i])
                .margin(15)
                .caption(name, ("sans-serif", 18))
                .x_label_area_size(35)
                .y_label_area_size(55)
                .build_cartesian_2d(0.0..last, lo..hi)
                .map_err(&err)?;
            chart
                .configure_mesh()
                .x_desc("iteration")
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(&err)?;
            chart
                .draw_series(LineSeries::new(
                    ys.iter().enumerate().map(|(k, v)| (k as f64, *v)),
                    BLUE.stroke_width(2),
                ))
                .map_err(&err)?;
        }
        let n = traces.iter().map(|t| t.1.len()).max().unwrap_or(2).max(2);
        let (lo, hi) = range_of(traces.iter().flat_map(|t| t.1.iter()));
        let mut chart = ChartBuilder::on(&panels[2])
            .margin(15)
            .caption("readouts, held-out trials", ("sans-serif", 18))
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..(n - 1) as f64 * dt, lo..hi)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("time (ms)")
            .y_desc("V (mV)")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(&err)?;
        let stride = n.div_ceil(3000).max(1);
        for (k, (label, v)) in traces.iter().enumerate() {
            let color = Palette99::pick(k);
            chart
                .draw_series(LineSeries::new(
                    v.iter()
                        .enumerate()
                        .step_by(stride)
                        .map(|(i, &x)| (i as f64 * dt, x)),
                    color.stroke_width(1),
                ))
                .map_err(&err)?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(&err)?;
        Ok(())
    })
}
