//! neurodiff against The Virtual Brain: every reference trajectory in `tests/data/tvb/`
//! (TVB 2.10, deterministic Heun, raw monitor; see that folder's `README.md` for TVB's
//! conventions and `MAPPING.md` for how each TVB set-up becomes a neurodiff one) is re-run here
//! and compared step by step.
//!
//! For each case: the connectome is the case's subset of the bundled `tvb76`, TVB's model,
//! coupling and parameters are mapped onto neurodiff's ([`map_case`]: every TVB parameter must be
//! accounted for, every neurodiff parameter set), the delays are TVB's (`speed`, or no delays and
//! the coupling held for the whole Heun step, which is what TVB does when every delay rounds to
//! 0), the initial history is constant as in TVB, and every step is recorded. The tensor engine
//! on `NdArray<f32>` and `NdArray<f64>` and the fused CPU engine in `f32` and `f64` must all
//! match TVB to [`TOL`] (see there for the measure). The f64 runs show that what is left in f32
//! is f32 rounding: TVB sums the coupling in float32, so an exact f64 implementation differs from
//! it by about 1e-10 to 5e-7 (each `case.json` records the figure for its case), and the f64
//! tensor engine must land within twice that figure ([`f64_limit`]).
//!
//! `cargo test --test tvb -- --nocapture` prints the per-case figures;
//! `cargo test --test tvb -- --ignored --nocapture report` prints them as one table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::prelude::{Backend, Tensor, TensorData};
use serde_json::Value;

use neurodiff::connectome::Connectome;
use neurodiff::coupling::CouplingKind;
use neurodiff::fused::{simulate_fused, FusedRun, Real};
use neurodiff::integrate::Integrator;
use neurodiff::monitor::Monitor;
use neurodiff::network::{param_specs, Delays, Network, NetworkConfig};
use neurodiff::noise::Noise;
use neurodiff::params::{ParamTable, ParamValue};
use neurodiff::sim::{simulate, Run};

type Nd64 = burn::backend::NdArray<f64>;
type Nd32 = burn::backend::NdArray<f32>;

/// Largest accepted relative error of a run against TVB's trajectory.
///
/// The measure (see [`compare`]), per state variable v of a case:
/// `max_{k,i} |ours[k,v,i] − tvb[k,v,i]| / max_{k,i} |tvb[k,v,i]|` over every step k and node i,
/// i.e. the sup-norm of the difference relative to the sup-norm of TVB's trajectory of that
/// variable; a case's figure is the largest over its variables. Why this form:
/// - norm-wise, not point-wise: oscillators (Hopf, Kuramoto's sin, Jansen–Rit's y3..y5,
///   Epileptor) pass through 0, where a point-wise relative error means nothing;
/// - per variable, not pooled: the variables of one model differ in scale by orders of
///   magnitude (Jansen–Rit: y1 ≈ 10 mV, y3 ≈ 1e-2 mV/ms; Wong–Wang S ∈ [0, 1]), and a pooled
///   scale (or TVB's |x| floored at 1, also printed) would let the small ones go unchecked.
///
/// 1e-4 sits far above f32 rounding accumulated over these runs (f32 ε = 6e-8; measured
/// 1e-7 to a few 1e-6 after 400–1000 steps) and far below what a real discrepancy gives: a 0.02%
/// change of one parameter, 0.1% of the coupling, or one delay step off already gives 1e-2
/// ([`perturbations_are_detected`]).
const TOL: f64 = 1e-4;

/// How close an exact f64 implementation can get to TVB, given that TVB sums the coupling in
/// float32: `make_refs.py` measures it for each case (its own NumPy Heun with an f64 coupling,
/// against TVB, `|x|` floored at 1) and stores it in `case.json`. The f64 tensor engine must be
/// within twice that (plus 1e-9 for round-off): nothing but TVB's float32 sum may separate them.
fn f64_limit(case: &Case) -> f64 {
    2.0 * case.f64_coupling_err + 1e-9
}

// ------------------------------------------------------------------------------------------
// A TVB case as stored
// ------------------------------------------------------------------------------------------

