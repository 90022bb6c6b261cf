//! Gradients of cells (`neurodiff::cell::adjoint`): the discrete adjoint against central finite
//! differences (Richardson-extrapolated, f64) of the forward simulation for every parameter of
//! a spiking HH compartment and of a branched ball-and-stick cell (batch 2, voltage and gate
//! recordings); nested checkpointing giving the same gradient at every level choice; the count
//! of states held following the levels; bad levels as errors.

use neurodiff::cell::adjoint::{check_levels, value_and_grad, TraceLoss};
use neurodiff::cell::{
    simulate, Branch, Cell, Clamp, Group, Morphology, Passive, Probe, Protocol, Recording,
    Waveform,
};
use neurodiff_models::channel::ChannelKind;

/// Deterministic weights in [-1, 1).
fn weights(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// A smooth nonlinear loss of the recording: per batch element
/// `L_b = (1/N) Σ_{k,p} (w_{k,p} x + ½ (x − y)²/s_p²)` with random weights `w`, a fixed
/// reference `y` and a per-probe scale `s` (mV for voltages, 0.1 for gates).
fn loss_of(rec: &Recording, scales: &[f64]) -> TraceLoss {
    let (np, nb) = (rec.n_probes, rec.batch);
    let w = weights(7, rec.data.len());
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
    assert_eq!(g.loss, total(cell, p, scales), "the loss is the forward one");
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
                // Every other batch element's loss does not depend on this row.
                checked += 1;
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
    cell.insert(ChannelKind::HhK, soma, &[vec![36.0, -77.0], vec![30.0, -80.0]])
        .unwrap();
    cell.insert(ChannelKind::Leak, |_, _| true, &[vec![0.3, -54.3], vec![0.5, -65.0]])
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

#[test]
fn ball_and_stick_gradient_matches_finite_differences() {
    let (cell, p) = ball_and_stick(240); // 6 ms
    let rec = simulate::<f64>(&cell, &p).unwrap();
    assert_eq!(rec.crossings(0, 0, 0.0).len(), 1, "element 0 spikes");
    check_against_fd(&cell, &p, &[10.0, 10.0, 0.1], &[16], 1e-5);
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
    assert!(e.contains("diverged") && e.contains("branch `soma` compartment 0"), "{e}");
}
