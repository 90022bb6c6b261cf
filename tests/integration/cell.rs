//! Multi-compartment cells (`neurodiff::cell`): the tree solver against a dense solve on random
//! trees, a passive cable against cable theory (attenuation, input resistance, length
//! constant), NEURON's traces (`tests/data/neuron/`, made by `make_reference.py` there) for a
//! single HH compartment, a branched active + passive cell and each Hay et al. (2011) channel
//! (`make_hay.py`), voltage clamps (NEURON's `SEClamp`: voltages and clamp current) on both
//! cells, Crank–Nicolson against NEURON's `secondorder = 2` and its order (dt² against dt for
//! backward Euler) on a passive compartment, a batch against separate runs,
//! waveforms from `.npy`, and bad morphologies, channels, clamps and divergence as clear errors.

use std::path::{Path, PathBuf};

use neurodiff::cell::{
    hines_solve, simulate, Branch, Cell, CellConfig, Clamp, Group, Morphology, Passive, Probe,
    Protocol, Recording, Scheme, VClamp, Waveform,
};
use neurodiff::Error;
use neurodiff_models::channel::ChannelKind;

use crate::common::{tmpdir, write_npy};

/// A small deterministic generator (xorshift64*), uniform in [0, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Gaussian elimination with partial pivoting on a dense `n × n` system.
fn dense_solve(mut m: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))
            .unwrap();
        m.swap(c, p);
        b.swap(c, p);
        let pivot = m[c].clone();
        for r in c + 1..n {
            let f = m[r][c] / pivot[c];
            for (x, p) in m[r][c..].iter_mut().zip(&pivot[c..]) {
                *x -= f * p;
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| m[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / m[r][r];
    }
    x
}

#[test]
fn tree_solver_matches_a_dense_solve_on_random_trees() {
    let mut rng = Lcg(0x9E37_79B9_7F4A_7C15);
    let batch = 3;
    for trial in 0..40 {
        let n = 1 + (rng.next() * 80.0) as usize;
        let parent: Vec<usize> = (0..n)
            .map(|i| {
                if i == 0 {
                    usize::MAX
                } else if trial % 2 == 0 {
                    (rng.next() * i as f64) as usize
                } else {
                    // Long chains with a few side branches (cable-like).
                    if rng.next() < 0.8 {
                        i - 1
                    } else {
                        (rng.next() * i as f64) as usize
                    }
                }
            })
            .collect();
        let a: Vec<f64> = (0..n)
            .map(|i| if i == 0 { 0.0 } else { -0.1 - 5.0 * rng.next() })
            .collect();
        // Diagonal: the axial terms plus a positive membrane part (as in the cable step).
        let mut d = vec![0.0; n * batch];
        let mut rhs = vec![0.0; n * batch];
        let mut dense = vec![vec![vec![0.0; n]; n]; batch];
        for b in 0..batch {
            for i in 0..n {
                d[i * batch + b] = 1e-3 + rng.next();
                rhs[i * batch + b] = rng.next() * 2.0 - 1.0;
            }
            for i in 1..n {
                d[i * batch + b] -= a[i];
                d[parent[i] * batch + b] -= a[i];
            }
            for i in 0..n {
                dense[b][i][i] = d[i * batch + b];
            }
            for i in 1..n {
                dense[b][i][parent[i]] = a[i];
                dense[b][parent[i]][i] = a[i];
            }
        }
        let rhs0 = rhs.clone();
        hines_solve(&parent, &a, &mut d, &mut rhs, batch);
        for b in 0..batch {
            let want = dense_solve(
                dense[b].clone(),
                (0..n).map(|i| rhs0[i * batch + b]).collect(),
            );
            for i in 0..n {
                let got = rhs[i * batch + b];
                assert!(
                    (got - want[i]).abs() <= 1e-10 * (1.0 + want[i].abs()),
                    "trial {trial}, n {n}, batch {b}, node {i}: tree {got} vs dense {}",
                    want[i]
                );
            }
        }
    }
}

/// One passive cable (sealed ends): radius 1 µm, R_a 100 Ω·cm, leak 0.1 mS/cm² (R_m = 10⁴
/// Ω·cm²), so λ = √(a R_m / (2 R_a)) = 707.1 µm; a current at x = 0, reversal 0, V from 0.
fn cable(length: f64, ncomp: usize, amp: f64, dt: f64, steps: usize) -> (Cell, Recording) {
    let m = Morphology {
        branches: vec![Branch {
            name: Some("cable".into()),
            parent: None,
            length,
            radius: 1.0,
            ncomp,
            group: Group::Basal,
        }],
    };
    let mut cell = Cell::new(m, |_| Passive { cm: 1.0, ra: 100.0 }, 1).unwrap();
    cell.insert(ChannelKind::Leak, |_, _| true, &[vec![0.1, 0.0]])
        .unwrap();
    let probes = (0..ncomp).map(|i| Probe::V { node: i }).collect();
    let p = Protocol {
        dt,
        steps,
        celsius: 6.3,
        v_init: 0.0,
        clamps: vec![Clamp {
            node: cell.node_at(0, 0.0).unwrap(),
            batch: None,
            waveform: Waveform::Step {
                amp,
                delay: 0.0,
                dur: 1e9,
            },
        }],
        probes,
        ..Protocol::default()
    };
    let r = simulate::<f64>(&cell, &p).unwrap();
    (cell, r)
}

const LAMBDA_UM: f64 = 707.106_781_186_547_5; // √(1e-4 cm · 1e4 Ω·cm² / (2 · 100 Ω·cm)) in µm

#[test]
fn passive_cable_attenuation_matches_cable_theory() {
    // L = 1000 µm (1.41 λ), Δx = 5 µm; 300 ms of 0.5 ms steps (30 membrane time constants).
    let (l, n, amp) = (1000.0, 200, 0.1);
    let (_, r) = cable(l, n, amp, 0.5, 600);
    let last = r.len() - 1;
    let v: Vec<f64> = (0..n).map(|i| r.trace(i, 0)[last]).collect();
    let dx = l / n as f64;
    let shape = |x: f64| ((l - x) / LAMBDA_UM).cosh() / (l / LAMBDA_UM).cosh();
    let x0 = 0.5 * dx;
    for (i, vi) in v.iter().enumerate() {
        let x = (i as f64 + 0.5) * dx;
        let want = shape(x) / shape(x0);
        let got = vi / v[0];
        assert!(
            (got - want).abs() < 1e-3,
            "x = {x} µm: V/V(x0) = {got}, cable theory {want}"
        );
    }
    // Input resistance of a sealed cable: R_in = (R_a / π a²) λ coth(L/λ); V(0) = I R_in.
    let lam_cm = LAMBDA_UM * 1e-4;
    let r_in = 100.0 / (std::f64::consts::PI * 1e-8) * lam_cm / (l / LAMBDA_UM).tanh(); // Ω
    let v0 = amp * r_in * 1e-6; // nA · Ω = 1e-6 mV
    let v_x0 = v0 * shape(x0);
    assert!(
        (v[0] / v_x0 - 1.0).abs() < 5e-3,
        "V at the first compartment {} mV, cable theory {v_x0} mV",
        v[0]
    );
}

#[test]
fn length_constant_matches_the_analytic_formula() {
    // A long cable (10 λ): far from the sealed end V ∝ e^{−x/λ}. Six backward-Euler steps of
    // 10⁴ ms reach the steady state (each damps the slowest mode by ~10³).
    let l = 10.0 * LAMBDA_UM;
    let n = 1000;
    let (_, r) = cable(l, n, 0.1, 1e4, 6);
    let last = r.len() - 1;
    let dx = l / n as f64;
    let at = |x: f64| {
        let i = (x / dx - 0.5).round() as usize;
        ((i as f64 + 0.5) * dx, r.trace(i, 0)[last])
    };
    let (x1, v1) = at(LAMBDA_UM);
    let (x2, v2) = at(4.0 * LAMBDA_UM);
    let lambda = (x2 - x1) / (v1 / v2).ln();
    assert!(
        (lambda / LAMBDA_UM - 1.0).abs() < 1e-3,
        "measured λ = {lambda} µm, analytic {LAMBDA_UM} µm"
    );
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/neuron")
}

/// The cell and protocol of a NEURON reference case, from its JSON.
pub(crate) fn neuron_case(case: &str, batch: usize) -> (Cell, Protocol, Vec<f64>, usize, usize) {
    neuron_case_as(case, batch, false)
}

/// [`neuron_case`] with NEURON's `hh` as the one channel `hh` (`whole`) or as `hh_na`, `hh_k`
/// and `leak` placed apart.
fn neuron_case_as(
    case: &str,
    batch: usize,
    whole: bool,
) -> (Cell, Protocol, Vec<f64>, usize, usize) {
    let dir = data_dir();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{case}.json"))).unwrap())
            .unwrap();
    let secs = meta["sections"].as_array().unwrap();
    let names: Vec<String> = secs
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    let branches = secs
        .iter()
        .map(|s| Branch {
            name: Some(s["name"].as_str().unwrap().into()),
            parent: s["parent"]
                .as_str()
                .map(|p| names.iter().position(|n| n == p).unwrap()),
            length: s["L"].as_f64().unwrap(),
            radius: s["diam"].as_f64().unwrap() / 2.0,
            ncomp: s["nseg"].as_u64().unwrap() as usize,
            group: if s["mech"] == "hh" {
                Group::Soma
            } else {
                Group::Basal
            },
        })
        .collect();
    let (cm, ra) = (
        secs[0]["cm"].as_f64().unwrap(),
        secs[0]["Ra"].as_f64().unwrap(),
    );
    let mut cell = Cell::new(Morphology { branches }, |_| Passive { cm, ra }, batch).unwrap();
    // NEURON's hh: gnabar 0.12, gkbar 0.036, gl 0.0003 S/cm² → mS/cm²; pas g 1e-3 S/cm².
    let soma = [Group::Soma];
    if whole {
        let hh = vec![120.0, 36.0, 0.3, 50.0, -77.0, -54.3];
        cell.insert_named("hh", &soma, &[hh]).unwrap();
    } else {
        cell.insert_named("hh_na", &soma, &[vec![120.0, 50.0]])
            .unwrap();
        cell.insert_named("hh_k", &soma, &[vec![36.0, -77.0]])
            .unwrap();
        cell.insert_named("leak", &soma, &[vec![0.3, -54.3]])
            .unwrap();
    }
    cell.insert_named("leak", &[Group::Basal], &[vec![1.0, -65.0]])
        .unwrap();
    let branch = |name: &serde_json::Value| cell.morphology.find(name.as_str().unwrap()).unwrap();
    let st = &meta["stim"];
    let clamps = if st.is_null() {
        vec![]
    } else {
        vec![Clamp {
            node: cell
                .node_at(branch(&st["section"]), st["x"].as_f64().unwrap())
                .unwrap(),
            batch: None,
            waveform: Waveform::Step {
                amp: st["amp_nA"].as_f64().unwrap(),
                delay: st["delay_ms"].as_f64().unwrap(),
                dur: st["dur_ms"].as_f64().unwrap(),
            },
        }]
    };
    let mut probes: Vec<Probe> = meta["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Probe::V {
            node: cell
                .node_at(branch(&r["section"]), r["x"].as_f64().unwrap())
                .unwrap(),
        })
        .collect();
    // An SEClamp: its current is the last column.
    let vc = &meta["vclamp"];
    let vclamps = if vc.is_object() {
        let f = |k: &str| vc[k].as_f64().unwrap();
        probes.push(Probe::VClampCurrent { clamp: 0 });
        vec![VClamp {
            node: cell.node_at(branch(&vc["section"]), f("x")).unwrap(),
            rs: f("rs"),
            amp: vec![[f("amp1"), f("amp2"), f("amp3")]],
            dur: [f("dur1"), f("dur2"), f("dur3")],
        }]
    } else {
        vec![]
    };
    let scheme = match meta["secondorder"].as_u64().unwrap() {
        0 => Scheme::BackwardEuler,
        _ => Scheme::CrankNicolson,
    };
    let dt = meta["dt_ms"].as_f64().unwrap();
    let steps = (meta["tstop_ms"].as_f64().unwrap() / dt).round() as usize;
    let p = Protocol {
        dt,
        steps,
        celsius: meta["celsius"].as_f64().unwrap(),
        v_init: meta["v_init_mV"].as_f64().unwrap(),
        clamps,
        vclamps,
        scheme,
        probes,
    };
    let arr = neurodiff::io::read_npy(&dir.join(format!("{case}.npy"))).unwrap();
    let stride = meta["stride"].as_u64().unwrap() as usize;
    (cell, p, arr.data, arr.shape[1], stride)
}

