//! The `neurodiff` binary as a user meets it: the default run, config files, and bad input
//! (each a clear error naming the problem, a non-zero exit, and no output file left behind).

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{stderr, tmpdir, write_npy};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_neurodiff"))
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    bin().current_dir(dir).args(args).output().unwrap()
}

/// Asserts that a run failed with a message containing every needle and left no file in `out`.
fn assert_clean_failure(dir: &Path, args: &[&str], needles: &[&str]) {
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let mut full = args.to_vec();
    full.extend_from_slice(&["--out", "out/sim.npy", "-q"]);
    if !args.contains(&"--duration") {
        full.extend_from_slice(&["--duration", "1"]);
    }
    let o = run_in(dir, &full);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} should fail; stderr: {err}");
    for n in needles {
        assert!(
            err.contains(n),
            "{args:?}: expected `{n}` in the error, got: {err}"
        );
    }
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert!(left.is_empty(), "{args:?} left files behind: {left:?}");
}

#[test]
fn default_run_writes_npy_and_sidecar() {
    let dir = tmpdir("default");
    let o = run_in(&dir, &["simulate", "--duration", "20"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("out/sim.npy"),
        "tells where the output went: {stdout}"
    );
    let npy = std::fs::read(dir.join("out/sim.npy")).unwrap();
    let header = String::from_utf8_lossy(&npy[10..128]);
    // 20 ms sampled every 1 ms, batch 1, MPR's 2 variables, 80 regions.
    assert!(header.contains("'shape': (20, 1, 2, 80)"), "{header}");
    let hlen = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    assert_eq!(npy.len(), 10 + hlen + 20 * 2 * 80 * 4);
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/sim.json")).unwrap()).unwrap();
    assert_eq!(side["model"], "mpr");
    assert_eq!(side["shape"], serde_json::json!([20, 1, 2, 80]));
    assert_eq!(side["params"]["eta"], -5.0);
    assert_eq!(side["params"]["G"], 0.5);
    assert!(side["wall_time_s"].as_f64().unwrap() > 0.0);
    assert_eq!(side["burn_version"], "0.21.0");
}

#[test]
fn flags_override_config_and_batches_are_built() {
    let dir = tmpdir("config");
    std::fs::write(
        dir.join("run.toml"),
        "model = \"mpr\"\nduration = 5.0\nsample_every = 50\nnoise = 0.01\nseed = 3\n\
         [params]\neta = -4.8\nG = [0.1, 0.2, 0.3]\n",
    )
    .unwrap();
    let o = run_in(
        &dir,
        &[
            "simulate",
            "--config",
            "run.toml",
            "--param",
            "G=linspace(0.1,1.0,4)",
            "--out",
            "a.npy",
            "-q",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("a.json")).unwrap()).unwrap();
    // 5 ms / (50 * 0.01 ms) = 10 samples; the flag's 4-element batch wins over the file's 3.
    assert_eq!(side["shape"], serde_json::json!([10, 4, 2, 80]));
    assert_eq!(side["params"]["eta"], -4.8);
    assert_eq!(side["settings"]["seed"], 3);
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = tmpdir("bad");
    write_npy(&dir.join("rect.npy"), &[2, 3], &[0.0; 6]);
    write_npy(&dir.join("nan.npy"), &[2, 2], &[0.0, f64::NAN, 1.0, 0.0]);
    write_npy(&dir.join("neg.npy"), &[2, 2], &[0.0, -1.0, 1.0, 0.0]);
    write_npy(&dir.join("ok.npy"), &[2, 2], &[0.0, 1.0, 1.0, 0.0]);
    write_npy(&dir.join("len3.npy"), &[3, 3], &[0.0; 9]);
    write_npy(&dir.join("init.npy"), &[3, 80], &[0.0; 240]);
    std::fs::write(dir.join("broken.toml"), "model = \"mpr\"\nduration = [1,\n").unwrap();
    std::fs::write(dir.join("typo.toml"), "modle = \"mpr\"\n").unwrap();

    let s = "simulate";
    assert_clean_failure(
        &dir,
        &[s, "--connectome", "rect.npy"],
        &["rect.npy", "square"],
    );
    assert_clean_failure(
        &dir,
        &[s, "--connectome", "nan.npy"],
        &["nan.npy", "row 0, column 1", "finite"],
    );
    assert_clean_failure(
        &dir,
        &[s, "--connectome", "neg.npy"],
        &["neg.npy", "row 0, column 1", "negative"],
    );
    assert_clean_failure(
        &dir,
        &[s, "--connectome", "ok.npy", "--lengths", "len3.npy"],
        &["len3.npy", "[3, 3]", "2 × 2"],
    );
    assert_clean_failure(&dir, &[s, "--connectome", "missing.npy"], &["missing.npy"]);
    assert_clean_failure(&dir, &[s, "--param", "etta=1"], &["etta", "eta"]);
    assert_clean_failure(&dir, &[s, "--param", "tau=-1"], &["tau", "admissible"]);
    assert_clean_failure(
        &dir,
        &[s, "--param", "G=1,2", "--param", "eta=1,2,3"],
        &["batch"],
    );
    assert_clean_failure(&dir, &[s, "--model", "nosuch"], &["nosuch", "mpr"]);
    assert_clean_failure(&dir, &[s, "--dt", "0"], &["dt", "positive"]);
    assert_clean_failure(&dir, &[s, "--dt", "-0.1"], &["dt", "positive"]);
    assert_clean_failure(&dir, &[s, "--integrator", "rk5"], &["rk5", "heun"]);
    assert_clean_failure(
        &dir,
        &[s, "--integrator", "rk4", "--noise", "0.1"],
        &["rk4"],
    );
    assert_clean_failure(&dir, &[s, "--noise", "q=0.1"], &["q", "r, V"]);
    assert_clean_failure(
        &dir,
        &[s, "--initial-state", "init.npy"],
        &["init.npy", "[2, 80]"],
    );
    assert_clean_failure(
        &dir,
        &[s, "--config", "broken.toml"],
        &["broken.toml", "line"],
    );
    assert_clean_failure(&dir, &[s, "--config", "typo.toml"], &["typo.toml", "modle"]);
    assert_clean_failure(&dir, &[s, "--backend", "tpu"], &["tpu", "ndarray"]);
}

#[test]
fn divergence_fails_cleanly_with_the_step() {
    let dir = tmpdir("diverge");
    assert_clean_failure(
        &dir,
        &[
            "simulate",
            "--dt",
            "0.5",
            "--duration",
            "100",
            "--param",
            "eta=50",
            "--integrator",
            "euler",
        ],
        &["diverged at step", "node", "variable"],
    );
}

#[test]
fn models_lists_the_catalogue() {
    let o = bin().args(["models"]).output().unwrap();
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "mpr",
        "eta",
        "Delta",
        "kHz",
        "G",
        "not a bound",
        "unwrapped",
    ] {
        assert!(s.contains(needle), "missing {needle} in:\n{s}");
    }
}

