//! Gradients of cells (`neurodiff::cell::adjoint`): the discrete adjoint against central finite
//! differences (Richardson-extrapolated, f64) of the forward simulation for every parameter of
//! a spiking HH compartment, of a compartment with every Hay et al. (2011) gate channel and of a
//! branched ball-and-stick cell (batch 2, voltage and gate
//! recordings); nested checkpointing giving the same gradient at every level choice; the count
//! of states held following the levels; bad levels as errors; calcium (pools with their
//! parameters, Nernst reversal potentials, `sk_e2` reading calcium) and a voltage clamp's
//! recorded current against finite differences too; Crank–Nicolson refused with a typed
//! error.

use crate::common::rand_vec;
use neurodiff::cell::adjoint::{check_levels, value_and_grad, TraceLoss};
use neurodiff::cell::{
    simulate, Branch, Cell, Clamp, Group, Morphology, Passive, Probe, Protocol, Recording, Scheme,
    VClamp, Waveform,
};
use neurodiff_models::channel::ChannelKind;

/// A smooth nonlinear loss of the recording: per batch element
/// `L_b = (1/N) Σ_{k,p} (w_{k,p} x + ½ (x − y)²/s_p²)` with random weights `w`, a fixed
/// reference `y` and a per-probe scale `s` (mV for voltages, 0.1 for gates).
pub(crate) fn loss_of(rec: &Recording, scales: &[f64]) -> TraceLoss {
    let (np, nb) = (rec.n_probes, rec.batch);
    let w = rand_vec(7, rec.data.len());
    let n = rec.len() as f64;
    let mut loss = vec![0.0; nb];
    let mut grad = vec![0.0; rec.data.len()];
    for (i, &x) in rec.data.iter().enumerate() {
        let (p, b) = ((i / nb) % np, i % nb);
        let y = -60.0 * (p == 0) as u8 as f64;
        let s2 = scales[p] * scales[p];
        loss[b] += (w[i] * x + 0.5 * (x - y) * (x - y) / s2) / n;
        grad[i] = (w[i] + (x - y) / s2) / n;
    }
    TraceLoss { loss, grad }
}

fn total(cell: &Cell, p: &Protocol, scales: &[f64]) -> Vec<f64> {
    loss_of(&simulate::<f64>(cell, p).unwrap(), scales).loss
}

/// Checks every parameter of every placement and batch element against central differences
/// with Richardson extrapolation, `(4 D(h/2) − D(h))/3`, relative step `1e-4`.
fn check_against_fd(cell: &Cell, p: &Protocol, scales: &[f64], levels: &[usize], tol: f64) {
    let g = value_and_grad(cell, p, levels, |r| Ok(loss_of(r, scales))).unwrap();
    assert_eq!(
        g.loss,
        total(cell, p, scales),
        "the loss is the forward one"
    );
    let nb = cell.batch;
    let mut checked = 0;
    for (c, pl) in cell.channels.iter().enumerate() {
        let spec = pl.kind.spec();
        let np = spec.params.len();
        for b in 0..nb {
            for q in 0..np {
                let x0 = pl.params[b * np + q];
                let h = 1e-4 * x0.abs().max(1.0);
                let at = |x: f64| {
                    let mut cc = cell.clone();
                    cc.channels[c].params[b * np + q] = x;
                    total(&cc, p, scales)[b]
                };
                let d = |h: f64| (at(x0 + h) - at(x0 - h)) / (2.0 * h);
                let fd = (4.0 * d(0.5 * h) - d(h)) / 3.0;
                let ad = g.grad[c][b * np + q];
                let scale = fd.abs().max(ad.abs()).max(1e-8);
                assert!(
                    (fd - ad).abs() <= tol * scale,
                    "{}.{} batch {b}: adjoint {ad:e}, finite differences {fd:e} (rel {:e})",
                    spec.name,
                    spec.params[q].name,
                    (fd - ad).abs() / scale
                );
                checked += 1;
            }
        }
    }
    // The calcium pools' parameters (relative steps: `min_cai` and `depth` are small).
    for (c, pool) in cell.pools.iter().enumerate() {
        let np = pool.params.len() / nb;
        for b in 0..nb {
            for q in 0..np {
                let x0 = pool.params[b * np + q];
                let h = 1e-4 * x0.abs();
                let at = |x: f64| {
                    let mut cc = cell.clone();
                    cc.pools[c].params[b * np + q] = x;
                    total(&cc, p, scales)[b]
                };
                let d = |h: f64| (at(x0 + h) - at(x0 - h)) / (2.0 * h);
                let fd = (4.0 * d(0.5 * h) - d(h)) / 3.0;
                let ad = g.pools[c][b * np + q];
                let scale = fd.abs().max(ad.abs()).max(1e-8);
                assert!(
                    (fd - ad).abs() <= tol * scale,
                    "pool {c} parameter {q} batch {b}: adjoint {ad:e}, finite differences \
                     {fd:e} (rel {:e})",
                    (fd - ad).abs() / scale
                );
            }
        }
    }
    // Each branch's C_m, R_a and radius, relative step 1e-3: the loss depends on the soma's
    // R_a (its conductance to the junction, stiff) so weakly, ~1e-5 of the loss per Ω·cm, that
    // with 1e-4 the differences are rounding (they scatter by 1e-5 relative around the adjoint
    // at 1e-4 and 1e-3·1e-4, and agree with it to 2e-6 at 1e-3).
    for (br, &pas) in cell.passive.iter().enumerate() {
        for q in 0..3 {
            let x0 = [pas.cm, pas.ra, cell.morphology.branches[br].radius][q];
            let h = 1e-3 * x0;
            let at = |x: f64| {
                let mut cc = cell.clone();
                let mut pp = pas;
                match q {
                    0 => pp.cm = x,
                    1 => pp.ra = x,
                    _ => cc.set_radius(br, x).unwrap(),
                }
                cc.set_passive(br, pp).unwrap();
                total(&cc, p, scales)
            };
            let d = |h: f64| -> Vec<f64> {
                let (up, down) = (at(x0 + h), at(x0 - h));
                up.iter()
                    .zip(&down)
                    .map(|(u, d)| (u - d) / (2.0 * h))
                    .collect()
            };
            let (dh, dh2) = (d(h), d(0.5 * h));
            for b in 0..nb {
                let fd = (4.0 * dh2[b] - dh[b]) / 3.0;
                let ad = g.passive[br][3 * b + q];
                let scale = fd.abs().max(ad.abs()).max(1e-8);
                assert!(
                    (fd - ad).abs() <= tol * scale,
                    "branch {br} {} batch {b}: adjoint {ad:e}, finite differences {fd:e} (rel \
                     {:e})",
                    ["cm", "ra", "radius"][q],
                    (fd - ad).abs() / scale
                );
            }
        }
    }
    assert!(checked >= 4);
}