/// Compares every recording with NEURON's: voltages by [`compare_trace`] (the same spikes within
/// 0.1 ms, V within 1 mV outside ±1 ms around each), a clamp current within that 1 mV over
/// `rs`. Returns (max |ΔV| or |Δi| anywhere, max |ΔV| outside spikes, max |Δt_spike|).
fn compare_with_neuron(case: &str, f32_run: bool) -> (f64, f64, f64) {
    compare_with_neuron_as(case, f32_run, false)
}

/// [`compare_with_neuron`] with `hh` whole or apart ([`neuron_case_as`]).
fn compare_with_neuron_as(case: &str, f32_run: bool, whole: bool) -> (f64, f64, f64) {
    let (cell, p, reference, nrec, stride) = neuron_case_as(case, 1, whole);
    assert_eq!(nrec, p.probes.len(), "{case}: columns");
    let r = if f32_run {
        simulate::<f32>(&cell, &p).unwrap()
    } else {
        simulate::<f64>(&cell, &p).unwrap()
    };
    let dt_s = p.dt * stride as f64;
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    for j in 0..nrec {
        let ours: Vec<f64> = r.trace(j, 0).into_iter().step_by(stride).collect();
        let theirs: Vec<f64> = (0..reference.len() / nrec)
            .map(|k| reference[k * nrec + j])
            .collect();
        let name = format!("{case} record {j}");
        if let Probe::VClampCurrent { clamp } = p.probes[j] {
            let tol = 1.0 / p.vclamps[clamp].rs;
            assert_eq!(ours.len(), theirs.len(), "{name}: sample count");
            for (k, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                worst.0 = worst.0.max((a - b).abs());
                assert!(
                    (a - b).abs() < tol,
                    "{name} at {} ms: clamp current {a} vs NEURON {b} nA",
                    k as f64 * dt_s
                );
            }
        } else {
            let w = compare_trace(&name, &ours, &theirs, dt_s, f32_run);
            worst = (worst.0.max(w.0), worst.1.max(w.1), worst.2.max(w.2));
        }
    }
    eprintln!(
        "{case} ({}): max |ΔV|, |Δi| {:.2e} mV, nA, outside spikes {:.2e} mV, spike times \
         {:.2e} ms",
        if f32_run { "f32" } else { "f64" },
        worst.0,
        worst.1,
        worst.2
    );
    worst
}