/// One reference case: `case.json` and `traj.npy`.
struct Case {
    name: String,
    /// TVB model class, without the module path.
    model: String,
    svars: Vec<String>,
    cvar: Vec<usize>,
    params: BTreeMap<String, Value>,
    /// Bounds declared by TVB, `(variable, lo, hi)` (`None`: unbounded).
    bounds: Vec<(String, Option<f64>, Option<f64>)>,
    /// TVB coupling class, without the module path.
    coupling: String,
    coupling_params: BTreeMap<String, f64>,
    dt: f64,
    steps: usize,
    regions: Vec<usize>,
    weights: Vec<f64>,
    lengths: Vec<f64>,
    speed: f64,
    idelays: Vec<usize>,
    /// `[svar][node]`.
    x0: Vec<Vec<f64>>,
    history: String,
    /// `[step][svar][node]`, `traj[k]` the state after `k + 1` steps.
    traj: Vec<f64>,
    /// TVB's own measure (`|x|` floored at 1) of how far an f64 coupling sum lands from TVB's
    /// float32 one over the whole run (`self_check.float64_coupling_max_rel_err_all_steps`).
    f64_coupling_err: f64,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tvb")
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn flat(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("matrix")
        .iter()
        .flat_map(f64s)
        .collect()
}

fn class_name(v: &Value) -> String {
    let s = v.as_str().expect("class");
    s.rsplit('.').next().unwrap().to_string()
}

impl Case {
    fn load(name: &str) -> Self {
        let dir = data_dir().join(name);
        let text = std::fs::read_to_string(dir.join("case.json")).expect("case.json");
        let j: Value = serde_json::from_str(&text).expect("valid JSON");
        let m = &j["model"];
        let conn = &j["connectivity"];
        let traj = neurodiff::io::read_npy(&dir.join("traj.npy")).expect("traj.npy");
        let svars: Vec<String> = m["state_variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        let steps = j["n_steps"].as_u64().unwrap() as usize;
        let n = conn["region_indices"].as_array().unwrap().len();
        assert_eq!(
            traj.shape,
            vec![steps, svars.len(), n],
            "{name}: traj.npy shape"
        );
        let bounds = match m["state_variable_boundaries"].as_object() {
            None => Vec::new(),
            Some(b) => b
                .iter()
                .map(|(k, v)| (k.clone(), v[0].as_f64(), v[1].as_f64()))
                .collect(),
        };
        Self {
            name: name.to_string(),
            model: class_name(&m["class"]),
            cvar: m["cvar"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect(),
            svars,
            params: m["parameters"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            bounds,
            coupling: class_name(&j["coupling"]["class"]),
            coupling_params: j["coupling"]["parameters"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_f64().expect("numeric coupling parameter")))
                .collect(),
            dt: j["integrator"]["dt"].as_f64().unwrap(),
            steps,
            regions: conn["region_indices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect(),
            weights: flat(&conn["weights"]),
            lengths: flat(&conn["tract_lengths_mm"]),
            speed: conn["speed_mm_per_ms"].as_f64().unwrap(),
            idelays: flat(&conn["idelays"])
                .into_iter()
                .map(|d| d as usize)
                .collect(),
            x0: j["initial_state"]
                .as_array()
                .unwrap()
                .iter()
                .map(f64s)
                .collect(),
            history: j["history"].as_str().unwrap().to_string(),
            traj: traj.data,
            f64_coupling_err: j["self_check"]["float64_coupling_max_rel_err_all_steps"]
                .as_f64()
                .unwrap(),
        }
    }

    fn nodes(&self) -> usize {
        self.regions.len()
    }

    /// Every value TVB's state variable `var` takes: the initial state and the whole trajectory.
    fn column(&self, var: &str) -> Vec<f64> {
        let v = self.svars.iter().position(|s| s == var).unwrap();
        let (n, nv) = (self.nodes(), self.svars.len());
        let mut out = self.x0[v].clone();
        for k in 0..self.steps {
            out.extend_from_slice(&self.traj[(k * nv + v) * n..(k * nv + v + 1) * n]);
        }
        out
    }

    /// Whether TVB ran the case with conduction delays (the no-delay cases use a speed so high
    /// that every delay rounds to 0).
    fn delayed(&self) -> bool {
        self.idelays.iter().any(|&d| d > 0)
    }

    /// The case's subset of the bundled `tvb76`, checked against the matrices TVB used, and the
    /// delays neurodiff derives from it checked against TVB's.
    fn connectome(&self) -> Connectome {
        let c = Connectome::load("tvb76", None)
            .unwrap()
            .subset(&self.regions);
        assert_eq!(
            c.weights, self.weights,
            "{}: weights differ from TVB's",
            self.name
        );
        assert_eq!(
            c.lengths.as_ref().unwrap(),
            &self.lengths,
            "{}: tract lengths differ from TVB's",
            self.name
        );
        let d = Delays::from_lengths(&self.lengths, self.speed, self.dt).unwrap();
        assert_eq!(
            d.steps, self.idelays,
            "{}: delays differ from TVB's",
            self.name
        );
        // TVB's constant initial history is what neurodiff starts from by default.
        assert!(
            self.history.starts_with("constant"),
            "{}: not a constant initial history: {}",
            self.name,
            self.history
        );
        c
    }
}

// ------------------------------------------------------------------------------------------
// TVB → neurodiff
// ------------------------------------------------------------------------------------------

/// How the network input reaches the model in neurodiff.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Route {
    /// neurodiff's network forms the input exactly as TVB does: both engines are compared.
    Network,
    /// TVB's coupling sends the raw state variable `var`, where neurodiff's model deliberately
    /// sends something else (see [`map_case`]). No network configuration reproduces TVB, so the
    /// test forms TVB's (linear) coupling itself and holds it as the model's input for each
    /// Heun step of the tensor engine: this checks the model's equations, integration, bounds
    /// and delays, but not the network's sent quantity.
    External { var: usize },
}

/// A TVB case expressed in neurodiff's terms.
#[derive(Debug, Clone)]
struct Mapped {
    model: &'static str,
    /// neurodiff coupling inputs switched on, in the order of TVB's `cvar` rows they stand for.
    inputs: Vec<&'static str>,
    coupling: CouplingKind,
    /// Every model and coupling parameter of the neurodiff network.
    params: Vec<(String, f64)>,
    /// For each TVB state variable, the index of the same variable in neurodiff.
    order: Vec<usize>,
    route: Route,
}

/// Accounts for TVB's model parameters one by one while building neurodiff's.
struct Params<'a> {
    tvb: &'a BTreeMap<String, Value>,
    used: BTreeSet<String>,
    out: Vec<(String, f64)>,
}

impl<'a> Params<'a> {
    fn new(tvb: &'a BTreeMap<String, Value>) -> Self {
        Self {
            tvb,
            used: BTreeSet::new(),
            out: Vec::new(),
        }
    }

