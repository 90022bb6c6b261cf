//! `neurodiff latent`: multi-region latent-variable models (GPFA, DLAG) — `synth` draws seeded
//! synthetic data with known delays and timescales, `fit` fits a model by EM and writes
//! `latent.json` and the latents as `.npy`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use neurodiff::io::{read_npy, write_text, Dtype, NpyStream};
use neurodiff::latent::fit::{cosmooth, fit, infer, Cosmooth, Method, Spec};
use neurodiff::latent::synth::{synth, SynthSpec};
use neurodiff::latent::Data;
use neurodiff::models::latent::linalg::Mat;
use neurodiff::{Error, Result};

/// `neurodiff latent <command>`.
#[derive(Debug, Args)]
pub struct LatentArgs {
    #[command(subcommand)]
    command: LatentCommand,
}

#[derive(Debug, Subcommand)]
enum LatentCommand {
    /// Draw seeded multi-region data from exact Gaussian processes with known delays,
    /// timescales and SNR: one `.npy` per region (trials × bins × neurons) and truth.json.
    Synth(SynthArgs),
    /// Fit GPFA or DLAG by EM: latent.json (parameters, delays, timescales, log-likelihood
    /// trace, held-out log-likelihood, settings, wall time), latents.npy (trials × bins ×
    /// latents) and latent_cov.npy (bins × latents × latents).
    Fit(FitArgs),
}

/// Flags of `neurodiff latent synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Trials.
    #[arg(long, default_value_t = 100)]
    trials: usize,
    /// Time bins per trial.
    #[arg(long, default_value_t = 200)]
    bins: usize,
    /// Neurons per region, comma-separated (one value per region).
    #[arg(long, default_value = "30,30")]
    neurons: String,
    /// Delays of each across-region latent, bins: one comma-separated list per latent (one
    /// value per region, the first region the 0 reference), latents separated by `;`.
    #[arg(long, default_value = "0,2.5", allow_hyphen_values = true)]
    delays: String,
    /// Timescale of each across-region latent, bins, comma-separated.
    #[arg(long, default_value = "5")]
    timescales: String,
    /// Within-region latents per region, comma-separated.
    #[arg(long, default_value = "1,1")]
    within: String,
    /// Timescale of the within-region latents, bins.
    #[arg(long, default_value_t = 3.0)]
    within_timescale: f64,
    /// Kernel: rbf, matern12, matern32, matern52, rq.
    #[arg(long, default_value = "rbf")]
    kernel: String,
    /// Signal-to-noise ratio tr(C Cᵀ)/tr(R) per region.
    #[arg(long, default_value_t = 1.0)]
    snr: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder (region0.npy, region1.npy, …, truth.json).
    #[arg(long, short, default_value = "out/latent_synth")]
    out: PathBuf,
}

/// Flags of `neurodiff latent fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// gpfa or dlag.
    #[arg(long, default_value = "dlag")]
    method: String,
    /// One `.npy` per region (trials × bins × neurons), comma-separated.
    #[arg(long)]
    data: String,
    /// Across-region latents (DLAG) or shared latents (GPFA).
    #[arg(long, default_value_t = 1)]
    across: usize,
    /// Within-region latents per region, comma-separated (DLAG).
    #[arg(long)]
    within: Option<String>,
    /// Kernel: rbf, matern12, matern32, matern52, rq.
    #[arg(long, default_value = "rbf")]
    kernel: String,
    /// Initial timescale, bins.
    #[arg(long, default_value_t = 5.0)]
    init_timescale: f64,
    /// Largest |delay|, bins.
    #[arg(long, default_value_t = 5.0)]
    max_delay: f64,
    /// AR order of the state-space lift (kernels without an exact SDE, or delayed).
    #[arg(long, default_value_t = 4)]
    ar_order: usize,
    /// EM iterations at most.
    #[arg(long, default_value_t = 200)]
    max_iter: usize,
    /// Relative log-likelihood tolerance of EM.
    #[arg(long, default_value_t = 1e-7)]
    tol: f64,
    /// Run the E-step as a parallel associative scan.
    #[arg(long)]
    parallel: bool,
    /// Fraction of trials held out (their log-likelihood is reported), chosen by --split-seed.
    #[arg(long, default_value_t = 0.2)]
    test_frac: f64,
    /// Seed of the train/test split of trials.
    #[arg(long, default_value_t = 0)]
    split_seed: u64,
    /// Co-smoothing on the held-out trials: fraction of each region's neurons hidden and
    /// predicted from the others (0 = no co-smoothing).
    #[arg(long, default_value_t = 0.2)]
    cosmooth_frac: f64,
    /// Co-smoothing: number of random held-out-neuron masks averaged (seeded by --split-seed).
    #[arg(long, default_value_t = 3)]
    holdout_masks: usize,
    /// Output folder.
    #[arg(long, short, default_value = "out/latent")]
    out: PathBuf,
    /// No progress and no summary.
    #[arg(long, short)]
    quiet: bool,
}