#[test]
fn single_hh_compartment_matches_neuron() {
    // The same scheme as NEURON's (backward Euler, gates after the voltage, currents at
    // t + dt/2), so f64 agrees to round-off, spikes included.
    let (all, _, _) = compare_with_neuron("hh_single", false);
    assert!(all < 1e-6, "f64 differs from NEURON by {all} mV");
    let (_, _, _) = compare_with_neuron("hh_single", true);
    // NEURON's `hh` as one channel (`hh`): the same currents summed in another order.
    let (all, _, _) = compare_with_neuron_as("hh_single", false, true);
    assert!(all < 1e-6, "f64, hh whole, differs from NEURON by {all} mV");
    compare_with_neuron_as("hh_single", true, true);
}

#[test]
fn branched_cell_matches_neuron() {
    let (all, _, _) = compare_with_neuron("branched", false);
    assert!(all < 1e-6, "f64 differs from NEURON by {all} mV");
    let (_, _, _) = compare_with_neuron("branched", true);
}

#[test]
fn voltage_clamp_matches_neuron() {
    // NEURON's SEClamp (series resistance, three command levels, then off) on the HH
    // compartment and on a dendrite of the branched cell (the soma spikes during the step):
    // the same implicit step, so f64 agrees to round-off in V and in the clamp current.
    for case in ["hh_vclamp", "branched_vclamp"] {
        let (all, _, _) = compare_with_neuron(case, false);
        assert!(
            all < 1e-6,
            "{case}: f64 differs from NEURON by {all} mV or nA"
        );
        compare_with_neuron(case, true);
    }
}

#[test]
fn crank_nicolson_matches_neuron_secondorder() {
    let (all, _, _) = compare_with_neuron("hh_single_cn", false);
    assert!(all < 1e-6, "f64 differs from NEURON by {all} mV");
    compare_with_neuron("hh_single_cn", true);
    // The two NEURON schemes differ by far more than that, so the comparison tells them apart.
    let be = neurodiff::io::read_npy(&data_dir().join("hh_single.npy")).unwrap();
    let cn = neurodiff::io::read_npy(&data_dir().join("hh_single_cn.npy")).unwrap();
    let gap = be
        .data
        .iter()
        .zip(&cn.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        gap > 1.0,
        "backward Euler and Crank–Nicolson differ by {gap} mV"
    );
}

/// The largest error of one passive compartment (leak 0.1 mS/cm² to 0 mV, 1 µF/cm²: τ = 10 ms)
/// under a step current from `t = 0`, against `V(t) = V∞ (1 − e^{−t/τ})`, over 20 ms of steps
/// `dt` with `scheme`; also with a voltage clamp in place of the current (`rs` 500 MΩ to
/// 10 mV), whose exact solution approaches `V∞ = (vc/rs) / (G + 1/rs)` with `τ = C/(G + 1/rs)`.
fn passive_point_error(scheme: Scheme, dt: f64, vclamp: bool) -> f64 {
    let m = Morphology {
        branches: vec![Branch {
            name: Some("soma".into()),
            parent: None,
            length: 20.0,
            radius: 10.0,
            ncomp: 1,
            group: Group::Soma,
        }],
    };
    let mut cell = Cell::new(m, |_| Passive::default(), 1).unwrap();
    cell.insert(ChannelKind::Leak, |_, _| true, &[vec![0.1, 0.0]])
        .unwrap();
    let area = cell.area[0]; // cm²
    let (g, c) = (0.1 * area, area); // mS, µF
    let (amp, rs, vc) = (0.05, 500.0, 10.0); // nA, MΩ, mV
    let steps = (20.0 / dt).round() as usize;
    let mut p = Protocol {
        dt,
        steps,
        v_init: 0.0,
        scheme,
        probes: vec![Probe::V { node: 0 }],
        ..Protocol::default()
    };
    let (v_inf, tau) = if vclamp {
        p.vclamps.push(VClamp {
            node: 0,
            rs,
            amp: vec![[vc, vc, vc]],
            dur: [1e9, 0.0, 0.0],
        });
        let gs = 1e-3 / rs; // mS
        (gs * vc / (g + gs), c / (g + gs))
    } else {
        p.clamps.push(Clamp {
            node: 0,
            batch: None,
            waveform: Waveform::Step {
                amp,
                delay: 0.0,
                dur: 1e9,
            },
        });
        (amp * 1e-3 / g, c / g)
    };
    let r = simulate::<f64>(&cell, &p).unwrap();
    r.trace(0, 0)
        .iter()
        .enumerate()
        .map(|(k, v)| (v - v_inf * (1.0 - (-(k as f64) * dt / tau).exp())).abs())
        .fold(0.0, f64::max)
}

#[test]
fn crank_nicolson_is_second_order_and_backward_euler_first() {
    for vclamp in [false, true] {
        for (scheme, lo, hi) in [
            (Scheme::BackwardEuler, 0.8, 1.2),
            (Scheme::CrankNicolson, 1.8, f64::INFINITY),
        ] {
            let e: Vec<f64> = [0.4, 0.2, 0.1]
                .iter()
                .map(|&dt| passive_point_error(scheme, dt, vclamp))
                .collect();
            for w in e.windows(2) {
                let order = (w[0] / w[1]).log2();
                eprintln!("{scheme:?} (vclamp {vclamp}): errors {e:.3?}, order {order:.3}");
                assert!(
                    (lo..=hi).contains(&order),
                    "{scheme:?} (vclamp {vclamp}): errors {e:?} give order {order}"
                );
            }
        }
    }
}

