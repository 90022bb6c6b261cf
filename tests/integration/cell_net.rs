//! Networks of cells with synapses and per-synapse delays (`neurodiff::cell::network`): the
//! postsynaptic conductance after one presynaptic spike against the synapse's exact solution
//! for the recorded presynaptic voltage read `d` steps late (Jaxley's `IonotropicSynapse`
//! update written out here in its own form); a delay of `d` steps shifting the postsynaptic
//! trace by exactly `d` steps; the network gradient (synapse parameters, drive weights,
//! channel parameters; nested checkpoints holding the delay buffer) against central finite
//! differences, also with a calcium pool and a voltage clamp in the network; a batch equal to
//! separate runs; bad synapses as errors; Crank–Nicolson refused by the adjoint.

use neurodiff::cell::adjoint::TraceLoss;
use neurodiff::cell::network::{simulate, value_and_grad};
use neurodiff::cell::{
    Branch, Cell, Clamp, Group, Morphology, NetProbe, Network, Passive, Protocol, Recording,
    Scheme, VClamp, Waveform,
};
use neurodiff_models::channel::ChannelKind;
use neurodiff_models::synapse::SynapseKind;

const DT: f64 = 0.025;

fn soma(ncomp: usize) -> Morphology {
    Morphology {
        branches: vec![Branch {
            name: Some("soma".into()),
            parent: None,
            length: 20.0,
            radius: 10.0,
            ncomp,
            group: Group::Soma,
        }],
    }
}

/// A single-compartment HH cell (NEURON's `hh`).
fn hh(batch: usize) -> Cell {
    let mut c = Cell::new(soma(1), |_| Passive::default(), batch).unwrap();
    c.insert(ChannelKind::HhNa, |_, _| true, &[vec![120.0, 50.0]])
        .unwrap();
    c.insert(ChannelKind::HhK, |_, _| true, &[vec![36.0, -77.0]])
        .unwrap();
    c.insert(ChannelKind::Leak, |_, _| true, &[vec![0.3, -54.3]])
        .unwrap();
    c
}

/// A passive cell of `ncomp` compartments with leak `g` mS/cm² and reversal `e` mV.
fn passive(batch: usize, ncomp: usize, g: f64, e: f64) -> Cell {
    let mut c = Cell::new(soma(ncomp), |_| Passive::default(), batch).unwrap();
    c.insert(ChannelKind::Leak, |_, _| true, &[vec![g, e]])
        .unwrap();
    c
}

fn protocol(steps: usize, clamps: Vec<Clamp>) -> Protocol {
    Protocol {
        dt: DT,
        steps,
        clamps,
        ..Protocol::default()
    }
}

/// A pulse into merged node `node` that makes an HH cell spike once (0.5 nA for 1 ms from 1 ms).
fn pulse(node: usize) -> Clamp {
    Clamp {
        node,
        batch: None,
        waveform: Waveform::Step {
            amp: 0.5,
            delay: 1.0,
            dur: 1.0,
        },
    }
}

/// Ionotropic parameters with weight `gs` µS (Jaxley's defaults otherwise).
fn iono(gs: f64) -> Vec<f64> {
    vec![gs, 0.0, 0.025, -35.0, 10.0]
}

#[test]
fn conductance_after_one_spike_arrives_at_the_delay_with_the_exact_waveform() {
    let steps = 1200;
    let mut arrive0: Option<usize> = None;
    for d in [0usize, 1, 7, 40] {
        let mut net = Network::new(vec![hh(1), passive(1, 1, 0.1, -65.0)]).unwrap();
        let params = iono(0.005);
        net.connect(
            SynapseKind::Ionotropic,
            (0, 0),
            (1, 0),
            d as f64 * DT,
            std::slice::from_ref(&params),
        )
        .unwrap();
        let p = protocol(steps, vec![pulse(0)]);
        let rec = simulate::<f64>(
            &net,
            &p,
            &[
                NetProbe::V { cell: 0, node: 0 },
                NetProbe::Synapse { synapse: 0 },
            ],
        )
        .unwrap();
        let v = rec.trace(0, 0);
        let g = rec.trace(1, 0);
        assert!(v.iter().any(|&x| x > 20.0), "the presynaptic cell spikes");
        // Jaxley's update, written in its own form: s∞ = 1/(1 + e^{(v_th − u)/δ}),
        // τ = (1 − s∞)/k₋, s ← s e^{−dt/τ} + s∞ (1 − e^{−dt/τ}); step k reads u = V_pre(t_{k−d})
        // (v_init before t = 0). Exponential Euler is the exact solution of the linear ODE for
        // the presynaptic voltage held over each step.
        let (gs, k_minus, v_th, delta) = (params[0], params[2], params[3], params[4]);
        let s_inf = |u: f64| 1.0 / (1.0 + ((v_th - u) / delta).exp());
        let mut s = s_inf(-65.0);
        let mut want = vec![gs * s];
        for k in 0..steps {
            let u = if k >= d { v[k - d] } else { -65.0 };
            let si = s_inf(u);
            let e = (-DT / ((1.0 - si) / k_minus)).exp();
            s = s * e + si * (1.0 - e);
            want.push(gs * s);
        }
        for (k, (a, b)) in g.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12 * gs,
                "delay {d}: sample {k}: conductance {a:e} µS, exact {b:e} µS"
            );
        }
        // The conductance first doubles its resting value exactly d samples later than with
        // no delay.
        let arrive = g.iter().position(|&x| x > 2.0 * g[0]).unwrap();
        let a0 = *arrive0.get_or_insert(arrive);
        assert_eq!(
            arrive,
            a0 + d,
            "delay {d}: arrival at sample {arrive}, {a0} without delay"
        );
    }
}

