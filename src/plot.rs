//! Figures, drawn with `plotters` into PNG files (text with the bundled DejaVu Sans, so no
//! system font libraries are needed).

use std::path::Path;

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
    ensure_font();
    // The image format is taken from the extension, so the temporary file keeps `.png`.
    let tmp = path.with_extension("partial.png");
    {
        let root = BitMapBackend::new(&tmp, (1500, 520)).into_drawing_area();
        let err = draw_err(path);
        root.fill(&WHITE).map_err(&err)?;
        let root = root.titled(title, ("sans-serif", 22)).map_err(&err)?;
        let panels = root.split_evenly((1, 3));
        // Loss curves.
        let iters = history.iter().map(|h| h.iteration).max().unwrap_or(0) + 1;
        let (lo, hi) = history
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), h| {
                (a.min(h.loss), b.max(h.loss))
            });
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let mut chart = ChartBuilder::on(&panels[0])
            .margin(15)
            .caption("loss per restart", ("sans-serif", 18))
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..(iters.max(2) - 1) as f64, (lo - pad)..(hi + pad))
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("iteration")
            .y_desc("loss")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(&err)?;
        for r in 0..restarts {
            let color = Palette99::pick(r);
            chart
                .draw_series(LineSeries::new(
                    history
                        .iter()
                        .filter(|h| h.restart == r)
                        .map(|h| (h.iteration as f64, h.loss)),
                    color.stroke_width(2),
                ))
                .map_err(&err)?;
        }
        // FC matrices.
        for (panel, (m, name)) in panels[1..]
            .iter()
            .zip([(fc_emp, "empirical FC"), (fc_sim, "simulated FC (best)")])
        {
            let mut c = ChartBuilder::on(panel)
                .margin(15)
                .caption(name, ("sans-serif", 18))
                .build_cartesian_2d(0..n, 0..n)
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
        root.present().map_err(&err)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
