//! The cable solver: backward Euler for the voltage through a tree (Hines) solve, O(nodes) per
//! step, and exponential Euler for the gates, on a batch of parameter sets and stimuli, generic
//! over the number type (`f32` or `f64`). See the [module documentation](super) for the scheme.

use neurodiff_models::channel::ChannelKind;
use num_traits::Float;

use super::{Cell, CellError};

/// A current clamp's time course, nA.
#[derive(Debug, Clone, PartialEq)]
pub enum Waveform {
    /// `amp` nA from `delay` for `dur` ms (NEURON's `IClamp`: on while
    /// `delay ≤ t + dt/2 < delay + dur`).
    Step {
        /// Amplitude, nA.
        amp: f64,
        /// Onset, ms.
        delay: f64,
        /// Duration, ms.
        dur: f64,
    },
    /// One value per step, nA: `values[k]` flows during step `k` (from `k dt` to `(k+1) dt`).
    Samples(Vec<f64>),
}

impl Waveform {
    /// The current during step `k` of length `dt`, nA.
    #[inline]
    pub fn at(&self, k: usize, dt: f64) -> f64 {
        match self {
            Waveform::Step { amp, delay, dur } => {
                let t = (k as f64 + 0.5) * dt;
                if t >= *delay && t < delay + dur {
                    *amp
                } else {
                    0.0
                }
            }
            Waveform::Samples(v) => v[k],
        }
    }
}

/// A current clamp on one compartment, for one batch element or all.
#[derive(Debug, Clone, PartialEq)]
pub struct Clamp {
    /// The node (see [`Cell::node_at`]).
    pub node: usize,
    /// The batch element it drives; `None`: every element.
    pub batch: Option<usize>,
    /// Its current.
    pub waveform: Waveform,
}

/// A recorded quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The membrane potential of a node, mV.
    V {
        /// The node.
        node: usize,
    },
    /// A gate of a channel placement at a node, 1.
    Gate {
        /// The placement (index into [`Cell::channels`]).
        channel: usize,
        /// The node.
        node: usize,
        /// The gate (index into the channel's gates).
        gate: usize,
    },
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Protocol {
    /// Time step, ms.
    pub dt: f64,
    /// Number of steps.
    pub steps: usize,
    /// Temperature, °C (NEURON's `celsius`, default 6.3).
    pub celsius: f64,
    /// The initial voltage everywhere, mV (gates start at their steady states there).
    pub v_init: f64,
    /// The current clamps.
    pub clamps: Vec<Clamp>,
    /// What to record, at `t = 0` and after every step.
    pub probes: Vec<Probe>,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            dt: 0.025,
            steps: 0,
            celsius: 6.3,
            v_init: -65.0,
            clamps: Vec::new(),
            probes: Vec::new(),
        }
    }
}

/// Recorded traces, `[steps + 1][probes][batch]` flattened, in `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The values.
    pub data: Vec<f64>,
    /// The number of probes.
    pub n_probes: usize,
    /// The batch size.
    pub batch: usize,
    /// The time step, ms (sample `k` is at `t = k dt`).
    pub dt: f64,
}

impl Recording {
    /// The number of samples (`steps + 1`).
    pub fn len(&self) -> usize {
        self.data.len() / (self.n_probes * self.batch).max(1)
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The trace of probe `p` in batch element `b`.
    pub fn trace(&self, p: usize, b: usize) -> Vec<f64> {
        let stride = self.n_probes * self.batch;
        (0..self.len())
            .map(|k| self.data[k * stride + p * self.batch + b])
            .collect()
    }

    /// Upward crossings of `threshold` by probe `p` in batch element `b`, ms, each placed by
    /// linear interpolation between the samples around it.
    pub fn crossings(&self, p: usize, b: usize, threshold: f64) -> Vec<f64> {
        crossings(&self.trace(p, b), self.dt, threshold)
    }
}

/// Upward crossings of `threshold` by `trace` sampled every `dt`, ms, linearly interpolated.
pub fn crossings(trace: &[f64], dt: f64, threshold: f64) -> Vec<f64> {
    trace
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < threshold && w[1] >= threshold)
        .map(|(k, w)| (k as f64 + (threshold - w[0]) / (w[1] - w[0])) * dt)
        .collect()
}

/// Solves the tree system in place for `batch` right-hand sides at once: with node `i`'s
/// parent `parent[i] < i` (`parent[0]` unused), the symmetric matrix has diagonal `d[i][b]` and
/// off-diagonal `a[i]` between `i` and `parent[i]`; `rhs[i][b]` becomes the solution. Hines'
/// elimination from the leaves to the root, then substitution back: O(nodes · batch), no fill.
/// `d` is overwritten. Arrays are node-major, batch innermost.
pub fn hines_solve<T: Float>(parent: &[usize], a: &[T], d: &mut [T], rhs: &mut [T], batch: usize) {
    let n = parent.len();
    for i in (1..n).rev() {
        let p = parent[i];
        let ai = a[i];
        for b in 0..batch {
            let f = ai / d[i * batch + b];
            d[p * batch + b] = d[p * batch + b] - f * ai;
            rhs[p * batch + b] = rhs[p * batch + b] - f * rhs[i * batch + b];
        }
    }
    for b in 0..batch {
        rhs[b] = rhs[b] / d[b];
    }
    for i in 1..n {
        let p = parent[i];
        let ai = a[i];
        for b in 0..batch {
            rhs[i * batch + b] = (rhs[i * batch + b] - ai * rhs[p * batch + b]) / d[i * batch + b];
        }
    }
}