/// One HH compartment (NEURON's `hh` as three channels), 0.3 nA from 1 ms: a spike at ~3 ms.
fn hh_point(steps: usize) -> (Cell, Protocol) {
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
    let mut cell = Cell::new(m, |_| Passive { cm: 1.0, ra: 100.0 }, 1).unwrap();
    cell.insert(ChannelKind::HhNa, |_, _| true, &[vec![120.0, 50.0]])
        .unwrap();
    cell.insert(ChannelKind::HhK, |_, _| true, &[vec![36.0, -77.0]])
        .unwrap();
    cell.insert(ChannelKind::Leak, |_, _| true, &[vec![0.3, -54.3]])
        .unwrap();
    let p = Protocol {
        dt: 0.025,
        steps,
        celsius: 6.3,
        v_init: -65.0,
        clamps: vec![Clamp {
            node: 0,
            batch: None,
            waveform: Waveform::Step {
                amp: 0.3,
                delay: 1.0,
                dur: 1e9,
            },
        }],
        probes: vec![Probe::V { node: 0 }],
        ..Protocol::default()
    };
    (cell, p)
}

/// Ball and stick: a soma (1 compartment, HH) and a dendrite (4 compartments, leak + Ih),
/// batch 2 (different conductances and stimuli), soma and dendrite voltage and the soma's
/// `hh_k.n` recorded.
fn ball_and_stick(steps: usize) -> (Cell, Protocol) {
    let m = Morphology {
        branches: vec![
            Branch {
                name: Some("soma".into()),
                parent: None,
                length: 20.0,
                radius: 10.0,
                ncomp: 1,
                group: Group::Soma,
            },
            Branch {
                name: Some("dend".into()),
                parent: Some(0),
                length: 200.0,
                radius: 1.0,
                ncomp: 4,
                group: Group::Basal,
            },
        ],
    };
    let mut cell = Cell::new(m, |_| Passive { cm: 1.0, ra: 100.0 }, 2).unwrap();
    let soma = |_: usize, b: &Branch| b.group == Group::Soma;
    let dend = |_: usize, b: &Branch| b.group == Group::Basal;
    cell.insert(
        ChannelKind::HhNa,
        soma,
        &[vec![120.0, 50.0], vec![100.0, 55.0]],
    )
    .unwrap();
    cell.insert(
        ChannelKind::HhK,
        soma,
        &[vec![36.0, -77.0], vec![30.0, -80.0]],
    )
    .unwrap();
    cell.insert(
        ChannelKind::Leak,
        |_, _| true,
        &[vec![0.3, -54.3], vec![0.5, -65.0]],
    )
    .unwrap();
    cell.insert(ChannelKind::Ih, dend, &[vec![5.0, -45.0], vec![2.0, -40.0]])
        .unwrap();
    assert_eq!(cell.n_nodes(), 6, "5 compartments and a junction");
    let dend_end = cell.node_at(1, 1.0).unwrap();
    let p = Protocol {
        dt: 0.025,
        steps,
        celsius: 6.3,
        v_init: -65.0,
        clamps: vec![
            Clamp {
                node: 0,
                batch: Some(0),
                waveform: Waveform::Step {
                    amp: 0.4,
                    delay: 1.0,
                    dur: 1e9,
                },
            },
            Clamp {
                node: dend_end,
                batch: Some(1),
                waveform: Waveform::Step {
                    amp: 0.3,
                    delay: 0.5,
                    dur: 1e9,
                },
            },
        ],
        probes: vec![
            Probe::V { node: 0 },
            Probe::V { node: dend_end },
            Probe::Gate {
                channel: 1,
                node: 0,
                gate: 0,
            },
        ],
        ..Protocol::default()
    };
    (cell, p)
}