#[test]
fn a_delay_of_d_steps_shifts_the_postsynaptic_trace_by_d_steps() {
    let steps = 1000;
    let gs = 0.005;
    // The postsynaptic leak reversal that makes v_init = −65 mV its rest with the synapse's
    // resting conductance: g_L A (E_L − v) + G (E_syn − v) = 0.
    let area = 2.0 * std::f64::consts::PI * 10.0 * 20.0 * 1e-8; // cm²
    let g_l = 0.1; // mS/cm²
    let s0 = 1.0 / (1.0 + 3f64.exp());
    let g_rest = gs * s0 * 1e-3; // mS
    let e_l = -65.0 + g_rest * (-65.0 - 0.0) / (g_l * area);
    let run = |d: usize| {
        let mut net = Network::new(vec![hh(1), passive(1, 1, g_l, e_l)]).unwrap();
        net.connect(
            SynapseKind::Ionotropic,
            (0, 0),
            (1, 0),
            d as f64 * DT,
            &[iono(gs)],
        )
        .unwrap();
        simulate::<f64>(
            &net,
            &protocol(steps, vec![pulse(0)]),
            &[
                NetProbe::V { cell: 1, node: 0 },
                NetProbe::Synapse { synapse: 0 },
            ],
        )
        .unwrap()
    };
    let r0 = run(0);
    let (v0, g0) = (r0.trace(0, 0), r0.trace(1, 0));
    assert!(
        v0.iter().fold(f64::MIN, |a, &b| a.max(b)) > -64.0,
        "the postsynaptic cell responds"
    );
    for d in [1usize, 13, 200] {
        let r = run(d);
        let (v, g) = (r.trace(0, 0), r.trace(1, 0));
        for k in 0..=steps {
            let (wv, wg) = if k >= d {
                (v0[k - d], g0[k - d])
            } else {
                (-65.0, g0[0])
            };
            assert!(
                (v[k] - wv).abs() < 1e-9,
                "delay {d}: sample {k}: V_post {} mV, shifted {wv} mV",
                v[k]
            );
            assert!(
                (g[k] - wg).abs() < 1e-15,
                "delay {d}: sample {k}: conductance"
            );
        }
    }
}

/// Deterministic numbers in [-1, 1).
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

/// `L_b = (1/N) Σ w x + ½ (x − y)²/s²` over the recording, with random `w`, `y = −60` and
/// `s` per probe.
fn loss_of(rec: &Recording, scales: &[f64]) -> TraceLoss {
    let (np, nb) = (rec.n_probes, rec.batch);
    let w = weights(3, rec.data.len());
    let n = rec.len() as f64;
    let mut loss = vec![0.0; nb];
    let mut grad = vec![0.0; rec.data.len()];
    for (i, &x) in rec.data.iter().enumerate() {
        let (p, b) = ((i / nb) % np, i % nb);
        let y = if scales[p] > 1e-3 { -60.0 } else { 0.0 };
        let s2 = scales[p] * scales[p];
        loss[b] += (w[i] * x / scales[p] + 0.5 * (x - y) * (x - y) / s2) / n;
        grad[i] = (w[i] / scales[p] + (x - y) / s2) / n;
    }
    TraceLoss { loss, grad }
}

/// Two HH cells coupled both ways (one delayed, one not), a tanh synapse with a delay onto a
/// two-compartment passive cell, a drive; batch 2 with different weights and signals.
fn small_net() -> (Network, Protocol, Vec<NetProbe>) {
    let mut net = Network::new(vec![hh(2), hh(2), passive(2, 2, 0.1, -65.0)]).unwrap();
    net.connect(
        SynapseKind::Ionotropic,
        (0, 0),
        (1, 0),
        3.0 * DT,
        &[iono(0.004), iono(0.006)],
    )
    .unwrap();
    net.connect(
        SynapseKind::Ionotropic,
        (1, 0),
        (0, 0),
        0.0,
        &[vec![0.002, -75.0, 0.05, -30.0, 8.0]],
    )
    .unwrap();
    net.connect(
        SynapseKind::TanhRate,
        (0, 0),
        (2, 1),
        5.0 * DT,
        &[vec![0.05, -60.0, 0.05], vec![-0.03, -55.0, 0.1]],
    )
    .unwrap();
    let steps = 480;
    let sig: Vec<Vec<f64>> = (0..2)
        .map(|b| {
            weights(11 + b, steps)
                .iter()
                .enumerate()
                .map(|(k, x)| {
                    if k > 40 && k < 120 {
                        1.0 + 0.3 * x
                    } else {
                        0.1 * x
                    }
                })
                .collect()
        })
        .collect();
    net.drive((0, 0), &[0.5, 0.45], sig).unwrap();
    let probes = vec![
        NetProbe::V { cell: 0, node: 0 },
        NetProbe::Synapse { synapse: 0 },
        NetProbe::V { cell: 1, node: 0 },
        NetProbe::V { cell: 2, node: 0 },
    ];
    (net, protocol(steps, vec![]), probes)
}

const SCALES: [f64; 4] = [10.0, 1e-3, 10.0, 1.0];

fn total(net: &Network, p: &Protocol, probes: &[NetProbe]) -> Vec<f64> {
    loss_of(&simulate::<f64>(net, p, probes).unwrap(), &SCALES).loss
}

fn fd(at: impl Fn(f64) -> f64, x0: f64) -> f64 {
    // Relative step 1e-4; at 0 (a reversal potential of 0 mV) a step of 0.1 in the
    // parameter's unit: the gradient there is ~1e-5 of the loss, so a smaller step leaves the
    // difference of two 480-step losses in their rounding (steps 0.005–0.02 scatter by ±1.5e-5
    // relative around the adjoint, 3e-4 by 6e-5; 0.05 and 0.1 agree with it to 2e-6 and 2e-7),
    // and the loss depends on a reversal potential through g (E − V) nearly linearly, so the
    // larger step adds no truncation error after the Richardson step.
    let h = if x0 != 0.0 { 1e-4 * x0.abs() } else { 1e-1 };
    let d = |h: f64| (at(x0 + h) - at(x0 - h)) / (2.0 * h);
    (4.0 * d(0.5 * h) - d(h)) / 3.0
}

fn close(what: &str, ad: f64, fd: f64, tol: f64) {
    let scale = fd.abs().max(ad.abs()).max(1e-10);
    assert!(
        (fd - ad).abs() <= tol * scale,
        "{what}: adjoint {ad:e}, finite differences {fd:e}"
    );
}

#[test]
fn network_gradient_matches_finite_differences() {
    network_fd(Scheme::BackwardEuler);
}

/// Crank–Nicolson (`v' = 2 v½ − v`): the same checks.
#[test]
fn network_crank_nicolson_gradient_matches_finite_differences() {
    network_fd(Scheme::CrankNicolson);
}

