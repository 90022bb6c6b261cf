//! The cell on Burn tensors (`neurodiff::cell::tensor`): its traces against the fused solver's
//! (f64, a branched cell with siblings at a junction, both schemes) and against NEURON's
//! (the branched reference case, f32); its chunked gradient against the fused adjoint (itself
//! checked against finite differences) for every parameter of a batch-2 ball-and-stick and of
//! NEURON's `hh` whole (9 parameter directions), the same gradient for every chunk length, one
//! finite-difference check of its own; a voltage clamp (its current recorded) against the
//! fused solver and adjoint; calcium (a pool, Nernst reversal potentials, `sk_e2` reading the
//! pool) against the fused solver and adjoint in both schemes, pool parameters and passive
//! properties included; a bad chunk and divergence as clear errors.

use burn::backend::NdArray;
use neurodiff::cell::adjoint::value_and_grad as adjoint;
use neurodiff::cell::tensor;
use neurodiff::cell::{
    simulate, Branch, Cell, Clamp, Group, Morphology, Passive, Probe, Protocol, Recording, Scheme,
    VClamp, Waveform,
};
use neurodiff_models::channel::ChannelKind;

type F64 = NdArray<f64>;
type F32 = NdArray<f32>;

/// A Y-shaped cell: a soma with `hh`, two dendrites off its end (siblings at one junction) and
/// a third off the first (a second junction), leak everywhere and `ih` on the dendrites; batch
/// 2 with different conductances and stimuli; records the soma, two dendrite tips and a gate.
fn y_cell(steps: usize, scheme: Scheme) -> (Cell, Protocol) {
    let br = |name: &str, parent, length, radius, ncomp, group| Branch {
        name: Some(name.into()),
        parent,
        length,
        radius,
        ncomp,
        group,
    };
    let m = Morphology {
        branches: vec![
            br("soma", None, 20.0, 10.0, 1, Group::Soma),
            br("d0", Some(0), 150.0, 1.0, 3, Group::Basal),
            br("d1", Some(0), 100.0, 0.8, 2, Group::Basal),
            br("d2", Some(1), 80.0, 0.5, 2, Group::Apical),
        ],
    };
    let mut cell = Cell::new(m, |_| Passive { cm: 1.0, ra: 100.0 }, 2).unwrap();
    let soma = |_: usize, b: &Branch| b.group == Group::Soma;
    let dend = |_: usize, b: &Branch| b.group != Group::Soma;
    cell.insert(
        ChannelKind::Hh,
        soma,
        &[
            vec![120.0, 36.0, 0.3, 50.0, -77.0, -54.3],
            vec![100.0, 30.0, 0.4, 55.0, -80.0, -60.0],
        ],
    )
    .unwrap();
    cell.insert(
        ChannelKind::Leak,
        dend,
        &[vec![0.3, -54.3], vec![0.5, -65.0]],
    )
    .unwrap();
    cell.insert(ChannelKind::Ih, dend, &[vec![5.0, -45.0], vec![2.0, -40.0]])
        .unwrap();
    let tip1 = cell.node_at(2, 1.0).unwrap();
    let tip2 = cell.node_at(3, 0.9).unwrap();
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
                node: tip2,
                batch: None,
                waveform: Waveform::Samples((0..steps).map(|k| 0.1 * (k % 7) as f64).collect()),
            },
        ],
        scheme,
        probes: vec![
            Probe::V { node: 0 },
            Probe::V { node: tip1 },
            Probe::V { node: tip2 },
            Probe::Gate {
                channel: 0,
                node: 0,
                gate: 2,
            },
        ],
        ..Protocol::default()
    };
    (cell, p)
}