    fn value(&mut self, tvb: &str) -> f64 {
        let v = self
            .tvb
            .get(tvb)
            .unwrap_or_else(|| panic!("TVB parameter `{tvb}` missing from case.json"));
        self.used.insert(tvb.to_string());
        match v {
            Value::Bool(b) => f64::from(u8::from(*b)),
            v => v.as_f64().expect("numeric parameter"),
        }
    }

    /// TVB parameters with the same name, meaning and value in neurodiff.
    fn same(&mut self, names: &[&str]) {
        for n in names {
            let v = self.value(n);
            self.out.push((n.to_string(), v));
        }
    }

    /// TVB's `tvb` is neurodiff's `nd`.
    fn rename(&mut self, tvb: &str, nd: &str) {
        let v = self.value(tvb);
        self.out.push((nd.to_string(), v));
    }

    /// A neurodiff parameter with no TVB counterpart, at the value that reproduces TVB.
    fn set(&mut self, nd: &str, v: f64) {
        self.out.push((nd.to_string(), v));
    }

    /// A TVB parameter that none of TVB's equations reads (any value gives the same run).
    fn unused(&mut self, tvb: &str) {
        self.value(tvb);
    }

    /// A TVB parameter neurodiff does not have, which must sit at `v` to make no difference.
    fn require(&mut self, tvb: &str, v: f64, why: &str) -> Result<(), String> {
        let got = self.value(tvb);
        if got == v {
            Ok(())
        } else {
            Err(format!("TVB's `{tvb}` = {got}, but {why}"))
        }
    }