/// The network gradient of [`small_net`] under `scheme` against central finite differences
/// (synapse parameters, drive weights, two channel parameters), for two checkpoint levels.
fn network_fd(scheme: Scheme) {
    let (net, p, probes) = small_net();
    let p = Protocol { scheme, ..p };
    let v = simulate::<f64>(&net, &p, &probes).unwrap();
    assert!(v.trace(0, 0).iter().any(|&x| x > 0.0), "cell 0 spikes");
    let mut first: Option<Vec<Vec<f64>>> = None;
    for levels in [vec![1000], vec![7, 5]] {
        let g = value_and_grad(&net, &p, &probes, &levels, |r| Ok(loss_of(r, &SCALES))).unwrap();
        assert_eq!(
            g.loss,
            total(&net, &p, &probes),
            "the loss is the forward one"
        );
        match &first {
            None => first = Some(g.synapses.clone()),
            Some(f) => assert_eq!(f, &g.synapses, "every checkpoint level gives the same"),
        }
        if levels.len() > 1 {
            continue;
        }
        for (j, s) in net.synapses.iter().enumerate() {
            let spec = s.kind.spec();
            let np = spec.params.len();
            for b in 0..2 {
                for q in 0..np {
                    let x0 = s.params[b * np + q];
                    let at = |x: f64| {
                        let mut n = net.clone();
                        n.synapses[j].params[b * np + q] = x;
                        total(&n, &p, &probes)[b]
                    };
                    close(
                        &format!(
                            "synapse {j} {}.{} batch {b}",
                            spec.name, spec.params[q].name
                        ),
                        g.synapses[j][b * np + q],
                        fd(at, x0),
                        1e-5,
                    );
                }
            }
        }
        for b in 0..2 {
            let at = |x: f64| {
                let mut n = net.clone();
                n.drives[0].weight[b] = x;
                total(&n, &p, &probes)[b]
            };
            close(
                &format!("drive weight batch {b}"),
                g.drives[0][b],
                fd(at, net.drives[0].weight[b]),
                1e-5,
            );
        }
        // Each cell's C_m, R_a and radius (the merged cell's branches), relative step 1e-3 as
        // for a single cell (cell_grad.rs). The single compartments have no axial conductance:
        // R_a moves nothing there, and both sides give exactly 0.
        for br in 0..net.merged.passive.len() {
            let pas = net.merged.passive[br];
            for q in 0..3 {
                let x0 = [pas.cm, pas.ra, net.merged.morphology.branches[br].radius][q];
                for b in 0..2 {
                    let at = |x: f64| {
                        let mut n = net.clone();
                        let mut pp = pas;
                        match q {
                            0 => pp.cm = x,
                            1 => pp.ra = x,
                            _ => n.merged.set_radius(br, x).unwrap(),
                        }
                        n.merged.set_passive(br, pp).unwrap();
                        total(&n, &p, &probes)[b]
                    };
                    let h = 1e-3 * x0;
                    let d = |h: f64| (at(x0 + h) - at(x0 - h)) / (2.0 * h);
                    // R_a moves this loss (~35) by only 9e-6 per Ω·cm, and the rounding of
                    // 480 steps of spiking cells scatters its differences by ~5e-9 absolute:
                    // at a relative step of 1e-3 they agree with the adjoint only to 5e-3, at
                    // 1e-2 to 3e-4, at 1e-1 (plain central) to 2–3e-5 in element 0 and 1e-4 in
                    // element 1 (a derivative of only 1e-6), in both schemes (measured).
                    let (fd, tol) = if q == 1 {
                        (d(1e-1 * x0), 3e-4)
                    } else {
                        ((4.0 * d(0.5 * h) - d(h)) / 3.0, 1e-5)
                    };
                    close(
                        &format!("branch {br} {} batch {b}", ["cm", "ra", "radius"][q]),
                        g.passive[br][3 * b + q],
                        fd,
                        tol,
                    );
                }
            }
        }
        assert!(
            g.passive[2][1].abs() > 1e-9,
            "the two-compartment cell's R_a matters"
        );
        // Channel parameters of the merged cells: hh_na.gbar of cell 1, leak.e of cell 2.
        for (c, q) in [(3usize, 0usize), (6, 1)] {
            let pl = &net.merged.channels[c];
            let np = pl.kind.spec().params.len();
            let at = |x: f64| {
                let mut n = net.clone();
                n.merged.channels[c].params[np + q] = x;
                total(&n, &p, &probes)[1]
            };
            close(
                &format!("channel {c} param {q} batch 1"),
                g.channels[c][np + q],
                fd(at, pl.params[np + q]),
                1e-5,
            );
        }
    }
}

/// Cell 0: HH with `ca_hva`, `sk_e2` and a calcium pool, driven to spike; it excites cell 1
/// (HH) 2 steps late, which a weak voltage clamp (20 MΩ) pulls towards -70 mV for 6 ms.
fn calcium_net() -> (Network, Protocol, Vec<NetProbe>) {
    let mut c0 = hh(2);
    let all = |_: usize, _: &Branch| true;
    c0.insert(ChannelKind::CaHva, all, &[vec![3.0, 132.458]])
        .unwrap();
    c0.insert(
        ChannelKind::SkE2,
        all,
        &[vec![5.0, -85.0, 1.0], vec![8.0, -85.0, 1.0]],
    )
    .unwrap();
    c0.insert_pool(
        all,
        &[vec![0.05, 80.0, 0.1, 1e-4], vec![0.03, 50.0, 0.1, 1e-4]],
    )
    .unwrap();
    let mut net = Network::new(vec![c0, hh(2)]).unwrap();
    net.connect(
        SynapseKind::Ionotropic,
        (0, 0),
        (1, 0),
        2.0 * DT,
        &[iono(0.01), iono(0.02)],
    )
    .unwrap();
    let mut p = protocol(320, vec![pulse(0)]);
    p.vclamps = vec![VClamp {
        node: 1,
        rs: 20.0,
        amp: vec![[-70.0, -70.0, -70.0]],
        dur: [2.0, 2.0, 2.0],
    }];
    let probes = vec![
        NetProbe::V { cell: 0, node: 0 },
        NetProbe::V { cell: 1, node: 0 },
    ];
    (net, p, probes)
}