fn worst(a: &Recording, b: &Recording) -> f64 {
    assert_eq!(a.data.len(), b.data.len(), "sample counts");
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn tensor_cell_matches_the_fused_solver_on_a_branched_cell() {
    for scheme in [Scheme::BackwardEuler, Scheme::CrankNicolson] {
        let (cell, p) = y_cell(400, scheme);
        let fused = simulate::<f64>(&cell, &p).unwrap();
        let ours = tensor::simulate::<F64>(&cell, &p, &Default::default()).unwrap();
        assert_eq!(ours.n_probes, 4);
        assert_eq!(ours.len(), 401);
        let spikes = fused.crossings(0, 0, 0.0).len();
        assert!(spikes >= 1, "{scheme:?}: element 0 fires ({spikes})");
        let w = worst(&ours, &fused);
        assert!(w < 1e-7, "{scheme:?}: {w} from the fused solver (mV or 1)");
    }
}

#[test]
fn tensor_cell_matches_neuron_on_the_branched_and_point_cases() {
    for case in ["branched", "hh_single"] {
        let (cell, p, reference, nrec, stride) = crate::cell::neuron_case(case, 1);
        let r = tensor::simulate::<F32>(&cell, &p, &Default::default()).unwrap();
        compare(case, &r, &p, &reference, nrec, stride);
    }
}

fn compare(case: &str, r: &Recording, p: &Protocol, reference: &[f64], nrec: usize, stride: usize) {
    for j in 0..nrec {
        let ours: Vec<f64> = r.trace(j, 0).into_iter().step_by(stride).collect();
        let theirs: Vec<f64> = (0..reference.len() / nrec)
            .map(|k| reference[k * nrec + j])
            .collect();
        let dt_s = p.dt * stride as f64;
        crate::cell::compare_trace(
            &format!("tensor, {case} record {j}"),
            &ours,
            &theirs,
            dt_s,
            true,
        );
    }
}

use crate::cell_grad::loss_of;

const SCALES: [f64; 4] = [10.0, 10.0, 10.0, 0.1];

/// Per owner (a pool, a branch), `[batch][param]` rows of `a` within `tol` of `b`'s.
fn assert_same_rows(a: &[Vec<f64>], b: &[Vec<f64>], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: owners");
    for (o, (ga, gb)) in a.iter().zip(b).enumerate() {
        assert_eq!(ga.len(), gb.len(), "{what}");
        for (i, (x, y)) in ga.iter().zip(gb).enumerate() {
            let scale = x.abs().max(y.abs()).max(1e-10);
            assert!(
                (x - y).abs() <= tol * scale,
                "{what} {o}, value {i}: {x:e} vs {y:e}"
            );
        }
    }
}

fn assert_same_grad(a: &[Vec<f64>], b: &[Vec<f64>], cell: &Cell, tol: f64, what: &str) {
    for (c, (ga, gb)) in a.iter().zip(b).enumerate() {
        let spec = cell.channels[c].kind.spec();
        let np = spec.params.len();
        assert_eq!(ga.len(), gb.len());
        for (i, (x, y)) in ga.iter().zip(gb).enumerate() {
            let scale = x.abs().max(y.abs()).max(1e-10);
            assert!(
                (x - y).abs() <= tol * scale,
                "{what}: {}.{} batch {}: {x:e} vs {y:e}",
                spec.name,
                spec.params[i % np].name,
                i / np
            );
        }
    }
}

#[test]
fn tensor_cell_gradient_matches_the_adjoint_for_every_chunk_length() {
    tensor_vs_adjoint(Scheme::BackwardEuler, &[1000, 50, 7]);
}

/// Crank–Nicolson: the tensor engine's autodiff against the hand-written adjoint.
#[test]
fn tensor_cell_crank_nicolson_gradient_matches_the_adjoint() {
    tensor_vs_adjoint(Scheme::CrankNicolson, &[1000, 7]);
}

/// The Y cell's gradient under `scheme` on tensors (chunks of `chunks` steps) against the fused
/// adjoint: recording, loss, every channel parameter and the passive properties.
fn tensor_vs_adjoint(scheme: Scheme, chunks: &[usize]) {
    let (cell, p) = y_cell(240, scheme);
    same_as_adjoint(&cell, &p, &SCALES, chunks);
}

/// `cell`'s gradient on tensors (chunks of `chunks` steps) against the fused adjoint's:
/// recording, loss, every channel and pool parameter, every branch's passive properties.
fn same_as_adjoint(cell: &Cell, p: &Protocol, scales: &[f64], chunks: &[usize]) {
    let loss = |r: &Recording| Ok(loss_of(r, scales));
    let reference = adjoint(cell, p, &[16], loss).unwrap();
    assert_eq!(reference.passive.len(), cell.passive.len());
    let dev = Default::default();
    for &chunk in chunks {
        let g = tensor::value_and_grad::<F64>(cell, p, chunk, loss, &dev).unwrap();
        assert!(worst(&g.recording, &reference.recording) < 1e-7);
        for (a, b) in g.loss.iter().zip(&reference.loss) {
            assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "loss {a} vs {b}");
        }
        let what = format!("{:?}, chunk {chunk}", p.scheme);
        assert_same_grad(&g.grad, &reference.grad, cell, 1e-6, &what);
        assert_same_rows(&g.pools, &reference.pools, 1e-6, &format!("{what}: pool"));
        assert_same_rows(
            &g.passive,
            &reference.passive,
            1e-6,
            &format!("{what}: passive (C_m, R_a, radius) of branch"),
        );
    }
}