    /// The neurodiff parameters, after checking that every TVB parameter was accounted for and
    /// every neurodiff model parameter set exactly once (so no neurodiff default leaks in).
    fn finish(self, model: &str) -> Vec<(String, f64)> {
        let left: Vec<&String> = self
            .tvb
            .keys()
            .filter(|k| !self.used.contains(*k))
            .collect();
        assert!(left.is_empty(), "TVB parameters not mapped: {left:?}");
        let spec = neurodiff::models::find(model).unwrap();
        for p in spec.params {
            let n = self.out.iter().filter(|(k, _)| k == p.name).count();
            assert_eq!(
                n, 1,
                "neurodiff `{model}` parameter `{}` set {n} times",
                p.name
            );
        }
        assert_eq!(
            self.out.len(),
            spec.params.len(),
            "unknown names in {:?}",
            self.out
        );
        self.out
    }
}

/// TVB's coupling class and parameters → neurodiff's coupling kind and parameters (TVB's `a` is
/// neurodiff's `G`), with the model's extra gain on `G` (`gain`, 1 for all but
/// `ReducedWongWangExcInh`).
fn map_coupling(case: &Case, gain: f64) -> Result<(CouplingKind, Vec<(String, f64)>), String> {
    let q = &case.coupling_params;
    let get = |k: &str| -> f64 {
        *q.get(k)
            .unwrap_or_else(|| panic!("TVB coupling parameter `{k}` missing"))
    };
    let (kind, names): (CouplingKind, &[(&str, &str)]) = match case.coupling.as_str() {
        // c_i = a Σ_j W_ij x_j + b: neurodiff's linear coupling has no offset.
        "Linear" => {
            if get("b") != 0.0 {
                return Err(format!("Linear b = {} (neurodiff has no offset)", get("b")));
            }
            (CouplingKind::Linear, &[("a", "G"), ("b", "")])
        }
        "Difference" => (CouplingKind::Difference, &[("a", "G")]),
        // TVB's Kuramoto coupling has no 1/N, nor has neurodiff's.
        "Kuramoto" => (CouplingKind::Kuramoto, &[("a", "G")]),
        "SigmoidalJansenRit" => (
            CouplingKind::SigmoidalJansenRit,
            &[
                ("a", "G"),
                ("cmin", "cpl_cmin"),
                ("cmax", "cpl_cmax"),
                ("midpoint", "cpl_midpoint"),
                ("r", "cpl_r"),
            ],
        ),
        // `a` sits inside the sigmoid here, so a model gain cannot be folded into it.
        "Sigmoidal" if gain == 1.0 => (
            CouplingKind::Sigmoidal,
            &[
                ("a", "G"),
                ("cmin", "cpl_cmin"),
                ("cmax", "cpl_cmax"),
                ("midpoint", "cpl_midpoint"),
                ("sigma", "cpl_sigma"),
            ],
        ),
        other => return Err(format!("TVB coupling `{other}` with model gain {gain}")),
    };
    let mut out = Vec::new();
    for (tvb, nd) in names {
        let v = get(tvb);
        match *nd {
            "" => {}
            "G" => out.push(("G".to_string(), v * gain)),
            nd => out.push((nd.to_string(), v)),
        }
    }
    let known: BTreeSet<&str> = names.iter().map(|(t, _)| *t).collect();
    let left: Vec<&String> = q.keys().filter(|k| !known.contains(k.as_str())).collect();
    assert!(
        left.is_empty(),
        "TVB coupling parameters not mapped: {left:?}"
    );
    Ok((kind, out))
}

/// The mapping table: TVB model class → neurodiff model, parameters, state order, coupling
/// inputs, and how the coupling reaches the model. `Err` says why a case cannot be reproduced.
/// `MAPPING.md` (next to the data) is the prose version.
fn map_case(case: &Case) -> Result<Mapped, String> {
    let mut p = Params::new(&case.params);
    let mut gain = 1.0;
    let mut route = Route::Network;
    // TVB state variable names that neurodiff spells differently.
    let mut rename: &[(&str, &str)] = &[];
    let (model, inputs): (&'static str, Vec<&'static str>) = match case.model.as_str() {
        // Same names and equations. TVB's `Gamma` is read by none of its equations. TVB couples
        // both r and V (cvar [0, 1]); V's input is scaled by `cv`. TVB's r ≥ 0 boundary is
        // neurodiff's projection (neurodiff also clips r inside the drift, as vbjax; with the
        // projection after every stage the drift never sees r < 0, so both agree).
        "MontbrioPazoRoxin" => {
            p.same(&["tau", "I", "Delta", "J", "eta", "cr", "cv"]);
            p.unused("Gamma");
            ("mpr", vec!["c_r", "c_V"])
        }
        // Same names and equations; neurodiff's default v0 is the paper's 6 mV, TVB's 5.52 is
        // passed explicitly. `p_min`, `p_max` are read by none of TVB's equations. neurodiff's
        // node sends y1 − y2, which is what TVB's SigmoidalJansenRit reads from cvar [y1, y2];
        // TVB's Linear coupling instead sums y1 alone (its first cvar row), which neurodiff's
        // network deliberately does not offer.
        "JansenRit" => {
            p.same(&[
                "A", "B", "a", "b", "v0", "nu_max", "r", "J", "a_1", "a_2", "a_3", "a_4", "mu",
            ]);
            p.unused("p_min");
            p.unused("p_max");
            match case.coupling.as_str() {
                "SigmoidalJansenRit" => {}
                "Linear" => route = Route::External { var: 1 },
                c => return Err(format!("JansenRit with TVB's {c} coupling")),
            }
            ("jansen_rit", vec!["c"])
        }
        // Same names; TVB's boolean `shift_sigmoid` is neurodiff's number `shift` (1 or 0).
        // Only E is coupled in the equations (cvar [E, I], I's row is never read).
        "WilsonCowan" => {
            p.same(&[
                "c_ee", "c_ei", "c_ie", "c_ii", "tau_e", "tau_i", "a_e", "b_e", "c_e", "theta_e",
                "a_i", "b_i", "theta_i", "c_i", "r_e", "r_i", "k_e", "k_i", "P", "Q", "alpha_e",
                "alpha_i",
            ]);
            p.rename("shift_sigmoid", "shift");
            ("wilson_cowan", vec!["c"])
        }
        // Same names; `sigma_noise` belongs to TVB's noise, unused in a deterministic run.
        "ReducedWongWang" => {
            p.same(&["a", "b", "d", "gamma", "tau_s", "w", "J_N", "I_o"]);
            p.unused("sigma_noise");
            ("wong_wang", vec!["c"])
        }
        // Same names except TVB's model-level `G`, which multiplies the network input: in
        // neurodiff that is the coupling's G, so G_neurodiff = a · G_TVB.
        "ReducedWongWangExcInh" => {
            p.same(&[
                "a_e", "b_e", "d_e", "gamma_e", "tau_e", "w_p", "J_N", "W_e", "a_i", "b_i", "d_i",
                "gamma_i", "tau_i", "J_i", "W_i", "I_o", "I_ext", "lamda",
            ]);
            gain = p.value("G");
            ("wong_wang_ei", vec!["c"])
        }
        // TVB's SupHopf is neurodiff's hopf (time unit aside: both just use dt).
        "SupHopf" => {
            p.same(&["a", "omega"]);
            ("hopf", vec!["c_x", "c_y"])
        }
        "Generic2dOscillator" => {
            p.same(&[
                "tau", "I", "a", "b", "c", "d", "e", "f", "g", "alpha", "beta", "gamma",
            ]);
            ("generic2d", vec!["c_V"])
        }
        "Kuramoto" => {
            p.same(&["omega"]);
            ("kuramoto", vec!["c"])
        }
        // Same names. TVB declares `s` but hard-codes 4 in its equations, so neurodiff's `s`
        // is 4 whatever TVB's says. TVB's `modification` (Proix's sigmoidal h) is not offered.
        // TVB couples x1 and x2 (cvar [0, 3]): neurodiff's c1 and c2 (c2 is off by default).
        "Epileptor" => {
            p.same(&[
                "a", "b", "c", "d", "r", "x0", "Iext", "slope", "Iext2", "tau", "aa", "bb", "Kvf",
                "Kf", "Ks", "tt",
            ]);
            p.unused("s");
            p.set("s", 4.0);
            p.require("modification", 0.0, "neurodiff has no `modification`")?;
            ("epileptor", vec!["c1", "c2"])
        }
        // neurodiff's two-dimensional Epileptor is vbjax's `bvep`, not TVB's Epileptor2D. The
        // two coincide where x1 < 0 and z ≥ 0 (TVB's f = a x1² + (d − b) x1 branch, no −0.1 z⁷
        // term) and TVB's input into x1 is off (Kvf = 0; bvep has none):
        //   TVB  dx1 = tt (c − z + Iext − a x1³ − (d − b) x1²),  dz = tt r (4 (x1 − x0) − z + Ks c)
        //   bvep dx  = 1 − x³ − 2 x² − z + I1,                   dz = (4 (x − x0) − z − c) / tau0
        // so tt = a = 1, d − b = 2, I1 = c + Iext − 1, tau0 = 1 / r, and bvep's input is TVB's
        // times −Ks (folded into the coupling's G). Cases outside that region are reported.
        "Epileptor2D" => {
            p.require("Kvf", 0.0, "bvep has no coupling input into x")?;
            p.require("modification", 0.0, "bvep has no `modification`")?;
            p.require("tt", 1.0, "bvep has no time scale `tt`")?;
            p.require("a", 1.0, "bvep's cubic has coefficient 1")?;
            let (b, d) = (p.value("b"), p.value("d"));
            if d - b != 2.0 {
                return Err(format!("TVB's d − b = {}, bvep's is 2", d - b));
            }
            let (x1, z) = (case.column("x1"), case.column("z"));
            if x1.iter().any(|&x| x >= 0.0) || z.iter().any(|&z| z < 0.0) {
                return Err(format!(
                    "TVB's Epileptor2D is bvep only while x1 < 0 and z ≥ 0, but x1 reaches {:.2} \
                     and z {:.2} (TVB's other branches: (d x1 − slope − 0.6 (z − 4)²) x1 for \
                     x1 ≥ 0, −0.1 z⁷ for z < 0)",
                    x1.iter().cloned().fold(f64::MIN, f64::max),
                    z.iter().cloned().fold(f64::MAX, f64::min)
                ));
            }
            let i1 = p.value("c") + p.value("Iext") - 1.0;
            p.set("I1", i1);
            let r = p.value("r");
            p.set("tau0", 1.0 / r);
            p.same(&["x0"]);
            // Read only on the x1 ≥ 0 branch.
            p.unused("slope");
            gain = -p.value("Ks");
            rename = &[("x1", "x")];
            ("bvep", vec!["c"])
        }
        // Same names. TVB's couplings send the raw V (cvar [V]); neurodiff's node sends its
        // firing rate Q_V(V), as in the paper (⟨Q_V⟩), so TVB's Linear-on-V runs are checked at
        // the model level.
        "LarterBreakspear" => {
            p.same(&[
                "gCa", "gK", "gL", "phi", "gNa", "TK", "TCa", "TNa", "VCa", "VK", "VL", "VNa",
                "d_K", "tau_K", "d_Na", "d_Ca", "aei", "aie", "b", "C", "ane", "ani", "aee",
                "Iext", "rNMDA", "VT", "d_V", "ZT", "d_Z", "QV_max", "QZ_max", "t_scale",
            ]);
            match case.coupling.as_str() {
                "Linear" => route = Route::External { var: 0 },
                c => return Err(format!("LarterBreakspear with TVB's {c} coupling")),
            }
            ("larter_breakspear", vec!["c"])
        }
        // Same names. TVB couples all four variables but reads only r's row.
        "CoombesByrne" => {
            p.same(&["Delta", "alpha", "v_syn", "k", "eta"]);
            ("coombes_byrne", vec!["c"])
        }
        "Linear" => {
            p.same(&["gamma"]);
            ("linear", vec!["c"])
        }
        other => return Err(format!("no mapping for TVB model {other}")),
    };
    let mut params = p.finish(model);
    let (coupling, cp) = map_coupling(case, gain)?;
    if matches!(route, Route::External { .. }) && coupling != CouplingKind::Linear {
        return Err("model-level check only for TVB's Linear coupling".into());
    }
    params.extend(cp);
    let spec = neurodiff::models::find(model).unwrap();
    // State variables have the same names in both, in the same order.
    let order: Vec<usize> = case
        .svars
        .iter()
        .map(|s| {
            let s = rename
                .iter()
                .find(|(tvb, _)| tvb == s)
                .map_or(s.as_str(), |(_, nd)| nd);
            spec.var_index(s)
                .unwrap_or_else(|| panic!("{model} has no state variable {s}"))
        })
        .collect();
    assert_eq!(
        order.len(),
        spec.n_vars(),
        "{model}: number of state variables"
    );
    // Each input stands for TVB's cvar row of the same rank and is formed from the same variable
    // (TVB's model ignores the rows of `cvar` beyond those).
    for (row, name) in inputs.iter().enumerate() {
        let c = spec
            .coupling
            .iter()
            .find(|c| c.name == *name)
            .unwrap_or_else(|| panic!("{model} has no coupling input {name}"));
        assert_eq!(
            c.var, order[case.cvar[row]],
            "{model}: input {name} vs TVB's cvar {:?}",
            case.cvar
        );
    }
    // TVB's bounds are exactly the variables neurodiff's projection clips.
    let bounded: Vec<usize> = case
        .bounds
        .iter()
        .map(|(v, _, _)| order[case.svars.iter().position(|s| s == v).unwrap()])
        .collect();
    let expect: &[usize] = match model {
        "mpr" | "coombes_byrne" | "wong_wang" => &[0],
        "wong_wang_ei" => &[0, 1],
        _ => &[],
    };
    assert_eq!(bounded, expect, "{model}: bounded variables");
    Ok(Mapped {
        model,
        inputs,
        coupling,
        params,
        order,
        route,
    })
}

// ------------------------------------------------------------------------------------------
// Running neurodiff
// ------------------------------------------------------------------------------------------

impl Mapped {
    fn network(&self, case: &Case) -> NetworkConfig {
        NetworkConfig {
            model: self.model.to_string(),
            coupling: Some(self.coupling),
            inputs: Some(self.inputs.iter().map(|s| s.to_string()).collect()),
            // Without delays TVB still holds the coupling for the whole Heun step.
            speed: case.delayed().then_some(case.speed),
            hold_coupling: true,
            sparse: Default::default(),
        }
    }