#[test]
fn network_with_calcium_and_a_voltage_clamp_gradient_matches_finite_differences() {
    let (net, p, probes) = calcium_net();
    let scales = [10.0, 10.0, 1.0, 1.0];
    let total = |n: &Network| loss_of(&simulate::<f64>(n, &p, &probes).unwrap(), &scales).loss;
    let g = value_and_grad(&net, &p, &probes, &[16, 5], |r| Ok(loss_of(r, &scales))).unwrap();
    assert_eq!(g.loss, total(&net));
    let b = 1;
    // The pool's decay and gamma (pool 0 of the merged cell).
    for q in [0usize, 1] {
        let at = |x: f64| {
            let mut n = net.clone();
            n.merged.pools[0].params[4 * b + q] = x;
            total(&n)[b]
        };
        close(
            &format!("pool param {q}"),
            g.pools[0][4 * b + q],
            fd(at, net.merged.pools[0].params[4 * b + q]),
            1e-5,
        );
    }
    // ca_hva.gbar, sk_e2.gbar of cell 0 (placements 3 and 4); cell 1's hh_k.gbar (6); the
    // synapse's weight.
    for c in [3usize, 4, 6] {
        let np = net.merged.channels[c].kind.spec().params.len();
        let at = |x: f64| {
            let mut n = net.clone();
            n.merged.channels[c].params[np * b] = x;
            total(&n)[b]
        };
        close(
            &format!("channel {c} gbar"),
            g.channels[c][np * b],
            fd(at, net.merged.channels[c].params[np * b]),
            1e-5,
        );
    }
    let at = |x: f64| {
        let mut n = net.clone();
        n.synapses[0].params[5 * b] = x;
        total(&n)[b]
    };
    close(
        "synapse weight",
        g.synapses[0][5 * b],
        fd(at, net.synapses[0].params[5 * b]),
        1e-5,
    );
}

#[test]
fn network_batch_equals_separate_runs() {
    let (net, p, probes) = small_net();
    let all = simulate::<f64>(&net, &p, &probes).unwrap();
    for b in 0..2 {
        let one = |c: &Cell| {
            let mut c = c.clone();
            c.batch = 1;
            for pl in &mut c.channels {
                let np = pl.kind.spec().params.len();
                pl.params = pl.params[b * np..(b + 1) * np].to_vec();
            }
            c
        };
        let mut n1 = Network::new(net.cells.iter().map(one).collect()).unwrap();
        for s in &net.synapses {
            let np = s.kind.spec().params.len();
            n1.connect(
                s.kind,
                s.pre,
                s.post,
                s.delay,
                &[s.params[b * np..(b + 1) * np].to_vec()],
            )
            .unwrap();
        }
        let d = &net.drives[0];
        n1.drive(d.node, &[d.weight[b]], vec![d.signal[b].clone()])
            .unwrap();
        let r = simulate::<f64>(&n1, &p, &probes).unwrap();
        for q in 0..probes.len() {
            assert_eq!(
                r.trace(q, 0),
                all.trace(q, b),
                "probe {q}, batch element {b}"
            );
        }
    }
    // f32 follows f64 below threshold (cell 2 is passive).
    let r32 = simulate::<f32>(&net, &p, &probes).unwrap();
    for (a, b) in r32.trace(3, 0).iter().zip(all.trace(3, 0)) {
        assert!((a - b).abs() < 0.05, "f32 {a} mV vs f64 {b} mV");
    }
}

#[test]
fn bad_synapses_are_clear_errors() {
    let mut net = Network::new(vec![hh(1), passive(1, 2, 0.1, -65.0)]).unwrap();
    let err = |r: Result<usize, neurodiff::cell::CellError>| r.unwrap_err().to_string();
    let e = err(net.connect(SynapseKind::Ionotropic, (2, 0), (1, 0), 0.0, &[iono(0.01)]));
    assert!(e.contains("no cell 2"), "{e}");
    let e = err(net.connect(SynapseKind::Ionotropic, (0, 0), (1, 5), 0.0, &[iono(0.01)]));
    assert!(
        e.contains("cell 1 has no compartment 5") && e.contains("post"),
        "{e}"
    );
    let e = err(net.connect(SynapseKind::Ionotropic, (0, 0), (1, 0), -0.5, &[iono(0.01)]));
    assert!(e.contains("delay") && e.contains("-0.5"), "{e}");
    let e = err(net.connect(SynapseKind::Ionotropic, (0, 0), (1, 0), 1.0, &[iono(-0.01)]));
    assert!(e.contains("gs") && e.contains("outside"), "{e}");
    let e = err(net.connect_named("ampa", (0, 0), (1, 0), 1.0, &[iono(0.01)]));
    assert!(
        e.contains("unknown synapse `ampa`") && e.contains("ionotropic"),
        "{e}"
    );
    // A delay that is not a whole number of steps (here shorter than dt) fails at the run.
    net.connect(SynapseKind::Ionotropic, (0, 0), (1, 0), 0.01, &[iono(0.01)])
        .unwrap();
    let e = simulate::<f64>(
        &net,
        &protocol(10, vec![]),
        &[NetProbe::V { cell: 1, node: 0 }],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("synapses[0]") && e.contains("whole number of steps"),
        "{e}"
    );
    let e = simulate::<f64>(
        &net,
        &protocol(10, vec![]),
        &[NetProbe::Synapse { synapse: 4 }],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no synapse 4"), "{e}");
}

#[test]
fn evidence_task_gradient_matches_finite_differences() {
    use neurodiff::cell::train::{batch_grad, evaluate, trials, EvidenceNet, EvidenceTask, Model};
    let task = EvidenceTask {
        duration: 12.0,
        window: 4.0,
        mu: 0.5,
        ..EvidenceTask::default()
    };
    let shape = EvidenceNet {
        n_rec: 4,
        n_inh: 1,
        p_rec: 0.5,
        seed: 3,
        ..EvidenceNet::default()
    };
    let mut model = Model::new(shape, task.dt).unwrap();
    // Stronger drive so that the tiny network spikes within 12 ms.
    for b in &mut model.bias {
        *b = 0.15;
    }
    let (labels, signals) = trials(&task, 3, 5);
    let g = batch_grad(&model, &task, &labels, signals.clone(), &[11, 7]).unwrap();
    let (_, loss) = evaluate(&model, &task, &labels, &signals, 3).unwrap();
    assert!((g.loss - loss).abs() < 1e-12, "{} vs {loss}", g.loss);
    let v0 = model.values();
    let n = v0.len();
    for i in [0, 2, 4, 5, 8, 9, n - 1] {
        let at = |x: f64| {
            let mut m = model.clone();
            let mut v = v0.clone();
            v[i] = x;
            m.set_values(&v);
            evaluate(&m, &task, &labels, &signals, 3).unwrap().1
        };
        close(
            &format!("trained quantity {i}"),
            g.grad[i],
            fd(at, v0[i]),
            1e-5,
        );
    }
}

/// The network on Burn tensors (`cell::tensor_net`, `NdArray<f64>`): the fused network's traces
/// (voltages and a delayed synapse's conductance, both delays and the current synapse, the
/// drive) and the fused adjoint's gradient for every channel parameter, synapse parameter,
/// drive weight and passive property, whatever the chunk length.
#[test]
fn network_on_tensors_matches_the_fused_network_and_its_adjoint() {
    let (net, p, probes) = small_net();
    tensor_net_vs_fused(&net, &p, &probes, &SCALES, &[1000, 37]);
}

/// The calcium network (a pool, `sk_e2`, a voltage clamp) on tensors: the same checks, the
/// pool's parameters included.
#[test]
fn calcium_network_on_tensors_matches_the_fused_network_and_its_adjoint() {
    let (net, p, probes) = calcium_net();
    tensor_net_vs_fused(&net, &p, &probes, &[10.0, 10.0, 1.0, 1.0], &[1000]);
}

/// `net` on `NdArray<f64>` against the fused network: traces to 1e-7, loss, and the gradient of
/// every channel and pool parameter, synapse parameter, drive weight and passive property to
/// 1e-6 of the fused adjoint, for chunks of `chunks` steps.
fn tensor_net_vs_fused(
    net: &Network,
    p: &Protocol,
    probes: &[NetProbe],
    scales: &[f64],
    chunks: &[usize],
) {
    use neurodiff::cell::tensor_net;
    type F64 = burn::backend::NdArray<f64>;
    let dev = Default::default();
    let fused = simulate::<f64>(net, p, probes).unwrap();
    let ours = tensor_net::simulate::<F64>(net, p, probes, &dev).unwrap();
    assert_eq!(ours.data.len(), fused.data.len());
    let worst = ours
        .data
        .iter()
        .zip(&fused.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-7, "{worst} from the fused network");
    assert!(
        (0..probes.len()).any(|q| !fused.crossings(q, 0, 0.0).is_empty()),
        "a cell spikes"
    );
    let loss = |r: &Recording| Ok(loss_of(r, scales));
    let reference = value_and_grad(net, p, probes, &[22], loss).unwrap();
    assert_eq!(reference.passive.len(), net.merged.passive.len());
    assert_eq!(reference.pools.len(), net.merged.pools.len());
    for &chunk in chunks {
        let g = tensor_net::value_and_grad::<F64>(net, p, probes, chunk, loss, &dev).unwrap();
        for (a, b) in g.loss.iter().zip(&reference.loss) {
            assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "loss {a} vs {b}");
        }
        let groups = [
            ("channels", &g.channels, &reference.channels),
            ("pools", &g.pools, &reference.pools),
            ("synapses", &g.synapses, &reference.synapses),
            ("drives", &g.drives, &reference.drives),
            ("passive", &g.passive, &reference.passive),
        ];
        for (what, ours, theirs) in groups {
            assert_eq!(ours.len(), theirs.len(), "{what}");
            for (i, (x, y)) in ours.iter().zip(theirs.iter()).enumerate() {
                for (q, (a, b)) in x.iter().zip(y).enumerate() {
                    close(&format!("chunk {chunk}: {what}[{i}][{q}]"), *a, *b, 1e-6);
                }
            }
        }
    }
}

