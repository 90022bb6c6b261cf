//! `neurodiff cell`: a multi-compartment cell from a TOML file (morphology, channels per group,
//! parameters, current and voltage clamps, recordings, dt, duration, solver), or a network of
//! cells with synapses (a file with `[[cells]]`): recordings to `.npy` with a JSON sidecar and a
//! figure of the voltage traces.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use neurodiff::backend::{with_backend, BackendKind, BackendTask};
use neurodiff::cell::config::{Precision, Resolved};
use neurodiff::cell::net_config::{NetConfig, NetResolved};
use neurodiff::cell::network;
use neurodiff::cell::{simulate, CellConfig};
use neurodiff::io::{check_output_path, write_text, Dtype, NpyStream};
use neurodiff::{Error, Result};

/// Flags of `neurodiff cell`.
#[derive(Debug, Args)]
pub struct CellArgs {
    /// The cell and protocol, TOML (see README "Multi-compartment cells"; the bundled example
    /// is data/cell/cell.toml), or a network of cells: a file with [[cells]]
    /// (data/cell/network.toml).
    #[arg(long, value_name = "FILE.toml")]
    config: PathBuf,
    /// Recordings, float64 `[samples, records, batch]` (sample k at t = k dt); a .json sidecar
    /// and a .png figure are written beside it (default out/cell.npy). With `--fit`: the fit's
    /// FILE.json (default out/cell_fit.json), with FILE.png and FILE.state.json beside it.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
    /// No figure.
    #[arg(long)]
    no_figure: bool,
    /// No summary.
    #[arg(long, short)]
    quiet: bool,
    /// Instead of recordings: the largest Lyapunov exponent of each batch element (1/ms), by
    /// forward-mode sensitivities through the solver (dual numbers, f64), written to FILE.json
    /// (default out/cell_lyapunov.json). Positive: chaos; about 0: periodic firing; negative: a
    /// stable rest state.
    #[arg(long, conflicts_with = "fit")]
    lyapunov: bool,
    /// With --lyapunov: the transient left out of the average, ms (default: a fifth of the
    /// duration). `--seed` seeds the random initial tangent.
    #[arg(long, value_name = "MS", requires = "lyapunov")]
    transient: Option<f64>,
    /// Run on Burn tensors on this backend (ndarray, ndarray64, flex, wgpu, cuda) instead of
    /// the fused CPU solver: the path for large batches and GPUs (the backend sets the
    /// precision: f64 on ndarray64, f32 on the others). Calcium pools, `sk_e2` and voltage
    /// clamps are not on it yet.
    #[arg(long, value_name = "BACKEND", conflicts_with_all = ["fit", "lyapunov"])]
    backend: Option<String>,
    #[command(flatten)]
    fit: super::cell_fit::FitArgs,
}

/// The cell on tensors on the backend `with_backend` picks.
struct OnTensors<'a>(&'a neurodiff::cell::Cell, &'a neurodiff::cell::Protocol);

impl BackendTask for OnTensors<'_> {
    type Output = Result<neurodiff::cell::Recording>;
    fn run<B: burn::prelude::Backend>(self, _: BackendKind, device: B::Device) -> Self::Output {
        neurodiff::cell::tensor::simulate::<B>(self.0, self.1, &device)
    }
}

#[derive(Serialize)]
struct Record {
    label: String,
    unit: &'static str,
    /// Upward crossings of 0 mV per batch element, ms (voltages only).
    spike_times_ms: Option<Vec<Vec<f64>>>,
}

/// What a cell's and a network's sidecars share: the recording's layout, its records, the run.
#[derive(Serialize)]
struct Run {
    shape: [usize; 3],
    axes: &'static str,
    sample_times: &'static str,
    dt_ms: f64,
    steps: usize,
    batch: usize,
    records: Vec<Record>,
    wall_time_s: f64,
    /// The solver that ran: `fused (f32|f64)` or `tensor (<backend>)`.
    engine: String,
}

impl Run {
    /// The run that recorded `rec` over `steps` steps in `wall` s, its records named `labels`
    /// in `units` (the spike times of those in mV).
    fn new(
        rec: &neurodiff::cell::Recording,
        steps: usize,
        labels: &[String],
        units: impl IntoIterator<Item = &'static str>,
        wall: f64,
        engine: String,
    ) -> Self {
        let (samples, nr, nb) = (rec.len(), rec.n_probes, rec.batch);
        let records = labels
            .iter()
            .zip(units)
            .enumerate()
            .map(|(j, (label, unit))| Record {
                label: label.clone(),
                unit,
                spike_times_ms: (unit == "mV")
                    .then(|| (0..nb).map(|b| rec.crossings(j, b, 0.0)).collect()),
            })
            .collect();
        Run {
            shape: [samples, nr, nb],
            axes: "[sample, record, batch element]",
            sample_times: "sample k is at t = k dt (k = 0 is the initial state)",
            dt_ms: rec.dt,
            steps,
            batch: nb,
            records,
            wall_time_s: wall,
            engine,
        }
    }
}

