//! Spiking point neurons: one model per file, its equations, parameter table and citation in the
//! file's documentation. Equations only: nothing here integrates, detects spikes over time or
//! reads files; a spiking engine drives a neuron through the [`Neuron`] trait.
//!
//! | name   | model                                   | state          | input `I` |
//! |--------|-----------------------------------------|----------------|-----------|
//! | `hh`   | Hodgkin–Huxley 1952 squid axon          | `V, m, h, n`   | µA/cm²    |
//! | `adex` | adaptive exponential IF (Brette & Gerstner 2005) | `V, w, r` | pA  |
//! | `lif`  | leaky integrate-and-fire                | `V, r`         | pA        |
//! | `stn`  | subthalamic neuron (Terman et al. 2002, Rubin & Terman 2004) with `I_H` | `V, h, n, r, Ca, q` | µA/cm² |
//!
//! ## How an engine uses a neuron
//! With state `x` (`x[V]` in mV), current `I` and parameters `p`, one step of length `dt` (ms)
//! is:
//! 1. **step**: advance `x` with [`Neuron::drift`] by the engine's scheme. The intended scheme
//!    is exponential Euler (Rush–Larsen for gates): for each variable with a nonzero
//!    [`Neuron::linear`] entry `a`, `x ← x e^{a dt} + (b/a)(e^{a dt} − 1)` with
//!    `b = drift − a x`; Euler for the others (`a = 0`). Any explicit scheme also works.
//! 2. **detect**: `s = neuron.spike(v_before, v_after, p)`, exactly 0 or 1, differentiable
//!    through its surrogate ([`Real::spike`](crate::Real::spike)).
//! 3. **reset** (integrate-and-fire types, [`Neuron::RESETS`]): `neuron.reset(&mut x, s, p)`,
//!    `V ← V − s (V − V_reset)` and the like, which also starts the refractory countdown.
//!
//! The initial state is [`Neuron::rest`]; parameters are checked once with
//! [`Neuron::validate`] (bounds in the spec plus relations such as `V_reset < V_th`).
//!
//! ## Refractory period
//! Integrate-and-fire neurons carry a state variable `r` (ms of refractoriness left). The reset
//! sets `r = t_ref`; while `r > 0` (more precisely `r >` [`REFRACTORY_EPS`] = 1e-4 ms, which
//! absorbs round-off), `dr/dt = −1` and `dV/dt = 0` (so `V` stays at `V_reset`, and
//! [`Neuron::linear`]'s entry for `V` is 0 too); after that `r` stays where it is and `V`
//! integrates again. With Euler or exponential Euler on `r`, the clamp lasts `⌈t_ref / dt⌉`
//! steps. Other variables (AdEx's `w`) evolve through the refractory period.
//!
//! ## Adding a neuron
//! One file `neuron/<name>.rs` (doc comment with equations, parameter table with units and the
//! source of every equation and value; `params!` block; `SPEC`; `impl Neuron` and `Default`)
//! and one line in the `neurons!` list below.

mod traits;

pub use traits::{InputSpec, Neuron, NeuronError, NeuronSpec, NeuronVisitor, REFRACTORY_EPS, V};

pub(crate) use traits::refractory;

crate::neurons! {
    hh::HodgkinHuxley,
    adex::AdEx,
    lif::Lif,
    stn::Stn,
}