/// `simulate`'s default sampling resolves the model's oscillation: Coombes–Byrne at its defaults
/// oscillates with a period of about 2 ms, which 1 ms sampling would alias; the default must give
/// at least 10 samples per period (counted from the zero crossings of r − mean(r) in the output).
#[test]
fn default_sampling_resolves_coombes_byrne() {
    let dir = tmpdir("cb-sampling");
    let o = run_in(
        &dir,
        &[
            "simulate",
            "-q",
            "--model",
            "coombes_byrne",
            "--duration",
            "60",
            "--record",
            "r",
            "--out",
            "cb.npy",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cb.json")).unwrap()).unwrap();
    let step = side["sample_times"]["step"].as_f64().unwrap();
    let y = read_npy_f32(&dir.join("cb.npy"));
    let n = 80;
    let t = y.len() / n;
    // Node 0's rate after the first 10 ms.
    let r: Vec<f64> = (t / 6..t).map(|k| y[k * n] as f64).collect();
    let mean = r.iter().sum::<f64>() / r.len() as f64;
    let ups = r.windows(2).filter(|w| w[0] < mean && w[1] >= mean).count();
    assert!(
        ups >= 5,
        "no oscillation to resolve: {ups} upward crossings"
    );
    let samples_per_period = r.len() as f64 / ups as f64;
    assert!(
        samples_per_period >= 10.0,
        "{samples_per_period:.1} samples per period at a {step} ms sampling step"
    );
}

/// The f32 samples of a `.npy` file written by `simulate`.
fn read_npy_f32(path: &Path) -> Vec<f32> {
    let npy = std::fs::read(path).unwrap();
    let hlen = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    npy[10 + hlen..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn sidecar(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `--sparse on|off|auto` (and the TOML key) choose the coupling sums; on and off give the same
/// trajectories up to rounding in both engines, with delays and noise.
#[test]
fn sparse_flag_switches_coupling_sums() {
    let dir = tmpdir("sparse");
    std::fs::write(dir.join("on.toml"), "sparse = \"on\"\n").unwrap();
    std::fs::write(dir.join("bad.toml"), "sparse = \"maybe\"\n").unwrap();
    for engine in ["fused", "tensor"] {
        let mut outs = Vec::new();
        for (name, extra) in [
            ("on", vec!["--sparse", "on"]),
            ("off", vec!["--sparse", "off"]),
            ("auto", vec![]),
            ("toml", vec!["--config", "on.toml"]),
        ] {
            let out = format!("{engine}-{name}.npy");
            let mut args = vec![
                "simulate",
                "--duration",
                "20",
                "--speed",
                "5",
                "--noise",
                "0.01",
                "--param",
                "G=0.3,0.6",
                "--engine",
                engine,
                "--out",
                &out,
                "-q",
            ];
            args.extend(extra);
            let o = run_in(&dir, &args);
            assert!(o.status.success(), "{engine} {name}: {}", stderr(&o));
            let side = sidecar(&dir.join(format!("{engine}-{name}.json")));
            // hcp80 has 80 nodes: auto keeps dense sums.
            let expect = matches!(name, "on" | "toml");
            assert_eq!(side["sparse_coupling"], expect, "{engine} {name}");
            outs.push(read_npy_f32(&dir.join(&out)));
        }
        let (on, off) = (&outs[0], &outs[1]);
        assert_eq!(on.len(), 20 * 2 * 2 * 80);
        let scale = off.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = on
            .iter()
            .zip(off)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff <= 1e-4 * scale, "{engine}: on vs off differ by {diff}");
        assert_eq!(&outs[0], &outs[3], "{engine}: TOML key as the flag");
        assert!(on.iter().any(|&x| x != on[0]), "{engine}: constant output");
    }
    assert_clean_failure(
        &dir,
        &["simulate", "--sparse", "maybe"],
        &["sparse", "maybe", "auto, on, off"],
    );
    assert_clean_failure(
        &dir,
        &["simulate", "--config", "bad.toml"],
        &["maybe", "auto, on, off"],
    );
}

/// Mistakes a new user makes, each refused before anything is simulated, with no file left.
#[test]
fn mistakes_are_refused_before_simulating() {
    let dir = tmpdir("mistakes");
    let s = "simulate";
    assert_clean_failure(&dir, &[s, "--batch", "0"], &["batch", "at least 1"]);
    assert_clean_failure(
        &dir,
        &[s, "--duration", "5", "--sample-every", "100000"],
        &["sample-every", "no sample would be recorded"],
    );
    // A 6.4 TB output and a batch of 10⁸ are refused up front (in well under a second).
    let started = std::time::Instant::now();
    assert_clean_failure(
        &dir,
        &[
            s,
            "--duration",
            "1e7",
            "--dt",
            "0.001",
            "--sample-every",
            "1",
        ],
        &["output would be", "TB", "--force"],
    );
    assert_clean_failure(
        &dir,
        &[s, "--batch", "100000000"],
        &["memory", "batch 100000000", "--force"],
    );
    assert!(started.elapsed().as_secs_f64() < 30.0);
    // Output paths that cannot be a .npy file.
    std::fs::create_dir_all(dir.join("adir")).unwrap();
    for (out, needle) in [
        ("adir", "existing folder"),
        ("adir/", "names a folder"),
        ("x.txt", ".npy"),
    ] {
        let o = run_in(&dir, &[s, "--duration", "1e6", "--out", out, "-q"]);
        let err = stderr(&o);
        assert!(!o.status.success(), "--out {out} should fail");
        assert!(
            err.contains(needle),
            "--out {out}: expected `{needle}` in: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!dir.join("x.txt").exists() && !dir.join("x.json").exists());
    assert_eq!(std::fs::read_dir(dir.join("adir")).unwrap().count(), 0);
}

/// An error whose cause is already in its message is printed once, and a parameter error
/// names the parameter once.
#[test]
fn errors_are_not_doubled() {
    let dir = tmpdir("doubled");
    let o = run_in(&dir, &["simulate", "--connectome", "missing.npy", "-q"]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(!err.contains("caused by"), "cause printed twice: {err}");
    let o = run_in(
        &dir,
        &[
            "fit",
            "--fit",
            "G=0,3",
            "--init",
            "G=5",
            "--iterations",
            "1",
            "-q",
        ],
    );
    let err = stderr(&o);
    assert!(!o.status.success());
    assert_eq!(err.matches("`G`").count(), 1, "{err}");
}

/// A run killed with SIGTERM while writing removes its partial output.
#[test]
fn interrupted_run_leaves_no_partial_file() {
    let dir = tmpdir("interrupt");
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let mut child = bin()
        .current_dir(&dir)
        .args([
            "simulate",
            "--duration",
            "1e6",
            "--sample-every",
            "1",
            "--out",
            "out/sim.npy",
            "-q",
            // Killed long before its (large) output could fill the disk.
            "--force",
        ])
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let partial = loop {
        let found = std::fs::read_dir(dir.join("out"))
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with(".partial"));
        if let Some(f) = found {
            break f.path();
        }
        assert!(t0.elapsed().as_secs() < 60, "no partial file appeared");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(!partial.exists(), "{} left behind", partial.display());
    assert_eq!(std::fs::read_dir(dir.join("out")).unwrap().count(), 0);
}

/// Without a terminal, progress comes as plain lines; the sidecar names the element type; a
/// Hopf BOLD run samples at the TR (0.72 s), adjusting dt to divide it, and says so.
#[test]
fn plain_progress_dtype_and_exact_sample_period() {
    let dir = tmpdir("progress");
    let o = run_in(
        &dir,
        &["simulate", "--duration", "200", "--out", "out/sim.npy"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("progress: 100%"), "{err}");
    let side = sidecar(&dir.join("out/sim.json"));
    assert_eq!(side["dtype"], "float32");

    let o = run_in(
        &dir,
        &[
            "simulate",
            "--model",
            "hopf",
            "--monitor",
            "bold",
            "--duration",
            "30",
            "--out",
            "out/h.npy",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("dt 0.1 s shortened"), "{}", stderr(&o));
    let side = sidecar(&dir.join("out/h.json"));
    let step = side["sample_times"]["step"].as_f64().unwrap();
    assert!((step - 0.72).abs() < 1e-9, "sample period {step}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("every 0.72 s"), "{stdout}");
}

/// `--backend ndarray64` writes what it computed: a `float64` `.npy` (header `<f8`, values that
/// are not `f32` numbers) and says so in the sidecar; the default writes `float32`. The two
/// runs are the same simulation in two precisions.
#[test]
fn ndarray64_writes_float64() {
    let dir = tmpdir("f64out");
    let args = |backend: &'static str, out: &'static str| {
        vec![
            "simulate",
            "--duration",
            "30",
            "--backend",
            backend,
            "--out",
            out,
        ]
    };
    let o = run_in(&dir, &args("ndarray64", "out/d.npy"));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_in(&dir, &args("ndarray", "out/s.npy"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sidecar(&dir.join("out/d.json"))["dtype"], "float64");
    assert_eq!(sidecar(&dir.join("out/s.json"))["dtype"], "float32");
    let raw = std::fs::read(dir.join("out/d.npy")).unwrap();
    assert!(String::from_utf8_lossy(&raw[..128]).contains("'<f8'"));
    let d = neurodiff::io::read_npy(&dir.join("out/d.npy")).unwrap();
    let s = read_npy_f32(&dir.join("out/s.npy"));
    assert_eq!(d.data.len(), s.len());
    let not_f32 = d.data.iter().filter(|&&v| v as f32 as f64 != v).count();
    assert!(
        not_f32 > d.data.len() / 2,
        "{not_f32} of {} values carry f64 digits",
        d.data.len()
    );
    let scale = d.data.iter().fold(0f64, |m, v| m.max(v.abs()));
    let diff = d
        .data
        .iter()
        .zip(&s)
        .fold(0f64, |m, (&a, &b)| m.max((a - b as f64).abs()));
    assert!(
        diff < 1e-3 * scale,
        "f32 and f64 runs differ by {diff} (scale {scale})"
    );
}

/// A diverging run on TVB's raw weights points at --normalize max.
#[test]
fn divergence_on_raw_tvb_weights_hints_normalisation() {
    let dir = tmpdir("tvbhint");
    assert_clean_failure(
        &dir,
        &["simulate", "--connectome", "tvb76", "--duration", "100"],
        &["diverged", "--normalize max"],
    );
}

/// A target BOLD too short to estimate an FC from is refused.
#[test]
fn fit_refuses_a_few_frames_of_bold() {
    let dir = tmpdir("fewframes");
    let data: Vec<f64> = (0..80 * 3).map(|i| (i as f64 * 0.37).sin()).collect();
    write_npy(&dir.join("short.npy"), &[80, 3], &data);
    let o = run_in(
        &dir,
        &[
            "fit",
            "--target-bold",
            "short.npy",
            "--iterations",
            "1",
            "--out-dir",
            "fit",
            "-q",
        ],
    );
    let err = stderr(&o);
    assert!(!o.status.success(), "should fail");
    assert!(
        err.contains("at least 20 frames") && err.contains("short.npy"),
        "{err}"
    );
    assert!(!dir.join("fit").join("fit.json").exists());
}