/// A network file (`neurodiff::cell::net_config`): two ball-and-stick cells `a` and an HH point
/// cell `b`, synapses all-to-all from `a` onto `b` (delayed), one-to-one from a dendrite of
/// `a[0]` onto `a[1]`, a tanh synapse back from `b`; a current step into both `a` cells, a weak
/// voltage clamp on `b`; records of voltages, a gate, the clamp current and the conductances.
const NET_TOML: &str = r#"
dt = 0.025
duration = 12.0

[[cells]]
name = "a"
count = 2
[[cells.branches]]
name = "soma"
group = "soma"
length = 20.0
radius = 10.0
[[cells.branches]]
name = "dend"
parent = 0
group = "basal"
length = 150.0
radius = 1.0
ncomp = 3
[cells.passive.all]
ra = 120.0
[[cells.channels]]
name = "hh"
groups = ["soma"]
[[cells.channels]]
name = "leak"
groups = ["basal"]
params = { g = 0.1, e = -65.0 }

[[cells]]
name = "b"
[[cells.branches]]
name = "soma"
group = "soma"
length = 20.0
radius = 10.0
[[cells.channels]]
name = "hh"

[[synapses]]
kind = "ionotropic"
pre = { cell = "a" }
post = { cell = "b" }
delay = 0.5
params = { gs = [0.02, 0.05], delta = 2.0 }

[[synapses]]
kind = "ionotropic"
pre = { cell = [0], branch = "dend", x = 0.9 }
post = { cell = [1], branch = "soma" }
rule = "one_to_one"
params = { gs = 0.01, v_th = -50.0 }

[[synapses]]
kind = "tanh_rate"
pre = { cell = 2 }
post = { cell = "a", branch = 1, x = 0.2 }
delay = 0.1
params = { gs = -0.02, x_offset = -60.0, slope = 0.05 }

[[stimuli]]
cell = "a"
branch = "soma"
amp = [0.3, 0.6]
delay = 1.0
dur = 2.0

[[stimuli]]
kind = "vclamp"
cell = 2
branch = "soma"
rs = 200.0
amp1 = -60.0
dur1 = 8.0

[[record]]
cell = "a"
[[record]]
cell = 0
branch = "dend"
x = 1.0
[[record]]
cell = "b"
var = "hh.m"
[[record]]
cell = "b"
var = "vclamp.i"
[[record]]
synapses = 0
"#;