/// One compartment (L = diam = 20 µm) with a leak, the channels and the calcium pool (if any)
/// of one case of `hay_single.json`, and its protocol.
fn hay_case(meta: &serde_json::Value, case: usize) -> (Cell, Protocol) {
    let m = Morphology {
        branches: vec![Branch {
            name: Some("soma".into()),
            parent: None,
            length: meta["section"]["L_um"].as_f64().unwrap(),
            radius: meta["section"]["diam_um"].as_f64().unwrap() / 2.0,
            ncomp: 1,
            group: Group::Soma,
        }],
    };
    let cm = meta["section"]["cm_uF_cm2"].as_f64().unwrap();
    let mut cell = Cell::new(m, |_| Passive { cm, ra: 100.0 }, 1).unwrap();
    let pas = &meta["pas"];
    let soma = [Group::Soma];
    let leak = vec![
        pas["g_mS_cm2"].as_f64().unwrap(),
        pas["e_mV"].as_f64().unwrap(),
    ];
    cell.insert_named("leak", &soma, &[leak]).unwrap();
    let rev = &meta["reversal_mV"];
    for ch in meta["cases"][case]["channels"].as_array().unwrap() {
        let name = ch["channel"].as_str().unwrap();
        let kind = ChannelKind::find(name).unwrap();
        // The reversal potential NEURON used (ena, ek, eca; Ih's own ehcn) is the channel's
        // default; the test reads it from the JSON so that a changed default would show.
        let e = match &name[..2] {
            "na" => rev["ena"].as_f64().unwrap(),
            "k_" | "sk" | "im" => rev["ek"].as_f64().unwrap(),
            "ca" => rev["eca"].as_f64().unwrap(),
            _ => kind.spec().defaults()[1],
        };
        assert_eq!(e, kind.spec().defaults()[1], "{name}: default reversal");
        let mut row = kind.spec().defaults();
        row[0] = ch["gbar_mS_cm2"].as_f64().unwrap();
        row[1] = e;
        cell.insert_named(name, &soma, &[row]).unwrap();
    }
    let pool = &meta["cases"][case]["pool"];
    if !pool.is_null() {
        let row =
            ["gamma", "decay_ms", "depth_um", "min_cai_mM"].map(|k| pool[k].as_f64().unwrap());
        cell.insert_pool(|_, _| true, &[row.to_vec()]).unwrap();
    }
    let dt = meta["dt_ms"].as_f64().unwrap();
    let clamps = meta["stimuli"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Clamp {
            node: 0,
            batch: None,
            waveform: Waveform::Step {
                amp: s["amp_nA"].as_f64().unwrap(),
                delay: s["delay_ms"].as_f64().unwrap(),
                dur: s["dur_ms"].as_f64().unwrap(),
            },
        })
        .collect();
    let p = Protocol {
        dt,
        steps: (meta["tstop_ms"].as_f64().unwrap() / dt).round() as usize,
        celsius: meta["celsius"].as_f64().unwrap(),
        v_init: meta["v_init_mV"].as_f64().unwrap(),
        clamps,
        probes: vec![Probe::V { node: 0 }],
        ..Protocol::default()
    };
    (cell, p)
}

#[test]
fn hay_channels_match_neuron() {
    // Each Hay et al. (2011) channel alone (with a leak) in one compartment, NaTa_t + SKv3_1 +
    // K_Pst firing, and that cell with Ca_HVA, Ca_LVAst, SK_E2 and the calcium pool
    // CaDynamics_E2 (Nernst eca, SK gated by cai), against NEURON with the channels' own .mod files
    // (tests/data/neuron/make_hay.py): V within 1 mV outside ±1 ms around spikes, spikes within
    // 0.1 ms, in f64 and f32. NEURON's cnexp on these linear gate equations is the same
    // exponential update, so f64 agrees to round-off.
    let dir = data_dir();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("hay_single.json")).unwrap())
            .unwrap();
    let arr = neurodiff::io::read_npy(&dir.join("hay_single.npy")).unwrap();
    let (rows, ncase) = (arr.shape[0], arr.shape[1]);
    let stride = meta["stride"].as_u64().unwrap() as usize;
    let column = |j: usize| -> Vec<f64> { (0..rows).map(|k| arr.data[k * ncase + j]).collect() };
    let pas = column(0);
    let cases = meta["cases"].as_array().unwrap();
    assert_eq!(cases.len(), ncase);
    let mut names = Vec::new();
    for (j, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let theirs = column(j);
        if j > 0 {
            // The channel matters: NEURON's trace leaves the leak-only one by over 4 mV.
            let dev = theirs.iter().zip(&pas).map(|(a, b)| (a - b).abs());
            assert!(dev.fold(0.0, f64::max) > 4.0, "{name}: too weak to test");
        }
        let (cell, p) = hay_case(&meta, j);
        for f32_run in [false, true] {
            let r = if f32_run {
                simulate::<f32>(&cell, &p).unwrap()
            } else {
                simulate::<f64>(&cell, &p).unwrap()
            };
            let ours: Vec<f64> = r.trace(0, 0).into_iter().step_by(stride).collect();
            let (all, out, dt_spike) =
                compare_trace(name, &ours, &theirs, p.dt * stride as f64, f32_run);
            if !f32_run {
                assert!(all < 1e-6, "{name}: f64 differs from NEURON by {all} mV");
            }
            eprintln!(
                "hay {name} ({}): max |ΔV| {all:.2e} mV, outside spikes {out:.2e}, spike \
                 times {dt_spike:.2e} ms",
                if f32_run { "f32" } else { "f64" }
            );
        }
        for ch in case["channels"].as_array().unwrap() {
            names.push(ch["channel"].as_str().unwrap().to_string());
        }
    }
    // Every Hay channel of the registry is covered.
    for kind in ChannelKind::ALL {
        let n = kind.spec().name;
        if !["hh", "hh_na", "hh_k", "leak"].contains(&n) {
            assert!(names.iter().any(|x| x == n), "{n} has no NEURON case");
        }
    }
}

/// One trace against NEURON's: the same 0 mV upward crossings within 0.1 ms, V within 1 mV
/// outside ±1 ms around each. Returns (max |ΔV|, max |ΔV| outside spikes, max |Δt_spike|).
pub(crate) fn compare_trace(
    name: &str,
    ours: &[f64],
    theirs: &[f64],
    dt_s: f64,
    f32_run: bool,
) -> (f64, f64, f64) {
    assert_eq!(ours.len(), theirs.len(), "{name}: sample count");
    let s_ours = neurodiff::cell::solve::crossings(ours, dt_s, 0.0);
    let s_ref = neurodiff::cell::solve::crossings(theirs, dt_s, 0.0);
    assert_eq!(
        s_ours.len(),
        s_ref.len(),
        "{name} (f32 {f32_run}): spikes at {s_ours:?} vs NEURON {s_ref:?}"
    );
    let mut worst = (0.0f64, 0.0f64, 0.0f64);
    for (a, b) in s_ours.iter().zip(&s_ref) {
        worst.2 = worst.2.max((a - b).abs());
        assert!(
            (a - b).abs() < 0.1,
            "{name}: spike at {a} ms vs NEURON {b} ms"
        );
    }
    for (k, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let t = k as f64 * dt_s;
        let diff = (a - b).abs();
        worst.0 = worst.0.max(diff);
        if s_ref.iter().all(|s| (t - s).abs() > 1.0) {
            worst.1 = worst.1.max(diff);
            assert!(
                diff < 1.0,
                "{name} (f32 {f32_run}) at {t} ms: V {a} vs NEURON {b} mV"
            );
        }
    }
    worst
}

