//! Multi-region latent-variable models (`neurodiff::latent`): the parallel-scan Kalman
//! filter/smoother against the sequential one, both against the dense O(T³) Gaussian process
//! written out here, EM's monotone likelihood, recovery of delays and timescales from seeded
//! synthetic data with known truth, and clear errors on bad input.

use neurodiff::latent::fit::{fit, Method, Spec};
use neurodiff::latent::kalman::{filter, filter_parallel, smooth, smooth_parallel, Ssm};
use neurodiff::latent::model::{reduce, Data, Kind, ObsParams, Prior, Process};
use neurodiff::latent::synth::{synth, SynthSpec};
use neurodiff::latent::LatentError;
use neurodiff::models::latent::linalg::{chol_logdet, chol_solve, cholesky, Mat};
use neurodiff::models::latent::{Kernel, Matern12, Matern32, Matern52, Rbf};

/// A small deterministic pseudo-random sequence (no dependency on the generator under test).
fn lcg(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

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
        m0: lcg(7, l.a.rows).iter().map(|v| 0.1 * v).collect(),
        p0: l.p0.clone(),
    };
    let tn = 37; // not a power of two
    let ys: Vec<Mat> = (0..3)
        .map(|k| Mat::from_vec(tn, p, lcg(100 + k, tn * p)))
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
    let c = Mat::from_vec(n, 2, lcg(1, 2 * n));
    let d = lcg(2, n);
    let r: Vec<f64> = lcg(3, n).iter().map(|v| 0.3 + 0.2 * v.abs()).collect();
    let dense = Dense {
        kernels: kernels.clone(),
        c: c.clone(),
        d: d.clone(),
        r: r.clone(),
        tn,
    };
    let trials: Vec<Mat> = (0..2)
        .map(|k| Mat::from_vec(tn, n, lcg(10 + k, tn * n)))
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

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let tr = |k: usize, t: usize, n: usize| {
        (0..k)
            .map(|i| Mat::from_vec(t, n, lcg(i as u64, t * n)))
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
