//! `neurodiff latent`: multi-region latent-variable models (GPFA, DLAG, LDS) — `synth` draws seeded
//! synthetic data with known delays and timescales, `fit` fits a model by EM and writes
//! `latent.json` and the latents as `.npy`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use neurodiff::io::{read_npy, write_text, Dtype, NpyStream};
use neurodiff::latent::fit::{
    cosmooth, cosmooth_masks, fit, infer, Cosmooth, Engine, Method, Spec,
};
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
    /// Fit GPFA, DLAG or LDS by EM: latent.json (parameters, delays, timescales, log-likelihood
    /// trace, held-out log-likelihood, settings, wall time), latents.npy (trials × bins ×
    /// latents), latent_cov.npy (bins × latents × latents) and latent.png.
    Fit(FitArgs),
    /// Evaluate a fitted model (latent.json) on data without refitting: held-out
    /// log-likelihood, co-smoothing RMSE per region, delay-recovery RMSE against a synth
    /// truth.json; writes eval.json and latent.png.
    Eval(EvalArgs),
}

/// Flags of `neurodiff latent eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The latent.json written by `neurodiff latent fit`.
    #[arg(long)]
    fit: PathBuf,
    /// The data, as for `fit` (the same regions in the same order).
    #[arg(long)]
    data: String,
    /// The arrays of an `.npz` to use as regions, in this order, comma-separated.
    #[arg(long)]
    regions: Option<String>,
    /// truth.json of `neurodiff latent synth`: adds the delay-recovery RMSE.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Evaluate on every trial instead of the fit's held-out trials.
    #[arg(long)]
    all_trials: bool,
    /// Co-smoothing: fraction of each region's neurons hidden (0 = none).
    #[arg(long, default_value_t = 0.2)]
    cosmooth_frac: f64,
    /// Co-smoothing: number of random held-out-neuron masks averaged.
    #[arg(long, default_value_t = 3)]
    holdout_masks: usize,
    /// Seed of the masks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Co-smoothing with these held-out neurons instead of random masks: a JSON list of masks,
    /// each a list per region of the hidden neurons, 0-based within the region (e.g.
    /// `[[[0, 5], [2]], [[1, 3], [4]]]`: two masks of two regions), as
    /// `benches/mbrila/v1v2.py prepare` writes mbrila's.
    #[arg(long)]
    holdout_file: Option<PathBuf>,
    /// Output folder (eval.json, latent.png).
    #[arg(long, short, default_value = "out/latent_eval")]
    out: PathBuf,
    /// No summary.
    #[arg(long, short)]
    quiet: bool,
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
    /// Which regions each across latent loads on (mDLAG's loading pattern): one
    /// comma-separated list of 0/1 per region for each latent, latents separated by `;`
    /// (e.g. `1,1,0;1,1,1`); default: every latent on every region.
    #[arg(long)]
    loads: Option<String>,
    /// Time-varying delays (for `--method adm`): amplitude of a sinusoidal sway of each delay,
    /// `δ_r(t) = delay + a·sin(2π t/(T − 1))`, bins; lists like --delays (default: constant).
    #[arg(long, allow_hyphen_values = true)]
    delay_sway: Option<String>,
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
    /// gpfa, dlag, lds, mdlag (--across latents, the regions each loads on found by ARD) or
    /// adm (dlag with time-varying delays δ(t), --delay-basis cosines over the trial).
    #[arg(long, default_value = "dlag")]
    method: String,
    /// E-step engine: ssm (state-space lift, Kalman smoother, O(T)) or exact (dense GP,
    /// O((T·latents)³), the reference; gpfa and dlag only).
    #[arg(long, default_value = "ssm")]
    engine: String,
    /// One `.npy` per region (trials × bins × neurons), comma-separated; or one `.npz` with
    /// an array per region (all of them in name order, or those named by --regions).
    #[arg(long)]
    data: String,
    /// The arrays of an `.npz` to use as regions, in this order, comma-separated.
    #[arg(long)]
    regions: Option<String>,
    /// Across-region latents (DLAG) or shared latents (GPFA, LDS): a number, or candidates
    /// (`0..3` inclusive, or `1,2,4`) chosen by cross-validated held-out likelihood on the
    /// training trials (--cv-folds).
    #[arg(long, default_value = "1")]
    across: String,
    /// Folds of the cross-validated choice of --across among several candidates.
    #[arg(long, default_value_t = 3)]
    cv_folds: usize,
    /// Within-region latents per region, comma-separated (DLAG). Several candidates for the
    /// cross-validation: a range `A..B` (the same count in every region) or lists separated
    /// by `;` (`1,1;2,1`); the grid is every --across candidate with every --within one.
    #[arg(long, allow_hyphen_values = true)]
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
    /// adm: number of cosine basis functions of each delay trajectory δ(t), the constant
    /// included (1 = dlag), at most half the trial length.
    #[arg(long, default_value_t = 4)]
    delay_basis: usize,
    /// adm: EM iterations of each rank-1 deflation round of the initialisation (0: none).
    #[arg(long, default_value_t = 30)]
    deflation_iter: usize,
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
        LatentCommand::Eval(a) => run_eval(a),
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
        loads: match &a.loads {
            None => vec![],
            Some(s) => s
                .split(';')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    list::<u8>("loads", s)?
                        .into_iter()
                        .map(|v| match v {
                            0 | 1 => Ok(v == 1),
                            _ => Err(Error::setting("loads", format!("`{s}`: 0 or 1 per region"))),
                        })
                        .collect::<Result<Vec<bool>>>()
                })
                .collect::<Result<_>>()?,
        },
        delay_sway: match &a.delay_sway {
            None => vec![],
            Some(s) => s
                .split(';')
                .filter(|s| !s.trim().is_empty())
                .map(|s| list("delay-sway", s))
                .collect::<Result<_>>()?,
        },
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