#[test]
fn a_batch_equals_separate_runs() {
    let (_, base, _, _, _) = neuron_case("branched", 1);
    let gna = [120.0, 80.0, 160.0];
    let amps = [0.5, 0.2, 0.8];
    let mut p = base.clone();
    p.steps = 800;
    let build = |rows: &[f64], batch| {
        let (mut cell, _, _, _, _) = neuron_case("branched", batch);
        let rows: Vec<Vec<f64>> = rows.iter().map(|&g| vec![g, 50.0]).collect();
        cell.channels[0].params = rows.concat();
        cell
    };
    let mut pb = p.clone();
    pb.clamps = (0..3)
        .map(|b| Clamp {
            node: p.clamps[0].node,
            batch: Some(b),
            waveform: Waveform::Step {
                amp: amps[b],
                delay: 5.0,
                dur: 30.0,
            },
        })
        .collect();
    pb.probes.push(Probe::Gate {
        channel: 0,
        node: 0,
        gate: 1,
    });
    let batched = simulate::<f64>(&build(&gna, 3), &pb).unwrap();
    for b in 0..3 {
        let mut ps = pb.clone();
        ps.clamps = vec![Clamp {
            batch: None,
            ..pb.clamps[b].clone()
        }];
        let single = simulate::<f64>(&build(&gna[b..b + 1], 1), &ps).unwrap();
        for j in 0..pb.probes.len() {
            assert_eq!(
                batched.trace(j, b),
                single.trace(j, 0),
                "element {b}, probe {j}"
            );
        }
    }
    // The elements differ (the batch is not one run copied).
    assert_ne!(batched.trace(0, 0), batched.trace(0, 1));
}

/// `cell` (built at batch 1) at batch `elems.len()`, element `i` with every conductance and the
/// pool's first parameter scaled by `1 + 0.03 elems[i]`, so that the elements differ.
fn rebatch(cell: &Cell, elems: &[usize]) -> Cell {
    let mut c = cell.clone();
    c.batch = elems.len();
    let scaled = |row: &[f64], b: usize| {
        let mut r = row.to_vec();
        r[0] *= 1.0 + 0.03 * b as f64;
        r
    };
    for ch in &mut c.channels {
        ch.params = elems.iter().flat_map(|&b| scaled(&ch.params, b)).collect();
    }
    for pool in &mut c.pools {
        pool.params = elems
            .iter()
            .flat_map(|&b| scaled(&pool.params, b))
            .collect();
    }
    c
}

#[test]
fn lanes_give_the_scalar_bits() {
    // The solver steps batch elements in groups of lanes: with AVX2 and FMA, pairs of registers
    // (8 in f64, 16 in f32), then single registers (4, 8), then one lane at a time; elsewhere
    // arrays of 4 (f64) or 8 (f32) lanes, then scalars. A batch of 31 (f32: 16 + 8 + 7; f64:
    // 3 × 8 + 4 + 3) must give each element, bit for bit, what it gives alone (batch 1: one
    // lane at a time), whichever group it fell in, on the HH branched cell and on the Hay cell
    // with calcium (Ca channels, a pool, SK reading cai).
    let dir = data_dir();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("hay_single.json")).unwrap())
            .unwrap();
    let last = meta["cases"].as_array().unwrap().len() - 1;
    let (hay, mut hay_p) = hay_case(&meta, last);
    assert!(
        !hay.pools.is_empty(),
        "the last Hay case has the calcium pool"
    );
    hay_p.steps = hay_p.steps.min(6000);
    let (hh, mut hh_p, _, _, _) = neuron_case("branched", 1);
    hh_p.steps = 800;
    // Elements of the 11 parameter sets, repeated to 31; singles from every kind of group.
    let all: Vec<usize> = (0..31).map(|i| i % 11).collect();
    let probe = [0usize, 7, 8, 15, 16, 23, 24, 27, 28, 30];
    for (name, cell, p) in [("hay", &hay, &hay_p), ("branched", &hh, &hh_p)] {
        let batched64 = simulate::<f64>(&rebatch(cell, &all), p).unwrap();
        let batched32 = simulate::<f32>(&rebatch(cell, &all), p).unwrap();
        for &b in &probe {
            let one = rebatch(cell, &[all[b]]);
            let single64 = simulate::<f64>(&one, p).unwrap();
            let single32 = simulate::<f32>(&one, p).unwrap();
            for j in 0..p.probes.len() {
                assert_eq!(
                    batched64.trace(j, b),
                    single64.trace(j, 0),
                    "{name} f64 {b} {j}"
                );
                assert_eq!(
                    batched32.trace(j, b),
                    single32.trace(j, 0),
                    "{name} f32 {b} {j}"
                );
            }
        }
        // The elements differ, and the cell does something (a spike or more).
        assert_ne!(batched64.trace(0, 0), batched64.trace(0, 10), "{name}");
        let peak = batched64.trace(0, 5).into_iter().fold(f64::MIN, f64::max);
        assert!(peak > 0.0, "{name}: peak {peak} mV");
    }
}

/// A cell of `ncomp` equal passive compartments (one branch, radius 2 µm, 40 µm each), leak
/// `g` mS/cm² at −65 mV, `C` = 1 µF/cm².
fn passive_cable(ncomp: usize, g: f64) -> Cell {
    let m = Morphology {
        branches: vec![Branch {
            name: None,
            parent: None,
            length: 40.0 * ncomp as f64,
            radius: 2.0,
            ncomp,
            group: Group::Soma,
        }],
    };
    let mut cell = Cell::new(m, |_| Passive { cm: 1.0, ra: 100.0 }, 1).unwrap();
    cell.insert_named("leak", &[Group::Soma], &[vec![g, -65.0]])
        .unwrap();
    cell
}