    fn table(&self, n: usize) -> ParamTable {
        let spec = neurodiff::models::find(self.model).unwrap();
        let given: Vec<(String, ParamValue)> = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), ParamValue::Scalar(*v)))
            .collect();
        let t = ParamTable::new(&param_specs(spec, self.coupling), &given, n, None).unwrap();
        assert_eq!(t.specs.len(), self.params.len(), "every parameter given");
        t
    }

    /// The initial state in neurodiff's variable order, `[var][node]`.
    fn x0(&self, case: &Case) -> Vec<Vec<f64>> {
        let mut x = vec![Vec::new(); self.order.len()];
        for (tv, &nv) in self.order.iter().enumerate() {
            x[nv] = case.x0[tv].clone();
        }
        x
    }

    fn run(&self, case: &Case) -> Run {
        let nv = self.order.len();
        Run {
            dt: case.dt,
            steps: case.steps,
            integrator: Integrator::Heun,
            noise: Noise::none(nv),
            chunk: 1000,
            monitor: Monitor {
                every: 1,
                mean: false,
                transient: 0,
                vars: (0..nv).collect(),
                bold: None,
            },
        }
    }
}

fn tensor_x0<B: Backend>(x0: &[Vec<f64>], d: &B::Device) -> Vec<Tensor<B, 2>> {
    x0.iter()
        .map(|v| {
            Tensor::from_data(
                TensorData::new(v.clone(), [1, v.len()]),
                neurodiff::float_opts::<B>(d),
            )
        })
        .collect()
}