/// The regions of `--data`: `.npy` files, or one `.npz` (`regions`: which arrays, in order).
fn load(files: &str, regions_arg: Option<&str>) -> Result<Data> {
    let list: Vec<&str> = files
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    let is_npz = |f: &str| f.to_ascii_lowercase().ends_with(".npz");
    let arrays: Vec<(String, PathBuf, neurodiff::io::Array)> = if list.iter().any(|f| is_npz(f)) {
        if list.len() != 1 {
            return Err(Error::setting(
                "data",
                "give one .npz (an array per region) or .npy files, not a mix",
            ));
        }
        let path = PathBuf::from(list[0]);
        let mut all = neurodiff::io::read_npz(&path)?;
        let have = {
            let mut v: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
            v.sort_unstable();
            v.join(", ")
        };
        let chosen: Vec<(String, neurodiff::io::Array)> = match regions_arg {
            Some(r) => {
                let mut v = Vec::new();
                for name in r.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let i = all.iter().position(|(n, _)| n == name).ok_or_else(|| {
                        Error::data(
                            &path,
                            format!("no array `{name}` in the archive (it has: {have})"),
                        )
                    })?;
                    v.push(all[i].clone());
                }
                v
            }
            None => {
                all.sort_by(|a, b| a.0.cmp(&b.0));
                all
            }
        };
        if chosen.is_empty() {
            return Err(Error::data(&path, "the archive holds no arrays"));
        }
        chosen
            .into_iter()
            .map(|(n, a)| (n.clone(), path.join(n), a))
            .collect()
    } else {
        if regions_arg.is_some() {
            return Err(Error::setting(
                "regions",
                "only with an .npz archive (.npy files are regions by themselves)",
            ));
        }
        list.iter()
            .map(|f| {
                let path = PathBuf::from(f);
                let name = path
                    .file_stem()
                    .map_or_else(|| f.to_string(), |s| s.to_string_lossy().into_owned());
                read_npy(&path).map(|a| (name, path, a))
            })
            .collect::<Result<_>>()?
    };
    let mut names = Vec::new();
    let mut regions = Vec::new();
    for (name, path, arr) in arrays {
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
        names.push(name);
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
    /// The cross-validated choice of the latent count, when several were given.
    cross_validation: Option<CvReport>,
    /// Held-out-neuron co-smoothing on the held-out trials, if any.
    cosmooth: Option<Cosmooth>,
    #[serde(flatten)]
    fit: &'a neurodiff::latent::FitResult,
    wall_s_total: f64,
}