#[test]
fn hh_point_neuron_gradient_matches_finite_differences() {
    let (cell, p) = hh_point(320); // 8 ms
    let rec = simulate::<f64>(&cell, &p).unwrap();
    assert_eq!(rec.crossings(0, 0, 0.0).len(), 1, "one spike in the window");
    check_against_fd(&cell, &p, &[10.0], &[18], 1e-5);
    check_against_fd(&cell, &p, &[10.0], &[4, 5], 1e-5);
}

/// NEURON's `hh` as the one channel `hh` (`Channel::drive`: three reversal potentials): the
/// adjoint against finite differences, and the same gradient as `hh_na` + `hh_k` + `leak`
/// placed apart, parameter for parameter.
#[test]
fn whole_hh_gradient_matches_finite_differences_and_the_three_channels() {
    let (apart, p) = hh_point(320);
    let mut whole = apart.clone();
    whole.channels.clear();
    whole
        .insert(
            ChannelKind::Hh,
            |_, _| true,
            &[vec![120.0, 36.0, 0.3, 50.0, -77.0, -54.3]],
        )
        .unwrap();
    check_against_fd(&whole, &p, &[10.0], &[18], 1e-5);
    let loss = |r: &Recording| Ok(loss_of(r, &[10.0]));
    let gw = value_and_grad(&whole, &p, &[18], loss).unwrap();
    let ga = value_and_grad(&apart, &p, &[18], loss).unwrap();
    assert!((gw.loss[0] - ga.loss[0]).abs() < 1e-9 * ga.loss[0].abs());
    // gnabar, gkbar, gl, ena, ek, el against (hh_na: gbar, e), (hh_k: gbar, e), (leak: g, e).
    let pairs = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)];
    for (q, &(c, r)) in pairs.iter().enumerate() {
        let (w, a) = (gw.grad[0][q], ga.grad[c][r]);
        assert!(
            (w - a).abs() <= 1e-7 * a.abs().max(1e-8),
            "hh.{}: {w:e} whole vs {a:e} apart",
            ChannelKind::Hh.spec().params[q].name
        );
    }
}

#[test]
fn ball_and_stick_gradient_matches_finite_differences() {
    let (cell, p) = ball_and_stick(240); // 6 ms
    let rec = simulate::<f64>(&cell, &p).unwrap();
    assert_eq!(rec.crossings(0, 0, 0.0).len(), 1, "element 0 spikes");
    check_against_fd(&cell, &p, &[10.0, 10.0, 0.1], &[16], 1e-5);
}

#[test]
fn hay_channels_gradient_matches_finite_differences() {
    // One compartment with every Hay et al. (2011) gate channel and a leak, a depolarising
    // step that makes it fire once: the adjoint against finite differences for each channel's
    // conductance and reversal potential.
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
    let mut cell = Cell::new(m, |_| Passive { cm: 1.0, ra: 100.0 }, 1).unwrap();
    let all = |_: usize, _: &Branch| true;
    for (kind, g) in [
        (ChannelKind::NaTaT, 50.0),
        (ChannelKind::NapEt2, 0.3),
        (ChannelKind::KTst, 20.0),
        (ChannelKind::KPst, 5.0),
        (ChannelKind::Skv31, 20.0),
        (ChannelKind::Im, 1.0),
        (ChannelKind::Ih, 1.0),
        (ChannelKind::CaHva, 0.2),
        (ChannelKind::CaLva, 1.0),
    ] {
        let e = kind.spec().defaults()[1];
        cell.insert(kind, all, &[vec![g, e]]).unwrap();
    }
    cell.insert(ChannelKind::Leak, all, &[vec![0.3, -70.0]])
        .unwrap();
    let p = Protocol {
        dt: 0.025,
        steps: 400, // 10 ms
        celsius: 34.0,
        v_init: -70.0,
        clamps: vec![Clamp {
            node: 0,
            batch: None,
            waveform: Waveform::Step {
                amp: 0.3,
                delay: 1.0,
                dur: 1e9,
            },
        }],
        probes: vec![
            Probe::V { node: 0 },
            Probe::Gate {
                channel: 0,
                node: 0,
                gate: 1,
            },
        ],
        ..Protocol::default()
    };
    let rec = simulate::<f64>(&cell, &p).unwrap();
    assert_eq!(rec.crossings(0, 0, 0.0).len(), 1, "one spike in the window");
    check_against_fd(&cell, &p, &[10.0, 0.1], &[20], 1e-5);
}

