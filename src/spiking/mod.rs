//! Spiking circuits: populations of point neurons (`neurodiff_models::neuron`) joined by sparse,
//! delayed, conductance-based projections, driven by constant, Ornstein–Uhlenbeck and deep
//! brain stimulation currents, simulated by a fused CPU engine in `f64` with event-driven
//! synaptic propagation (issue 13).
//!
//! - [`circuit`]: the circuit as data (`serde`), its validation, the default STN–GPe–GPi
//!   circuit;
//! - [`connect`]: connectivity generated from the seed, stored per presynaptic neuron at 8 bytes
//!   per synapse;
//! - [`engine`]: the step (neurons by exponential Euler, exact conductance decay, delay ring
//!   buffers);
//! - [`monitor`]: spikes, population rates, sampled voltages, the LFP proxy.

pub mod circuit;
pub mod connect;
pub mod engine;
pub mod monitor;

pub use circuit::{Circuit, Dbs, Ou, Population, Projection};
pub use connect::Synapses;
pub use engine::{Engine, BYTES_PER_SYNAPSE};
pub use monitor::{Record, Recorder};