/// The network of [`NET_TOML`] built with the library's own calls, and its probes.
fn net_in_code() -> (Network, Protocol, Vec<NetProbe>) {
    let stick = |batch| {
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
                    length: 150.0,
                    radius: 1.0,
                    ncomp: 3,
                    group: Group::Basal,
                },
            ],
        };
        let mut c = Cell::new(
            m,
            |_| Passive {
                ra: 120.0,
                ..Passive::default()
            },
            batch,
        )
        .unwrap();
        c.insert(
            ChannelKind::Hh,
            |_, b| b.group == Group::Soma,
            &[ChannelKind::Hh.spec().defaults()],
        )
        .unwrap();
        c.insert(
            ChannelKind::Leak,
            |_, b| b.group == Group::Basal,
            &[vec![0.1, -65.0]],
        )
        .unwrap();
        c
    };
    let mut b = Cell::new(soma(1), |_| Passive::default(), 2).unwrap();
    b.insert(
        ChannelKind::Hh,
        |_, _| true,
        &[ChannelKind::Hh.spec().defaults()],
    )
    .unwrap();
    let cells = vec![stick(2), stick(2), b];
    let dend = |c: &Cell, x| c.node_at(1, x).unwrap();
    let (d09, d02, d1) = (
        dend(&cells[0], 0.9),
        dend(&cells[0], 0.2),
        dend(&cells[0], 1.0),
    );
    let mut net = Network::new(cells).unwrap();
    let mut iono = Vec::new();
    for gs in [0.02, 0.05] {
        let mut p = SynapseKind::Ionotropic.spec().defaults();
        p[0] = gs;
        p[4] = 2.0;
        iono.push(p);
    }
    for pre in [0, 1] {
        net.connect(SynapseKind::Ionotropic, (pre, 0), (2, 0), 0.5, &iono)
            .unwrap();
    }
    let mut p = SynapseKind::Ionotropic.spec().defaults();
    p[0] = 0.01;
    p[3] = -50.0;
    net.connect(SynapseKind::Ionotropic, (0, d09), (1, 0), 0.0, &[p])
        .unwrap();
    for post in [0, 1] {
        net.connect(
            SynapseKind::TanhRate,
            (2, 0),
            (post, d02),
            0.1,
            &[vec![-0.02, -60.0, 0.05]],
        )
        .unwrap();
    }
    let off = net.offset.clone();
    let step = |node, b, amp| Clamp {
        node,
        batch: Some(b),
        waveform: Waveform::Step {
            amp,
            delay: 1.0,
            dur: 2.0,
        },
    };
    let mut p = protocol(480, vec![]);
    for cell in [0, 1] {
        p.clamps.push(step(off[cell], 0, 0.3));
        p.clamps.push(step(off[cell], 1, 0.6));
    }
    p.vclamps.push(VClamp {
        node: off[2],
        rs: 200.0,
        amp: vec![[-60.0, 0.0, 0.0]],
        dur: [8.0, 0.0, 0.0],
    });
    let m_gate = ChannelKind::Hh
        .spec()
        .gates
        .iter()
        .position(|g| g.name == "m")
        .unwrap();
    let probes = vec![
        NetProbe::V { cell: 0, node: 0 },
        NetProbe::V { cell: 1, node: 0 },
        NetProbe::V { cell: 0, node: d1 },
        NetProbe::Merged(neurodiff::cell::Probe::Gate {
            channel: 4,
            node: off[2],
            gate: m_gate,
        }),
        NetProbe::Merged(neurodiff::cell::Probe::VClampCurrent { clamp: 0 }),
        NetProbe::Synapse { synapse: 0 },
        NetProbe::Synapse { synapse: 1 },
    ];
    (net, p, probes)
}

/// The network file gives exactly the network built by the library's calls (cells, pairings,
/// nodes, delays, parameters, clamps on populations, records), and it does something: the
/// stimulated cells spike, and `b` responds only after the delayed synapses open.
#[test]
fn network_config_builds_the_network_of_the_library_calls() {
    use neurodiff::cell::net_config::NetConfig;
    let dir = crate::common::tmpdir("net_config");
    let path = dir.join("net.toml");
    std::fs::write(&path, NET_TOML).unwrap();
    let (_, r) = NetConfig::load_resolved(&path).unwrap();
    assert_eq!(r.cell_names, ["a[0]", "a[1]", "b"]);
    assert_eq!(r.synapse_entries, [0..2, 2..3, 3..5]);
    assert_eq!(
        r.labels,
        [
            "a[0]:soma(0.5).v",
            "a[1]:soma(0.5).v",
            "a[0]:dend(1).v",
            "b:soma(0.5).hh.m",
            "b:soma(0.5).vclamp.i",
            "synapses[0] a[0]→b.g",
            "synapses[0] a[1]→b.g",
        ]
    );
    assert_eq!(r.units, ["mV", "mV", "mV", "1", "nA", "µS", "µS"]);
    let ours = simulate::<f64>(&r.network, &r.protocol, &r.probes).unwrap();
    let (net, p, probes) = net_in_code();
    let theirs = simulate::<f64>(&net, &p, &probes).unwrap();
    assert_eq!(ours.data, theirs.data);
    // Both `a` cells spike in both elements; the conductance onto `b` is at rest until a
    // presynaptic spike has crossed v_th (−35 mV) and the delay (0.5 ms) has passed.
    for b in 0..2 {
        let t_pre = theirs.crossings(0, b, -35.0)[0].min(theirs.crossings(1, b, -35.0)[0]);
        let g = theirs.trace(5, b);
        let rest = g[0];
        let onset = g.iter().position(|&x| x > rest * 10.0).unwrap() as f64 * DT;
        assert!(
            onset >= t_pre + 0.5 && onset <= t_pre + 0.5 + 0.3,
            "element {b}: conductance rises at {onset} ms, the spike crossed −35 mV at {t_pre} ms"
        );
    }
}

/// A network file's records of a gate and a clamp current on tensors: the fused network's
/// traces, and the fused adjoint's gradient (checked itself against finite differences for the
/// synapse weight and a conductance of the clamped cell) with the clamp current in the loss.
#[test]
fn network_config_records_on_tensors_and_in_the_adjoint() {
    use neurodiff::cell::tensor_net;
    type F64 = burn::backend::NdArray<f64>;
    let (net, mut p, probes) = net_in_code();
    p.steps = 240;
    let dev = Default::default();
    let fused = simulate::<f64>(&net, &p, &probes).unwrap();
    let ours = tensor_net::simulate::<F64>(&net, &p, &probes, &dev).unwrap();
    let worst = ours
        .data
        .iter()
        .zip(&fused.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-7, "{worst} from the fused network");
    let clamp_i = fused.trace(4, 0);
    assert!(clamp_i[100].abs() > 1e-3, "the clamp passes current");
    const S: [f64; 7] = [10.0, 10.0, 10.0, 0.1, 0.05, 1e-3, 1e-3];
    let loss = |r: &Recording| Ok(loss_of(r, &S));
    let reference = value_and_grad(&net, &p, &probes, &[16, 4], loss).unwrap();
    let g = tensor_net::value_and_grad::<F64>(&net, &p, &probes, 60, loss, &dev).unwrap();
    for (what, ours, theirs) in [
        ("channels", &g.channels, &reference.channels),
        ("synapses", &g.synapses, &reference.synapses),
    ] {
        for (i, (x, y)) in ours.iter().zip(theirs.iter()).enumerate() {
            for (q, (a, b)) in x.iter().zip(y).enumerate() {
                close(&format!("{what}[{i}][{q}]"), *a, *b, 1e-6);
            }
        }
    }
    let at = |net: &Network| loss_of(&simulate::<f64>(net, &p, &probes).unwrap(), &S).loss;
    // The first synapse's weight in element 1, and b's gnabar in element 0.
    let x0 = net.synapses[0].params[5];
    let fd_syn = fd(
        |x| {
            let mut n = net.clone();
            n.synapses[0].params[5] = x;
            at(&n)[1]
        },
        x0,
    );
    close("synapse 0 gs", reference.synapses[0][5], fd_syn, 1e-5);
    let x0 = net.merged.channels[4].params[0];
    let fd_na = fd(
        |x| {
            let mut n = net.clone();
            n.merged.channels[4].params[0] = x;
            at(&n)[0]
        },
        x0,
    );
    close("b gnabar", reference.channels[4][0], fd_na, 1e-5);
}