/// A soma (HH, `ca_hva`, `ca_lva`, `sk_e2`, a calcium pool) and a dendrite (leak, `ca_hva`,
/// no pool: its calcium current keeps its fixed reversal potential and `sk_e2` there reads
/// NEURON's default calcium), batch 2 with different conductances and pools; the soma spikes
/// once, the calcium entering with the spike opening SK.
pub(crate) fn calcium_cell(steps: usize) -> (Cell, Protocol) {
    let (mut cell, mut p) = ball_and_stick(steps);
    cell.channels.retain(|pl| pl.kind != ChannelKind::Ih);
    let soma = |_: usize, b: &Branch| b.group == Group::Soma;
    let all = |_: usize, _: &Branch| true;
    cell.insert(
        ChannelKind::CaHva,
        all,
        &[vec![2.0, 132.458], vec![3.0, 130.0]],
    )
    .unwrap();
    cell.insert(
        ChannelKind::CaLva,
        soma,
        &[vec![3.0, 132.458], vec![1.5, 132.458]],
    )
    .unwrap();
    cell.insert(
        ChannelKind::SkE2,
        all,
        &[vec![5.0, -85.0, 1.0], vec![8.0, -80.0, 2.0]],
    )
    .unwrap();
    cell.insert_pool(
        soma,
        &[vec![0.05, 80.0, 0.1, 1e-4], vec![0.02, 40.0, 0.2, 2e-4]],
    )
    .unwrap();
    // Soma voltage and the SK gate there (it reads the pool's calcium).
    let sk = cell.channels.len() - 1;
    p.probes = vec![
        Probe::V { node: 0 },
        Probe::Gate {
            channel: sk,
            node: 0,
            gate: 0,
        },
    ];
    (cell, p)
}

#[test]
fn calcium_gradient_matches_finite_differences() {
    // Every channel parameter and every pool parameter, through the pool update, the Nernst
    // reversal potential, the calcium current the pool integrates and SK's calcium gate.
    let (cell, p) = calcium_cell(480); // 12 ms
    let rec = simulate::<f64>(&cell, &p).unwrap();
    for b in 0..2 {
        assert_eq!(rec.crossings(0, b, 0.0).len(), 1, "element {b} spikes");
    }
    for b in 0..2 {
        let z = rec.trace(1, b);
        let (z0, zmax) = (z[0], z.iter().cloned().fold(0.0, f64::max));
        assert!(
            zmax > 5.0 * z0,
            "calcium opens SK: z from {z0:e} to {zmax:e}"
        );
    }
    check_against_fd(&cell, &p, &[10.0, 0.01], &[20, 6], 1e-5);
}

#[test]
fn voltage_clamp_current_gradient_matches_finite_differences() {
    // A voltage-clamp step on the HH compartment: the recorded clamp current (mostly the
    // channels' currents) and the voltage, with the clamp off for the last 3.5 ms so the
    // seeds of both states of the clamp are checked.
    let (cell, p) = hh_point(320);
    let p = Protocol {
        clamps: Vec::new(),
        vclamps: vec![VClamp {
            node: 0,
            rs: 0.01,
            amp: vec![[-65.0, -10.0, -50.0]],
            dur: [1.0, 2.0, 1.5],
        }],
        probes: vec![Probe::V { node: 0 }, Probe::VClampCurrent { clamp: 0 }],
        ..p
    };
    let rec = simulate::<f64>(&cell, &p).unwrap();
    let i = rec.trace(1, 0);
    assert!(i.iter().any(|x| x.abs() > 1.0), "the clamp passes > 1 nA");
    assert_eq!(i[300], 0.0, "off at 7.5 ms");
    check_against_fd(&cell, &p, &[10.0, 1.0], &[18], 1e-5);
}

/// Crank–Nicolson (`v' = 2 v½ − v`, the solve over `dt/2`): every channel, pool and passive
/// parameter of the calcium cell and of the ball-and-stick against finite differences.
#[test]
fn crank_nicolson_gradient_matches_finite_differences() {
    let cn = |p: Protocol| Protocol {
        scheme: Scheme::CrankNicolson,
        ..p
    };
    let (cell, p) = calcium_cell(480);
    let p = cn(p);
    let be = simulate::<f64>(
        &cell,
        &Protocol {
            scheme: Scheme::BackwardEuler,
            ..p.clone()
        },
    )
    .unwrap();
    let rec = simulate::<f64>(&cell, &p).unwrap();
    assert_ne!(rec.data, be.data, "a different scheme");
    assert_eq!(rec.crossings(0, 0, 0.0).len(), 1, "element 0 spikes");
    check_against_fd(&cell, &p, &[10.0, 0.01], &[20, 6], 1e-5);
    let (cell, p) = ball_and_stick(240);
    check_against_fd(&cell, &cn(p), &[10.0, 10.0, 0.1], &[40], 1e-5);
}

