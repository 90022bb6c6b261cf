//! Command-line interface: argument definitions and dispatch.

mod cell;
mod cell_fit;
mod circuit;
mod fit;
mod latent;
mod models;
mod neuron;
mod simulate;
mod train;

use clap::{Parser, Subcommand};
use neurodiff::Result;

/// neurodiff: a differentiable whole-brain simulator.
#[derive(Debug, Parser)]
#[command(name = "neurodiff", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Simulate a network of neural masses on a connectome (by default MPR on the bundled HCP
    /// 80-region connectome) and write the samples to .npy with a JSON sidecar.
    Simulate(Box<simulate::SimulateArgs>),
    /// Fit model parameters to an empirical FC by gradient descent through the simulation (by
    /// default the Hopf model's G and a to the bundled HCP group FC).
    Fit(Box<fit::FitArgs>),
    /// List the models with their state variables and parameters.
    Models(models::ModelsArgs),
    /// Simulate single spiking neurons under a current step, one cell per current (an f–I
    /// curve in one run): voltage traces to .npy, spike times and rates to a .json sidecar.
    Neuron(neuron::NeuronArgs),
    /// Simulate a spiking STN–GPe–GPi circuit (or one from a TOML file): spikes, rates, LFP
    /// proxy, circuit.json and circuit.png, with rates and ISI CV per population.
    Circuit(Box<circuit::CircuitArgs>),
    /// Simulate a multi-compartment cell from a TOML file (morphology, channels, stimuli,
    /// recordings): traces to .npy with a JSON sidecar and a figure.
    Cell(Box<cell::CellArgs>),
    /// Train a biophysical network on a task by backpropagation through time (the evidence-
    /// integration task of Jaxley's paper): train.json and train.png in --out-dir.
    Train(Box<train::TrainArgs>),
    /// Multi-region latent-variable models (GPFA, DLAG, LDS): `latent synth`, `latent fit`, `latent eval`.
    Latent(latent::LatentArgs),
    /// Run the benchmark cases of shared/anchors/BENCHMARKS.md and print JSON lines.
    Bench(crate::bench::BenchArgs),
}

impl Cli {
    /// The fit arguments, if this is a `fit` command line.
    fn into_fit(self) -> Option<fit::FitArgs> {
        match self.command {
            Command::Fit(a) => Some(*a),
            _ => None,
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate(a) => simulate::run(*a),
        Command::Fit(a) => fit::run(*a),
        Command::Models(a) => models::run(a),
        Command::Neuron(a) => neuron::run(a),
        Command::Circuit(a) => circuit::run(*a),
        Command::Cell(a) => cell::run(*a),
        Command::Train(a) => train::run(*a),
        Command::Latent(a) => latent::run(a),
        Command::Bench(a) => crate::bench::run(a),
    }
}
