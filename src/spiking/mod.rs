//! Spiking circuits: populations of point neurons (`neurodiff_models::neuron`) joined by sparse,
//! delayed, conductance-based projections, driven by constant, Ornstein–Uhlenbeck and deep
//! brain stimulation currents, simulated by a fused CPU engine in `f64` with event-driven
//! synaptic propagation (issue 13), or in dual numbers for gradients.
//!
//! - [`circuit`]: the circuit as data (`serde`), its validation, the default STN–GPe–GPi
//!   circuit;
//! - [`connect`]: connectivity generated from the seed, stored per presynaptic neuron at 8 bytes
//!   per synapse;
//! - [`engine`]: the step (neurons by exponential Euler, exact conductance decay, delay ring
//!   buffers), generic over its number ([`SpikeNum`]: `f64` or forward-mode dual numbers);
//! - [`grad`]: rate and beta-power objectives and their gradients by forward mode;
//! - [`fit`]: bounded gradient descent of a few parameters towards those objectives;
//! - [`monitor`]: spikes, population rates, sampled voltages, the LFP proxy;
//! - [`tensor`]: the same circuit on Burn tensors (any backend, a batch dimension, surrogate
//!   gradients under `Autodiff`), checked against the fused engine;
//! - [`tensor_grad`]: [`grad`]'s objectives and their surrogate gradients on the tensor engine
//!   under `Autodiff`, by chunked checkpointing (memory flat in the number of steps).

pub mod circuit;
pub mod connect;
pub mod engine;
pub mod fit;
pub mod grad;
pub mod monitor;
pub mod tensor;
pub mod tensor_grad;

pub use circuit::{Circuit, Dbs, InputData, InputSeries, Ou, Population, Projection};
pub use connect::Synapses;
pub use engine::{Engine, Seed, SpikeNum, BYTES_PER_SYNAPSE};
pub use monitor::{Record, Recorder};
pub use tensor::{TensorEngine, TensorState};
