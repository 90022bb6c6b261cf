//! Multi-region latent-variable models (`neurodiff::latent`): the parallel-scan Kalman
//! filter/smoother against the sequential one, both against the dense O(T³) Gaussian process
//! written out here, EM's monotone likelihood, recovery of delays and timescales from seeded
//! synthetic data with known truth, and clear errors on bad input.

use crate::common::rand_vec;
use neurodiff::latent::fit::{cosmooth_masks, fit, infer, Engine, Method, Spec};
use neurodiff::latent::kalman::{filter, filter_parallel, smooth, smooth_parallel, Ssm};
use neurodiff::latent::model::{reduce, Data, Kind, ObsParams, Prior, Process};
use neurodiff::latent::synth::{synth, SynthSpec};
use neurodiff::latent::LatentError;
use neurodiff::models::latent::linalg::{chol_logdet, chol_solve, cholesky, Mat};
use neurodiff::models::latent::{Kernel, Matern12, Matern32, Matern52, Rbf};

fn close(a: &Mat, b: &Mat, tol: f64, what: &str) {
    let scale = a.max_abs().max(b.max_abs()).max(1.0);
    let d = a.sub(b).max_abs();
    assert!(
        d <= tol * scale,
        "{what}: max difference {d:e} (scale {scale})"
    );
}

/// A prior with an AR-lifted across latent (3 regions, delays), a Matérn SDE within latent
/// and an AR-lifted RBF within latent: every kind of block.
fn mixed_prior() -> Prior {
    Prior {
        processes: vec![
            Process {
                kind: Kind::Across,
                kernel: Box::new(Rbf::new(3.0)),
                delays: vec![0.0, 1.4, -0.7],
                observers: vec![(0, 0), (1, 1), (2, 2)],
            },
            Process {
                kind: Kind::Within,
                kernel: Box::new(Matern52::new(4.0)),
                delays: vec![0.0],
                observers: vec![(1, 0)],
            },
            Process {
                kind: Kind::Within,
                kernel: Box::new(Rbf::new(2.0)),
                delays: vec![0.0],
                observers: vec![(2, 0)],
            },
        ],
        ar_order: 3,
        jitter: 1e-3,
        n_regions: 3,
        lds: None,
        tv: None,
    }
}

#[test]
fn parallel_scan_equals_sequential() {
    let prior = mixed_prior();
    let l = prior.lift().unwrap();
    let p = l.h.rows;
    let r = Mat::from_fn(
        p,
        p,
        |i, j| {
            if i == j {
                0.3 + 0.1 * i as f64
            } else {
                0.02
            }
        },
    );
    let ssm = Ssm {
        a: l.a.clone(),
        q: l.q.clone(),
        h: l.h.clone(),
        r,
        m0: rand_vec(7, l.a.rows).iter().map(|v| 0.1 * v).collect(),
        p0: l.p0.clone(),
        tv: vec![],
    };
    let tn = 37; // not a power of two
    let ys: Vec<Mat> = (0..3)
        .map(|k| Mat::from_vec(tn, p, rand_vec(100 + k, tn * p)))
        .collect();
    let fs = filter(&ssm, &ys).unwrap();
    let fp = filter_parallel(&ssm, &ys).unwrap();
    for t in 0..tn {
        close(&fs.covs[t], &fp.covs[t], 1e-10, "filtered covariance");
    }
    for k in 0..3 {
        close(&fs.means[k], &fp.means[k], 1e-10, "filtered means");
        assert!((fs.loglik[k] - fp.loglik[k]).abs() < 1e-9 * fs.loglik[k].abs());
    }
    let ss = smooth(&ssm, &fs).unwrap();
    let sp = smooth_parallel(&ssm, &fs).unwrap();
    for t in 0..tn {
        close(&ss.covs[t], &sp.covs[t], 1e-10, "smoothed covariance");
    }
    for k in 0..3 {
        close(&ss.means[k], &sp.means[k], 1e-10, "smoothed means");
    }
}

/// GPFA with Matérn latents: `ys` from a 2-latent, 5-neuron model; the dense GP over the
/// whole trial (`NT × NT` covariance `Σ k_j(t − s) C_ij C_i'j + δ R_i`) is the reference.
struct Dense {
    kernels: Vec<Box<dyn Kernel>>,
    c: Mat,
    d: Vec<f64>,
    r: Vec<f64>,
    tn: usize,
}

impl Dense {
    fn n(&self) -> usize {
        self.c.rows
    }
    fn cov_yy(&self) -> Mat {
        let (n, tn) = (self.n(), self.tn);
        Mat::from_fn(n * tn, n * tn, |a, b| {
            let (t, i) = (a / n, a % n);
            let (s, j) = (b / n, b % n);
            let mut v: f64 = (0..self.kernels.len())
                .map(|l| self.kernels[l].cov(t as f64 - s as f64) * self.c[(i, l)] * self.c[(j, l)])
                .sum();
            if a == b {
                v += self.r[i];
            }
            v
        })
    }
    fn loglik(&self, y: &Mat) -> f64 {
        let l = cholesky(&self.cov_yy()).unwrap();
        let v: Vec<f64> = (0..y.rows * y.cols)
            .map(|a| y.data[a] - self.d[a % self.n()])
            .collect();
        let w = chol_solve(&l, &Mat::col(&v));
        let quad: f64 = v.iter().zip(&w.data).map(|(a, b)| a * b).sum();
        -0.5 * (v.len() as f64 * (2.0 * std::f64::consts::PI).ln() + chol_logdet(&l) + quad)
    }
    /// Posterior means (`T × q`) and marginal variances of the latents.
    fn posterior(&self, y: &Mat) -> (Mat, Mat) {
        let (n, tn, q) = (self.n(), self.tn, self.kernels.len());
        let l = cholesky(&self.cov_yy()).unwrap();
        let sxy = Mat::from_fn(tn * q, n * tn, |a, b| {
            let (t, j) = (a / q, a % q);
            let (s, i) = (b / n, b % n);
            self.kernels[j].cov(t as f64 - s as f64) * self.c[(i, j)]
        });
        let v: Vec<f64> = (0..y.rows * y.cols)
            .map(|a| y.data[a] - self.d[a % n])
            .collect();
        let w = chol_solve(&l, &Mat::col(&v));
        let mean = Mat::from_vec(tn, q, sxy.mul(&w).data);
        let g = chol_solve(&l, &sxy.t());
        let red = sxy.mul(&g);
        let var = Mat::from_fn(tn, q, |t, j| 1.0 - red[(t * q + j, t * q + j)]);
        (mean, var)
    }
}

fn gpfa_setup() -> (Dense, Data, Prior, ObsParams) {
    let (n, tn) = (5, 24);
    let kernels: Vec<Box<dyn Kernel>> =
        vec![Box::new(Matern32::new(3.0)), Box::new(Matern12::new(5.0))];
    let c = Mat::from_vec(n, 2, rand_vec(1, 2 * n));
    let d = rand_vec(2, n);
    let r: Vec<f64> = rand_vec(3, n).iter().map(|v| 0.3 + 0.2 * v.abs()).collect();
    let dense = Dense {
        kernels: kernels.clone(),
        c: c.clone(),
        d: d.clone(),
        r: r.clone(),
        tn,
    };
    let trials: Vec<Mat> = (0..2)
        .map(|k| Mat::from_vec(tn, n, rand_vec(10 + k, tn * n)))
        .collect();
    let data = Data::new(vec!["a".into()], vec![trials]).unwrap();
    let prior = Prior {
        processes: kernels
            .into_iter()
            .map(|k| Process {
                kind: Kind::Shared,
                kernel: k,
                delays: vec![0.0],
                observers: vec![(0, 0)],
            })
            .collect(),
        ar_order: 2,
        jitter: 0.0,
        n_regions: 1,
        lds: None,
        tv: None,
    };
    let obs = ObsParams {
        c: vec![c],
        d: vec![d],
        r: vec![r],
    };
    (dense, data, prior, obs)
}