fn to_f64<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
}

/// The tensor engine on backend `B`: `[step][neurodiff var][node]`.
fn run_tensor<B: Backend>(case: &Case, m: &Mapped, conn: &Connectome) -> Vec<f64> {
    let d = Default::default();
    let net = Network::<B>::build(&m.network(case), conn, case.dt, &d).unwrap();
    assert!(net.holds_coupling());
    assert_eq!(
        net.delay_horizon().unwrap_or(1),
        case.idelays.iter().max().unwrap() + 1,
        "horizon"
    );
    let p = m.table(conn.n).tensors::<B>(&d);
    let mut out = Vec::new();
    simulate(
        &net,
        &p,
        tensor_x0::<B>(&m.x0(case), &d),
        &m.run(case),
        |s| {
            out.extend(to_f64(s.values));
            Ok(())
        },
        |_| {},
    )
    .unwrap();
    out
}

/// The fused CPU engine computing in `T`: `[step][neurodiff var][node]` (it hands samples out
/// as `f32` whatever `T`).
fn run_fused<T: Real>(case: &Case, m: &Mapped, conn: &Connectome) -> Vec<f64> {
    let x0: Vec<f64> = m.x0(case).concat();
    let cfg = m.network(case);
    let table = m.table(conn.n);
    let run = m.run(case);
    let fr = FusedRun {
        connectome: conn,
        network: &cfg,
        params: &table,
        x0: &x0,
        x0_rows: 1,
        batch: 1,
        run: &run,
        threads: 1,
    };
    let mut out = Vec::new();
    simulate_fused::<T>(
        &fr,
        &mut |_, _, v| {
            out.extend(v);
            Ok(())
        },
        &mut |_| {},
    )
    .unwrap();
    out
}

