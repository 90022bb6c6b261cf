//! Tests of the model catalogue: generic checks run on every registered model (`catalogue`),
//! and one module per model for its known fixed points, rhythms and bifurcations.

mod common;

mod bvep;
mod catalogue;
mod channel;
mod coombes_byrne;
mod epileptor;
mod fhn;
mod generic2d;
mod hopf;
mod jansen_rit;
mod kuramoto;
mod larter_breakspear;
mod latent;
mod linear;
mod lorenz;
mod neuron;
mod neuron_adex;
mod neuron_hh;
mod neuron_lif;
mod neuron_stn;
mod real;
mod threshold_linear;
mod vdp;
mod wilson_cowan;
mod wong_wang;
mod wong_wang_ei;