/// The Kalman log-likelihood (through the reduction to the latent space, and directly on
/// the neurons) equals the dense GP's, and the smoothed latents equal the dense posterior.
#[test]
fn kalman_matches_dense_gp() {
    let (dense, data, prior, obs) = gpfa_setup();
    let l = prior.lift().unwrap();
    let red = reduce(&data, &obs, &data.names).unwrap();
    let ssm = Ssm {
        a: l.a.clone(),
        q: l.q.clone(),
        h: l.h.clone(),
        r: red.r.clone(),
        m0: vec![0.0; l.a.rows],
        p0: l.p0.clone(),
        tv: vec![],
    };
    let f = filter_parallel(&ssm, &red.ys).unwrap();
    let ll: f64 = f.loglik.iter().sum::<f64>() + red.constant;
    let want: f64 = data.regions[0].iter().map(|y| dense.loglik(y)).sum();
    assert!(
        (ll - want).abs() < 1e-8 * want.abs(),
        "reduced {ll} vs dense {want}"
    );
    // Directly on the neurons: H = C·Hlat, R = diag(R), y − d.
    let raw = Ssm {
        h: obs.c[0].mul(&l.h),
        r: Mat::diag(&obs.r[0]),
        ..ssm.clone()
    };
    let centred: Vec<Mat> = data.regions[0]
        .iter()
        .map(|y| Mat::from_fn(y.rows, y.cols, |t, i| y[(t, i)] - obs.d[0][i]))
        .collect();
    let fr = filter(&raw, &centred).unwrap();
    let ll_raw: f64 = fr.loglik.iter().sum();
    assert!(
        (ll_raw - want).abs() < 1e-8 * want.abs(),
        "raw {ll_raw} vs dense {want}"
    );
    let s = smooth_parallel(&ssm, &f).unwrap();
    for (k, y) in data.regions[0].iter().enumerate() {
        let (mean, var) = dense.posterior(y);
        let got = Mat::from_fn(dense.tn, 2, |t, j| {
            l.h.mv(&s.means[k].data[t * l.a.rows..(t + 1) * l.a.rows])[j]
        });
        close(&got, &mean, 1e-8, "smoothed means vs dense GP posterior");
        let gv = Mat::from_fn(dense.tn, 2, |t, j| l.h.mul(&s.covs[t]).mul_t(&l.h)[(j, j)]);
        close(&gv, &var, 1e-8, "smoothed variances vs dense GP posterior");
    }
}

fn small_synth(
    seed: u64,
    trials: usize,
    bins: usize,
    delays: Vec<f64>,
    within: Vec<usize>,
    snr: f64,
) -> (Data, neurodiff::latent::synth::Truth) {
    let nr = delays.len();
    synth(&SynthSpec {
        trials,
        bins,
        neurons: vec![10; nr],
        kernel: "rbf".into(),
        across_timescales: vec![4.0],
        delays: vec![delays],
        within,
        within_timescale: 2.0,
        snr,
        loads: vec![],
        delay_sway: vec![],
        seed,
    })
    .unwrap()
}

#[test]
fn em_loglik_increases_monotonically() {
    let (data, _) = small_synth(1, 8, 30, vec![0.0, 1.5], vec![1, 1], 1.0);
    for method in [Method::Dlag, Method::Gpfa] {
        let within = if method == Method::Dlag {
            vec![1, 1]
        } else {
            vec![]
        };
        let mut spec = Spec::preset(method, 1, within);
        spec.max_iter = 12;
        spec.tol = 0.0;
        let res = fit(&data, &spec, |_, _| {}).unwrap();
        assert_eq!(res.loglik.len(), 12);
        for w in res.loglik.windows(2) {
            assert!(
                w[1] >= w[0] - 1e-9 * w[0].abs(),
                "{method}: {} then {}",
                w[0],
                w[1]
            );
        }
        assert!(res.loglik[11] > res.loglik[0]);
    }
}

/// The parallel E-step gives the same fit as the sequential one.
#[test]
fn parallel_em_equals_sequential_em() {
    let (data, _) = small_synth(2, 4, 20, vec![0.0, 1.0], vec![0, 0], 2.0);
    let mut spec = Spec::preset(Method::Gpfa, 1, vec![]);
    spec.max_iter = 4;
    spec.kernel = "matern32".into();
    let a = fit(&data, &spec, |_, _| {}).unwrap();
    spec.parallel = true;
    let b = fit(&data, &spec, |_, _| {}).unwrap();
    for (x, y) in a.loglik.iter().zip(&b.loglik) {
        assert!((x - y).abs() < 1e-8 * x.abs(), "{x} vs {y}");
    }
}

/// DLAG recovers a known delay and timescale from synthetic data drawn from the exact GP:
/// 2 regions × 10 neurons, 40 trials × 50 bins, true delay 1.7 bins (off the ½-bin grid of
/// the initial search), timescale 4 bins, SNR 1. Tolerances: 0.2 bins on the delay, 15 % on
/// the timescale.
#[test]
fn dlag_recovers_delay_and_timescale() {
    let (data, truth) = small_synth(3, 40, 50, vec![0.0, 1.7], vec![0, 0], 1.0);
    let mut spec = Spec::preset(Method::Dlag, 1, vec![0, 0]);
    spec.max_iter = 60;
    spec.ar_order = 5;
    let res = fit(&data, &spec, |_, _| {}).unwrap();
    let p = &res.processes[0];
    let d = p.delays[1];
    eprintln!(
        "delay {d} timescale {} after {} iterations",
        p.timescale, res.iterations
    );
    assert!(
        (d - truth.delays[0][1]).abs() < 0.2,
        "delay {d} vs {}",
        truth.delays[0][1]
    );
    let ell = p.timescale;
    assert!((ell / 4.0 - 1.0).abs() < 0.15, "timescale {ell} vs 4");
}

fn expect_err(r: Result<impl std::fmt::Debug, LatentError>, words: &[&str]) {
    let e = r.expect_err("bad input must be refused").to_string();
    for w in words {
        assert!(e.contains(w), "error `{e}` does not name `{w}`");
    }
}