/// Bad network files are errors naming the entry and the problem, and a network file is
/// refused where a single cell is needed.
#[test]
fn bad_network_configs_are_clear_errors() {
    use neurodiff::cell::net_config::NetConfig;
    use neurodiff::cell::CellConfig;
    let dir = crate::common::tmpdir("net_config_bad");
    let path = dir.join("net.toml");
    let err = |text: &str| {
        std::fs::write(&path, text).unwrap();
        NetConfig::load_resolved(&path).unwrap_err().to_string()
    };
    let with = |from: &str, to: &str| {
        assert!(NET_TOML.contains(from), "{from}");
        NET_TOML.replacen(from, to, 1)
    };
    let cases = [
        (
            with("kind = \"tanh_rate\"", "kind = \"ampa\""),
            vec!["synapses[2].kind", "ampa", "ionotropic"],
        ),
        (
            with("post = { cell = \"b\" }", "post = { cell = 3 }"),
            vec!["synapses[0].post.cell", "no cell 3"],
        ),
        (
            with("post = { cell = \"b\" }", "post = { cell = \"c\" }"),
            vec!["no [[cells]] entry named `c`", "a, b"],
        ),
        (
            with(
                "post = { cell = [1], branch",
                "post = { cell = [1, 0], branch",
            ),
            vec!["synapses[1].rule", "1 and 2"],
        ),
        (
            with("post = { cell = [1], branch", "post = { cell = [0], branch"),
            vec!["cell 0 with itself", "autapses"],
        ),
        (
            with("delay = 0.5", "delay = 0.51"),
            vec!["synapses[0].delay", "whole number"],
        ),
        (
            with("gs = 0.01, v_th", "gz = 0.01, v_th"),
            vec!["synapses[1].params.gz", "gs, e_syn"],
        ),
        (
            with("gs = 0.01, v_th", "gs = -0.01, v_th"),
            vec!["gs", "outside"],
        ),
        (
            with("gs = 0.01, v_th", "gs = [1.0, 2.0, 3.0], v_th"),
            vec!["batch has 3"],
        ),
        (
            with("branch = \"dend\"\nx = 1.0", "branch = \"axon\"\nx = 1.0"),
            vec!["record[1]", "no branch named `axon`"],
        ),
        (
            with("synapses = 0", "synapses = 7"),
            vec!["record[4]", "no [[synapses]] entry 7"],
        ),
        (
            with("synapses = 0", "synapses = 0\nvar = \"hh.m\""),
            vec!["record[4]", "only `synapses`"],
        ),
        (
            with("name = \"b\"\n", "name = \"b\"\nfile = \"x.toml\"\n"),
            vec!["cells[1]", "not both"],
        ),
        (
            with("name = \"b\"\n", "name = \"a\"\n"),
            vec!["cells[1].name", "`a`"],
        ),
        (with("count = 2", "count = 0"), vec!["cells[0].count"]),
        (
            with(
                "name = \"hh\"\n\n[[synapses]]",
                "name = \"hx\"\n\n[[synapses]]",
            ),
            vec!["cells[1]", "hx"],
        ),
        (
            with("rs = 200.0", "rs = 200.0\nwhat = 1"),
            vec!["unknown field `what`"],
        ),
    ];
    for (text, want) in cases {
        let e = err(&text);
        for w in want {
            assert!(e.contains(w), "`{w}` not in: {e}");
        }
    }
    // A cell file that does not exist names itself.
    let e = err(&with("name = \"b\"\n[[cells.branches]]\nname = \"soma\"\ngroup = \"soma\"\nlength = 20.0\nradius = 10.0\n[[cells.channels]]\nname = \"hh\"\n", "name = \"b\"\nfile = \"missing.toml\"\n"));
    assert!(e.contains("missing.toml"), "{e}");
    // A network file is not a cell, and a cell file takes no `cell` key.
    std::fs::write(&path, NET_TOML).unwrap();
    let e = CellConfig::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("network config") && e.contains("--lyapunov"),
        "{e}"
    );
    let cell = "duration = 1.0\n[[branches]]\ngroup = \"soma\"\nlength = 10.0\nradius = 5.0\n[[record]]\ncell = 1\n";
    std::fs::write(&path, cell).unwrap();
    let e = CellConfig::load_resolved(&path).unwrap_err().to_string();
    assert!(
        e.contains("record[0]") && e.contains("`cell` belongs to a network"),
        "{e}"
    );
}

