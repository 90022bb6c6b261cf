//! `neurodiff train`: trains a biophysical network on a task by backpropagation through time
//! (`neurodiff::cell::train`): the evidence-integration task of Jaxley's paper.
//!
//! Writes `train.json` (settings, loss and accuracy per iteration, held-out accuracy, timings,
//! the trained weights) and `train.png` into `--out-dir`; every setting is checked before
//! anything runs.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use rand::SeedableRng;
use serde::Serialize;

use neurodiff::cell::adjoint::{check_levels, default_levels};
use neurodiff::cell::network::{simulate, NetProbe};
use neurodiff::cell::train::{
    batch_grad, evaluate, protocol, trials, EvidenceNet, EvidenceTask, Model,
};
use neurodiff::io::write_text;
use neurodiff::{Error, Result};

/// Flags of `neurodiff train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The task (only `evidence`: the sign of noisy evidence, Jaxley's evidence integration).
    #[arg(long, default_value = "evidence", value_parser = ["evidence"])]
    pub task: String,
    /// Output folder: train.json and train.png.
    #[arg(long, default_value = "out/train")]
    pub out_dir: PathBuf,
    /// Training iterations (one batch of fresh trials each).
    #[arg(long, default_value_t = 28)]
    pub iterations: usize,
    /// Trials per iteration (the simulation's batch).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Adam's learning rate on the inverse-sigmoid (unbounded) variables.
    #[arg(long, default_value_t = 0.2)]
    pub lr: f64,
    /// Held-out trials for the final accuracy.
    #[arg(long, default_value_t = 1000)]
    pub test_trials: usize,
    /// Recurrent HH cells.
    #[arg(long, default_value_t = 20)]
    pub n_rec: usize,
    /// Inhibitory cells among them.
    #[arg(long, default_value_t = 5)]
    pub n_inh: usize,
    /// Recurrent connection probability.
    #[arg(long, default_value_t = 0.3)]
    pub p_rec: f64,
    /// Trial length, ms.
    #[arg(long, default_value_t = 500.0)]
    pub duration: f64,
    /// Time step, ms.
    #[arg(long, default_value_t = 0.025)]
    pub dt: f64,
    /// Mean evidence per bin (units of the evidence; the noise s.d. is `--sigma`).
    #[arg(long, default_value_t = 0.5)]
    pub mu: f64,
    /// Noise s.d. per bin.
    #[arg(long, default_value_t = 1.0)]
    pub sigma: f64,
    /// Evidence bin, ms.
    #[arg(long, default_value_t = 1.0)]
    pub bin: f64,
    /// Response window at the end of the trial, ms.
    #[arg(long, default_value_t = 100.0)]
    pub window: f64,
    /// Seed of the network and of the training trials (the held-out trials use seed + 1e6).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Checkpoint levels of the gradient, e.g. 150,150 (default one level of ⌈√steps⌉).
    #[arg(long, value_delimiter = ',', value_name = "C1,C2,..")]
    pub checkpoint: Vec<usize>,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Serialize)]
struct Out<'a> {
    task: &'a EvidenceTask,
    network: &'a EvidenceNet,
    iterations: usize,
    batch: usize,
    lr: f64,
    checkpoint: Vec<usize>,
    ideal_observer_accuracy: f64,
    trained_params: usize,
    history: History,
    held_out: HeldOut,
    timing: Timing,
    model: &'a Model,
    units: &'static str,
}

#[derive(Serialize, Default)]
struct History {
    loss: Vec<f64>,
    accuracy: Vec<f64>,
}

#[derive(Serialize)]
struct HeldOut {
    trials: usize,
    accuracy: f64,
    loss: f64,
    accuracy_before_training: Option<f64>,
}

#[derive(Serialize)]
struct Timing {
    train_s: f64,
    gradient_s_per_trial: f64,
    eval_s: f64,
    peak_states: usize,
    state_size: usize,
}