/// One channel placement's numbers in the solver's type: parameters `[batch][param]`,
/// reversal potentials per batch element, temperature factor, gates
/// `[(j * batch + b) * n_gates + g]` for the placement's `j`-th node.
struct Ch<T> {
    kind: ChannelKind,
    ng: usize,
    np: usize,
    params: Vec<T>,
    rev: Vec<T>,
    phi: T,
    gates: Vec<T>,
}

/// Runs `protocol` on `cell` in number type `T` (`f32` or `f64`) and returns the recordings.
pub fn simulate<T: Float>(cell: &Cell, protocol: &Protocol) -> Result<Recording, CellError> {
    let n = cell.n_nodes();
    let nb = cell.batch;
    let Protocol {
        dt,
        steps,
        celsius,
        v_init,
        ..
    } = *protocol;
    if !(dt.is_finite() && dt > 0.0) {
        return Err(CellError::setting(
            "dt",
            format!("must be positive, got {dt} ms"),
        ));
    }
    if !celsius.is_finite() || !v_init.is_finite() {
        return Err(CellError::setting("celsius/v_init", "must be finite"));
    }
    for (j, c) in protocol.clamps.iter().enumerate() {
        let name = format!("stimuli[{j}]");
        if c.node >= n {
            return Err(CellError::setting(name, format!("no node {}", c.node)));
        }
        if let Some(b) = c.batch.filter(|&b| b >= nb) {
            return Err(CellError::setting(
                name,
                format!("no batch element {b} (batch {nb})"),
            ));
        }
        match &c.waveform {
            Waveform::Step { amp, delay, dur } => {
                if !(amp.is_finite() && delay.is_finite() && dur.is_finite() && *dur >= 0.0) {
                    return Err(CellError::setting(
                        name,
                        format!("need finite amp, delay and dur ≥ 0, got {amp} nA, {delay} ms, {dur} ms"),
                    ));
                }
            }
            Waveform::Samples(v) => {
                if v.len() < steps {
                    return Err(CellError::setting(
                        name,
                        format!("the waveform has {} samples for {steps} steps", v.len()),
                    ));
                }
                if let Some(k) = v.iter().position(|x| !x.is_finite()) {
                    return Err(CellError::setting(
                        name,
                        format!("sample {k} is not finite"),
                    ));
                }
            }
        }
    }
    for (j, p) in protocol.probes.iter().enumerate() {
        let ok = match *p {
            Probe::V { node } => node < n,
            Probe::Gate {
                channel,
                node,
                gate,
            } => cell
                .channels
                .get(channel)
                .is_some_and(|c| c.nodes.contains(&node) && gate < c.kind.n_gates()),
        };
        if !ok {
            return Err(CellError::setting(
                format!("record[{j}]"),
                format!("{p:?} is not a node, channel or gate of this cell"),
            ));
        }
    }
    let c = |x: f64| T::from(x).expect("f64 to float");
    let dt_t = c(dt);
    // Constant parts: C/dt and the axial diagonal.
    let cdt: Vec<T> = cell.cap.iter().map(|&x| c(x / dt)).collect();
    let mut dax = vec![0.0f64; n];
    for i in 1..n {
        dax[i] += cell.g_axial[i];
        dax[cell.parent[i]] += cell.g_axial[i];
    }
    let dax: Vec<T> = dax.into_iter().map(c).collect();
    let a: Vec<T> = cell.g_axial.iter().map(|&g| c(-g)).collect();
    let area: Vec<T> = cell.area.iter().map(|&x| c(x)).collect();

    // Channels: parameters, reversal potentials and temperature factors in T; gates
    // `[(j * batch + b) * n_gates + g]`.
    let mut chans: Vec<Ch<T>> = cell
        .channels
        .iter()
        .map(|pl| {
            let spec = pl.kind.spec();
            let (ng, np) = (spec.gates.len(), spec.params.len());
            let params: Vec<T> = pl.params.iter().map(|&x| c(x)).collect();
            let rev = (0..nb)
                .map(|b| pl.kind.reversal(&params[b * np..(b + 1) * np]))
                .collect();
            let mut gates = vec![T::zero(); pl.nodes.len() * nb * ng];
            let (mut inf, mut tau) = (vec![T::zero(); ng], vec![T::zero(); ng]);
            for j in 0..pl.nodes.len() {
                for b in 0..nb {
                    pl.kind
                        .gates(c(v_init), &params[b * np..(b + 1) * np], &mut inf, &mut tau);
                    gates[(j * nb + b) * ng..(j * nb + b + 1) * ng].copy_from_slice(&inf);
                }
            }
            Ch {
                kind: pl.kind,
                ng,
                np,
                params,
                rev,
                phi: c(spec.temperature_factor(celsius)),
                gates,
            }
        })
        .collect();
    // Probes of gates: index of the node within the placement.
    let probe_idx: Vec<usize> = protocol
        .probes
        .iter()
        .map(|p| match *p {
            Probe::V { .. } => 0,
            Probe::Gate { channel, node, .. } => cell.channels[channel]
                .nodes
                .iter()
                .position(|&x| x == node)
                .unwrap_or(0),
        })
        .collect();

    let mut v = vec![c(v_init); n * nb];
    let mut d = vec![T::zero(); n * nb];
    let mut rhs = vec![T::zero(); n * nb];
    let np_ = protocol.probes.len();
    let mut data = Vec::with_capacity((steps + 1) * np_ * nb);
    let record = |v: &[T], chans: &[Ch<T>], data: &mut Vec<f64>| {
        for (p, &jj) in protocol.probes.iter().zip(&probe_idx) {
            for b in 0..nb {
                let x = match *p {
                    Probe::V { node } => v[node * nb + b],
                    Probe::Gate { channel, gate, .. } => {
                        let ch = &chans[channel];
                        ch.gates[(jj * nb + b) * ch.ng + gate]
                    }
                };
                data.push(x.to_f64().unwrap_or(f64::NAN));
            }
        }
    };
    record(&v, &chans, &mut data);
    let (mut inf, mut tau) = (vec![T::zero(); 8], vec![T::zero(); 8]);
    for k in 0..steps {
        for i in 0..n {
            for b in 0..nb {
                let idx = i * nb + b;
                d[idx] = cdt[i] + dax[i];
                rhs[idx] = cdt[i] * v[idx];
            }
        }
        for (ch, pl) in chans.iter().zip(&cell.channels) {
            for (j, &node) in pl.nodes.iter().enumerate() {
                for b in 0..nb {
                    let x = &ch.gates[(j * nb + b) * ch.ng..(j * nb + b + 1) * ch.ng];
                    let g = ch
                        .kind
                        .conductance(x, &ch.params[b * ch.np..(b + 1) * ch.np])
                        * area[node];
                    let idx = node * nb + b;
                    d[idx] = d[idx] + g;
                    rhs[idx] = rhs[idx] + g * ch.rev[b];
                }
            }
        }
        for cl in &protocol.clamps {
            let i_ua = c(cl.waveform.at(k, dt) * 1e-3); // nA → µA
            match cl.batch {
                Some(b) => rhs[cl.node * nb + b] = rhs[cl.node * nb + b] + i_ua,
                None => {
                    for b in 0..nb {
                        rhs[cl.node * nb + b] = rhs[cl.node * nb + b] + i_ua;
                    }
                }
            }
        }
        hines_solve(&cell.parent, &a, &mut d, &mut rhs, nb);
        std::mem::swap(&mut v, &mut rhs);
        for (ch, pl) in chans.iter_mut().zip(&cell.channels) {
            let ng = ch.ng;
            if ng == 0 {
                continue;
            }
            for (j, &node) in pl.nodes.iter().enumerate() {
                for b in 0..nb {
                    let vv = v[node * nb + b];
                    ch.kind.gates(
                        vv,
                        &ch.params[b * ch.np..(b + 1) * ch.np],
                        &mut inf[..ng],
                        &mut tau[..ng],
                    );
                    let x = &mut ch.gates[(j * nb + b) * ng..(j * nb + b + 1) * ng];
                    for g in 0..ng {
                        let e = Float::exp(-dt_t * ch.phi / tau[g]);
                        x[g] = inf[g] + (x[g] - inf[g]) * e;
                    }
                }
            }
        }
        if let Some(e) = check_finite(cell, &v, &chans, k + 1, dt) {
            return Err(e);
        }
        record(&v, &chans, &mut data);
    }
    Ok(Recording {
        data,
        n_probes: np_,
        batch: nb,
        dt,
    })
}

/// The first non-finite voltage or gate, as an error naming the compartment and variable.
fn check_finite<T: Float>(
    cell: &Cell,
    v: &[T],
    chans: &[Ch<T>],
    step: usize,
    dt: f64,
) -> Option<CellError> {
    let nb = cell.batch;
    let diverged = |var: String, node: usize, batch: usize, value: T| CellError::Diverged {
        step,
        time: step as f64 * dt,
        var,
        node,
        location: cell.location(node),
        batch,
        value: value.to_f64().unwrap_or(f64::NAN),
    };
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Some(diverged("v".into(), i / nb, i % nb, v[i]));
    }
    for (ci, ch) in chans.iter().enumerate() {
        let (g, ng, kind) = (&ch.gates, ch.ng, ch.kind);
        if let Some(i) = g.iter().position(|x| !x.is_finite()) {
            let (jb, gate) = (i / ng, i % ng);
            let (j, b) = (jb / nb, jb % nb);
            let spec = kind.spec();
            return Some(diverged(
                format!("{}.{}", spec.name, spec.gates[gate].name),
                cell.channels[ci].nodes[j],
                b,
                g[i],
            ));
        }
    }
    None
}
