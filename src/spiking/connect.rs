//! Connectivity of a projection, generated from the seed and stored per presynaptic neuron
//! (compressed sparse rows): for presynaptic neuron `i`, its synapses are
//! `offsets[i]..offsets[i + 1]` of `targets` (postsynaptic index, `u32`) and `weights` (`f32`).
//! That is **8 bytes per synapse** (plus 8 bytes per presynaptic neuron for the offsets); the
//! delay, time constant and reversal potential belong to the projection, not to each synapse.
//! Never a dense matrix.
//!
//! Generation is `O(synapses)`, not `O(n_pre n_post)`: for each presynaptic neuron the gaps
//! between successive targets are geometric, `⌊ln u / ln(1 − p)⌋` with `u` uniform in (0, 1]
//! (the same Bernoulli(`p`) trial for every pair, skipped over). Each presynaptic neuron has its
//! own random stream keyed by `(seed, projection, presynaptic neuron)`, so a projection's
//! connectivity does not depend on the others or on the order of generation.

use rand::Rng;
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::circuit::Projection;

/// Tags that separate the random streams of different purposes drawn from one seed.
pub(crate) mod tag {
    /// Connectivity, keyed by projection.
    pub const CONNECT: u64 = 0x636f_6e6e;
    /// Heterogeneity, keyed by population and parameter.
    pub const HETERO: u64 = 0x6865_7465;
    /// Initial state, keyed by population.
    pub const INIT: u64 = 0x696e_6974;
    /// OU background, keyed by population.
    pub const OU: u64 = 0x6f75_6e6f;
}

/// SplitMix64 finaliser.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed for the streams of one purpose (`tag`) and one object (`index`: a projection or a
/// population), derived from the circuit's seed.
pub(crate) fn subseed(seed: u64, tag: u64, index: u64) -> u64 {
    splitmix(splitmix(splitmix(seed) ^ tag) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// The stream of element `element` (a neuron) at step `step` for a sub-seed: the noise
/// convention of [`crate::noise`], a function of `(seed, step, element)` only.
pub(crate) fn stream(subseed: u64, step: u64, element: usize) -> Xoshiro256PlusPlus {
    crate::noise::stream(subseed, step, element)
}

/// A standard normal variate.
#[inline]
pub(crate) fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    rng.sample(StandardNormal)
}

/// The synapses of one projection, per presynaptic neuron (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Synapses {
    /// `n_pre + 1` offsets into `targets` and `weights`.
    pub offsets: Vec<u64>,
    /// Postsynaptic neuron (index in the postsynaptic population) of each synapse.
    pub targets: Vec<u32>,
    /// Peak conductance of each synapse (nS or mS/cm², the postsynaptic neuron's unit).
    pub weights: Vec<f32>,
}

impl Synapses {
    /// Number of synapses.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The synapses of presynaptic neuron `i`: `(targets, weights)`.
    #[inline]
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        (&self.targets[a..b], &self.weights[a..b])
    }

    /// Bytes held: 8 per synapse plus 8 per presynaptic neuron.
    pub fn bytes(&self) -> usize {
        self.targets.len() * 4 + self.weights.len() * 4 + self.offsets.len() * 8
    }

    /// Generates projection number `index` of a circuit with seed `seed`, from `n_pre` to
    /// `n_post` neurons. Weights are `w (1 + weight_cv z)` with `z` standard normal, clipped
    /// at 0, and `w` the mean weight times [`Projection::weight_scale`].
    pub fn generate(pr: &Projection, index: usize, seed: u64, n_pre: usize, n_post: usize) -> Self {
        let p = pr.p_connect;
        let expected = (p * n_pre as f64 * n_post as f64).ceil() as usize;
        let mut offsets = Vec::with_capacity(n_pre + 1);
        let mut targets = Vec::with_capacity(expected + expected / 50 + 16);
        let mut weights = Vec::with_capacity(expected + expected / 50 + 16);
        offsets.push(0u64);
        let sub = subseed(seed, tag::CONNECT, index as u64);
        let log_q = (1.0 - p).ln();
        let weight = pr.weight * pr.weight_scale(n_pre);
        for i in 0..n_pre {
            if p > 0.0 {
                let mut rng = stream(sub, 0, i);
                let mut j: i64 = -1;
                loop {
                    let skip = if p >= 1.0 {
                        0
                    } else {
                        let u = 1.0 - rng.random::<f64>();
                        (u.ln() / log_q).floor() as i64
                    };
                    j += skip + 1;
                    if j >= n_post as i64 {
                        break;
                    }
                    let w = if pr.weight_cv > 0.0 {
                        (weight * (1.0 + pr.weight_cv * normal(&mut rng))).max(0.0)
                    } else {
                        weight
                    };
                    targets.push(j as u32);
                    weights.push(w as f32);
                }
            }
            offsets.push(targets.len() as u64);
        }
        Self {
            offsets,
            targets,
            weights,
        }
    }
}