#[derive(Serialize)]
struct Sidecar<'a> {
    config: &'a CellConfig,
    #[serde(flatten)]
    run: Run,
    branches: usize,
    compartments: usize,
    junctions: usize,
}

#[derive(Serialize)]
struct LyapunovOut<'a> {
    config: &'a CellConfig,
    /// Per batch element, 1/ms.
    exponent_per_ms: &'a [f64],
    method: &'static str,
    dt_ms: f64,
    transient_ms: f64,
    measured_ms: f64,
    seed: u64,
    /// `[sample][batch]`, 1/ms, one sample every `running_every_ms`.
    running_per_ms: &'a [Vec<f64>],
    running_every_ms: f64,
    wall_time_s: f64,
}

/// `neurodiff cell --lyapunov`.
fn run_lyapunov(a: &CellArgs) -> Result<()> {
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out/cell_lyapunov.json"));
    check_output_path(&out, Some("json"))?;
    let (cfg, Resolved { cell, protocol, .. }) = CellConfig::load_resolved(&a.config)?;
    let duration = protocol.steps as f64 * protocol.dt;
    let transient_ms = a.transient.unwrap_or(duration / 5.0);
    if !(transient_ms.is_finite() && transient_ms >= 0.0 && transient_ms < duration) {
        return Err(neurodiff::cell::CellError::setting(
            "--transient",
            format!("must be in [0, {duration}) ms (the duration), got {transient_ms} ms"),
        )
        .into());
    }
    let transient = (transient_ms / protocol.dt).round() as usize;
    let t0 = Instant::now();
    let ly = neurodiff::cell::largest_lyapunov(&cell, &protocol, transient, a.fit.seed)?;
    let wall = t0.elapsed().as_secs_f64();
    let record = LyapunovOut {
        config: &cfg,
        exponent_per_ms: &ly.exponent,
        method: "Benettin: a tangent vector carried by forward-mode dual numbers through the \
                 solver's step, renormalised every step; the exponent of the discrete map",
        dt_ms: protocol.dt,
        transient_ms: ly.transient as f64 * protocol.dt,
        measured_ms: ly.measured as f64 * protocol.dt,
        seed: a.fit.seed,
        running_per_ms: &ly.running,
        running_every_ms: ly.sample_every as f64 * protocol.dt,
        wall_time_s: wall,
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let text =
        serde_json::to_string_pretty(&record).map_err(|e| Error::data(&out, e.to_string()))?;
    write_text(&out, &text)?;
    if !a.quiet {
        println!(
            "largest Lyapunov exponent over {} ms after {} ms ({:.2} s):",
            record.measured_ms, record.transient_ms, wall
        );
        for (b, l) in ly.exponent.iter().enumerate() {
            println!("  batch element {b}: {l:+.5} /ms");
        }
        println!("wrote {}", out.display());
    }
    Ok(())
}

/// Runs `neurodiff cell`.
pub fn run(a: CellArgs) -> Result<()> {
    if a.fit.fit {
        return super::cell_fit::run(&a.config, a.out.as_deref(), a.quiet, a.no_figure, &a.fit);
    }
    if a.lyapunov {
        return run_lyapunov(&a);
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out/cell.npy"));
    check_output_path(&out, Some("npy"))?;
    let text = std::fs::read_to_string(&a.config).map_err(|e| Error::io(&a.config, e))?;
    if neurodiff::cell::net_config::is_network(&text) {
        return run_network(&a, &out);
    }
    let (
        cfg,
        Resolved {
            cell,
            protocol,
            labels,
        },
    ) = CellConfig::load_resolved(&a.config)?;
    let t0 = Instant::now();
    let (rec, engine) = match &a.backend {
        Some(name) => {
            let kind: BackendKind = name.parse()?;
            let rec = with_backend(kind, OnTensors(&cell, &protocol))??;
            (rec, format!("tensor ({})", kind.name()))
        }
        None => match cfg.precision {
            Precision::F32 => (simulate::<f32>(&cell, &protocol)?, "fused (f32)".into()),
            Precision::F64 => (simulate::<f64>(&cell, &protocol)?, "fused (f64)".into()),
        },
    };
    let wall = t0.elapsed().as_secs_f64();
    let units = protocol.probes.iter().map(|p| p.unit());
    let run = Run::new(&rec, protocol.steps, &labels, units, wall, engine);
    let junctions = cell.area.iter().filter(|&&x| x == 0.0).count();
    let sidecar = Sidecar {
        config: &cfg,
        run,
        branches: cell.morphology.branches.len(),
        compartments: cell.n_nodes() - junctions,
        junctions,
    };
    let summary = format!(
        "{} branches, {} compartments, batch {}, {} steps of {} ms in {wall:.3} s",
        sidecar.branches, sidecar.compartments, rec.batch, protocol.steps, protocol.dt
    );
    write_outputs(&a, &out, &rec, &sidecar, &sidecar.run, &summary, &[])
}

/// Writes the recording `rec` to `out` (`.npy`), `sidecar` beside it (`.json`) and the figure
/// of the voltage records of `run` (`.png`, unless `--no-figure`), then prints `summary`,
/// `notes` and the spike counts (unless `--quiet`).
fn write_outputs(
    a: &CellArgs,
    out: &std::path::Path,
    rec: &neurodiff::cell::Recording,
    sidecar: &impl Serialize,
    run: &Run,
    summary: &str,
    notes: &[String],
) -> Result<()> {
    let records = &run.records;
    let (samples, nr, nb) = (rec.len(), rec.n_probes, rec.batch);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let json = out.with_extension("json");
    let mut npy = NpyStream::create(out, &[samples, nr, nb], Dtype::F64)?;
    npy.write(&rec.data)?;
    let text =
        serde_json::to_string_pretty(sidecar).map_err(|e| Error::data(&json, e.to_string()))?;
    write_text(&json, &text)?;
    npy.finish()?;
    let png = out.with_extension("png");
    if !a.no_figure {
        let traces: Vec<(String, Vec<f64>)> = (0..nr)
            .filter(|&j| records[j].spike_times_ms.is_some())
            .flat_map(|j| {
                let label = &records[j].label;
                (0..nb).map(move |b| {
                    let name = if nb > 1 {
                        format!("{label} [{b}]")
                    } else {
                        label.clone()
                    };
                    (name, rec.trace(j, b))
                })
            })
            .collect();
        neurodiff::plot::cell_figure(&png, &traces, rec.dt, neurodiff::plot::CellTraces::Voltage)?;
    }
    if !a.quiet {
        println!("{summary}");
        for n in notes {
            println!("note: {n}");
        }
        for r in records.iter() {
            if let Some(s) = &r.spike_times_ms {
                let counts: Vec<usize> = s.iter().map(Vec::len).collect();
                println!("{}: spikes per batch element {counts:?}", r.label);
            }
        }
        println!(
            "wrote {}, {}{}",
            out.display(),
            json.display(),
            if a.no_figure {
                String::new()
            } else {
                format!(" and {}", png.display())
            }
        );
    }
    Ok(())
}

/// The network on tensors on the backend `with_backend` picks.
struct NetOnTensors<'a>(&'a NetResolved);

impl BackendTask for NetOnTensors<'_> {
    type Output = Result<neurodiff::cell::Recording>;
    fn run<B: burn::prelude::Backend>(self, _: BackendKind, device: B::Device) -> Self::Output {
        let r = self.0;
        neurodiff::cell::tensor_net::simulate::<B>(&r.network, &r.protocol, &r.probes, &device)
    }
}