#[derive(Serialize)]
struct CvReport {
    folds: usize,
    candidates: Vec<neurodiff::latent::fit::CvRow>,
    chosen_across: usize,
    chosen_within: Vec<usize>,
}

/// `--across` (or a `--within` range): `N`, `A..B` (inclusive) or `a,b,c`.
fn counts(name: &'static str, s: &str) -> Result<Vec<usize>> {
    if let Some((a, b)) = s.split_once("..") {
        let p = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| Error::setting(name, format!("`{s}`: expected a range like 0..3")))
        };
        let (a, b) = (p(a)?, p(b.trim_start_matches('='))?);
        if a > b {
            return Err(Error::setting(name, format!("`{s}` is an empty range")));
        }
        return Ok((a..=b).collect());
    }
    let v: Vec<usize> = list(name, s)?;
    if v.is_empty() {
        return Err(Error::setting(name, "no latent count given"));
    }
    Ok(v)
}

fn run_fit(a: FitArgs) -> Result<()> {
    let start = Instant::now();
    let method: Method = a.method.parse()?;
    let engine: Engine = a.engine.parse()?;
    let data = load(&a.data, a.regions.as_deref())?;
    let nr = data.n_regions();
    let withins: Vec<Vec<usize>> = match &a.within {
        Some(w) if w.contains("..") => counts("within", w)?
            .into_iter()
            .map(|k| vec![k; nr])
            .collect(),
        Some(w) => w
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(|s| list("within", s))
            .collect::<Result<_>>()?,
        None if matches!(method, Method::Dlag | Method::Adm) => vec![vec![0; nr]],
        None => vec![vec![]],
    };
    if withins.is_empty() {
        return Err(Error::setting(
            "within",
            "no within-region latent counts given",
        ));
    }
    let within = withins[0].clone();
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
    let candidates = counts("across", &a.across)?;
    let mut spec = Spec::preset(method, candidates[0], within);
    spec.kernel = a.kernel;
    spec.init_timescale = a.init_timescale;
    spec.max_delay = a.max_delay;
    spec.ar_order = a.ar_order;
    spec.delay_basis = a.delay_basis;
    spec.deflation_iter = a.deflation_iter;
    spec.max_iter = a.max_iter;
    spec.tol = a.tol;
    spec.parallel = a.parallel;
    spec.engine = engine;
    let quiet = a.quiet;
    let grid: Vec<(usize, Vec<usize>)> = candidates
        .iter()
        .flat_map(|&c| withins.iter().map(move |w| (c, w.clone())))
        .collect();
    let cv_report = if grid.len() > 1 {
        if !quiet {
            eprintln!(
                "cross-validating (--across, --within) over {grid:?} ({} folds of the training trials)",
                a.cv_folds
            );
        }
        let (rows, best) = neurodiff::latent::fit::cross_validate_grid(
            &data.subset(&train),
            &spec,
            &grid,
            a.cv_folds,
        )?;
        spec.across = rows[best].across;
        spec.within = rows[best].within.clone();
        if !quiet {
            for r in &rows {
                eprintln!(
                    "  across {}, within {:?}: held-out log-likelihood {:.6e} per trial ({:.1} s)",
                    r.across, r.within, r.heldout_loglik_per_trial, r.wall_s
                );
            }
        }
        Some(CvReport {
            folds: a.cv_folds,
            chosen_across: spec.across,
            chosen_within: spec.within.clone(),
            candidates: rows,
        })
    } else {
        None
    };
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
        let (ll, _, _) = infer(
            &data.subset(&test),
            &res.prior,
            &res.obs,
            engine,
            spec.parallel,
        )?;
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
            engine,
        )?)
    };
    let (_, latents, covs) = infer(&data, &res.prior, &res.obs, engine, spec.parallel)?;
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
        cross_validation: cv_report,
        cosmooth: cs.clone(),
        fit: &res,
        wall_s_total: start.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&report).expect("serialisable");
    write_text(&a.out.join("latent.json"), &json)?;
    figure(
        &a.out.join("latent.png"),
        &res.loglik,
        &res.processes,
        None,
        &[],
        &res.latent_names,
        &latents,
        &covs,
        cs.as_ref(),
        &format!("{} fit: {}", method.name(), data.names.join(", ")),
    )?;
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