#[test]
fn every_checkpoint_level_gives_the_same_gradient() {
    let (cell, p) = ball_and_stick(300);
    let run = |levels: &[usize]| {
        value_and_grad(&cell, &p, levels, |r| Ok(loss_of(r, &[10.0, 10.0, 0.1]))).unwrap()
    };
    let one = run(&[300]);
    for levels in [&[1][..], &[17], &[10, 10], &[7, 3], &[4, 4, 4], &[1000, 2]] {
        let other = run(levels);
        assert_eq!(other.loss, one.loss, "{levels:?}");
        for (a, b) in one.grad.iter().flatten().zip(other.grad.iter().flatten()) {
            assert!(
                (a - b).abs() <= 1e-12 * a.abs().max(1e-12),
                "{levels:?}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn states_held_follow_the_levels() {
    let (cell, p) = hh_point(1000);
    let peak = |levels: &[usize]| {
        value_and_grad(&cell, &p, levels, |r| Ok(loss_of(r, &[10.0])))
            .unwrap()
            .peak_states
    };
    // ⌈T/S_1⌉ + c_1 + … + c_m − m when the lengths divide T.
    assert_eq!(peak(&[100]), 10 + 100 - 1);
    assert_eq!(peak(&[10]), 100 + 10 - 1);
    assert_eq!(peak(&[10, 10]), 10 + 10 + 10 - 2);
    assert_eq!(peak(&[10, 10, 10]), 1 + 30 - 3);
    assert_eq!(peak(&[1000]), 1 + 1000 - 1);
    // Fewer states with more levels for the same T.
    assert!(peak(&[10, 10]) < peak(&[32]));
}

#[test]
fn bad_levels_and_losses_are_errors() {
    let (cell, p) = hh_point(10);
    for bad in [&[][..], &[0], &[10, 0]] {
        let e = check_levels(bad).unwrap_err().to_string();
        assert!(e.contains("checkpoint"), "{e}");
        let e = value_and_grad(&cell, &p, bad, |r| Ok(loss_of(r, &[10.0]))).unwrap_err();
        assert!(e.to_string().contains("checkpoint"), "{e}");
    }
    let e = value_and_grad(&cell, &p, &[4], |_| {
        Ok(TraceLoss {
            loss: vec![0.0],
            grad: vec![0.0; 3],
        })
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("loss") && e.contains("gradient entries"), "{e}");
    // A diverging forward run names the compartment and variable.
    let mut pd = p.clone();
    pd.clamps[0].waveform = Waveform::Step {
        amp: 1e308, // v overflows to inf in the first step
        delay: 0.0,
        dur: 1e9,
    };
    let e = value_and_grad(&cell, &pd, &[4], |r| Ok(loss_of(r, &[10.0])))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("diverged") && e.contains("branch `soma` compartment 0"),
        "{e}"
    );
}

/// The gradient of every loss of `neurodiff_optim` (MSE, windowed statistics with the
/// normalised MAE, soft-DTW divergence) through the adjoint against finite differences, with a
/// target from other conductances.
#[test]
fn every_trace_loss_gradient_matches_finite_differences() {
    use neurodiff::cell::fit::{trace_loss, LossKind};
    let (cell, mut p) = hh_point(200); // 5 ms: the spike's upstroke
                                       // From −70 mV the trace rises monotonically to the stimulus (at −65 mV, the rest, the
                                       // sign of every early |x_i − x_j| in soft-DTW's sdtw(x, x) term flips with leak.e: a kink).
    p.v_init = -70.0;
    let mut tcell = cell.clone();
    tcell.channels[0].params[0] = 100.0;
    tcell.channels[1].params[0] = 40.0;
    let target = vec![simulate::<f64>(&tcell, &p).unwrap().trace(0, 0)];
    let kinds = [
        LossKind::Mse,
        LossKind::Stats { windows: 4 },
        LossKind::Sdtw {
            gamma: 1.0,
            lambda: 0.1,
        },
    ];
    for kind in kinds {
        let f = |c: &Cell| {
            trace_loss(kind, &simulate::<f64>(c, &p).unwrap(), &target, &[0])
                .unwrap()
                .loss[0]
        };
        let g = value_and_grad(&cell, &p, &[15], |r| trace_loss(kind, r, &target, &[0])).unwrap();
        assert!(g.loss[0] > 0.0, "{kind:?}");
        for (c, q) in [(0, 0), (1, 0), (2, 1), (0, 1)] {
            let x0 = cell.channels[c].params[q];
            let h = 1e-4 * x0.abs().max(1.0);
            let at = |x: f64| {
                let mut cc = cell.clone();
                cc.channels[c].params[q] = x;
                f(&cc)
            };
            let d = |h: f64| (at(x0 + h) - at(x0 - h)) / (2.0 * h);
            // Soft-DTW's cost |x_i − y_j| has a kink wherever a simulated sample crosses a
            // target sample; with a 1e-4 step several crossings fall inside ±h (a 5 % error
            // measured at hh_na.gbar), so soft-DTW takes a 1e-6 step (plain central
            // differences: truncation ~1e-12, rounding ~1e-10 relative).
            let fd = if matches!(kind, LossKind::Sdtw { .. }) {
                d(1e-2 * h)
            } else {
                (4.0 * d(0.5 * h) - d(h)) / 3.0
            };
            let ad = g.grad[c][q];
            let scale = fd.abs().max(ad.abs()).max(1e-10);
            assert!(
                (fd - ad).abs() <= 1e-5 * scale,
                "{kind:?}, placement {c} param {q}: adjoint {ad:e}, finite differences {fd:e}"
            );
        }
    }
}

const FIT_TOML: &str = r#"
dt = 0.025
duration = 5.0
[[branches]]
name = "soma"
group = "soma"
length = 20.0
radius = 10.0
[passive.all]
cm = 1.0
ra = 100.0
[[channels]]
name = "hh_na"
params = { gbar = 90.0 }
[[channels]]
name = "hh_k"
params = { gbar = 45.0 }
[[channels]]
name = "leak"
[[stimuli]]
branch = "soma"
amp = 0.3
delay = 1.0
"#;

/// Writes the fit config and a target made with hh_na.gbar 120, hh_k.gbar 36 (201 samples).
fn fit_case(dir: &std::path::Path) {
    std::fs::write(dir.join("fit.toml"), FIT_TOML).unwrap();
    let (cell, p) = hh_point(200);
    let y = simulate::<f64>(&cell, &p).unwrap().trace(0, 0);
    crate::common::write_npy(&dir.join("target.npy"), &[y.len()], &y);
    crate::common::write_npy(&dir.join("short.npy"), &[y.len() - 1], &y[1..]);
}

fn neurodiff_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_neurodiff"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

const FIT_ARGS: &[&str] = &[
    "cell",
    "--config",
    "fit.toml",
    "--fit",
    "--restarts",
    "2",
    "--lr",
    "0.1",
    "-q",
];

fn history(path: &std::path::Path) -> (serde_json::Value, Vec<Vec<f64>>) {
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let h = j["loss_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    (j, h)
}

#[test]
fn cli_fit_reduces_the_loss_and_resumes() {
    let dir = crate::common::tmpdir("cell-fit");
    fit_case(&dir);
    let params = [
        "--fit-param",
        "hh_na.gbar=50..200",
        "--fit-param",
        "hh_k.gbar@soma=10..80",
    ];
    let run = |out: &str, iters: &str, extra: &[&str]| {
        let mut a = FIT_ARGS.to_vec();
        a.extend_from_slice(&["--target", "target.npy", "--target-dt", "0.025"]);
        a.extend_from_slice(&params);
        a.extend_from_slice(&["--out", out, "--iterations", iters]);
        a.extend_from_slice(extra);
        let o = neurodiff_in(&dir, &a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run("out/a.json", "8", &[]);
    let (j, h) = history(&dir.join("out/a.json"));
    assert_eq!(h.len(), 8);
    assert_eq!(h[0].len(), 2);
    // Restart 0 starts from the config (90, 45) and gets closer to the target's loss 0.
    assert!(h[7][0] < 0.5 * h[0][0], "{h:?}");
    assert_eq!(j["restarts"][0]["start"]["hh_na.gbar"], 90.0);
    assert!(std::fs::metadata(dir.join("out/a.png")).unwrap().len() > 1000);
    assert!(dir.join("out/a.state.json").exists());
    // 4 iterations, then 4 more from the state, equal 8 in one go.
    run("out/b.json", "4", &[]);
    run("out/b.json", "8", &["--resume", "out/b.state.json"]);
    let (_, hb) = history(&dir.join("out/b.json"));
    assert_eq!(hb, h);
    // Polyak and the other losses run too.
    for extra in [
        &["--optimizer", "polyak", "--loss", "stats", "--windows", "4"][..],
        &["--loss", "sdtw", "--checkpoint", "10,5"],
    ] {
        run("out/c.json", "2", extra);
    }
}

#[test]
fn cli_fit_bad_input_is_a_clear_error_without_output() {
    let dir = crate::common::tmpdir("cell-fit-bad");
    fit_case(&dir);
    let cases: &[(&[&str], &str)] = &[
        (&["--fit-param", "hh_na.gmax=1..2"], "no such parameter"),
        (&["--fit-param", "kdr.gbar=1..2"], "unknown channel `kdr`"),
        (
            &["--fit-param", "hh_na.gbar=-5..200"],
            "outside the parameter's range",
        ),
        (&["--fit-param", "hh_na.gbar=100..200"], "strictly inside"),
        (
            &["--fit-param", "hh_na.gbar@apical=50..200"],
            "no `hh_na` on apical",
        ),
        (
            &["--fit-param", "hh_na.gbar=50..200", "--target-dt", "0.05"],
            "differs from the config's dt",
        ),
        (
            &["--fit-param", "hh_na.gbar=50..200", "--target", "short.npy"],
            "200 samples, but duration 5 ms at dt 0.025 ms needs 201",
        ),
        (
            &["--fit-param", "hh_na.gbar=50..200", "--checkpoint", "0"],
            "checkpoint",
        ),
        (
            &["--fit-param", "ca_dynamics_e2.decay=20..200"],
            "the cell has no `ca_dynamics_e2`",
        ),
        (
            &["--fit-param", "ca_dynamics_e2.tau=20..200"],
            "calcium pool `ca_dynamics_e2`: parameter `tau`: no such parameter (it has: gamma, \
             decay, depth, min_cai)",
        ),
        (
            &["--fit-param", "passive.cm=0..2"],
            "outside the parameter's range [0.001, 100]",
        ),
        (
            &["--fit-param", "passive.rm=1..2"],
            "the passive properties: parameter `rm`: no such parameter (it has: cm, ra, radius)",
        ),
        (
            &["--fit-param", "passive.ra@axon=10..200"],
            "the cell has no `passive` on axon",
        ),
    ];
    for (extra, needle) in cases {
        let _ = std::fs::remove_dir_all(dir.join("out"));
        let mut a = FIT_ARGS.to_vec();
        a.extend_from_slice(extra);
        for (flag, value) in [("--target", "target.npy"), ("--target-dt", "0.025")] {
            if !extra.contains(&flag) {
                a.extend_from_slice(&[flag, value]);
            }
        }
        a.extend_from_slice(&["--out", "out/f.json", "--iterations", "2"]);
        let o = neurodiff_in(&dir, &a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?} should fail");
        assert!(err.contains(needle), "{extra:?}: want `{needle}` in: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            !dir.join("out").exists() || std::fs::read_dir(dir.join("out")).unwrap().count() == 0,
            "{extra:?} left output behind"
        );
    }
}

/// Writes `target.toml` into `dir` and makes `target.npy` from it with `neurodiff cell`.
fn make_target(dir: &std::path::Path, toml: &str) {
    std::fs::write(dir.join("target.toml"), toml).unwrap();
    let o = neurodiff_in(
        dir,
        &[
            "cell",
            "--config",
            "target.toml",
            "--out",
            "target.npy",
            "-q",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Fits `config` in `dir` to `target.npy` (dt 0.025 ms) with `params`: 2 restarts, Adam at
/// 0.05, 150 iterations, into `out/fit.json`; checks that the best restart ended below 1e-3 of
/// its start's loss (the best is kept: where the soma spikes the loss has steps and Adam may
/// leave a minimum again) and returns the JSON and the loss history.
fn fit_own_target(
    dir: &std::path::Path,
    config: &str,
    params: &[&str],
) -> (serde_json::Value, Vec<Vec<f64>>) {
    let mut a = vec![
        "cell",
        "--config",
        config,
        "--fit",
        "--target",
        "target.npy",
        "--target-dt",
        "0.025",
        "--restarts",
        "2",
        "--lr",
        "0.05",
        "--iterations",
        "150",
        "--out",
        "out/fit.json",
        "-q",
    ];
    for p in params {
        a.extend_from_slice(&["--fit-param", p]);
    }
    let o = neurodiff_in(dir, &a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (j, h) = history(&dir.join("out/fit.json"));
    assert_eq!(h[0].len(), 2);
    let b = j["best_restart"].as_u64().unwrap() as usize;
    let best = j["restarts"][b]["best_loss"].as_f64().unwrap();
    assert!(
        best < 1e-3 * h[0][b],
        "restart {b}: {best} from {}",
        h[0][b]
    );
    (j, h)
}

/// A compartment with HH, `ca_hva`, `sk_e2` and a calcium pool under a voltage-clamp step
/// (−70, then 0 mV for 5 ms where calcium flows in, then −50 mV for 90 ms where SK's current
/// follows the pool's decay: little enough calcium that SK does not saturate), the clamp
/// current recorded; `{decay}` and `{gsk}` are filled in.
const CA_CLAMP_TOML: &str = r#"
dt = 0.025
duration = 100.0
celsius = 34.0
v_init = -70.0
[[branches]]
name = "soma"
group = "soma"
length = 20.0
radius = 10.0
[[channels]]
name = "hh"
[[channels]]
name = "ca_hva"
params = { gbar = 0.02 }
[[channels]]
name = "sk_e2"
params = { gbar = {gsk} }
[[channels]]
name = "ca_dynamics_e2"
params = { decay = {decay} }
[[stimuli]]
kind = "vclamp"
branch = "soma"
rs = 0.01
amp1 = -70.0
dur1 = 5.0
amp2 = 0.0
dur2 = 5.0
amp3 = -50.0
dur3 = 90.0
[[record]]
branch = "soma"
var = "vclamp.i"
"#;

#[test]
fn cli_fits_a_calcium_pool_and_sk_to_a_voltage_clamp_current() {
    // The target is `neurodiff cell`'s own output for decay 120 ms and gSK 6 mS/cm²; the fit
    // starts at 50 ms and 3 mS/cm² and fits both (a pool parameter and a channel conductance)
    // through the clamp current.
    let dir = crate::common::tmpdir("cell-fit-ca-clamp");
    let toml = |decay: &str, gsk: &str| {
        CA_CLAMP_TOML
            .replace("{decay}", decay)
            .replace("{gsk}", gsk)
    };
    make_target(&dir, &toml("120.0", "6.0"));
    std::fs::write(dir.join("fit.toml"), toml("50.0", "3.0")).unwrap();
    let (j, h) = fit_own_target(
        &dir,
        "fit.toml",
        &["ca_dynamics_e2.decay=20..300", "sk_e2.gbar=0.5..20"],
    );
    assert_eq!(j["restarts"][0]["start"]["ca_dynamics_e2.decay"], 50.0);
    assert!(h[149][0] < 1e-3 * h[0][0], "{h:?}");
    let fitted = &j["best"]["fitted"];
    let (decay, gsk) = (
        fitted["ca_dynamics_e2.decay"].as_f64().unwrap(),
        fitted["sk_e2.gbar"].as_f64().unwrap(),
    );
    assert!((decay - 120.0).abs() < 2.0, "decay {decay}");
    assert!((gsk - 6.0).abs() < 0.05, "gSK {gsk}");
    // The figure shows clamp currents.
    assert!(std::fs::metadata(dir.join("out/fit.png")).unwrap().len() > 1000);
}

#[test]
fn set_passive_equals_building_the_cell_with_it() {
    // The dendrite's C_m and R_a changed after building give the same capacitances and axial
    // conductances (to the parent and at the soma's junction) as building with them.
    let (mut cell, _) = ball_and_stick(10);
    let pas = Passive { cm: 2.0, ra: 50.0 };
    cell.set_passive(1, pas).unwrap();
    let built = Cell::new(
        cell.morphology.clone(),
        |g| {
            if g == Group::Basal {
                pas
            } else {
                Passive { cm: 1.0, ra: 100.0 }
            }
        },
        2,
    )
    .unwrap();
    assert_eq!(cell.cap, built.cap);
    assert_eq!(cell.g_axial, built.g_axial);
    assert_eq!(cell.passive, built.passive);
    // The soma's R_a sets the junction's conductance.
    let before = cell.g_axial.clone();
    cell.set_passive(0, Passive { cm: 1.0, ra: 200.0 }).unwrap();
    let changed: Vec<usize> = (0..before.len())
        .filter(|&i| cell.g_axial[i] != before[i])
        .collect();
    assert_eq!(changed, vec![1], "only the junction (node 1)");
    assert!((cell.g_axial[1] - 0.5 * before[1]).abs() < 1e-12 * before[1]);
    // A radius changed after building gives the areas, capacitances and conductances of the
    // cell built with it.
    let mut m = cell.morphology.clone();
    m.branches[1].radius = 0.7;
    let passive = cell.passive.clone();
    let built = Cell::new(m, |g| passive[if g == Group::Basal { 1 } else { 0 }], 2).unwrap();
    cell.set_radius(1, 0.7).unwrap();
    assert_eq!(cell.area, built.area);
    assert_eq!(cell.cap, built.cap);
    assert_eq!(cell.g_axial, built.g_axial);
    let e = cell.set_radius(1, -1.0).unwrap_err();
    assert!(e.to_string().contains("radius must be positive"), "{e}");
    let e = cell
        .set_passive(1, Passive { cm: 0.0, ra: 50.0 })
        .unwrap_err();
    assert!(
        e.to_string().contains("dend") && e.to_string().contains("cm"),
        "{e}"
    );
}

/// A ball (HH) and stick (4 compartments, leak), a current step into the stick's end, both
/// ends recorded; `{cm}`, `{ra}` and `{radius}` fill the stick's passive properties.
const PASSIVE_TOML: &str = r#"
dt = 0.025
duration = 8.0
[[branches]]
name = "soma"
group = "soma"
length = 20.0
radius = 10.0
[[branches]]
name = "dend"
group = "basal"
parent = 0
length = 300.0
radius = {radius}
ncomp = 4
[passive.soma]
cm = 1.0
ra = 100.0
[passive.basal]
cm = {cm}
ra = {ra}
[[channels]]
name = "hh"
groups = ["soma"]
[[channels]]
name = "leak"
groups = ["basal"]
params = { g = 0.1, e = -65.0 }
[[stimuli]]
branch = "dend"
x = 1.0
amp = 0.1
delay = 1.0
dur = 5.0
[[record]]
branch = "soma"
[[record]]
branch = "dend"
x = 1.0
"#;

#[test]
fn cli_fits_passive_properties() {
    // The dendrite's C_m and R_a (truth 1.5 µF/cm² and 150 Ω·cm, from `neurodiff cell`'s own
    // output) from 1 and 80, with two restarts (each its own cell); then its radius alone
    // (truth 1 µm) from 0.8. (All three at once is a long, flat valley: C_m·a, a²/R_a and the
    // leak's g·a are what the voltages see.)
    let dir = crate::common::tmpdir("cell-fit-passive");
    let toml = |cm: &str, ra: &str, radius: &str| {
        PASSIVE_TOML
            .replace("{cm}", cm)
            .replace("{ra}", ra)
            .replace("{radius}", radius)
    };
    make_target(&dir, &toml("1.5", "150.0", "1.0"));
    std::fs::write(dir.join("fit.toml"), toml("1.0", "80.0", "1.0")).unwrap();
    std::fs::write(dir.join("fit_radius.toml"), toml("1.5", "150.0", "0.8")).unwrap();
    let fit = |config: &str, params: &[&str]| fit_own_target(&dir, config, params).0;
    let j = fit(
        "fit.toml",
        &["passive.cm@basal=0.5..3", "passive.ra@basal=20..500"],
    );
    assert_eq!(j["restarts"][0]["start"]["passive.ra@basal"], 80.0);
    let fitted = &j["best"]["fitted"];
    let (cm, ra) = (
        fitted["passive.cm@basal"].as_f64().unwrap(),
        fitted["passive.ra@basal"].as_f64().unwrap(),
    );
    assert!((cm - 1.5).abs() < 0.02, "cm {cm}");
    assert!((ra - 150.0).abs() < 2.0, "ra {ra}");
    let j = fit("fit_radius.toml", &["passive.radius@basal=0.3..3"]);
    let radius = j["best"]["fitted"]["passive.radius@basal"]
        .as_f64()
        .unwrap();
    assert!((radius - 1.0).abs() < 0.01, "radius {radius}");
}