fn list<T: std::str::FromStr>(name: &'static str, s: &str) -> Result<Vec<T>> {
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| {
            x.trim()
                .parse()
                .map_err(|_| Error::setting(name, format!("`{x}` is not a valid value")))
        })
        .collect()
}

fn write_array(path: &Path, shape: &[usize], values: &[f64]) -> Result<()> {
    let mut s = NpyStream::create(path, shape, Dtype::F64)?;
    s.write(values)?;
    s.finish()
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Runs `neurodiff latent`.
pub fn run(args: LatentArgs) -> Result<()> {
    match args.command {
        LatentCommand::Synth(a) => run_synth(a),
        LatentCommand::Fit(a) => run_fit(a),
    }
}

fn run_synth(a: SynthArgs) -> Result<()> {
    let neurons: Vec<usize> = list("neurons", &a.neurons)?;
    let delays: Vec<Vec<f64>> = a
        .delays
        .split(';')
        .filter(|s| !s.trim().is_empty())
        .map(|s| list("delays", s))
        .collect::<Result<_>>()?;
    let spec = SynthSpec {
        trials: a.trials,
        bins: a.bins,
        neurons,
        kernel: a.kernel,
        across_timescales: list("timescales", &a.timescales)?,
        delays,
        within: list("within", &a.within)?,
        within_timescale: a.within_timescale,
        snr: a.snr,
        seed: a.seed,
    };
    let (data, truth) = synth(&spec)?;
    mkdir(&a.out)?;
    for (r, reg) in data.regions.iter().enumerate() {
        let n = reg[0].cols;
        let vals: Vec<f64> = reg.iter().flat_map(|m| m.data.iter().copied()).collect();
        write_array(
            &a.out.join(format!("region{r}.npy")),
            &[data.n_trials(), data.n_bins(), n],
            &vals,
        )?;
    }
    let json = serde_json::to_string_pretty(&truth).expect("serialisable");
    write_text(&a.out.join("truth.json"), &json)?;
    println!(
        "wrote {} regions ({} trials × {} bins) and truth.json to {}",
        data.n_regions(),
        data.n_trials(),
        data.n_bins(),
        a.out.display()
    );
    Ok(())
}

fn load(files: &str) -> Result<Data> {
    let mut names = Vec::new();
    let mut regions = Vec::new();
    for f in files.split(',').filter(|f| !f.trim().is_empty()) {
        let path = PathBuf::from(f.trim());
        let arr = read_npy(&path)?;
        if arr.ndim() != 3 {
            return Err(Error::data(
                &path,
                format!(
                    "expected a 3-D array trials × time bins × neurons, got shape {:?}",
                    arr.shape
                ),
            ));
        }
        let (k, t, n) = (arr.shape[0], arr.shape[1], arr.shape[2]);
        let trials = (0..k)
            .map(|i| Mat::from_vec(t, n, arr.data[i * t * n..(i + 1) * t * n].to_vec()))
            .collect();
        names.push(
            path.file_stem()
                .map_or_else(|| f.to_string(), |s| s.to_string_lossy().into_owned()),
        );
        regions.push(trials);
    }
    Ok(Data::new(names, regions)?)
}

#[derive(Serialize)]
struct Report<'a> {
    method: &'a str,
    regions: &'a [String],
    neurons: Vec<usize>,
    trials: usize,
    bins: usize,
    train_trials: Vec<usize>,
    test_trials: Vec<usize>,
    /// Log-likelihood of the held-out trials per trial (nats), if any.
    test_loglik_per_trial: Option<f64>,
    /// Held-out-neuron co-smoothing on the held-out trials, if any.
    cosmooth: Option<Cosmooth>,
    #[serde(flatten)]
    fit: &'a neurodiff::latent::FitResult,
    wall_s_total: f64,
}