/// Writes latent.png (see `neurodiff::plot::latent_figure`): at most 4 latent traces of trial 0.
#[allow(clippy::too_many_arguments)]
fn figure(
    path: &Path,
    loglik: &[f64],
    processes: &[neurodiff::latent::fit::ProcessOut],
    truth: Option<&[Vec<f64>]>,
    truth_paths: &[Vec<Vec<f64>>],
    names: &[Vec<String>],
    latents: &[Mat],
    covs: &[Mat],
    cs: Option<&Cosmooth>,
    title: &str,
) -> Result<()> {
    use neurodiff::latent::model::Kind;
    let mut delays = Vec::new();
    for (j, p) in processes
        .iter()
        .filter(|p| p.kind == Kind::Across)
        .enumerate()
    {
        for r in 1..p.delays.len() {
            let se = p.delay_se.get(r).copied().unwrap_or(f64::NAN);
            let t = truth
                .and_then(|t| t.get(j))
                .and_then(|t| t.get(r).map(|v| v - t[0]));
            delays.push((p.delays[r] - p.delays[0], se, t));
        }
    }
    // ADM: the delay trajectories δ_r(t) − δ_0(t), with the truth's when known.
    let mut paths = Vec::new();
    for (j, p) in processes
        .iter()
        .filter(|p| p.kind == Kind::Across)
        .enumerate()
    {
        let Some(base) = p.delay_path.first() else {
            continue;
        };
        for r in 1..p.delay_path.len() {
            let diff = |path: &[Vec<f64>]| -> Option<Vec<f64>> {
                let (a, b) = (path.get(r)?, path.first()?);
                (a.len() == base.len() && b.len() == base.len())
                    .then(|| a.iter().zip(b).map(|(x, y)| x - y).collect())
            };
            if let Some(est) = diff(&p.delay_path) {
                let tru = truth_paths.get(j).and_then(|t| diff(t));
                paths.push((format!("across {j}, region {r}"), est, tru));
            }
        }
    }
    let mut traces = Vec::new();
    if let Some(lat) = latents.first() {
        let mut col = 0;
        for (r, region) in names.iter().enumerate() {
            for name in region {
                if traces.len() < 4 {
                    traces.push((
                        format!("{name} (region {r})"),
                        (0..lat.rows).map(|t| lat[(t, col)]).collect(),
                        covs.iter().map(|c| c[(col, col)].max(0.0).sqrt()).collect(),
                    ));
                }
                col += 1;
            }
        }
    }
    let fig = neurodiff::plot::LatentFigure {
        loglik,
        delays,
        paths,
        traces,
        psth: cs.map(|c| c.examples.clone()).unwrap_or_default(),
    };
    neurodiff::plot::latent_figure(path, &fig, title)
}