#[test]
fn lyapunov_exponent_of_passive_cells_and_hh() {
    use neurodiff::cell::largest_lyapunov;
    let (g, dt) = (0.1, 0.025);
    let mut p = Protocol {
        dt,
        steps: 4000,
        probes: vec![Probe::V { node: 0 }],
        ..Protocol::default()
    };
    // One passive compartment: the backward-Euler map v' = (C/dt v + g E)/(C/dt + g) has
    // slope 1/(1 + dt g/C) every step, so λ = −ln(1 + dt g/C)/dt exactly (C = 1 µF/cm², g in
    // mS/cm²: g/C in 1/ms).
    let one = passive_cable(1, g);
    let l = largest_lyapunov(&one, &p, 100, 1).unwrap();
    let exact = -(1.0 + dt * g).ln() / dt;
    assert!(
        (l.exponent[0] - exact).abs() < 1e-12,
        "{} vs {exact}",
        l.exponent[0]
    );
    // Crank–Nicolson: v½ over dt/2, v' = 2 v½ − v: slope (2C/dt − g)/(2C/dt + g).
    p.scheme = Scheme::CrankNicolson;
    let l = largest_lyapunov(&one, &p, 100, 1).unwrap();
    let exact_cn = ((2.0 / dt - g) / (2.0 / dt + g)).ln() / dt;
    assert!(
        (l.exponent[0] - exact_cn).abs() < 1e-12,
        "CN {} vs {exact_cn}",
        l.exponent[0]
    );
    p.scheme = Scheme::BackwardEuler;
    // A cable of 5 equal compartments: the tangent passes the tree solve. Its slowest mode is
    // the uniform one (the axial currents cancel), with the single compartment's exponent; the
    // others decay faster, so a random tangent turns to it within the transient.
    let cable = passive_cable(5, g);
    let l = largest_lyapunov(&cable, &p, 2000, 7).unwrap();
    assert!(
        (l.exponent[0] - exact).abs() < 1e-9,
        "cable {} vs {exact}",
        l.exponent[0]
    );
    // The HH point cell: firing periodically (a limit cycle: λ ≈ 0; the decay rate of the
    // passive cell is −0.1/ms for scale), and at rest without input (λ < 0). Batch of two.
    let (mut hh, mut hp, _, _, _) = neuron_case("hh_single", 1);
    hh = rebatch(&hh, &[0, 0]);
    // The norm of a tangent along the orbit swings with the orbit's speed (spike against slow
    // recovery, up to ~10³), which bounds the sum of logs, not its average: 2 s of firing keep
    // that swing below ln(10³)/2000 ms = 3.5e-3 /ms.
    hp.steps = 100_000; // 2.5 s
    hp.clamps = vec![Clamp {
        node: 0,
        batch: Some(0),
        waveform: Waveform::Step {
            amp: 0.2,
            delay: 0.0,
            dur: 1e9,
        },
    }];
    let l = largest_lyapunov(&hh, &hp, 20_000, 3).unwrap();
    assert!(l.exponent[0].abs() < 5e-3, "firing: {}", l.exponent[0]);
    assert!(l.exponent[1] < -0.02, "rest: {}", l.exponent[1]);
    let spikes = simulate::<f64>(&hh, &hp)
        .unwrap()
        .crossings(0, 0, 0.0)
        .len();
    assert!(spikes > 10, "the driven cell fires ({spikes} spikes)");
    // A transient as long as the run is refused by name.
    let e = largest_lyapunov(&one, &p, 4000, 1).unwrap_err().to_string();
    assert!(e.contains("transient"), "{e}");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn swc_soma_sphere_and_compartments() {
    let swc = "# a soma and one dendrite with a branch point\n\
               1 1 0 0 0 10 -1\n\
               2 3 15 0 0 1 1\n\
               3 3 45 0 0 1 2\n\
               4 3 45 40 0 0.5 3\n\
               5 3 45 -30 0 0.5 3\n";
    let m = Morphology::parse_swc(swc, Path::new("mem.swc"), 1, Some(10.0)).unwrap();
    assert_eq!(m.branches.len(), 4);
    let soma = &m.branches[0];
    assert_eq!(soma.group, Group::Soma);
    // A cylinder of length 2r and radius r has the sphere's area 4πr².
    let side = 2.0 * std::f64::consts::PI * soma.radius * soma.length;
    assert!((side - 4.0 * std::f64::consts::PI * 100.0).abs() < 1e-9);
    // The first dendrite starts at the soma's surface (x = 10) and ends at 45: 35 µm, 4 comps.
    let d = &m.branches[1];
    assert!((d.length - 35.0).abs() < 1e-12 && d.radius == 1.0 && d.ncomp == 4);
    assert_eq!(d.parent, Some(0));
    let lens: Vec<f64> = m.branches[2..].iter().map(|b| b.length).collect();
    assert!(lens.contains(&40.0) && lens.contains(&30.0), "{lens:?}");
    assert!(m.branches[2..].iter().all(|b| b.parent == Some(1)));
    // Radius of a child branch: the mean of its segment's end radii (1 and 0.5).
    assert!(m.branches[2..]
        .iter()
        .all(|b| (b.radius - 0.75).abs() < 1e-12));
    // The compiled cell: a junction node where the two children meet, none elsewhere.
    let cell = Cell::new(m, |_| Passive::default(), 1).unwrap();
    let junctions = cell.area.iter().filter(|&&a| a == 0.0).count();
    assert_eq!(junctions, 2, "soma end and dendrite end");
    // The soma (20 µm) gets 2 compartments of at most 10 µm too.
    assert_eq!(cell.n_nodes(), 2 + 4 + 4 + 3 + 2);
}

#[test]
fn bad_morphologies_and_channels_are_clear_errors() {
    let dir = tmpdir("cell-bad");
    let cases = [
        (
            "1 1 0 0 0 10 -1\n2 3 10 0 0 1 1\n3 3 20 0 0 1 7\n",
            vec!["bad.swc", "row 3", "bad parent index 7"],
        ),
        (
            "1 1 0 0 0 10 -1\n2 3 10 0 0 0 1\n",
            vec!["bad.swc", "row 2", "zero radius"],
        ),
        (
            "1 1 0 0 0 10 -1\n# comment\n2 9 10 0 0 1 1\n",
            vec!["bad.swc", "row 3", "type 9"],
        ),
        (
            "1 1 0 0 0 10 -1\n2 3 10 0 1 1\n",
            vec!["row 2", "7 columns"],
        ),
    ];
    for (text, needles) in cases {
        let p = write(&dir, "bad.swc", text);
        let e = Morphology::from_swc(&p, 1, None).unwrap_err().to_string();
        for n in needles {
            assert!(e.contains(n), "expected `{n}` in: {e}");
        }
    }
    // Branches in TOML: a parent that is not an earlier branch; a zero radius; an unknown
    // channel; an unknown parameter.
    let base = "duration = 1.0\n[[branches]]\nname = \"soma\"\ngroup = \"soma\"\nlength = 20\nradius = 10\n";
    let toml_cases = [
        (
            format!("{base}[[branches]]\nname = \"d\"\ngroup = \"basal\"\nparent = 3\nlength = 20\nradius = 1\n"),
            vec!["branch `d`", "bad parent index 3"],
        ),
        (
            format!("{base}[[branches]]\nname = \"d\"\ngroup = \"basal\"\nparent = 0\nlength = 20\nradius = 0\n"),
            vec!["branch `d`", "radius must be positive"],
        ),
        (
            format!("{base}[[channels]]\nname = \"nat\"\n"),
            vec!["unknown channel `nat`", "hh_na"],
        ),
        (
            format!("{base}[[channels]]\nname = \"hh_na\"\nparams = {{ gnabar = 1.0 }}\n"),
            vec!["hh_na", "gnabar", "gbar"],
        ),
        (
            format!("{base}[[channels]]\nname = \"hh_na\"\nparams = {{ gbar = -1.0 }}\n"),
            vec!["hh_na", "gbar", "outside"],
        ),
    ];
    for (text, needles) in toml_cases {
        let p = write(&dir, "cell.toml", &text);
        let e = CellConfig::load(&p)
            .and_then(|c| c.resolve(&dir))
            .unwrap_err()
            .to_string();
        for n in needles {
            assert!(e.contains(n), "expected `{n}` in: {e}");
        }
    }
}

#[test]
fn bad_voltage_clamps_and_solvers_are_clear_errors() {
    let dir = tmpdir("cell-bad-vclamp");
    let base = "duration = 1.0\n[[branches]]\nname = \"soma\"\ngroup = \"soma\"\nlength = 20\n\
                radius = 10\n[[channels]]\nname = \"hh_na\"\n";
    let vc = "[[stimuli]]\nkind = \"vclamp\"\nbranch = \"soma\"\n";
    let cases = [
        (
            format!("{base}{vc}rs = 0.0\ndur1 = 1\n"),
            vec!["stimuli[0]", "rs must be positive"],
        ),
        (
            format!("{base}{vc}rs = -2.0\n"),
            vec!["stimuli[0]", "rs must be positive", "-2"],
        ),
        (
            format!("{base}{vc}dur1 = 1\ndur2 = -1\n"),
            vec!["stimuli[0]", "dur2", "≥ 0"],
        ),
        (
            format!("{base}[[stimuli]]\nkind = \"vclamp\"\nbranch = \"dend\"\n"),
            vec!["stimuli[0]", "no branch named `dend`"],
        ),
        (
            format!("{base}[[stimuli]]\nkind = \"vclamp\"\nbranch = 4\n"),
            vec!["stimuli[0]", "no branch 4"],
        ),
        (
            format!("{base}{vc}amp = 0.1\n"),
            vec!["stimuli[0]", "`amp` belongs to a current"],
        ),
        (
            format!("{base}[[stimuli]]\nbranch = \"soma\"\namp = 0.1\nrs = 1\n"),
            vec![
                "stimuli[0]",
                "`rs` belongs to a voltage clamp",
                "kind = \"vclamp\"",
            ],
        ),
        (
            format!("{base}[[stimuli]]\nkind = \"seclamp\"\nbranch = 0\n"),
            vec!["unknown variant `seclamp`", "vclamp"],
        ),
        (
            format!("solver = \"rk4\"\n{base}"),
            vec!["unknown variant `rk4`", "crank_nicolson"],
        ),
        (
            format!("{base}[[record]]\nbranch = \"soma\"\nvar = \"vclamp.i\"\n"),
            vec![
                "record[0]",
                "0 voltage clamps at branch `soma` compartment 0",
            ],
        ),
    ];
    for (text, needles) in cases {
        let p = write(&dir, "cell.toml", &text);
        let e = CellConfig::load(&p)
            .and_then(|c| c.resolve(&dir))
            .unwrap_err()
            .to_string();
        for n in needles {
            assert!(e.contains(n), "expected `{n}` in: {e}");
        }
    }
    // The library checks the same (naming the protocol's clamp), and a clamp-current probe
    // needs a clamp.
    let (cell, mut p, _, _, _) = neuron_case("hh_single", 1);
    let good = VClamp {
        node: 0,
        rs: 1.0,
        amp: vec![[-65.0; 3]],
        dur: [1.0; 3],
    };
    for (vc, needles) in [
        (
            VClamp {
                node: 9,
                ..good.clone()
            },
            vec!["vclamps[0]", "no node 9"],
        ),
        (
            VClamp {
                rs: f64::NAN,
                ..good.clone()
            },
            vec!["vclamps[0]", "rs must be positive"],
        ),
        (
            VClamp {
                amp: vec![[0.0; 3]; 2],
                ..good.clone()
            },
            vec!["vclamps[0]", "2 rows", "batch of 1"],
        ),
    ] {
        p.vclamps = vec![vc];
        let e = simulate::<f64>(&cell, &p).unwrap_err().to_string();
        for n in needles {
            assert!(e.contains(n), "expected `{n}` in: {e}");
        }
    }
    p.vclamps.clear();
    p.probes.push(Probe::VClampCurrent { clamp: 0 });
    let e = simulate::<f64>(&cell, &p).unwrap_err().to_string();
    assert!(
        e.contains("record[1]") && e.contains("voltage clamp"),
        "{e}"
    );
}

/// The voltage clamp and the solver from TOML: `kind = "vclamp"` with a list of `amp1` values
/// (a batch of two), `var = "vclamp.i"`; element 0 is NEURON's `hh_vclamp`, element 1 the same
/// clamp built in code with the other first level; `solver = "crank_nicolson"` gives NEURON's
/// `hh_single_cn`.
#[test]
fn voltage_clamp_and_solver_from_toml() {
    let dir = tmpdir("cell-vclamp-toml");
    let head = "dt = 0.025\n[[branches]]\nname = \"soma\"\ngroup = \"soma\"\nlength = 20\n\
                radius = 10\n[passive.all]\nra = 100\n[[channels]]\nname = \"hh_na\"\n\
                [[channels]]\nname = \"hh_k\"\n[[channels]]\nname = \"leak\"\n";
    let path = write(
        &dir,
        "vc.toml",
        &format!(
            "duration = 30.0\n{head}[[stimuli]]\nkind = \"vclamp\"\nbranch = \"soma\"\n\
             rs = 1.0\namp1 = [-70.0, -60.0]\ndur1 = 5\namp2 = 0.0\ndur2 = 10\namp3 = -65\n\
             dur3 = 10\n[[record]]\nbranch = \"soma\"\n[[record]]\nbranch = 0\n\
             var = \"vclamp.i\"\n"
        ),
    );
    let r = CellConfig::load(&path).unwrap().resolve(&dir).unwrap();
    assert_eq!(r.labels, ["soma(0.5).v", "soma(0.5).vclamp.i"]);
    let rec = simulate::<f64>(&r.cell, &r.protocol).unwrap();
    let (_, _, reference, nrec, _) = neuron_case("hh_vclamp", 1);
    assert_eq!(rec.len() * nrec, reference.len());
    for j in 0..nrec {
        for (k, a) in rec.trace(j, 0).iter().enumerate() {
            let b = reference[k * nrec + j];
            assert!(
                (a - b).abs() < 1e-6,
                "record {j} sample {k}: {a} vs NEURON {b}"
            );
        }
    }
    // Element 1 equals the code-built clamp with amp1 = -60 mV.
    let (cell, mut p, _, _, _) = neuron_case("hh_vclamp", 1);
    p.vclamps[0].amp[0][0] = -60.0;
    let one = simulate::<f64>(&cell, &p).unwrap();
    for j in 0..nrec {
        assert_eq!(rec.trace(j, 1), one.trace(j, 0), "record {j}");
    }
    assert_ne!(rec.trace(1, 0), rec.trace(1, 1));

    let path = write(
        &dir,
        "cn.toml",
        &format!(
            "duration = 60.0\nsolver = \"crank_nicolson\"\n{head}[[stimuli]]\n\
             branch = \"soma\"\namp = 0.1\ndelay = 5\ndur = 40\n"
        ),
    );
    let r = CellConfig::load(&path).unwrap().resolve(&dir).unwrap();
    assert_eq!(r.protocol.scheme, Scheme::CrankNicolson);
    let rec = simulate::<f64>(&r.cell, &r.protocol).unwrap();
    let (_, _, reference, _, _) = neuron_case("hh_single_cn", 1);
    let worst = rec
        .trace(0, 0)
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 1e-6,
        "Crank–Nicolson from TOML: {worst} mV from NEURON"
    );
}