/// Calcium on tensors: the calcium cell (a pool in the soma; `ca_hva` on soma and dendrite, so
/// the Nernst potential in one compartment and the fixed reversal potential in the other;
/// `sk_e2` reading the pool in the soma and NEURON's default calcium in the dendrite).
#[test]
fn tensor_cell_runs_calcium_and_its_gradient_matches_the_adjoint() {
    let (cell, mut p) = crate::cell_grad::calcium_cell(480);
    let dev = Default::default();
    for scheme in [Scheme::BackwardEuler, Scheme::CrankNicolson] {
        p.scheme = scheme;
        let fused = simulate::<f64>(&cell, &p).unwrap();
        let ours = tensor::simulate::<F64>(&cell, &p, &dev).unwrap();
        let w = worst(&ours, &fused);
        assert!(w < 1e-7, "{scheme:?}: {w} from the fused solver");
        // The pool's calcium opens SK (its gate rises well above its resting value).
        let z = ours.trace(1, 0);
        assert!(
            z.iter().cloned().fold(0.0, f64::max) > 5.0 * z[0],
            "SK opens"
        );
        let chunks: &[usize] = match scheme {
            Scheme::BackwardEuler => &[1000, 37],
            Scheme::CrankNicolson => &[1000],
        };
        same_as_adjoint(&cell, &p, &[10.0, 0.01], chunks);
    }
}

#[test]
fn tensor_cell_gradient_matches_finite_differences() {
    // Its own check: one parameter of each kind (a conductance, a reversal potential, a rate
    // parameter's conductance on the dendrites) by central differences of the tensor forward.
    let (cell, p) = y_cell(160, Scheme::BackwardEuler);
    let dev = Default::default();
    let loss = |r: &Recording| Ok(loss_of(r, &SCALES));
    let g = tensor::value_and_grad::<F64>(&cell, &p, 40, loss, &dev).unwrap();
    for (c, b, q) in [(0, 0, 0), (0, 1, 4), (2, 0, 0), (1, 1, 1)] {
        let np = cell.channels[c].kind.spec().params.len();
        let x0 = cell.channels[c].params[b * np + q];
        let h = 1e-4 * x0.abs().max(1.0);
        let at = |x: f64| {
            let mut cc = cell.clone();
            cc.channels[c].params[b * np + q] = x;
            let r = tensor::simulate::<F64>(&cc, &p, &dev).unwrap();
            loss_of(&r, &SCALES).loss[b]
        };
        let fd = (at(x0 + h) - at(x0 - h)) / (2.0 * h);
        let ad = g.grad[c][b * np + q];
        assert!(
            (fd - ad).abs() <= 1e-5 * fd.abs().max(ad.abs()).max(1e-8),
            "placement {c} param {q} batch {b}: {ad:e} vs finite differences {fd:e}"
        );
    }
}

