//! `neurodiff fit` as a user meets it: outputs, exact resumption after an interruption, and bad
//! input (each a clear error naming the problem, a non-zero exit, and no output file left).

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{stderr, tmpdir, write_npy};

/// A small, fast fit of the default problem (Hopf G and a on the bundled HCP data).
fn fit(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "fit",
        "-q",
        "--duration",
        "40",
        "--transient",
        "5",
        "--restarts",
        "2",
        "--out-dir",
        "out",
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_neurodiff"))
        .current_dir(dir)
        .args(&args)
        .output()
        .unwrap()
}

#[test]
fn writes_its_outputs_and_resumes_exactly() {
    // Three iterations in one go ...
    let a = tmpdir("straight");
    let o = fit(&a, &["--iterations", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "fit.json",
        "history.csv",
        "fc_sim.npy",
        "fit.png",
        "state.json",
    ] {
        assert!(a.join("out").join(f).is_file(), "{f} missing");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("out/fit.json")).unwrap()).unwrap();
    let g = report["best"]["params"]["G"].as_f64().unwrap();
    let r = report["best"]["corr_fc"].as_f64().unwrap();
    assert!((0.0..=3.0).contains(&g), "G = {g} outside its bounds");
    assert!(r > -1.0 && r < 1.0, "corr = {r}");
    // history.csv: a header and one line per iteration and restart.
    let hist = std::fs::read_to_string(a.join("out/history.csv")).unwrap();
    assert_eq!(hist.lines().count(), 1 + 3 * 2, "{hist}");
    // FC of the best run: 80 × 80, ones on the diagonal.
    let npy = std::fs::read(a.join("out/fc_sim.npy")).unwrap();
    let hlen = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let header = String::from_utf8_lossy(&npy[10..10 + hlen]).into_owned();
    assert!(header.contains("(80, 80)"), "{header}");

    // ... equals one iteration, an interruption, and a resumed run to three.
    let b = tmpdir("resumed");
    let o = fit(&b, &["--iterations", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = fit(&b, &["--iterations", "3", "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(b.join("out/history.csv")).unwrap(),
        hist,
        "a resumed fit must retrace the uninterrupted one"
    );

    // Resuming with other settings is refused, and says why.
    let o = fit(&b, &["--iterations", "4", "--resume", "--seed", "9"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("other settings"), "{}", stderr(&o));
}

/// Runs a fit that must fail with every needle in its message and leave `out/` empty.
fn assert_clean_failure(name: &str, extra: &[&str], needles: &[&str], setup: impl Fn(&Path)) {
    let dir = tmpdir(name);
    setup(&dir);
    let mut args = vec!["--iterations", "1"];
    args.extend_from_slice(extra);
    let o = fit(&dir, &args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{extra:?} should fail; stderr: {err}");
    assert!(!err.contains("panicked"), "{extra:?} panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "{extra:?}: expected `{n}` in: {err}");
    }
    let out = dir.join("out");
    if out.exists() {
        let left: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
        assert!(left.is_empty(), "{extra:?} left files behind: {left:?}");
    }
}

#[test]
fn target_fc_of_the_wrong_size() {
    assert_clean_failure("size", &["--target-fc", "fc.npy"], &["target", "80"], |d| {
        write_npy(&d.join("fc.npy"), &[10, 10], &[0.5; 100])
    });
}

#[test]
fn non_finite_target_fc() {
    assert_clean_failure(
        "nan",
        &["--target-fc", "fc.npy"],
        &["fc.npy", "finite", "row 3", "column 7"],
        |d| {
            let mut m = vec![0.1; 80 * 80];
            m[3 * 80 + 7] = f64::NAN;
            write_npy(&d.join("fc.npy"), &[80, 80], &m);
        },
    );
}

#[test]
fn bounds_with_lower_not_below_upper() {
    assert_clean_failure("bounds", &["--fit", "G=3.0,1.0"], &["G", "lower"], |_| {});
}

#[test]
fn initial_value_outside_its_bounds() {
    assert_clean_failure(
        "init",
        &["--fit", "G=0.0,3.0", "--init", "G=5.0"],
        &["G", "5"],
        |_| {},
    );
}

#[test]
fn unknown_parameter_and_missing_target_file() {
    assert_clean_failure("unknown", &["--fit", "Gee=0,1"], &["Gee"], |_| {});
    assert_clean_failure(
        "missing",
        &["--target-fc", "nowhere.npy"],
        &["nowhere.npy"],
        |_| {},
    );
}

/// Reads history.csv into (iteration, restart, loss, corr, params...) rows.
fn history(dir: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(dir.join("out/history.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.trim().parse().unwrap()).collect())
        .collect()
}

#[test]
fn adjoint_and_autodiff_gradients_take_the_same_fit() {
    // The same fit with each gradient engine: the same losses at the first iteration (same
    // simulation, f64), and — since each step uses the gradient — the same parameters after
    // three steps if the two gradients agree.
    let common = ["--iterations", "3", "--backend", "ndarray64"];
    let a = tmpdir("adjoint");
    let o = fit(&a, &[&common[..], &["--gradient", "adjoint"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let b = tmpdir("autodiff");
    let o = fit(&b, &[&common[..], &["--gradient", "autodiff"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let (ha, hb) = (history(&a), history(&b));
    assert_eq!(ha.len(), 6);
    assert_eq!(ha.len(), hb.len());
    for (ra, rb) in ha.iter().zip(&hb) {
        for (x, y) in ra.iter().zip(rb) {
            assert!(
                (x - y).abs() <= 1e-6 * (1.0 + y.abs()),
                "adjoint {ra:?} vs autodiff {rb:?}"
            );
        }
    }
    // Parameters moved (the comparison is not between two unchanged starting points).
    assert!((ha[4][4] - ha[0][4]).abs() > 1e-6, "{ha:?}");

    // Asking for the adjoint where it does not apply is a clear error.
    let c = tmpdir("adjoint-delays");
    let o = fit(
        &c,
        &["--gradient", "adjoint", "--speed", "3", "--iterations", "1"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("delays"), "{}", stderr(&o));
}

/// `--resume` alone continues a fit started with non-default settings; a flag that disagrees
/// with the saved fit is named.
#[test]
fn resume_alone_takes_the_saved_settings() {
    let d = tmpdir("resume-alone");
    let o = fit(&d, &["--iterations", "1", "--seed", "7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = |extra: &[&str]| {
        let mut args = vec!["fit", "-q", "--out-dir", "out", "--resume"];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_neurodiff"))
            .current_dir(&d)
            .args(&args)
            .output()
            .unwrap()
    };
    let o = again(&["--iterations", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let hist = std::fs::read_to_string(d.join("out/history.csv")).unwrap();
    assert_eq!(hist.lines().count(), 1 + 2 * 2, "{hist}");
    let o = again(&["--iterations", "3", "--seed", "8"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("noise") && err.contains("saved"), "{err}");
}