#[test]
fn divergence_names_the_compartment_and_variable() {
    let (cell, mut p, _, _, _) = neuron_case("branched", 1);
    p.clamps[0].waveform = Waveform::Step {
        amp: 1e300, // infinite in f32
        delay: 0.0,
        dur: 1e9,
    };
    let e = Error::from(simulate::<f32>(&cell, &p).unwrap_err()).to_string();
    assert!(e.contains("diverged") && e.contains("`v`"), "{e}");
    assert!(e.contains("branch `soma` compartment 0"), "{e}");
}

#[test]
fn waveform_from_npy_equals_the_step() {
    let dir = tmpdir("cell-waveform");
    let head = "dt = 0.025\nduration = 20.0\n[[branches]]\nname = \"soma\"\ngroup = \"soma\"\n\
                length = 20\nradius = 10\n[passive.all]\nra = 100\n\
                [[channels]]\nname = \"hh_na\"\n[[channels]]\nname = \"hh_k\"\n\
                [[channels]]\nname = \"leak\"\n";
    let steps = 800;
    let wave: Vec<f64> = (0..steps)
        .map(|k| {
            let t = (k as f64 + 0.5) * 0.025;
            if (2.0..12.0).contains(&t) {
                0.1
            } else {
                0.0
            }
        })
        .collect();
    write_npy(&dir.join("i.npy"), &[steps], &wave);
    let a = write(
        &dir,
        "a.toml",
        &format!("{head}[[stimuli]]\nbranch = \"soma\"\namp = 0.1\ndelay = 2.0\ndur = 10.0\n"),
    );
    let b = write(
        &dir,
        "b.toml",
        &format!("{head}[[stimuli]]\nbranch = 0\nwaveform = \"i.npy\"\n"),
    );
    let run = |p: &Path| {
        let r = CellConfig::load(p).unwrap().resolve(&dir).unwrap();
        simulate::<f64>(&r.cell, &r.protocol).unwrap()
    };
    let (ra, rb) = (run(&a), run(&b));
    assert_eq!(ra.trace(0, 0), rb.trace(0, 0));
    assert_eq!(ra.crossings(0, 0, 0.0).len(), 1, "one spike");
}