/// The Y cell with a voltage clamp on the tip of `d1` (a command per batch element, off for
/// the last part of the run) and its current recorded.
fn y_cell_clamped(steps: usize) -> (Cell, Protocol) {
    let (cell, mut p) = y_cell(steps, Scheme::BackwardEuler);
    let tip1 = cell.node_at(2, 1.0).unwrap();
    p.vclamps.push(VClamp {
        node: tip1,
        rs: 5.0,
        amp: vec![[-65.0, -30.0, -70.0], [-60.0, -40.0, -65.0]],
        dur: [1.0, 2.0, 1.5],
    });
    p.probes.push(Probe::VClampCurrent { clamp: 0 });
    (cell, p)
}

#[test]
fn tensor_cell_voltage_clamp_matches_the_fused_solver_and_its_adjoint() {
    // Forward: voltages and the clamp current to 1e-7 of the fused f64 solver; gradients of
    // every parameter to 1e-6 of the fused adjoint (which finite differences check), for a
    // loss that reads the clamp current too.
    let (cell, p) = y_cell_clamped(240);
    let fused = simulate::<f64>(&cell, &p).unwrap();
    let dev = Default::default();
    let ours = tensor::simulate::<F64>(&cell, &p, &dev).unwrap();
    let i = fused.trace(4, 1);
    assert!(i.iter().any(|x| x.abs() > 0.5), "the clamp passes > 0.5 nA");
    assert_eq!(i[239], 0.0, "off at 6 ms");
    let w = worst(&ours, &fused);
    assert!(w < 1e-7, "{w} from the fused solver (mV, nA or 1)");
    let scales = [10.0, 10.0, 10.0, 0.1, 1.0];
    let loss = |r: &Recording| Ok(loss_of(r, &scales));
    let reference = adjoint(&cell, &p, &[16], loss).unwrap();
    for chunk in [1000, 37] {
        let g = tensor::value_and_grad::<F64>(&cell, &p, chunk, loss, &dev).unwrap();
        assert!(worst(&g.recording, &reference.recording) < 1e-7);
        assert_same_grad(
            &g.grad,
            &reference.grad,
            &cell,
            1e-6,
            &format!("voltage clamp, chunk {chunk}"),
        );
    }
}

#[test]
fn tensor_cell_names_a_bad_chunk_and_divergence() {
    let dev = Default::default();
    let (cell, mut p) = y_cell(40, Scheme::BackwardEuler);
    let loss = |r: &Recording| Ok(loss_of(r, &SCALES));
    let e = tensor::value_and_grad::<F64>(&cell, &p, 0, loss, &dev)
        .unwrap_err()
        .to_string();
    assert!(e.contains("chunk"), "{e}");
    p.clamps[0].waveform = Waveform::Step {
        amp: 1e300, // infinite in f32
        delay: 0.0,
        dur: 1e9,
    };
    let e = tensor::simulate::<F32>(&cell, &p, &dev)
        .unwrap_err()
        .to_string();
    assert!(e.contains("diverged") && e.contains("`v`"), "{e}");
    assert!(e.contains("branch `soma` compartment 0"), "{e}");
}

#[test]
fn cli_cell_on_tensors_writes_the_fused_recordings() {
    // The bundled example on `--backend ndarray64` against the default fused f64 solver.
    let dir = crate::common::tmpdir("cell-tensor-cli");
    let run = |extra: &[&str], out: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_neurodiff"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "cell",
                "--config",
                "data/cell/cell.toml",
                "--no-figure",
                "--quiet",
                "--out",
            ])
            .arg(dir.join(out))
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        neurodiff::io::read_npy(&dir.join(out)).unwrap()
    };
    let fused = run(&[], "fused.npy");
    let ours = run(&["--backend", "ndarray64"], "tensor.npy");
    assert_eq!(ours.shape, fused.shape);
    let w = ours
        .data
        .iter()
        .zip(&fused.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(w < 1e-6, "{w} mV from the fused solver");
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tensor.json")).unwrap()).unwrap();
    assert_eq!(side["engine"], "tensor (ndarray64)");
}