/// The tensor engine's model, integrator and bounds with TVB's linear coupling of the raw
/// variable `var` formed here (TVB's delays and constant history) and held for each Heun step
/// (see [`Route::External`]): `[step][neurodiff var][node]`.
fn run_external<B: Backend>(case: &Case, m: &Mapped, conn: &Connectome, var: usize) -> Vec<f64> {
    assert_eq!(m.coupling, CouplingKind::Linear);
    assert_eq!(m.inputs.len(), 1);
    let d = Default::default();
    let n = conn.n;
    let net = Network::<B>::build(&m.network(case), conn, case.dt, &d).unwrap();
    let p = m.table(n).tensors::<B>(&d);
    let g = m.params.iter().find(|(k, _)| k == "G").unwrap().1;
    let mut x = tensor_x0::<B>(&m.x0(case), &d);
    // past[k] = the coupled variable after k steps (k = 0: the initial state, also the whole
    // history before it).
    let mut past: Vec<Vec<f64>> = Vec::with_capacity(case.steps + 1);
    let mut out = Vec::with_capacity(case.steps * m.order.len() * n);
    for step in 0..case.steps {
        past.push(to_f64(x[var].clone()));
        let c: Vec<f64> = (0..n)
            .map(|i| {
                g * (0..n)
                    .map(|j| {
                        let k = step.saturating_sub(case.idelays[i * n + j]);
                        case.weights[i * n + j] * past[k][j]
                    })
                    .sum::<f64>()
            })
            .collect();
        let held = vec![Some(Tensor::<B, 2>::from_data(
            TensorData::new(c, [1, n]),
            neurodiff::float_opts::<B>(&d),
        ))];
        x = Integrator::Heun.step(&net.field_held(&p, held), x, case.dt, &[]);
        for v in &x {
            out.extend(to_f64(v.clone()));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// Comparing
// ------------------------------------------------------------------------------------------

/// Differences between a neurodiff run and TVB's trajectory.
struct Errors {
    /// Per TVB state variable: max |neurodiff − TVB| / max |TVB|.
    per_var: Vec<f64>,
    /// TVB's self-check measure: max |neurodiff − TVB| / max(1, |TVB|).
    floored: f64,
}

impl Errors {
    fn max(&self) -> f64 {
        self.per_var.iter().cloned().fold(0.0, f64::max)
    }
}

/// [`TOL`]'s measure of `ours` (`[step][neurodiff var][node]`) against TVB's trajectory.
fn compare(case: &Case, m: &Mapped, ours: &[f64]) -> Errors {
    let (n, nv) = (case.nodes(), case.svars.len());
    assert_eq!(ours.len(), case.steps * nv * n, "{}: samples", case.name);
    let mut diff = vec![0f64; nv];
    let mut scale = vec![0f64; nv];
    let mut floored = 0f64;
    for k in 0..case.steps {
        for (tv, &ndv) in m.order.iter().enumerate() {
            for i in 0..n {
                let t = case.traj[(k * nv + tv) * n + i];
                let o = ours[(k * nv + ndv) * n + i];
                let d = (o - t).abs();
                // NaN must fail, not vanish in a max.
                let d = if d.is_nan() { f64::INFINITY } else { d };
                diff[tv] = diff[tv].max(d);
                scale[tv] = scale[tv].max(t.abs());
                floored = floored.max(d / t.abs().max(1.0));
            }
        }
    }
    Errors {
        per_var: diff.iter().zip(&scale).map(|(d, s)| d / s).collect(),
        floored,
    }
}

fn describe(case: &Case, e: &Errors) -> String {
    let vars: Vec<String> = case
        .svars
        .iter()
        .zip(&e.per_var)
        .map(|(s, v)| format!("{s} {v:.1e}"))
        .collect();
    format!(
        "max {:.2e} [{}]; floored-at-1 {:.1e} (TVB f32-coupling figure {:.1e})",
        e.max(),
        vars.join(", "),
        e.floored,
        case.f64_coupling_err
    )
}

/// Which check a case gets (each case's test says which it expects, so that a change in the
/// mapping shows up as a failing test).
#[derive(Debug, PartialEq)]
enum Expect {
    /// Both engines, f32 and f64, through neurodiff's network.
    Network,
    /// The model with TVB's coupling formed by the test ([`Route::External`]).
    ModelOnly,
    /// No neurodiff counterpart ([`map_case`] says why).
    NotComparable,
}

/// Every run of a case and how far each lands from TVB: `(engine, errors)`.
type Runs = Vec<(&'static str, Errors)>;

/// Maps a case and runs it on every engine that can reproduce it: the tensor engine on
/// `NdArray<f32>` and `NdArray<f64>`, and (through the network only) the fused CPU engine in
/// `f32` and `f64`. `Err`: why the case has no neurodiff counterpart.
fn evaluate(case: &Case) -> Result<(Mapped, Runs), String> {
    let conn = case.connectome();
    let m = map_case(case)?;
    let runs = match m.route {
        Route::Network => vec![
            (
                "tensor f32",
                compare(case, &m, &run_tensor::<Nd32>(case, &m, &conn)),
            ),
            (
                "fused f32",
                compare(case, &m, &run_fused::<f32>(case, &m, &conn)),
            ),
            (
                "tensor f64",
                compare(case, &m, &run_tensor::<Nd64>(case, &m, &conn)),
            ),
            (
                "fused f64",
                compare(case, &m, &run_fused::<f64>(case, &m, &conn)),
            ),
        ],
        Route::External { var } => vec![
            (
                "tensor f32",
                compare(case, &m, &run_external::<Nd32>(case, &m, &conn, var)),
            ),
            (
                "tensor f64",
                compare(case, &m, &run_external::<Nd64>(case, &m, &conn, var)),
            ),
        ],
    };
    Ok((m, runs))
}

fn check_case(name: &str, expect: Expect) {
    let case = Case::load(name);
    let (m, runs) = match evaluate(&case) {
        Err(why) => {
            assert_eq!(expect, Expect::NotComparable, "{name}: {why}");
            println!("{name:24} not comparable: {why}");
            return;
        }
        Ok(r) => r,
    };
    let (want, how) = match m.route {
        Route::Network => (
            Expect::Network,
            format!("{} + {}", m.model, m.coupling.name()),
        ),
        Route::External { var } => (
            Expect::ModelOnly,
            format!(
                "{} with TVB's linear coupling of {} formed by the test (model level)",
                m.model, case.svars[var]
            ),
        ),
    };
    assert_eq!(expect, want, "{name}: route {:?}", m.route);
    println!("{name:24} {how}");
    for (engine, e) in &runs {
        println!("{:24} {engine}: {}", "", describe(&case, e));
    }
    for (engine, e) in &runs {
        assert!(
            e.max() <= TOL,
            "{name}: {engine} differs from TVB: {}",
            describe(&case, e)
        );
    }
    // In f64 nothing but TVB's float32 coupling sum may separate the two.
    let (_, f64_tensor) = runs.iter().find(|(k, _)| *k == "tensor f64").unwrap();
    assert!(
        f64_tensor.floored <= f64_limit(&case),
        "{name}: tensor f64 further from TVB than its float32 coupling explains: {}",
        describe(&case, f64_tensor)
    );
}

/// One test per case, and [`CASES`], the list of them.
macro_rules! tvb_cases {
    ($($expect:ident: [$($name:ident),* $(,)?]),* $(,)?) => {
        $($(
            #[test]
            fn $name() {
                check_case(stringify!($name), Expect::$expect);
            }
        )*)*
        const CASES: &[&str] = &[$($(stringify!($name)),*),*];
    };
}

tvb_cases!(
    Network: [
        cb_delay, cb_nodelay,
        epileptor_delay, epileptor_nodelay, epileptor2d_bvep_delay,
        g2d_delay, g2d_difference_delay, g2d_nodelay,
        jr_delay, jr_nodelay,
        kuramoto_delay, kuramoto_nodelay,
        linear_delay, linear_nodelay,
        mpr_bounds_nodelay, mpr_delay, mpr_nodelay, mpr_sigmoidal_nodelay,
        rww_delay, rww_nodelay,
        rwwei_delay, rwwei_nodelay,
        suphopf_delay, suphopf_nodelay,
        wc_delay, wc_nodelay,
    ],
    ModelOnly: [jr_linear_nodelay, lb_delay, lb_nodelay],
    NotComparable: [epileptor2d_delay, epileptor2d_nodelay],
);

/// The tests above are exactly the cases of `index.json`.
#[test]
fn every_case_has_a_test() {
    let text = std::fs::read_to_string(data_dir().join("index.json")).unwrap();
    let index: Value = serde_json::from_str(&text).unwrap();
    let listed: BTreeSet<&str> = index["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let tested: BTreeSet<&str> = CASES.iter().copied().collect();
    assert_eq!(listed, tested);
}

/// The comparison can fail: a small change of one parameter, or of one of TVB's conventions,
/// is caught by [`TOL`].
#[test]
fn perturbations_are_detected() {
    let case = Case::load("mpr_delay");
    let conn = case.connectome();
    let m = map_case(&case).unwrap();
    let caught = |what: &str, case: &Case, m: &Mapped, out: Vec<f64>| {
        let e = compare(case, m, &out);
        println!("{} with {what}: {}", case.name, describe(case, &e));
        assert!(e.max() > TOL, "{what} not detected: {}", describe(case, &e));
    };
    // eta −5 → −4.999.
    let mut p = m.clone();
    p.params.iter_mut().find(|(k, _)| k == "eta").unwrap().1 += 1e-3;
    caught("eta + 1e-3", &case, &p, run_fused::<f64>(&case, &p, &conn));
    // Coupling 0.2 → 0.2002.
    let mut p = m.clone();
    p.params.iter_mut().find(|(k, _)| k == "G").unwrap().1 *= 1.001;
    caught("G × 1.001", &case, &p, run_fused::<f64>(&case, &p, &conn));
    // A 2% faster conduction: 12 of the 36 delays one step shorter.
    let mut fast = Case::load("mpr_delay");
    fast.speed *= 1.02;
    caught(
        "speed × 1.02",
        &fast,
        &m,
        run_fused::<f64>(&fast, &m, &conn),
    );
    // The coupling re-evaluated at the predictor instead of held for the step (no delays).
    let case = Case::load("mpr_nodelay");
    let m = map_case(&case).unwrap();
    let d = Default::default();
    let mut cfg = m.network(&case);
    cfg.hold_coupling = false;
    let net = Network::<Nd64>::build(&cfg, &conn, case.dt, &d).unwrap();
    let p = m.table(conn.n).tensors::<Nd64>(&d);
    let mut out = Vec::new();
    let x0 = tensor_x0::<Nd64>(&m.x0(&case), &d);
    let sink = |s: neurodiff::sim::ChunkSamples<Nd64>| {
        out.extend(to_f64(s.values));
        Ok(())
    };
    simulate(&net, &p, x0, &m.run(&case), sink, |_| {}).unwrap();
    caught("per-stage coupling", &case, &m, out);
}

/// Every case's figures as one Markdown table (the source of `MAPPING.md`'s accuracy table).
#[test]
#[ignore = "report only: the per-case tests check the same runs"]
fn report() {
    println!("| case | route | tensor f32 | fused f32 | tensor f64 | fused f64 | TVB f32-sum |");
    println!("|---|---|---|---|---|---|---|");
    for name in CASES {
        let case = Case::load(name);
        let Ok((m, runs)) = evaluate(&case) else {
            println!("| {name} | not comparable | | | | | |");
            continue;
        };
        let get = |k: &str| {
            runs.iter()
                .find(|(e, _)| *e == k)
                .map_or("–".to_string(), |(_, e)| format!("{:.1e}", e.max()))
        };
        let route = match m.route {
            Route::Network => "network",
            Route::External { .. } => "model level",
        };
        println!(
            "| {name} | {route} | {} | {} | {} | {} | {:.1e} |",
            get("tensor f32"),
            get("fused f32"),
            get("tensor f64"),
            get("fused f64"),
            case.f64_coupling_err
        );
    }
}