fn run_fit(a: FitArgs) -> Result<()> {
    let start = Instant::now();
    let method: Method = a.method.parse()?;
    let data = load(&a.data)?;
    let within = match &a.within {
        Some(w) => list("within", w)?,
        None if method == Method::Dlag => vec![0; data.n_regions()],
        None => vec![],
    };
    if !(0.0..1.0).contains(&a.test_frac) {
        return Err(Error::setting(
            "test-frac",
            format!("{} is not in [0, 1)", a.test_frac),
        ));
    }
    // Train/test split of trials.
    let nt = data.n_trials();
    let mut idx: Vec<usize> = (0..nt).collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(a.split_seed);
    for i in (1..nt).rev() {
        idx.swap(i, rng.random_range(0..=i));
    }
    let n_test = ((nt as f64) * a.test_frac).floor() as usize;
    let (mut test, mut train) = (idx[..n_test].to_vec(), idx[n_test..].to_vec());
    test.sort_unstable();
    train.sort_unstable();
    if train.is_empty() {
        return Err(Error::setting(
            "test-frac",
            "no training trials left".to_string(),
        ));
    }
    let mut spec = Spec::preset(method, a.across, within);
    spec.kernel = a.kernel;
    spec.init_timescale = a.init_timescale;
    spec.max_delay = a.max_delay;
    spec.ar_order = a.ar_order;
    spec.max_iter = a.max_iter;
    spec.tol = a.tol;
    spec.parallel = a.parallel;
    let quiet = a.quiet;
    let res = fit(&data.subset(&train), &spec, |it, ll| {
        if !quiet {
            eprint!("\rEM iteration {it:4}  log-likelihood {ll:.6e}   ");
        }
    })?;
    if !quiet {
        eprintln!();
    }
    let test_ll = if test.is_empty() {
        None
    } else {
        let (ll, _, _) = infer(&data.subset(&test), &res.prior, &res.obs, spec.parallel)?;
        Some(ll / test.len() as f64)
    };
    let cs = if test.is_empty() || a.cosmooth_frac == 0.0 {
        None
    } else {
        Some(cosmooth(
            &data.subset(&test),
            &res.prior,
            &res.obs,
            a.cosmooth_frac,
            a.holdout_masks,
            a.split_seed,
        )?)
    };
    let (_, latents, covs) = infer(&data, &res.prior, &res.obs, spec.parallel)?;
    mkdir(&a.out)?;
    let q = covs.first().map_or(0, |c| c.rows);
    let vals: Vec<f64> = latents
        .iter()
        .flat_map(|m| m.data.iter().copied())
        .collect();
    write_array(&a.out.join("latents.npy"), &[nt, data.n_bins(), q], &vals)?;
    let cv: Vec<f64> = covs.iter().flat_map(|m| m.data.iter().copied()).collect();
    write_array(&a.out.join("latent_cov.npy"), &[data.n_bins(), q, q], &cv)?;
    let report = Report {
        method: method.name(),
        regions: &data.names,
        neurons: data.neurons(),
        trials: nt,
        bins: data.n_bins(),
        train_trials: train,
        test_trials: test,
        test_loglik_per_trial: test_ll,
        cosmooth: cs.clone(),
        fit: &res,
        wall_s_total: start.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&report).expect("serialisable");
    write_text(&a.out.join("latent.json"), &json)?;
    if !quiet {
        println!(
            "{} iterations ({}), log-likelihood {:.6e}, {:.2} s",
            res.iterations,
            if res.converged {
                "converged"
            } else {
                "not converged"
            },
            res.loglik.last().copied().unwrap_or(f64::NAN),
            res.wall_s
        );
        for p in &res.processes {
            println!(
                "  {:?}{}  timescale {:.3} bins{}",
                p.kind,
                p.region
                    .map(|r| format!(" ({})", data.names[r]))
                    .unwrap_or_default(),
                p.timescale,
                if p.delays.is_empty() {
                    String::new()
                } else {
                    format!("  delays {:?} bins", p.delays)
                }
            );
        }
        if let Some(c) = &cs {
            println!(
                "  co-smoothing on {} held-out trials: PSTH RMSE {:?}, single-trial RMSE {:?}",
                report.test_trials.len(),
                c.psth_rmse,
                c.single_trial_rmse
            );
        }
        println!("wrote {}", a.out.join("latent.json").display());
    }
    Ok(())
}