/// Runs `neurodiff train`.
pub fn run(a: TrainArgs) -> Result<()> {
    let task = EvidenceTask {
        dt: a.dt,
        duration: a.duration,
        bin: a.bin,
        mu: a.mu,
        sigma: a.sigma,
        window: a.window,
    };
    task.check()?;
    let shape = EvidenceNet {
        n_rec: a.n_rec,
        n_inh: a.n_inh,
        p_rec: a.p_rec,
        seed: a.seed,
        ..EvidenceNet::default()
    };
    let mut model = Model::new(shape.clone(), task.dt)?;
    if a.iterations == 0 || a.batch == 0 || a.test_trials == 0 {
        return Err(Error::setting(
            "iterations/batch/test-trials",
            "must each be at least 1",
        ));
    }
    if !(a.lr.is_finite() && a.lr > 0.0) {
        return Err(Error::setting(
            "lr",
            format!("must be positive, got {}", a.lr),
        ));
    }
    let levels = if a.checkpoint.is_empty() {
        default_levels(task.steps())
    } else {
        a.checkpoint.clone()
    };
    check_levels(&levels)?;
    std::fs::create_dir_all(&a.out_dir).map_err(|e| Error::io(&a.out_dir, e))?;
    let json_path = a.out_dir.join("train.json");
    let png_path = a.out_dir.join("train.png");

    let np = model.n_params();
    let bounds: Vec<(f64, f64)> = (0..np).map(|i| model.bounds(i)).collect();
    let to_z = |v: &[f64]| -> Vec<f64> {
        v.iter()
            .zip(&bounds)
            .map(|(&x, &(l, u))| (x - l).ln() - (u - x).ln())
            .collect()
    };
    let to_theta = |z: &[f64]| -> Vec<f64> {
        z.iter()
            .zip(&bounds)
            .map(|(&z, &(l, u))| l + (u - l) / (1.0 + (-z).exp()))
            .collect()
    };
    let mut z = to_z(&model.values());
    let mut adam = AdamHost::new(np, a.lr);
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(a.seed);
    let mut history = History::default();
    let (mut peak_states, mut state_size) = (0, 0);
    let t0 = Instant::now();
    for it in 0..a.iterations {
        let (labels, signals): (Vec<usize>, Vec<Vec<f64>>) =
            (0..a.batch).map(|_| task.trial(&mut rng)).unzip();
        let theta = to_theta(&z);
        model.set_values(&theta);
        let g = batch_grad(&model, &task, &labels, signals, &levels)?;
        peak_states = g.peak_states;
        state_size = g.state_size;
        // Chain to the unbounded variables: dθ/dz = (θ − l)(u − θ)/(u − l).
        let gz: Vec<f64> = g
            .grad
            .iter()
            .zip(&theta)
            .zip(&bounds)
            .map(|((g, &t), &(l, u))| g * (t - l) * (u - t) / (u - l))
            .collect();
        if !g.loss.is_finite() || gz.iter().any(|x| !x.is_finite()) {
            return Err(Error::setting(
                "training",
                format!("the loss or its gradient became non-finite at iteration {it}"),
            ));
        }
        adam.step(&mut z, &gz)?;
        history.loss.push(g.loss);
        history.accuracy.push(g.accuracy);
        if !a.quiet {
            eprintln!(
                "iteration {it:4}: loss {:.4}, accuracy {:.3} ({:.1} s)",
                g.loss,
                g.accuracy,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    let train_s = t0.elapsed().as_secs_f64();
    model.set_values(&to_theta(&z));

    let t1 = Instant::now();
    let (labels, signals) = trials(&task, a.test_trials, a.seed + 1_000_000);
    let (accuracy, loss) = evaluate(&model, &task, &labels, &signals, 50)?;
    let eval_s = t1.elapsed().as_secs_f64();
    if !a.quiet {
        eprintln!(
            "held-out: accuracy {accuracy:.4} on {} trials, loss {loss:.4} ({eval_s:.1} s)",
            a.test_trials
        );
    }

    // Example traces: the first held-out trial of each class.
    let mut traces = Vec::new();
    for class in [0usize, 1] {
        if let Some(i) = labels.iter().position(|&l| l == class) {
            let net = model.network(task.dt, vec![signals[i].clone()])?;
            let rec = simulate::<f64>(
                &net,
                &protocol(&task),
                &[
                    NetProbe::V {
                        cell: a.n_rec,
                        node: 0,
                    },
                    NetProbe::V {
                        cell: a.n_rec + 1,
                        node: 0,
                    },
                ],
            )?;
            let sign = if class == 1 { "+" } else { "−" };
            traces.push((format!("evidence {sign}: readout −"), rec.trace(0, 0)));
            traces.push((format!("evidence {sign}: readout +"), rec.trace(1, 0)));
        }
    }

    let out = Out {
        task: &task,
        network: &shape,
        iterations: a.iterations,
        batch: a.batch,
        lr: a.lr,
        checkpoint: levels,
        ideal_observer_accuracy: task.ideal_accuracy(),
        trained_params: np,
        held_out: HeldOut {
            trials: a.test_trials,
            accuracy,
            loss,
            accuracy_before_training: None,
        },
        timing: Timing {
            train_s,
            gradient_s_per_trial: train_s / (a.iterations * a.batch) as f64,
            eval_s,
            peak_states,
            state_size,
        },
        model: &model,
        units: "time ms, voltage mV, w_in nA per unit of evidence, bias nA, gs µS",
        history,
    };
    let text = serde_json::to_string_pretty(&out)
        .map_err(|e| Error::setting("train.json", e.to_string()))?;
    write_text(&json_path, &text)?;
    neurodiff::plot::train_figure(
        &png_path,
        &out.history.loss,
        &out.history.accuracy,
        &traces,
        task.dt,
    )?;
    if !a.quiet {
        eprintln!("wrote {} and {}", json_path.display(), png_path.display());
    }
    Ok(())
}

/// Adam from `neurodiff_optim` on one `[1, n]` NdArray<f64> tensor.
struct AdamHost {
    n: usize,
    adam: neurodiff_optim::Adam,
    m: Vec<f64>,
    v: Vec<f64>,
    t: u64,
}

impl AdamHost {
    fn new(n: usize, lr: f64) -> Self {
        AdamHost {
            n,
            adam: neurodiff_optim::Adam::new(neurodiff_optim::AdamConfig {
                lr,
                ..Default::default()
            })
            .expect("a positive learning rate"),
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    fn step(&mut self, z: &mut [f64], g: &[f64]) -> Result<()> {
        use burn::prelude::{Tensor, TensorData};
        type B = burn::backend::NdArray<f64>;
        let device = Default::default();
        let n = self.n;
        let t = |v: &[f64]| -> Tensor<B, 2> {
            Tensor::from_data(
                TensorData::new(v.to_vec(), [1, n]),
                neurodiff::float_opts::<B>(&device),
            )
        };
        let host = |x: Tensor<B, 2>| -> Vec<f64> {
            x.into_data()
                .convert::<f64>()
                .into_vec::<f64>()
                .expect("f64")
        };
        let mut s = neurodiff_optim::AdamState {
            m: vec![t(&self.m)],
            v: vec![t(&self.v)],
            t: self.t,
        };
        let out = self
            .adam
            .step(&[t(z)], &[t(g)], &mut s)
            .map_err(|e| Error::setting("optimizer", e.to_string()))?;
        self.m = host(s.m.remove(0));
        self.v = host(s.v.remove(0));
        self.t = s.t;
        z.copy_from_slice(&host(out.into_iter().next().expect("one tensor")));
        Ok(())
    }
}
