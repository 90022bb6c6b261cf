//! The integration tests of the `neurodiff` crate, as one test binary: each binary compiles and
//! links the generic engine again, so one binary with a module per topic builds much faster than
//! one per file.

#[macro_use]
mod common;

mod adjoint;
mod catalogue_engine;
mod cell;
mod cell_grad;
mod cell_net;
mod cell_tensor;
mod cli;
mod delays;
mod edges;
mod engine;
mod facade;
mod fit;
mod fused;
mod grad;
mod latent;
mod model_value;
mod sparse;
mod spiking;
mod tvb;