/// `neurodiff cell` on the bundled example: the .npy holds what the library computes for the
/// same file, the sidecar its shape and spike times, and a figure is written; a config with an
/// unknown channel fails with a clear message and leaves no output.
#[test]
fn cli_runs_the_bundled_example() {
    let dir = tmpdir("cell-cli");
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/cell/cell.toml");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_neurodiff"))
        .current_dir(&dir)
        .args([
            "cell",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            "out/c.npy",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let arr = neurodiff::io::read_npy(&dir.join("out/c.npy")).unwrap();
    let r = CellConfig::load(&cfg)
        .unwrap()
        .resolve(cfg.parent().unwrap())
        .unwrap();
    let want = simulate::<f64>(&r.cell, &r.protocol).unwrap();
    assert_eq!(arr.shape, vec![want.len(), want.n_probes, want.batch]);
    assert_eq!(arr.shape, vec![2401, 4, 3]);
    assert_eq!(arr.data, want.data);
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/c.json")).unwrap()).unwrap();
    assert_eq!(side["shape"], serde_json::json!([2401, 4, 3]));
    let spikes = &side["records"][0]["spike_times_ms"];
    assert_eq!(spikes.as_array().unwrap().len(), 3);
    // The soma fires after the step's onset at 10 ms in every batch element.
    for b in 0..3 {
        let first = spikes[b][0].as_f64().unwrap();
        assert!(
            first > 10.0 && first < 20.0,
            "element {b}: first spike {first} ms"
        );
    }
    assert!(std::fs::metadata(dir.join("out/c.png")).unwrap().len() > 1000);

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "duration = 1.0\n[[branches]]\ngroup = \"soma\"\nlength = 20\nradius = 10\n\
         [[channels]]\nname = \"kdr\"\n",
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(dir.join("out"));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_neurodiff"))
        .current_dir(&dir)
        .args(["cell", "--config", "bad.toml", "--out", "out/c.npy", "-q"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("unknown channel `kdr`") && !err.contains("panicked"),
        "{err}"
    );
    assert!(!dir.join("out/c.npy").exists());

    // `--lyapunov`: one exponent per batch element, what the library gives for the same file.
    let lya = |extra: &[&str]| {
        let mut args = vec!["cell", "--config", cfg.to_str().unwrap(), "--lyapunov"];
        args.extend_from_slice(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_neurodiff"))
            .current_dir(&dir)
            .args(&args)
            .output()
            .unwrap()
    };
    let o = lya(&["--transient", "20", "--out", "out/l.json", "-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let l: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/l.json")).unwrap()).unwrap();
    let want = neurodiff::cell::largest_lyapunov(&r.cell, &r.protocol, 800, 0).unwrap();
    let got: Vec<f64> = l["exponent_per_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(got, want.exponent);
    assert_eq!(l["transient_ms"].as_f64(), Some(20.0));
    // A transient beyond the 60 ms run is refused by name, and nothing is written.
    let _ = std::fs::remove_dir_all(dir.join("out"));
    let o = lya(&["--transient", "60", "--out", "out/l.json", "-q"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--transient"), "{err}");
    assert!(
        !err.contains("panicked") && !dir.join("out/l.json").exists(),
        "{err}"
    );
}
