//! `neurodiff neuron`: single cells under a current step, one cell per current value, stepped by
//! the spiking engine (a circuit of one population of unconnected cells).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde::Serialize;

use neurodiff::io::{check_output_path, write_text, Dtype, NpyStream};
use neurodiff::params::ParamValue;
use neurodiff::spiking::{Circuit, Engine, Population, Record, Recorder};
use neurodiff::{Error, Result};

use super::simulate::split_assignment;

/// Flags of `neurodiff neuron`.
#[derive(Debug, Args)]
pub struct NeuronArgs {
    /// Neuron model: hh, adex, lif or stn.
    #[arg(long)]
    model: String,
    /// Parameter value NAME=VALUE (see `neurodiff models`... the neuron's parameters are listed
    /// in the error for an unknown name). Repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE", allow_hyphen_values = true)]
    params: Vec<String>,
    /// Step current, one cell per value: a value, a list a,b,c or linspace(a,b,n); pA for
    /// adex/lif, µA/cm² for hh/stn.
    #[arg(
        long,
        value_name = "AMP",
        default_value = "0",
        allow_hyphen_values = true
    )]
    current: String,
    /// The current is on from this time, ms.
    #[arg(long, value_name = "MS", default_value_t = 0.0)]
    start: f64,
    /// The current is off from this time, ms. [default: the duration]
    #[arg(long, value_name = "MS")]
    stop: Option<f64>,
    /// Integration step, ms.
    #[arg(long, value_name = "MS", default_value_t = 0.025)]
    dt: f64,
    /// Simulated time, ms.
    #[arg(long, value_name = "MS", default_value_t = 1000.0)]
    duration: f64,
    /// Voltage traces, float64 `[samples, cells]` (one sample per step, at the step's end); a
    /// .json sidecar with spike times and rates is written beside it.
    #[arg(long, short, value_name = "FILE.npy", default_value = "out/neuron.npy")]
    out: PathBuf,
    /// No summary.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Serialize)]
struct Cell {
    current: f64,
    spike_times_ms: Vec<f64>,
    rate_hz: f64,
}

#[derive(Serialize)]
struct Sidecar<'a> {
    model: &'a str,
    current_unit: &'a str,
    params: BTreeMap<String, f64>,
    dt_ms: f64,
    duration_ms: f64,
    start_ms: f64,
    stop_ms: f64,
    shape: [usize; 2],
    sample_times: &'a str,
    rate: &'a str,
    cells: Vec<Cell>,
    wall_time_s: f64,
}

/// Runs `neurodiff neuron`.
pub fn run(a: NeuronArgs) -> Result<()> {
    let positive = |name: &str, v: f64| -> Result<()> {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(Error::setting(name, format!("must be positive, got {v}")))
        }
    };
    positive("dt", a.dt)?;
    positive("duration", a.duration)?;
    let stop = a.stop.unwrap_or(a.duration);
    if !(a.start >= 0.0 && a.start < stop && stop <= a.duration) {
        return Err(Error::setting(
            "start",
            format!(
                "need 0 ≤ start < stop ≤ duration, got start {} ms, stop {stop} ms, duration {} \
                 ms",
                a.start, a.duration
            ),
        ));
    }
    check_output_path(&a.out, Some("npy"))?;
    let currents = match ParamValue::parse("current", &a.current)? {
        ParamValue::Scalar(v) => vec![v],
        ParamValue::Batch(v) => v,
        ParamValue::Regional { .. } => {
            return Err(Error::setting(
                "current",
                "give a value, a list a,b,c or linspace(a,b,n)",
            ))
        }
    };
    if let Some(bad) = currents.iter().find(|c| !c.is_finite()) {
        return Err(Error::setting("current", format!("{bad} is not finite")));
    }
    let mut params = BTreeMap::new();
    for text in &a.params {
        let (name, value) = split_assignment(text)?;
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|_| Error::param(&name, format!("`{value}` is not a number")))?;
        params.insert(name, v);
    }
    let circuit = Circuit {
        populations: vec![Population {
            name: a.model.clone(),
            neuron: a.model.clone(),
            n: currents.len(),
            params: params.clone(),
            heterogeneity: BTreeMap::new(),
            current: 0.0,
            ou: None,
            v_spread_mv: 0.0,
        }],
        projections: Vec::new(),
        dt_ms: a.dt,
        seed: 0,
        dbs: None,
        inputs: Vec::new(),
    };
    let mut engine = Engine::new(&circuit)?;
    let spec = circuit.spec(0)?;
    let n = currents.len();
    let to_steps = |t: f64| (t / a.dt).round() as u64;
    let (s_on, s_off, s_end) = (to_steps(a.start), to_steps(stop), to_steps(a.duration));
    let samples = s_end as usize;
    let t0 = Instant::now();
    let mut rec = Recorder::new(
        Record {
            spikes: true,
            rate_bin_steps: 0,
            v_neurons: (0..n).collect(),
            sample_every: 1,
            lfp: false,
        },
        &engine,
    );
    let mut quiet = |_: u64, _: u64| {};
    engine.run(s_on, &mut rec, &mut quiet)?;
    engine.set_current(0, &currents);
    engine.run(s_off - s_on, &mut rec, &mut quiet)?;
    engine.set_current(0, &vec![0.0; n]);
    engine.run(s_end - s_off, &mut rec, &mut quiet)?;
    let wall = t0.elapsed().as_secs_f64();

    let mut cells: Vec<Cell> = currents
        .iter()
        .map(|&c| Cell {
            current: c,
            spike_times_ms: Vec::new(),
            rate_hz: 0.0,
        })
        .collect();
    for &(id, s) in &rec.spikes {
        cells[id as usize]
            .spike_times_ms
            .push((s as f64 + 1.0) * a.dt);
    }
    let window_s = (stop - a.start) / 1000.0;
    for c in &mut cells {
        let k = c
            .spike_times_ms
            .iter()
            .filter(|&&t| t >= a.start && t < stop)
            .count();
        c.rate_hz = k as f64 / window_s;
    }
    let mut full = spec.defaults();
    for (name, v) in &params {
        if let Some(j) = spec.param_index(name) {
            full[j] = *v;
        }
    }
    let sidecar = Sidecar {
        model: spec.name,
        current_unit: spec.input.unit,
        params: spec
            .params
            .iter()
            .zip(full)
            .map(|(p, v)| (p.name.to_string(), v))
            .collect(),
        dt_ms: a.dt,
        duration_ms: a.duration,
        start_ms: a.start,
        stop_ms: stop,
        shape: [samples, n],
        sample_times: "sample k is V at the end of step k, t = (k + 1) dt",
        rate: "spikes in [start, stop) over its length",
        cells,
        wall_time_s: wall,
    };
    let json = a.out.with_extension("json");
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut npy = NpyStream::create(&a.out, &[samples, n], Dtype::F64)?;
    npy.write(&rec.v)?;
    let text =
        serde_json::to_string_pretty(&sidecar).map_err(|e| Error::data(&json, e.to_string()))?;
    write_text(&json, &text)?;
    npy.finish()?;
    if !a.quiet {
        for c in &sidecar.cells {
            println!(
                "I = {} {}: {} spikes, {:.2} Hz",
                c.current,
                spec.input.unit,
                c.spike_times_ms.len(),
                c.rate_hz
            );
        }
        println!("wrote {} and {}", a.out.display(), json.display());
    }
    Ok(())
}
