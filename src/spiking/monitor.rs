//! Monitors of a spiking run, filled after every step by [`Recorder::observe`]: spike lists
//! (global neuron id, step), population rates per bin, `V` of chosen neurons and an LFP proxy
//! (each population's mean `V`) on a sampling schedule.

use super::engine::{Engine, SpikeNum};

/// What to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Keep every spike as (global neuron id, step).
    pub spikes: bool,
    /// Width of a rate bin, in steps (0: no rates).
    pub rate_bin_steps: usize,
    /// Global ids of the neurons whose `V` is sampled.
    pub v_neurons: Vec<usize>,
    /// Keep one `V`/LFP sample every this many steps (≥ 1).
    pub sample_every: usize,
    /// Sample each population's mean `V` (the LFP proxy).
    pub lfp: bool,
}

impl Default for Record {
    fn default() -> Self {
        Self {
            spikes: true,
            rate_bin_steps: 40,
            v_neurons: Vec::new(),
            sample_every: 40,
            lfp: true,
        }
    }
}

/// What a run recorded.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// The settings.
    pub record: Record,
    /// Spikes as (global neuron id, step index `s`: the spike happened in step `s`, at
    /// `(s + 1) dt`).
    pub spikes: Vec<(u32, u32)>,
    /// Spike counts `[bin][population]` of completed bins.
    pub counts: Vec<Vec<u32>>,
    current: Vec<u32>,
    in_bin: usize,
    /// `V` samples, `[sample][v_neurons]`.
    pub v: Vec<f64>,
    /// Mean `V` per population, `[sample][population]`.
    pub lfp: Vec<f64>,
    /// Number of steps observed.
    pub steps: u64,
    sizes: Vec<usize>,
}

impl Recorder {
    /// An empty recorder for a circuit of these population sizes.
    pub fn new<T: SpikeNum>(record: Record, engine: &Engine<T>) -> Self {
        let sizes = (0..engine.n_populations())
            .map(|k| engine.population(k).1)
            .collect::<Vec<_>>();
        Self {
            record,
            spikes: Vec::new(),
            counts: Vec::new(),
            current: vec![0; sizes.len()],
            in_bin: 0,
            v: Vec::new(),
            lfp: Vec::new(),
            steps: 0,
            sizes,
        }
    }

    /// Records the step the engine just took.
    pub fn observe<O: Observed + ?Sized>(&mut self, e: &O) {
        let s = self.steps;
        for k in 0..self.sizes.len() {
            let spiked = e.spiked(k);
            self.current[k] += spiked.len() as u32;
            if self.record.spikes {
                let off = e.first_id(k) as u32;
                self.spikes
                    .extend(spiked.iter().map(|&i| (off + i, s as u32)));
            }
        }
        if self.record.rate_bin_steps > 0 {
            self.in_bin += 1;
            if self.in_bin == self.record.rate_bin_steps {
                self.counts.push(std::mem::replace(
                    &mut self.current,
                    vec![0; self.sizes.len()],
                ));
                self.in_bin = 0;
            }
        }
        let every = self.record.sample_every.max(1) as u64;
        if (s + 1).is_multiple_of(every) {
            for &g in &self.record.v_neurons {
                let (k, i) = locate_in(&self.sizes, g);
                self.v.push(e.v(k, i));
            }
            if self.record.lfp {
                for k in 0..self.sizes.len() {
                    let n = self.sizes[k] as f64;
                    self.lfp.push(e.v_sum(k) / n);
                }
            }
        }
        self.steps += 1;
    }

    /// Population rates (Hz) per completed bin, `[bin][population]`, for a step of `dt` ms.
    pub fn rates_hz(&self, dt: f64) -> Vec<Vec<f64>> {
        let width_s = self.record.rate_bin_steps as f64 * dt / 1000.0;
        self.counts
            .iter()
            .map(|c| {
                c.iter()
                    .zip(&self.sizes)
                    .map(|(&n, &size)| n as f64 / (size as f64 * width_s))
                    .collect()
            })
            .collect()
    }
}

/// What a [`Recorder`] reads after a step: the fused [`Engine`], or a host copy of a tensor
/// engine's step ([`super::tensor::Snapshot`]).
pub trait Observed {
    /// The neurons of population `k` that spiked in the last step, ascending.
    fn spiked(&self, k: usize) -> &[u32];
    /// Global id of the first neuron of population `k`.
    fn first_id(&self, k: usize) -> usize;
    /// Membrane potential of neuron `i` of population `k`, mV.
    fn v(&self, k: usize, i: usize) -> f64;
    /// Sum of the membrane potentials of population `k`, in neuron order, mV.
    fn v_sum(&self, k: usize) -> f64;
}

impl<T: SpikeNum> Observed for Engine<T> {
    fn spiked(&self, k: usize) -> &[u32] {
        Engine::spiked(self, k)
    }
    fn first_id(&self, k: usize) -> usize {
        self.population(k).2
    }
    fn v(&self, k: usize, i: usize) -> f64 {
        self.voltage(k, i).value()
    }
    fn v_sum(&self, k: usize) -> f64 {
        self.voltages(k).map(|v| v.value()).sum::<f64>()
    }
}

/// Population and index of global id `g` for populations of these sizes.
fn locate_in(sizes: &[usize], g: usize) -> (usize, usize) {
    let mut off = 0;
    for (k, &n) in sizes.iter().enumerate() {
        if g < off + n {
            return (k, g - off);
        }
        off += n;
    }
    panic!("neuron {g} is not in the circuit ({off} neurons)")
}

/// Population and index of global neuron id `g`.
///
/// # Panics
/// If `g` is not a neuron of the circuit.
pub fn locate<T: SpikeNum>(e: &Engine<T>, g: usize) -> (usize, usize) {
    for k in 0..e.n_populations() {
        let (_, n, off) = e.population(k);
        if g >= off && g < off + n {
            return (k, g - off);
        }
    }
    panic!(
        "neuron {g} is not in the circuit ({} neurons)",
        e.n_neurons()
    );
}