/// `neurodiff cell` runs the bundled network (`data/cell/network.toml`): its recording is the
/// library's run of the same file; the chain's spikes arrive one after another, each at least
/// the synaptic delay (2 ms) after the spike before it; the inhibition (off in element 0, on in
/// element 1) opens only in element 1, and then fewer chain cells spike; `--fit` on this
/// network file (a batch of two) is refused with a clear message and no output.
#[test]
fn cli_runs_the_bundled_network() {
    use neurodiff::cell::net_config::NetConfig;
    let dir = crate::common::tmpdir("net-cli");
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/cell/network.toml");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_neurodiff"))
            .current_dir(&dir)
            .args(["cell", "--config", cfg.to_str().unwrap(), "-q"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&["--out", "out/n.npy"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let arr = neurodiff::io::read_npy(&dir.join("out/n.npy")).unwrap();
    let (_, r) = NetConfig::load_resolved(&cfg).unwrap();
    let want = simulate::<f64>(&r.network, &r.protocol, &r.probes).unwrap();
    assert_eq!(arr.shape, vec![2401, 9, 2]);
    assert_eq!(arr.data, want.data);
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/n.json")).unwrap()).unwrap();
    assert_eq!(side["cells"].as_array().unwrap().len(), 5);
    assert_eq!(side["synapses"].as_array().unwrap().len(), 3 + 4 + 4);
    assert!(std::fs::metadata(dir.join("out/n.png")).unwrap().len() > 1000);
    // The chain without inhibition: pyr[i] → pyr[i+1], delay 2 ms.
    let first = |j: usize, b: usize| want.crossings(j, b, -20.0).first().copied();
    let mut t = first(0, 0).expect("pyr[0] spikes");
    for j in 1..4 {
        let next = first(j, 0).unwrap_or_else(|| panic!("pyr[{j}] spikes"));
        assert!(
            next > t + 2.0,
            "pyr[{j}] at {next} ms, pyr[{}] at {t} ms",
            j - 1
        );
        t = next;
    }
    // The inhibitory conductances (records 5..9): zero without, open with inhibition.
    for j in 5..9 {
        assert!(want.trace(j, 0).iter().all(|&g| g == 0.0));
        assert!(want.trace(j, 1).iter().any(|&g| g > 0.01), "record {j}");
    }
    let spikes = |b| (0..4).filter(|&j| first(j, b).is_some()).count();
    let excited_late = |b| {
        (0..4)
            .map(|j| want.crossings(j, b, -20.0).len())
            .sum::<usize>()
    };
    assert!(spikes(0) == 4 && excited_late(1) < excited_late(0));

    let o = run(&[
        "--fit",
        "--target",
        "x.npy",
        "--target-dt",
        "0.025",
        "--out",
        "out/f.json",
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("a batch of 2"), "{e}");
    assert!(!dir.join("out/f.json").exists());
}

/// A network file for `neurodiff cell --fit`: an HH cell `pre` driven to spike, exciting two
/// HH cells `post` through ionotropic synapses 1 ms late (an EPSP of a few mV, no spike);
/// `pre`'s leak is 0.3 mS/cm², `post`'s `GL_POST`, the synapses' weight `GS` µS.
const NET_FIT_TOML: &str = r#"
dt = 0.025
duration = 10.0

[[cells]]
name = "pre"
[[cells.branches]]
name = "soma"
group = "soma"
length = 20.0
radius = 10.0
[[cells.channels]]
name = "hh"
params = { gl = 0.3 }

[[cells]]
name = "post"
count = 2
[[cells.branches]]
name = "soma"
group = "soma"
length = 20.0
radius = 10.0
[[cells.channels]]
name = "hh"
params = { gl = GL_POST }

[[synapses]]
kind = "ionotropic"
pre = { cell = "pre" }
post = { cell = "post" }
delay = 1.0
params = { gs = GS, delta = 2.0 }

[[stimuli]]
cell = 0
branch = "soma"
amp = 0.3
delay = 1.0
dur = 2.0

[[record]]
cell = "pre"

[[record]]
cell = "post"
"#;

/// `neurodiff cell --fit` on a network file: the target is made with `post`'s leak 0.5 and the
/// synapses' weight 0.0002 µS (an EPSP of 4.8 mV), the fit starts from 0.3 and 0.0004 and fits
/// `post:hh.gl` (only the `post` cells: fitting `pre`'s leak too would move `pre`'s trace away
/// from the target's) and `synapses[0].gs`; the best restart gets within 1e-3 of its starting
/// loss and the values within 1 % of the target's. Bad network parameters are clear errors.
#[test]
fn cli_fits_a_network_file() {
    let dir = crate::common::tmpdir("net-fit");
    let file = |gl: &str, gs: &str| NET_FIT_TOML.replace("GL_POST", gl).replace("GS", gs);
    std::fs::write(dir.join("target.toml"), file("0.5", "0.0002")).unwrap();
    std::fs::write(dir.join("net.toml"), file("0.3", "0.0004")).unwrap();
    let bin = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_neurodiff"))
            .current_dir(&dir)
            .args(args)
            .output()
            .unwrap()
    };
    let o = bin(&[
        "cell",
        "--config",
        "target.toml",
        "--out",
        "target.npy",
        "-q",
        "--no-figure",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = neurodiff::io::read_npy(&dir.join("target.npy")).unwrap();
    assert_eq!(t.shape, vec![401, 3, 1]);
    let col = |c: usize| (0..401).map(|k| t.data[k * 3 + c]).collect::<Vec<f64>>();
    let max = |v: &[f64]| v.iter().cloned().fold(f64::MIN, f64::max);
    assert!(max(&col(0)) > 0.0, "pre spikes");
    let epsp = max(&col(1)) - col(1)[0];
    assert!(
        epsp > 1.0 && max(&col(1)) < -40.0,
        "an EPSP of {epsp} mV, no spike"
    );
    let fit = |params: &[&str], out: &str| {
        let mut a = vec![
            "cell",
            "--config",
            "net.toml",
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
            out,
            "-q",
        ];
        for p in params {
            a.extend_from_slice(&["--fit-param", p]);
        }
        bin(&a)
    };
    let o = fit(
        &["post:hh.gl=0.1..1.0", "synapses[0].gs=0.00005..0.002"],
        "out/fit.json",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/fit.json")).unwrap()).unwrap();
    let b = j["best_restart"].as_u64().unwrap() as usize;
    let first = j["loss_history"][0][b].as_f64().unwrap();
    let best = j["restarts"][b]["best_loss"].as_f64().unwrap();
    assert!(best < 1e-3 * first, "restart {b}: {best} from {first}");
    assert_eq!(j["restarts"][0]["start"]["post:hh.gl"], 0.3);
    assert_eq!(j["restarts"][0]["start"]["synapses[0].gs"], 0.0004);
    let fitted = &j["restarts"][b]["fitted"];
    for (name, want) in [("post:hh.gl", 0.5), ("synapses[0].gs", 0.0002)] {
        let got = fitted[name].as_f64().unwrap();
        assert!((got / want - 1.0).abs() < 0.01, "{name}: {got} vs {want}");
    }
    assert!(dir.join("out/fit.png").exists());
    for (param, want) in [
        ("synapses[3].gs=0.00005..0.002", "no [[synapses]] entry 3"),
        ("synapses[0].gmax=0.00005..0.002", "has no parameter `gmax`"),
        ("synapses[0].gs=0.002..0.005", "strictly inside"),
        (
            "inter:hh.gl=0.1..1.0",
            "no cell or [[cells]] entry named `inter`",
        ),
        ("post:hh.gl=0.1..2000", "outside the parameter's range"),
        ("post:leak.g=0.1..1.0", "leak"),
    ] {
        let o = fit(&[param], "out/bad.json");
        assert!(!o.status.success(), "{param}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(want), "{param}: {e}");
        assert!(!dir.join("out/bad.json").exists());
    }
}