#[derive(Serialize)]
struct EvalReport {
    fit: PathBuf,
    regions: Vec<String>,
    trials: Vec<usize>,
    /// Log-likelihood per evaluated trial (nats).
    loglik_per_trial: f64,
    cosmooth: Option<Cosmooth>,
    /// Delay-recovery RMSE against truth.json (bins), when given.
    delay_rmse: Option<f64>,
    /// Fitted and true delays relative to region 0, per across latent, when truth is given.
    delays: Vec<Vec<f64>>,
    true_delays: Option<Vec<Vec<f64>>>,
    /// adm: RMSE of the delay trajectories δ_r(t) − δ_0(t) against truth.json's (bins).
    delay_path_rmse: Option<f64>,
    wall_s: f64,
}

fn run_eval(a: EvalArgs) -> Result<()> {
    use neurodiff::latent::fit::{delay_rmse, prior_from, ProcessOut};
    use neurodiff::latent::model::{Kind, ObsParams};
    use neurodiff::latent::Lds;
    let start = Instant::now();
    let text = std::fs::read_to_string(&a.fit).map_err(|e| Error::io(&a.fit, e))?;
    let bad = |m: String| Error::data(&a.fit, m);
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON ({e})")))?;
    let field = |k: &str| {
        json.get(k).cloned().ok_or_else(|| {
            bad(format!(
                "no `{k}`: not a latent.json of `neurodiff latent fit`"
            ))
        })
    };
    let processes: Vec<ProcessOut> = serde_json::from_value(field("processes")?)
        .map_err(|e| bad(format!("`processes`: {e}")))?;
    let obs: ObsParams =
        serde_json::from_value(field("obs")?).map_err(|e| bad(format!("`obs`: {e}")))?;
    let lds: Option<Lds> = serde_json::from_value(json.get("lds").cloned().unwrap_or_default())
        .map_err(|e| bad(format!("`lds`: {e}")))?;
    let spec = field("spec")?;
    let ar_order = spec["ar_order"].as_u64().unwrap_or(4) as usize;
    let jitter = spec["jitter"].as_f64().unwrap_or(1e-3);
    let engine: Engine = spec["engine"].as_str().unwrap_or("ssm").parse()?;
    let loglik: Vec<f64> =
        serde_json::from_value(field("loglik")?).map_err(|e| bad(format!("`loglik`: {e}")))?;
    let latent_names: Vec<Vec<String>> =
        serde_json::from_value(json.get("latent_names").cloned().unwrap_or_default())
            .unwrap_or_default();
    let data = load(&a.data, a.regions.as_deref())?;
    let nr = data.n_regions();
    if obs.c.len() != nr {
        return Err(Error::setting(
            "data",
            format!("{nr} regions given but the fit has {}", obs.c.len()),
        ));
    }
    for (r, n) in data.neurons().into_iter().enumerate() {
        if obs.c[r].rows != n || obs.d[r].len() != n || obs.r[r].len() != n {
            return Err(Error::setting(
                "data",
                format!(
                    "region `{}` has {n} neurons but the fit's region {r} has {}",
                    data.names[r], obs.c[r].rows
                ),
            ));
        }
    }
    let prior = prior_from(&processes, lds, nr, ar_order, jitter)?;
    if prior.q_dims() != obs.c.iter().map(|c| c.cols).collect::<Vec<_>>() {
        return Err(bad("the loadings do not match the latent processes".into()));
    }
    let trials: Vec<usize> = if a.all_trials {
        (0..data.n_trials()).collect()
    } else {
        let t: Vec<usize> = json
            .get("test_trials")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if t.is_empty() {
            (0..data.n_trials()).collect()
        } else {
            t
        }
    };
    if let Some(&k) = trials.iter().find(|&&k| k >= data.n_trials()) {
        return Err(Error::setting(
            "data",
            format!(
                "the fit's held-out trial {k} is beyond the data's {} trials (other data? use --all-trials)",
                data.n_trials()
            ),
        ));
    }
    let test = data.subset(&trials);
    let (ll, _, _) = infer(&test, &prior, &obs, engine, false)?;
    let cs = match &a.holdout_file {
        Some(p) => {
            let t = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            let masks: Vec<Vec<Vec<usize>>> = serde_json::from_str(&t).map_err(|e| {
                Error::data(
                    p,
                    format!(
                        "not a JSON list of masks, each a list per region of neuron indices ({e})"
                    ),
                )
            })?;
            Some(cosmooth_masks(&test, &prior, &obs, &masks, engine)?)
        }
        None if a.cosmooth_frac == 0.0 => None,
        None => Some(cosmooth(
            &test,
            &prior,
            &obs,
            a.cosmooth_frac,
            a.holdout_masks,
            a.seed,
            engine,
        )?),
    };
    // The truth's delays and (for an mDLAG fit) loading pattern.
    let mut truth_loads: Vec<Vec<bool>> = vec![];
    let mut truth_paths: Vec<Vec<Vec<f64>>> = vec![];
    let truth: Option<Vec<Vec<f64>>> = match &a.truth {
        None => None,
        Some(p) => {
            let t = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            let v: serde_json::Value =
                serde_json::from_str(&t).map_err(|e| Error::data(p, format!("not JSON ({e})")))?;
            truth_loads = serde_json::from_value(v.get("loads").cloned().unwrap_or_default())
                .unwrap_or_default();
            truth_paths = serde_json::from_value(v.get("delay_paths").cloned().unwrap_or_default())
                .unwrap_or_default();
            Some(
                serde_json::from_value(v.get("delays").cloned().unwrap_or_default()).map_err(
                    |e| Error::data(p, format!("no `delays` of a synth truth.json ({e})")),
                )?,
            )
        }
    };
    let fit_loads: Option<Vec<Vec<bool>>> = json
        .get("ard")
        .and_then(|v| v.get("loads"))
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let (_, latents, covs) = infer(&data.subset(&trials[..1]), &prior, &obs, engine, false)?;
    let report = EvalReport {
        fit: a.fit.clone(),
        regions: data.names.clone(),
        trials: trials.clone(),
        loglik_per_trial: ll / trials.len() as f64,
        cosmooth: cs.clone(),
        delay_rmse: truth.as_ref().and_then(|t| match &fit_loads {
            Some(fl) if truth_loads.len() == t.len() => {
                neurodiff::latent::fit::delay_rmse_masked(&processes, fl, t, &truth_loads)
            }
            _ => delay_rmse(&processes, t),
        }),
        delays: processes
            .iter()
            .filter(|p| p.kind == Kind::Across)
            .map(|p| p.delays.iter().map(|d| d - p.delays[0]).collect())
            .collect(),
        true_delays: truth.clone(),
        delay_path_rmse: {
            let fitted: Vec<Vec<Vec<f64>>> = processes
                .iter()
                .filter(|p| p.kind == Kind::Across)
                .map(|p| p.delay_path.clone())
                .collect();
            neurodiff::latent::adm::delay_path_rmse(&fitted, &truth_paths)
        },
        wall_s: start.elapsed().as_secs_f64(),
    };
    mkdir(&a.out)?;
    let json = serde_json::to_string_pretty(&report).expect("serialisable");
    write_text(&a.out.join("eval.json"), &json)?;
    figure(
        &a.out.join("latent.png"),
        &loglik,
        &processes,
        truth.as_deref(),
        &truth_paths,
        &latent_names,
        &latents,
        &covs,
        cs.as_ref(),
        &format!("evaluation of {}", a.fit.display()),
    )?;
    if !a.quiet {
        println!(
            "{} trials: log-likelihood {:.6e} per trial",
            trials.len(),
            report.loglik_per_trial
        );
        if let Some(c) = &cs {
            println!(
                "  co-smoothing PSTH RMSE {:?}, single-trial RMSE {:?}",
                c.psth_rmse, c.single_trial_rmse
            );
        }
        if let Some(d) = report.delay_rmse {
            println!("  delay-recovery RMSE {d:.4} bins");
        }
        if let Some(d) = report.delay_path_rmse {
            println!("  delay-trajectory RMSE {d:.4} bins");
        }
        println!("wrote {}", a.out.join("eval.json").display());
    }
    Ok(())
}