#[derive(Serialize)]
struct NetSidecar<'a> {
    config: &'a NetConfig,
    #[serde(flatten)]
    run: Run,
    /// Each cell's name, by index.
    cells: &'a [String],
    compartments: usize,
    /// Every synapse: `[pre cell, post cell, delay ms]`.
    synapses: Vec<(usize, usize, f64)>,
}

/// `neurodiff cell --config` with a network file (`[[cells]]`).
fn run_network(a: &CellArgs, out: &std::path::Path) -> Result<()> {
    let (cfg, r) = NetConfig::load_resolved(&a.config)?;
    let net = &r.network;
    let t0 = Instant::now();
    let (rec, engine) = match &a.backend {
        Some(name) => {
            let kind: BackendKind = name.parse()?;
            let rec = with_backend(kind, NetOnTensors(&r))??;
            (rec, format!("tensor ({})", kind.name()))
        }
        None => match cfg.precision {
            Precision::F32 => (
                network::simulate::<f32>(net, &r.protocol, &r.probes)?,
                "fused (f32)".into(),
            ),
            Precision::F64 => (
                network::simulate::<f64>(net, &r.protocol, &r.probes)?,
                "fused (f64)".into(),
            ),
        },
    };
    let wall = t0.elapsed().as_secs_f64();
    let run = Run::new(
        &rec,
        r.protocol.steps,
        &r.labels,
        r.units.iter().copied(),
        wall,
        engine,
    );
    let compartments = net.merged.area.iter().filter(|&&x| x > 0.0).count();
    let sidecar = NetSidecar {
        config: &cfg,
        run,
        cells: &r.cell_names,
        compartments,
        synapses: net
            .synapses
            .iter()
            .map(|s| (s.pre.0, s.post.0, s.delay))
            .collect(),
    };
    let summary = format!(
        "{} cells, {} synapses, {compartments} compartments, batch {}, {} steps of {} ms in \
         {wall:.3} s",
        r.cell_names.len(),
        net.synapses.len(),
        rec.batch,
        r.protocol.steps,
        r.protocol.dt
    );
    write_outputs(a, out, &rec, &sidecar, &sidecar.run, &summary, &r.notes)
}