/// Co-smoothing with given masks against mbrila's definition of it, written out here: instead
/// of dropping the held-out neurons, inflate their noise variance so that they carry no
/// information (mbrila's `co_smoothing_rmse` sets `R = 1e10`), infer the latents from all
/// neurons, predict the held-out ones as `C x + d`, and average the PSTH and single-trial RMSE
/// over the masks.
#[test]
fn cosmooth_with_given_masks_matches_the_inflated_noise_definition() {
    let (data, prior, obs) = two_region_setup(1.3, Kind::Across);
    let masks = vec![vec![vec![2, 0], vec![1]], vec![vec![3], vec![2]]];
    let cs = cosmooth_masks(&data, &prior, &obs, &masks, Engine::Ssm).unwrap();
    let (nt, tn) = (data.n_trials(), data.n_bins());
    let qs = prior.q_dims();
    let (mut psth, mut single) = (vec![0.0; 2], vec![0.0; 2]);
    for m in &masks {
        let mut inflated = obs.clone();
        for (r, h) in m.iter().enumerate() {
            for &i in h {
                inflated.r[r][i] = 1e14;
            }
        }
        let (_, lat, _) = infer(&data, &prior, &inflated, Engine::Ssm, false).unwrap();
        for (r, h) in m.iter().enumerate() {
            let off: usize = qs[..r].iter().sum();
            let (mut se, mut sp) = (0.0, 0.0);
            for &i in h {
                for t in 0..tn {
                    let (mut mp, mut my) = (0.0, 0.0);
                    for (lk, yk) in lat.iter().zip(&data.regions[r]) {
                        let p = obs.d[r][i]
                            + (0..qs[r])
                                .map(|j| obs.c[r][(i, j)] * lk[(t, off + j)])
                                .sum::<f64>();
                        let y = yk[(t, i)];
                        se += (p - y) * (p - y);
                        mp += p / nt as f64;
                        my += y / nt as f64;
                    }
                    sp += (mp - my) * (mp - my);
                }
            }
            let n = (h.len() * tn) as f64;
            psth[r] += (sp / n).sqrt() / masks.len() as f64;
            single[r] += (se / (n * nt as f64)).sqrt() / masks.len() as f64;
        }
    }
    for r in 0..2 {
        for (what, a, b) in [
            ("PSTH", cs.psth_rmse[r], psth[r]),
            ("single-trial", cs.single_trial_rmse[r], single[r]),
        ] {
            assert!(
                (a - b).abs() < 1e-6 * b.abs(),
                "region {r} {what} RMSE: {a} against {b} with inflated noise"
            );
        }
    }
    assert!((cs.frac - (2.0 / 4.0 + 1.0 / 3.0 + 1.0 / 4.0 + 1.0 / 3.0) / 4.0).abs() < 1e-12);
    // Bad masks: each refused by name.
    let bad = |m: Vec<Vec<Vec<usize>>>, words: &[&str]| {
        expect_err(cosmooth_masks(&data, &prior, &obs, &m, Engine::Ssm), words)
    };
    bad(vec![], &["no held-out-neuron mask"]);
    bad(vec![vec![vec![0]]], &["mask 0", "1 regions", "2"]);
    bad(
        vec![vec![vec![0], vec![3]]],
        &["mask 0", "`b`", "neuron 3", "3 neurons"],
    );
    bad(
        vec![vec![vec![1, 1], vec![0]]],
        &["`a`", "neuron 1", "twice"],
    );
    bad(vec![vec![vec![0], vec![]]], &["`b`", "no neuron held out"]);
    bad(
        vec![vec![vec![0], vec![0, 1]]],
        &["`b`", "2 of 3", "2 latents"],
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let tr = |k: usize, t: usize, n: usize| {
        (0..k)
            .map(|i| Mat::from_vec(t, n, rand_vec(i as u64, t * n)))
            .collect::<Vec<_>>()
    };
    expect_err(
        Data::new(
            vec!["v1".into(), "v2".into()],
            vec![tr(3, 10, 4), tr(2, 10, 4)],
        ),
        &["v2", "2 trials", "3"],
    );
    expect_err(
        Data::new(
            vec!["v1".into(), "v2".into()],
            vec![tr(3, 10, 4), tr(3, 9, 4)],
        ),
        &["v2", "trial 0", "9 time bins"],
    );
    let mut bad = tr(3, 10, 4);
    bad[1][(4, 2)] = f64::NAN;
    expect_err(
        Data::new(vec!["v1".into()], vec![bad]),
        &["v1", "trial 1", "time bin 4", "neuron 2", "NaN"],
    );
    let data = Data::new(
        vec!["v1".into(), "v2".into()],
        vec![tr(3, 10, 4), tr(3, 10, 2)],
    )
    .unwrap();
    expect_err(
        fit(&data, &Spec::preset(Method::Dlag, 2, vec![1, 1]), |_, _| {}),
        &["v2", "2 neurons", "3 latents", "more latents than neurons"],
    );
    let mut spec = Spec::preset(Method::Dlag, 1, vec![0, 0]);
    spec.max_delay = 12.0;
    expect_err(
        fit(&data, &spec, |_, _| {}),
        &["max-delay", "12", "10 bins"],
    );
    expect_err(
        fit(&data, &Spec::preset(Method::Dlag, 1, vec![0]), |_, _| {}),
        &["within", "2 regions"],
    );
}

/// `neurodiff latent synth` then `latent fit` on a tiny set: the outputs exist with their
/// shapes, the trace never decreases; a region with other trials fails cleanly, no output.
#[test]
fn cli_synth_then_fit() {
    use std::process::Command;
    let dir = crate::common::tmpdir("latent-cli");
    let bin = env!("CARGO_BIN_EXE_neurodiff");
    let d = dir.to_str().unwrap();
    let o = Command::new(bin)
        .args([
            "latent",
            "synth",
            "--trials",
            "6",
            "--bins",
            "20",
            "--neurons",
            "5,4",
        ])
        .args([
            "--delays",
            "0,1",
            "--timescales",
            "3",
            "--within",
            "0,0",
            "--seed",
            "1",
        ])
        .args(["-o", d])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    let out = dir.join("fit");
    let data = format!("{d}/region0.npy,{d}/region1.npy");
    let o = Command::new(bin)
        .args([
            "latent", "fit", "--method", "dlag", "--data", &data, "--across", "1",
        ])
        .args([
            "--within",
            "0,0",
            "--max-iter",
            "5",
            "--test-frac",
            "0.34",
            "-q",
        ])
        .args(["--split-seed", "0", "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("latent.json")).unwrap()).unwrap();
    let ll: Vec<f64> = json["loglik"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(!ll.is_empty() && ll.len() <= 5);
    assert!(ll.windows(2).all(|w| w[1] >= w[0] - 1e-9 * w[0].abs()));
    assert_eq!(json["processes"][0]["delays"].as_array().unwrap().len(), 2);
    assert_eq!(json["test_trials"].as_array().unwrap().len(), 2);
    assert!(json["test_loglik_per_trial"].as_f64().unwrap().is_finite());
    assert!(json["wall_s"].as_f64().is_some());
    let cs = &json["cosmooth"]["psth_rmse"];
    assert_eq!(cs.as_array().unwrap().len(), 2);
    assert!(cs[1].as_f64().unwrap().is_finite());
    let lat = neurodiff::io::read_npy(&out.join("latents.npy")).unwrap();
    assert_eq!(lat.shape, vec![6, 20, 2]);
    let cov = neurodiff::io::read_npy(&out.join("latent_cov.npy")).unwrap();
    assert_eq!(cov.shape, vec![20, 2, 2]);
    // Cross-validated latent count: candidates 1..2, 2 folds of the 4 training trials.
    let out_cv = dir.join("fitcv");
    let data2 = format!("{d}/region0.npy,{d}/region1.npy");
    let o = Command::new(bin)
        .args([
            "latent",
            "fit",
            "--data",
            &data2,
            "--across",
            "1..2",
            "--cv-folds",
            "2",
        ])
        .args([
            "--within",
            "0,0",
            "--max-iter",
            "4",
            "--test-frac",
            "0.34",
            "-q",
        ])
        .args(["-o", out_cv.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_cv.join("latent.json")).unwrap())
            .unwrap();
    let cv = &j["cross_validation"];
    assert_eq!(cv["candidates"].as_array().unwrap().len(), 2);
    let chosen = cv["chosen_across"].as_u64().unwrap() as usize;
    assert_eq!(j["processes"].as_array().unwrap().len(), chosen);
    let o = Command::new(bin)
        .args(["latent", "fit", "--data", &data2, "--across", "3..1", "-q"])
        .args(["-o", dir.join("fitcv2").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(crate::common::stderr(&o).contains("empty range"));
    assert!(!dir.join("fitcv2").exists());
    // A region with 5 trials beside one with 6: refused, naming the file's region.
    crate::common::write_npy(&dir.join("short.npy"), &[5, 20, 4], &vec![0.5; 5 * 20 * 4]);
    let out2 = dir.join("fit2");
    let data = format!("{d}/region0.npy,{d}/short.npy");
    let o = Command::new(bin)
        .args([
            "latent",
            "fit",
            "--data",
            &data,
            "-q",
            "-o",
            out2.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = crate::common::stderr(&o);
    assert!(e.contains("short") && e.contains("5 trials"), "{e}");
    assert!(!out2.join("latent.json").exists());
}

/// Two regions (4 and 3 neurons), 3 trials × 30 bins: region 0 sees a shared Matérn-3/2
/// latent and region 1 the same latent delayed by `delay` bins, and a Matérn-1/2 latent of
/// its own. Loadings, offsets, noise and data from `lcg`.
fn two_region_setup(delay: f64, kind: Kind) -> (Data, Prior, ObsParams) {
    let (tn, ns) = (30, [4usize, 3]);
    let regions: Vec<Vec<Mat>> = ns
        .iter()
        .enumerate()
        .map(|(r, &n)| {
            (0..3)
                .map(|k| Mat::from_vec(tn, n, rand_vec(40 + 10 * r as u64 + k, tn * n)))
                .collect()
        })
        .collect();
    let data = Data::new(vec!["a".into(), "b".into()], regions).unwrap();
    let (delays, observers) = match kind {
        Kind::Across => (vec![0.0, delay], vec![(0, 0), (1, 1)]),
        _ => (vec![0.0], vec![(0, 0), (1, 0)]),
    };
    let prior = Prior {
        processes: vec![
            Process {
                kind,
                kernel: Box::new(Matern32::new(3.0)),
                delays,
                observers,
            },
            Process {
                kind: Kind::Within,
                kernel: Box::new(Matern12::new(4.0)),
                delays: vec![0.0],
                observers: vec![(1, 0)],
            },
        ],
        ar_order: 6,
        jitter: 0.0,
        n_regions: 2,
        lds: None,
        tv: None,
    };
    let obs = ObsParams {
        c: vec![
            Mat::from_vec(4, 1, rand_vec(1, 4)),
            Mat::from_vec(3, 2, rand_vec(2, 6)),
        ],
        d: vec![rand_vec(3, 4), rand_vec(4, 3)],
        r: vec![
            rand_vec(5, 4).iter().map(|v| 0.3 + 0.2 * v.abs()).collect(),
            rand_vec(6, 3).iter().map(|v| 0.2 + 0.2 * v.abs()).collect(),
        ],
    };
    (data, prior, obs)
}

/// The dense multivariate-normal log-density of the neurons of all regions, written out
/// independently of the engines: `Cov(y_{r,i}(t), y_{r',j}(s)) = Σ C_r[i,a] C_{r'}[j,b]
/// k_p(t − s + δ_b − δ_a)` over the latents `a` of region `r` and `b` of `r'` that are copies
/// of one process `p`, plus `R_{r,i}` on the diagonal.
fn dense_mvn_loglik(data: &Data, prior: &Prior, obs: &ObsParams) -> f64 {
    let tn = data.n_bins();
    // (region, neuron) in order; per region its latents (process, delay).
    let units: Vec<(usize, usize)> = (0..data.n_regions())
        .flat_map(|r| (0..data.neurons()[r]).map(move |i| (r, i)))
        .collect();
    let lat: Vec<Vec<(usize, f64)>> = (0..data.n_regions())
        .map(|r| {
            let mut v = Vec::new();
            for (p, pr) in prior.processes.iter().enumerate() {
                for &(reg, o) in &pr.observers {
                    if reg == r {
                        v.push((p, pr.delays[o]));
                    }
                }
            }
            v
        })
        .collect();
    let nu = units.len();
    let cov = Mat::from_fn(tn * nu, tn * nu, |x, y| {
        let (t, (r, i)) = (x / nu, units[x % nu]);
        let (s, (r2, j)) = (y / nu, units[y % nu]);
        let mut v = 0.0;
        for (a, &(pa, da)) in lat[r].iter().enumerate() {
            for (b, &(pb, db)) in lat[r2].iter().enumerate() {
                if pa == pb {
                    v += obs.c[r][(i, a)]
                        * obs.c[r2][(j, b)]
                        * prior.processes[pa]
                            .kernel
                            .cov(t as f64 - s as f64 + db - da);
                }
            }
        }
        if x == y {
            v += obs.r[r][i];
        }
        v
    });
    let l = cholesky(&cov).unwrap();
    let mut total = 0.0;
    for k in 0..data.n_trials() {
        let v: Vec<f64> = (0..tn * nu)
            .map(|x| {
                let (t, (r, i)) = (x / nu, units[x % nu]);
                data.regions[r][k][(t, i)] - obs.d[r][i]
            })
            .collect();
        let w = chol_solve(&l, &Mat::col(&v));
        let quad: f64 = v.iter().zip(&w.data).map(|(a, b)| a * b).sum();
        total -=
            0.5 * (v.len() as f64 * (2.0 * std::f64::consts::PI).ln() + chol_logdet(&l) + quad);
    }
    total
}

/// The exact-GP engine: its marginal log-likelihood equals the dense multivariate normal over
/// all neurons written out in the test (with a non-grid delay, which no finite state space
/// represents), and where the state-space lift is exact (Matérn latents without delay) the
/// SSM engine gives the same log-likelihood, posterior means and covariances.
#[test]
fn exact_engine_matches_dense_mvn_and_ssm() {
    let (data, prior, obs) = two_region_setup(1.3, Kind::Across);
    let (ll, _, _) = infer(&data, &prior, &obs, Engine::Exact, false).unwrap();
    let want = dense_mvn_loglik(&data, &prior, &obs);
    assert!(
        (ll - want).abs() < 1e-9 * want.abs(),
        "exact {ll} vs dense MVN {want}"
    );
    let (data, prior, obs) = two_region_setup(0.0, Kind::Shared);
    let (le, me, ce) = infer(&data, &prior, &obs, Engine::Exact, false).unwrap();
    let (ls, ms, cs) = infer(&data, &prior, &obs, Engine::Ssm, true).unwrap();
    let want = dense_mvn_loglik(&data, &prior, &obs);
    assert!((le - want).abs() < 1e-9 * want.abs(), "{le} vs {want}");
    assert!((le - ls).abs() < 1e-9 * le.abs(), "exact {le} vs ssm {ls}");
    for k in 0..data.n_trials() {
        close(&me[k], &ms[k], 1e-8, "posterior means, exact vs ssm");
    }
    for t in 0..data.n_bins() {
        close(&ce[t], &cs[t], 1e-8, "posterior covariances, exact vs ssm");
    }
}

/// DLAG by EM on the exact engine and on the SSM engine (AR(6) lift) from the same start,
/// on synthetic data with a 1.5-bin delay: both log-likelihood traces increase, and the
/// fitted delays agree with each other (0.1 bins) and with the truth (0.3 bins).
#[test]
fn exact_and_ssm_dlag_agree_after_em() {
    let (data, truth) = small_synth(5, 12, 30, vec![0.0, 1.5], vec![0, 0], 2.0);
    let mut spec = Spec::preset(Method::Dlag, 1, vec![0, 0]);
    spec.max_iter = 30;
    spec.ar_order = 6;
    let ssm = fit(&data, &spec, |_, _| {}).unwrap();
    spec.engine = Engine::Exact;
    let ex = fit(&data, &spec, |_, _| {}).unwrap();
    for res in [&ssm, &ex] {
        assert!(res
            .loglik
            .windows(2)
            .all(|w| w[1] >= w[0] - 1e-9 * w[0].abs()));
    }
    let (ds, de) = (ssm.processes[0].delays[1], ex.processes[0].delays[1]);
    eprintln!("delay: ssm {ds}, exact {de}, truth {}", truth.delays[0][1]);
    assert!((ds - de).abs() < 0.1, "ssm {ds} vs exact {de}");
    assert!((de - truth.delays[0][1]).abs() < 0.3, "exact {de}");
    // The exact engine reports a delay standard error too.
    let se = ex.processes[0].delay_se[1];
    assert!(se.is_finite() && se > 0.0 && se < 0.5, "delay s.e. {se}");
    assert!(
        (de - truth.delays[0][1]).abs() < 4.0 * se,
        "error {} vs s.e. {se}",
        de - truth.delays[0][1]
    );
}

/// Standard normals from `lcg` (Box–Muller).
fn gauss(seed: u64, n: usize) -> Vec<f64> {
    let u = rand_vec(seed, 2 * n);
    (0..n)
        .map(|i| {
            let (a, b) = ((u[2 * i] + 1.0) / 2.0, (u[2 * i + 1] + 1.0) / 2.0);
            (-2.0 * (a.max(1e-300)).ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
        })
        .collect()
}

/// The `lds` preset recovers the eigenvalues of a known transition matrix (a damped rotation,
/// `0.95 e^{±0.3i}`) from data simulated here (2 regions × 8 neurons, 20 trials × 60 bins),
/// and its EM log-likelihood never decreases.
#[test]
fn lds_recovers_known_dynamics() {
    let (rho, th) = (0.95f64, 0.3f64);
    let a = Mat::from_vec(
        2,
        2,
        vec![
            rho * th.cos(),
            -rho * th.sin(),
            rho * th.sin(),
            rho * th.cos(),
        ],
    );
    let (nk, tn, n) = (20, 60, 8);
    let c: Vec<Mat> = (0..2)
        .map(|r| Mat::from_vec(n, 2, gauss(70 + r, 2 * n)))
        .collect();
    let qsd = 0.3;
    let mut regions: Vec<Vec<Mat>> = vec![vec![], vec![]];
    for k in 0..nk {
        let e = gauss(1000 + k as u64, 2 * tn);
        let mut x = vec![gauss(500 + k as u64, 2)[0], gauss(600 + k as u64, 2)[1]];
        let mut xs = Mat::zeros(tn, 2);
        for t in 0..tn {
            xs[(t, 0)] = x[0];
            xs[(t, 1)] = x[1];
            let nx = a.mv(&x);
            x = vec![nx[0] + qsd * e[2 * t], nx[1] + qsd * e[2 * t + 1]];
        }
        for r in 0..2 {
            let noise = gauss(2000 + 100 * r as u64 + k as u64, tn * n);
            let mut y = xs.mul_t(&c[r]);
            for (v, e) in y.data.iter_mut().zip(&noise) {
                *v += 0.3 * e + 1.0;
            }
            regions[r].push(y);
        }
    }
    let data = Data::new(vec!["a".into(), "b".into()], regions).unwrap();
    let mut spec = Spec::preset(Method::Lds, 2, vec![]);
    spec.max_iter = 150;
    spec.tol = 0.0;
    let res = fit(&data, &spec, |_, _| {}).unwrap();
    for w in res.loglik.windows(2) {
        assert!(w[1] >= w[0] - 1e-9 * w[0].abs(), "{} then {}", w[0], w[1]);
    }
    let fa = &res.lds.as_ref().unwrap().a;
    let (tr, det) = (
        fa[(0, 0)] + fa[(1, 1)],
        fa[(0, 0)] * fa[(1, 1)] - fa[(0, 1)] * fa[(1, 0)],
    );
    let modulus = det.sqrt();
    let angle = (tr / (2.0 * modulus)).clamp(-1.0, 1.0).acos();
    eprintln!("LDS eigenvalues: modulus {modulus} angle {angle}");
    assert!((modulus - rho).abs() < 0.03, "modulus {modulus} vs {rho}");
    assert!((angle - th).abs() < 0.05, "angle {angle} vs {th}");
}

#[test]
fn lds_and_engine_settings_are_checked() {
    let (data, _) = small_synth(1, 3, 10, vec![0.0, 1.0], vec![0, 0], 1.0);
    expect_err(
        fit(&data, &Spec::preset(Method::Lds, 1, vec![1, 1]), |_, _| {}),
        &["within", "LDS"],
    );
    let mut spec = Spec::preset(Method::Lds, 1, vec![]);
    spec.engine = Engine::Exact;
    expect_err(fit(&data, &spec, |_, _| {}), &["engine", "lds"]);
}

/// CRC-32 (IEEE), bit by bit; checked against the standard test vector below.
fn crc32_bitwise(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A ZIP archive of `(name, bytes, deflate?)` members written by hand (as `np.savez` /
/// `np.savez_compressed` lay them out, without ZIP64).
fn write_zip(path: &std::path::Path, members: &[(&str, Vec<u8>, bool)]) {
    assert_eq!(crc32_bitwise(b"123456789"), 0xcbf4_3926);
    let (mut out, mut cd) = (Vec::<u8>::new(), Vec::<u8>::new());
    let u16b = |v: usize| (v as u16).to_le_bytes();
    let u32b = |v: usize| (v as u32).to_le_bytes();
    for (name, data, deflate) in members {
        let body = if *deflate {
            miniz_oxide::deflate::compress_to_vec(data, 6)
        } else {
            data.clone()
        };
        let (method, crc) = (if *deflate { 8 } else { 0 }, crc32_bitwise(data) as usize);
        let off = out.len();
        for part in [
            &u32b(0x0403_4b50)[..],
            &u16b(20),
            &u16b(0),
            &u16b(method),
            &u16b(0),
            &u16b(0),
            &u32b(crc),
            &u32b(body.len()),
            &u32b(data.len()),
            &u16b(name.len()),
            &u16b(0),
            name.as_bytes(),
            &body,
        ] {
            out.extend_from_slice(part);
        }
        for part in [
            &u32b(0x0201_4b50)[..],
            &u16b(20),
            &u16b(20),
            &u16b(0),
            &u16b(method),
            &u16b(0),
            &u16b(0),
            &u32b(crc),
            &u32b(body.len()),
            &u32b(data.len()),
            &u16b(name.len()),
            &u16b(0),
            &u16b(0),
            &u16b(0),
            &u16b(0),
            &u32b(0),
            &u32b(off),
            name.as_bytes(),
        ] {
            cd.extend_from_slice(part);
        }
    }
    let cd_off = out.len();
    out.extend_from_slice(&cd);
    for part in [
        &u32b(0x0605_4b50)[..],
        &u16b(0),
        &u16b(0),
        &u16b(members.len()),
        &u16b(members.len()),
        &u32b(cd.len()),
        &u32b(cd_off),
        &u16b(0),
    ] {
        out.extend_from_slice(part);
    }
    std::fs::write(path, out).unwrap();
}

/// `latent fit` on an `.npz` (one member stored, one deflated; regions in name order), the
/// figure written; `latent eval` of that fit without refitting reproduces the fit's held-out
/// log-likelihood and gives the delay-recovery RMSE of the fitted delay against truth.json;
/// bad archives and a missing array are refused with no output.
#[test]
fn cli_npz_fit_then_eval() {
    use std::process::Command;
    let dir = crate::common::tmpdir("latent-npz");
    let bin = env!("CARGO_BIN_EXE_neurodiff");
    let d = dir.to_str().unwrap();
    let o = Command::new(bin)
        .args(["latent", "synth", "--trials", "9", "--bins", "20"])
        .args(["--neurons", "5,4", "--delays", "0,1.5", "--timescales", "3"])
        .args(["--within", "0,0", "--seed", "2", "-o", d])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    let r0 = std::fs::read(dir.join("region0.npy")).unwrap();
    let r1 = std::fs::read(dir.join("region1.npy")).unwrap();
    let npz = dir.join("rec.npz");
    write_zip(&npz, &[("v2.npy", r1, false), ("v1.npy", r0, true)]);
    let out = dir.join("fit");
    let npz_s = npz.to_str().unwrap();
    let o = Command::new(bin)
        .args(["latent", "fit", "--data", npz_s, "--across", "1"])
        .args([
            "--within",
            "0,0",
            "--max-iter",
            "8",
            "--test-frac",
            "0.34",
            "-q",
        ])
        .args(["-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    let read = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let fitj = read(&out.join("latent.json"));
    assert_eq!(fitj["regions"], serde_json::json!(["v1", "v2"]));
    assert!(std::fs::metadata(out.join("latent.png")).unwrap().len() > 1000);
    let se = &fitj["processes"][0]["delay_se"];
    assert_eq!(se.as_array().unwrap().len(), 2);
    // eval: the same model on the same held-out trials.
    let ev = dir.join("eval");
    let o = Command::new(bin)
        .args([
            "latent",
            "eval",
            "--fit",
            out.join("latent.json").to_str().unwrap(),
        ])
        .args([
            "--data",
            npz_s,
            "--truth",
            dir.join("truth.json").to_str().unwrap(),
        ])
        .args(["-q", "-o", ev.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    let evj = read(&ev.join("eval.json"));
    let (a, b) = (
        evj["loglik_per_trial"].as_f64().unwrap(),
        fitj["test_loglik_per_trial"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-9 * b.abs(), "eval {a} vs fit {b}");
    let fitted = fitj["processes"][0]["delays"][1].as_f64().unwrap()
        - fitj["processes"][0]["delays"][0].as_f64().unwrap();
    let rmse = evj["delay_rmse"].as_f64().unwrap();
    assert!(
        (rmse - (fitted - 1.5).abs()).abs() < 1e-12,
        "{rmse} vs {fitted}"
    );
    assert_eq!(evj["cosmooth"]["psth_rmse"].as_array().unwrap().len(), 2);
    assert!(ev.join("latent.png").exists());
    // eval with given masks (mbrila's protocol): 2 of 5 and 1 of 4 neurons hidden, then 1 and 2.
    let masks = dir.join("masks.json");
    let eval_masks = |json: &str, o: &std::path::Path| {
        std::fs::write(&masks, json).unwrap();
        Command::new(bin)
            .args(["latent", "eval", "--fit"])
            .arg(out.join("latent.json"))
            .args(["--data", npz_s, "--holdout-file"])
            .arg(&masks)
            .args(["-q", "-o"])
            .arg(o)
            .output()
            .unwrap()
    };
    let evm = dir.join("eval_masks");
    let o = eval_masks("[[[0, 3], [2]], [[4], [1, 0]]]", &evm);
    assert!(o.status.success(), "{}", crate::common::stderr(&o));
    let cm = &read(&evm.join("eval.json"))["cosmooth"];
    assert_eq!(cm["masks"], 2);
    let want = (2.0 / 5.0 + 1.0 / 4.0 + 1.0 / 5.0 + 2.0 / 4.0) / 4.0;
    assert!((cm["frac"].as_f64().unwrap() - want).abs() < 1e-12, "{cm}");
    // A neuron beyond the region: refused, naming mask, region and neuron; no output.
    let evb = dir.join("eval_bad");
    let o = eval_masks("[[[0, 5], [2]]]", &evb);
    assert!(!o.status.success());
    let e = crate::common::stderr(&o);
    for w in ["mask 0", "v1", "neuron 5", "5 neurons"] {
        assert!(e.contains(w), "`{e}` does not name `{w}`");
    }
    assert!(!evb.exists(), "output written");
    // Refused, no output: a missing array, a 2-D array, NaN in an array.
    let fail = |args: &[&str], words: &[&str], tag: &str| {
        let o2 = dir.join(tag);
        let o = Command::new(bin)
            .args(["latent", "fit"])
            .args(args)
            .args(["-q", "-o", o2.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!o.status.success(), "{tag} should fail");
        let e = crate::common::stderr(&o);
        for w in words {
            assert!(e.contains(w), "{tag}: `{e}` does not name `{w}`");
        }
        assert!(!o2.exists(), "{tag}: output written");
    };
    fail(
        &["--data", npz_s, "--regions", "v1,v3"],
        &["v3", "v1, v2"],
        "missing",
    );
    let flat = dir.join("flat.npy");
    crate::common::write_npy(&flat, &[20, 4], &vec![0.1; 80]);
    let bad = dir.join("bad.npz");
    write_zip(&bad, &[("a.npy", std::fs::read(&flat).unwrap(), true)]);
    fail(
        &["--data", bad.to_str().unwrap()],
        &["3-D", "bad.npz"],
        "rank",
    );
    let mut v = vec![0.1; 9 * 20 * 4];
    v[7] = f64::NAN;
    crate::common::write_npy(&flat, &[9, 20, 4], &v);
    write_zip(&bad, &[("a.npy", std::fs::read(&flat).unwrap(), false)]);
    fail(&["--data", bad.to_str().unwrap()], &["`a`", "NaN"], "nan");
}

/// Cross-validated choice of the latent count: data with two across-region latents (delays
/// +1 and −1 bin), candidates 0..3 by 3-fold held-out likelihood: the held-out likelihood
/// rises from 0 to 1 to 2 latents and 2 is chosen.
#[test]
fn cross_validation_picks_the_true_latent_count() {
    let (data, _) = synth(&SynthSpec {
        trials: 24,
        bins: 25,
        neurons: vec![10, 10],
        kernel: "rbf".into(),
        across_timescales: vec![3.0, 5.0],
        delays: vec![vec![0.0, 1.0], vec![0.0, -1.0]],
        within: vec![0, 0],
        within_timescale: 2.0,
        snr: 1.0,
        loads: vec![],
        delay_sway: vec![],
        seed: 11,
    })
    .unwrap();
    let mut spec = Spec::preset(Method::Dlag, 0, vec![1, 1]);
    spec.max_iter = 25;
    let (rows, best) =
        neurodiff::latent::fit::cross_validate(&data, &spec, &[0, 1, 2, 3], 3).unwrap();
    let ll: Vec<f64> = rows.iter().map(|r| r.heldout_loglik_per_trial).collect();
    eprintln!("held-out log-likelihood per trial: {ll:?}");
    assert!(ll[0] < ll[1] && ll[1] < ll[2], "{ll:?}");
    assert_eq!(rows[best].across, 2, "{ll:?}");
    expect_err(
        neurodiff::latent::fit::cross_validate(&data, &spec, &[1], 30),
        &["cv-folds", "30"],
    );
}

/// The special functions of the ARD bound against known values: ψ(1) = −γ,
/// ψ(½) = −γ − 2 ln 2, ln Γ(½) = ln √π, ln Γ(5) = ln 24, and for small x
/// ln Γ(x) = −ln x − γx + O(x²).
#[test]
fn ard_special_functions() {
    use neurodiff::latent::ard::{digamma, ln_gamma};
    let gamma = 0.577_215_664_901_532_9;
    assert!((digamma(1.0) + gamma).abs() < 1e-12);
    assert!((digamma(0.5) + gamma + 2.0 * 2f64.ln()).abs() < 1e-12);
    assert!((digamma(37.5) - digamma(36.5) - 1.0 / 36.5).abs() < 1e-13);
    assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
    let x = 1e-4;
    assert!((ln_gamma(x) - (-x.ln() - gamma * x)).abs() < 1e-7);
}

/// mDLAG on 3 regions with a known loading pattern: latent A on regions 0 and 1 (delay 1.5
/// bins in region 1), latent B on all three (delays −1 and +1), latent C private to region 2;
/// fitted with 4 latents. The evidence lower bound never decreases; ARD keeps exactly the
/// three true patterns (the spare latent's loadings pruned to a negligible share of every
/// region's variance) and the delays come back.
#[test]
fn mdlag_ard_recovers_loading_pattern_and_delays() {
    use neurodiff::latent::fit::delay_rmse_masked;
    let (data, truth) = synth(&SynthSpec {
        trials: 30,
        bins: 40,
        neurons: vec![12, 12, 12],
        kernel: "rbf".into(),
        across_timescales: vec![4.0, 6.0, 3.0],
        delays: vec![
            vec![0.0, 1.5, 0.0],
            vec![0.0, -1.0, 1.0],
            vec![0.0, 0.0, 0.0],
        ],
        within: vec![0, 0, 0],
        within_timescale: 2.0,
        snr: 2.0,
        loads: vec![
            vec![true, true, false],
            vec![true, true, true],
            vec![false, false, true],
        ],
        delay_sway: vec![],
        seed: 5,
    })
    .unwrap();
    let mut spec = Spec::preset(Method::Mdlag, 4, vec![]);
    spec.max_iter = 80;
    spec.tol = 1e-9;
    let res = fit(&data, &spec, |_, _| {}).unwrap();
    for w in res.loglik.windows(2) {
        assert!(
            w[1] >= w[0] - 1e-9 * w[0].abs(),
            "lower bound fell: {} then {}",
            w[0],
            w[1]
        );
    }
    let ard = res.ard.as_ref().expect("mDLAG reports its ARD");
    eprintln!(
        "variance fractions {:?}\ndelays {:?}\nbound {} → {} in {} iterations",
        ard.variance_fraction,
        res.processes.iter().map(|p| &p.delays).collect::<Vec<_>>(),
        res.loglik[0],
        res.loglik.last().unwrap(),
        res.iterations
    );
    // Per fitted latent, the regions it loads on; the active ones must be the true patterns.
    let mut patterns: Vec<Vec<bool>> = (0..4)
        .map(|k| (0..3).map(|r| ard.loads[r][k]).collect())
        .filter(|p: &Vec<bool>| p.iter().any(|&b| b))
        .collect();
    patterns.sort();
    let mut want = truth.loads.clone();
    want.sort();
    assert_eq!(patterns, want, "{:?}", ard.variance_fraction);
    // Pruned loadings: at least 100 times below the smallest kept share of a region's variance.
    let vf = &ard.variance_fraction;
    let kept = (0..3)
        .flat_map(|r| {
            (0..4)
                .filter(move |&k| ard.loads[r][k])
                .map(move |k| vf[r][k])
        })
        .fold(f64::INFINITY, f64::min);
    for r in 0..3 {
        for k in 0..4 {
            if !ard.loads[r][k] {
                assert!(vf[r][k] < kept / 100.0, "{vf:?}");
            }
        }
    }
    let rmse = delay_rmse_masked(&res.processes, &ard.loads, &truth.delays, &truth.loads)
        .expect("shared latents");
    assert!(rmse < 0.2, "delay RMSE {rmse} bins");
    // Errors for a bad mDLAG set-up.
    let mut bad = Spec::preset(Method::Mdlag, 2, vec![1, 1, 1]);
    expect_err(fit(&data, &bad, |_, _| {}), &["within", "ARD"]);
    bad.within = vec![];
    bad.ard_prior = (0.0, 1.0);
    expect_err(fit(&data, &bad, |_, _| {}), &["ard-prior"]);
}

/// Cross-validation over a grid of across and within counts: data with one across latent and
/// one within latent per region; of (1 across, 0,0 within), (1, 1,1) and (0, 1,1), the
/// held-out likelihood prefers the truth.
#[test]
fn cross_validation_grid_picks_the_within_count() {
    let (data, _) = small_synth(12, 24, 25, vec![0.0, 1.0], vec![1, 1], 1.0);
    let mut spec = Spec::preset(Method::Dlag, 1, vec![1, 1]);
    spec.max_iter = 25;
    let grid = [(1, vec![0, 0]), (1, vec![1, 1]), (0, vec![1, 1])];
    let (rows, best) = neurodiff::latent::fit::cross_validate_grid(&data, &spec, &grid, 3).unwrap();
    let ll: Vec<f64> = rows.iter().map(|r| r.heldout_loglik_per_trial).collect();
    eprintln!("held-out log-likelihood per trial: {ll:?}");
    assert_eq!(
        (rows[best].across, rows[best].within.clone()),
        (1, vec![1, 1]),
        "{ll:?}"
    );
    assert!(rows.iter().all(|r| r.wall_s > 0.0));
}

// ---------------------------------------------------------------------------------------
// ADM: time-varying delays (neurodiff::latent::adm).

/// Two regions, one across latent (timescale 4 bins) delayed in region 1 by
/// `2 + sway·sin(2π t/(T − 1))` bins.
fn adm_synth(seed: u64, trials: usize, bins: usize, sway: f64) -> (Data, Vec<Vec<f64>>) {
    let (data, truth) = synth(&SynthSpec {
        trials,
        bins,
        neurons: vec![12, 12],
        kernel: "rbf".into(),
        across_timescales: vec![4.0],
        delays: vec![vec![0.0, 2.0]],
        within: vec![0, 0],
        within_timescale: 2.0,
        snr: 2.0,
        loads: vec![],
        delay_sway: vec![vec![0.0, sway]],
        seed,
    })
    .unwrap();
    let path = truth.delay_paths[0].clone();
    (data, path)
}

/// RMSE (bins) of the fitted `δ_1(t) − δ_0(t)` of the one across latent against `truth`.
fn path_rmse(res: &neurodiff::latent::FitResult, truth: &[Vec<f64>]) -> f64 {
    let p = &res.processes[0];
    let fitted: Vec<Vec<f64>> = if p.delay_path.is_empty() {
        p.delays.iter().map(|&d| vec![d; truth[0].len()]).collect()
    } else {
        p.delay_path.clone()
    };
    neurodiff::latent::adm::delay_path_rmse(&[fitted], &[truth.to_vec()]).unwrap()
}

fn assert_monotone(trace: &[f64], what: &str) {
    for (i, w) in trace.windows(2).enumerate() {
        assert!(
            w[1] >= w[0] - 1e-9 * w[0].abs(),
            "{what}: log-likelihood decreased at iteration {}: {} → {}",
            i + 1,
            w[0],
            w[1]
        );
    }
}

/// The time-varying lift: with every basis coefficient zero it is DLAG's lift bin by bin
/// (same likelihood to rounding), and with coefficients the parallel-scan filter/smoother
/// equal the sequential ones.
#[test]
fn adm_time_varying_lift() {
    let mut prior = mixed_prior();
    let tn = 25;
    let mut tv = neurodiff::latent::adm::TvDelay::new(&prior.processes, tn, 3, 5.0);
    let r = |p: usize| Mat::from_fn(p, p, |i, j| if i == j { 0.4 } else { 0.05 });
    let ys = |p: usize| -> Vec<Mat> {
        (0..2)
            .map(|k| Mat::from_vec(tn, p, rand_vec(90 + k, tn * p)))
            .collect()
    };
    let ssm_of = |pr: &Prior| {
        let l = pr.lift().unwrap();
        Ssm {
            a: l.a.clone(),
            q: l.q.clone(),
            h: l.h.clone(),
            r: r(l.h.rows),
            m0: vec![0.0; l.a.rows],
            p0: l.p0.clone(),
            tv: l.tv,
        }
    };
    let fixed = ssm_of(&prior);
    assert!(fixed.tv.is_empty());
    let y = ys(fixed.h.rows);
    let ll_fixed: f64 = filter(&fixed, &y).unwrap().loglik.iter().sum();
    prior.tv = Some(tv.clone());
    let zero = ssm_of(&prior);
    assert_eq!(zero.tv.len(), tn - 1, "one transition per step");
    let ll_zero: f64 = filter(&zero, &y).unwrap().loglik.iter().sum();
    assert!(
        (ll_zero - ll_fixed).abs() < 1e-10 * ll_fixed.abs(),
        "zero sway {ll_zero} vs DLAG {ll_fixed}"
    );
    tv.coefs[0][1] = vec![0.8, -0.4];
    tv.coefs[0][2] = vec![-0.5, 0.3];
    prior.tv = Some(tv);
    let moving = ssm_of(&prior);
    let fs = filter(&moving, &y).unwrap();
    let fp = filter_parallel(&moving, &y).unwrap();
    let ll_moving: f64 = fs.loglik.iter().sum();
    assert!(
        (ll_moving - ll_fixed).abs() > 1e-3,
        "the sway changes the model"
    );
    for k in 0..2 {
        assert!((fs.loglik[k] - fp.loglik[k]).abs() < 1e-9 * fs.loglik[k].abs());
        close(&fs.means[k], &fp.means[k], 1e-9, "tv filtered means");
    }
    let ss = smooth(&moving, &fs).unwrap();
    let sp = smooth_parallel(&moving, &fp).unwrap();
    for t in 0..tn {
        close(&ss.covs[t], &sp.covs[t], 1e-8, "tv smoothed covariances");
    }
    close(&ss.means[1], &sp.means[1], 1e-8, "tv smoothed means");
}

/// On data whose delay sways by ±1.5 bins over the trial, ADM recovers the trajectory
/// (RMSE below 0.5 bins, against ≈ 1.06 for the best constant) and its likelihood beats
/// fixed-delay DLAG's; its EM trace never decreases.
#[test]
fn adm_recovers_a_time_varying_delay() {
    let (data, truth) = adm_synth(21, 30, 60, 1.5);
    let mut spec = Spec::preset(Method::Adm, 1, vec![0, 0]);
    spec.max_iter = 60;
    spec.tol = 1e-9;
    let adm = fit(&data, &spec, |_, _| {}).unwrap();
    assert_monotone(&adm.loglik, "adm");
    let mut dspec = Spec::preset(Method::Dlag, 1, vec![0, 0]);
    dspec.max_iter = 60;
    dspec.tol = 1e-9;
    let dlag = fit(&data, &dspec, |_, _| {}).unwrap();
    let (ea, ed) = (path_rmse(&adm, &truth), path_rmse(&dlag, &truth));
    eprintln!(
        "adm: path RMSE {ea:.3} bins, LL {:.3}; dlag: {ed:.3} bins, LL {:.3}",
        adm.loglik.last().unwrap(),
        dlag.loglik.last().unwrap()
    );
    assert_eq!(adm.processes[0].delay_path.len(), 2);
    assert_eq!(adm.processes[0].delay_path[1].len(), 60);
    assert!(ea < 0.5, "ADM delay-trajectory RMSE {ea} bins");
    assert!(ea < 0.5 * ed, "ADM {ea} vs DLAG {ed}");
    assert!(
        adm.loglik.last().unwrap() > dlag.loglik.last().unwrap(),
        "ADM's likelihood must beat DLAG's on time-varying delays"
    );
}

/// With a constant true delay ADM reduces to DLAG: the same delay (within 0.2 bins) and a
/// nearly flat trajectory; with one basis function it *is* DLAG (identical trace).
#[test]
fn adm_reduces_to_dlag_for_a_constant_delay() {
    let (data, _) = adm_synth(22, 25, 50, 0.0);
    let mut spec = Spec::preset(Method::Adm, 1, vec![0, 0]);
    spec.max_iter = 40;
    spec.tol = 1e-9;
    let adm = fit(&data, &spec, |_, _| {}).unwrap();
    assert_monotone(&adm.loglik, "adm");
    let mut dspec = Spec::preset(Method::Dlag, 1, vec![0, 0]);
    dspec.max_iter = 40;
    dspec.tol = 1e-9;
    let dlag = fit(&data, &dspec, |_, _| {}).unwrap();
    let (da, dd) = (adm.processes[0].delays[1], dlag.processes[0].delays[1]);
    assert!((da - dd).abs() < 0.2, "ADM mean delay {da} vs DLAG {dd}");
    assert!((dd - 2.0).abs() < 0.3, "DLAG delay {dd} vs true 2");
    let path = &adm.processes[0].delay_path[1];
    let spread = path.iter().map(|v| (v - da).abs()).fold(0.0, f64::max);
    assert!(
        spread < 0.5,
        "flat trajectory expected, spread {spread} bins"
    );
    spec.delay_basis = 1;
    let one = fit(&data, &spec, |_, _| {}).unwrap();
    assert_eq!(one.loglik.len(), dlag.loglik.len());
    for (a, b) in one.loglik.iter().zip(&dlag.loglik) {
        assert!((a - b).abs() <= 1e-9 * b.abs(), "B = 1: {a} vs DLAG {b}");
    }
    assert!(one.processes[0].delay_path.is_empty());
}

/// Two across latents: the rank-1 deflation initialisation, then EM; the trace never
/// decreases and every across latent gets a trajectory per region.
#[test]
fn adm_deflation_and_monotone_em() {
    let (data, truth) = synth(&SynthSpec {
        trials: 15,
        bins: 40,
        neurons: vec![10, 10],
        kernel: "rbf".into(),
        across_timescales: vec![3.0, 6.0],
        delays: vec![vec![0.0, 1.5], vec![0.0, -1.0]],
        within: vec![1, 1],
        within_timescale: 2.0,
        snr: 2.0,
        loads: vec![],
        delay_sway: vec![vec![0.0, 1.0], vec![0.0, 0.0]],
        seed: 23,
    })
    .unwrap();
    assert_eq!(truth.delay_paths.len(), 2);
    let mut spec = Spec::preset(Method::Adm, 2, vec![1, 1]);
    spec.max_iter = 15;
    spec.deflation_iter = 10;
    spec.delay_basis = 3;
    let res = fit(&data, &spec, |_, _| {}).unwrap();
    assert_monotone(&res.loglik, "adm with deflation");
    let across: Vec<_> = res
        .processes
        .iter()
        .filter(|p| p.kind == Kind::Across)
        .collect();
    assert_eq!(across.len(), 2);
    for p in across {
        assert_eq!(p.delay_path.len(), 2);
        assert!(
            p.delay_path[0].iter().all(|&v| v == 0.0),
            "region 0 is the reference"
        );
        assert_eq!(p.delay_coefs[1].len(), 2);
    }
    assert_eq!(res.latent_covs.len(), 40);
}

#[test]
fn adm_bad_input_is_refused_with_a_clear_error() {
    let (data, _) = adm_synth(24, 4, 20, 1.0);
    let spec = Spec::preset(Method::Adm, 0, vec![1, 1]);
    expect_err(fit(&data, &spec, |_, _| {}), &["across", "adm"]);
    let mut spec = Spec::preset(Method::Adm, 1, vec![0, 0]);
    spec.delay_basis = 0;
    expect_err(fit(&data, &spec, |_, _| {}), &["delay-basis", "0 basis"]);
    spec.delay_basis = 11;
    expect_err(
        fit(&data, &spec, |_, _| {}),
        &["delay-basis", "1..=10", "20 bins"],
    );
    spec.delay_basis = 3;
    spec.engine = Engine::Exact;
    expect_err(fit(&data, &spec, |_, _| {}), &["engine", "ssm"]);
    // A fit's trajectory applied to data of another length.
    spec.engine = Engine::Ssm;
    spec.max_iter = 6;
    let res = fit(&data, &spec, |_, _| {}).unwrap();
    let (other, _) = adm_synth(25, 2, 24, 1.0);
    expect_err(
        infer(&other, &res.prior, &res.obs, Engine::Ssm, false),
        &["20 bins", "24"],
    );
    expect_err(
        synth(&SynthSpec {
            trials: 2,
            bins: 10,
            neurons: vec![3, 3],
            kernel: "rbf".into(),
            across_timescales: vec![2.0],
            delays: vec![vec![0.0, 1.0]],
            within: vec![0, 0],
            within_timescale: 2.0,
            snr: 1.0,
            loads: vec![],
            delay_sway: vec![vec![0.0]],
            seed: 0,
        }),
        &["delay-sway", "2"],
    );
}
