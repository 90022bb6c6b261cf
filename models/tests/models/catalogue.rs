//! Checks that every registered model must pass: a consistent static description, tensor
//! `drift` equal to the point oracle, and autodiff gradients equal to finite differences.

use std::collections::HashSet;

use neurodiff_models::{catalogue, dynamics, find, visit, Model, ModelVisitor};

use crate::common::{self, Overrides};

/// Where a model's default sampling (30 % around the defaults, state ranges) is not what we
/// want for the generic checks. Keep this short and explain each entry.
fn overrides(name: &str) -> Overrides<'static> {
    match name {
        // The state range of z ([2, 5]) never reaches the `z < 0` branch of dz/dt.
        "epileptor" => &[("z", -1.0, 5.0)],
        _ => &[],
    }
}

#[test]
fn names_are_unique_and_found() {
    let specs = catalogue();
    let mut seen = HashSet::new();
    for s in &specs {
        assert!(seen.insert(s.name), "duplicate model name {}", s.name);
        assert_eq!(find(s.name).unwrap().name, s.name);
        let d = dynamics::<common::B>(s.name).unwrap();
        assert_eq!(d.spec().name, s.name);
    }
    assert!(find("no-such-model").is_err());
    assert!(!specs.is_empty());
}

/// The catalogue holds the models listed in MODELS.md, each with its documented state size and
/// time unit.
#[test]
fn expected_models_are_registered() {
    let expected = [
        ("mpr", 2, "ms"),
        ("jansen_rit", 6, "ms"),
        ("wilson_cowan", 2, "ms"),
        ("wong_wang", 1, "ms"),
        ("wong_wang_ei", 2, "ms"),
        ("hopf", 2, "s"),
        ("fhn", 2, "ms"),
        ("generic2d", 2, "ms"),
        ("kuramoto", 1, "ms"),
        ("epileptor", 6, "ms"),
        ("bvep", 2, "ms"),
        ("larter_breakspear", 3, "ms"),
        ("coombes_byrne", 4, "ms"),
        ("linear", 1, "ms"),
        ("vdp", 2, "ms"),
        ("threshold_linear", 2, "ms"),
        ("lorenz", 3, "ms"),
    ];
    let names: Vec<&str> = catalogue().iter().map(|s| s.name).collect();
    assert_eq!(names.len(), expected.len(), "{names:?}");
    for (name, n, unit) in expected {
        let s = find(name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.n_vars(), s.time_unit.name()), (n, unit), "{name}");
    }
}

#[test]
fn specs_are_consistent() {
    for s in catalogue() {
        let name = s.name;
        assert!(!s.title.is_empty() && !s.citation.is_empty(), "{name}");
        assert!(
            s.time_unit == "ms" || s.time_unit == "s",
            "{name}: time unit {}",
            s.time_unit
        );
        assert!(s.default_dt > 0.0 && s.default_dt.is_finite(), "{name}: dt");
        assert!(s.coupling_strength.is_finite(), "{name}: G");
        assert!(!s.state.is_empty(), "{name}: no state");

        let mut vars = HashSet::new();
        for v in s.state {
            assert!(vars.insert(v.name), "{name}: duplicate variable {}", v.name);
            assert!(v.range.0 < v.range.1, "{name}.{}: empty range", v.name);
            assert!(
                v.initial >= v.range.0 && v.initial <= v.range.1,
                "{name}.{}: initial {} outside {:?}",
                v.name,
                v.initial,
                v.range
            );
            assert!(!v.unit.is_empty() && !v.doc.is_empty(), "{name}.{}", v.name);
        }

        let mut params = HashSet::new();
        for p in s.params {
            assert!(
                params.insert(p.name),
                "{name}: duplicate parameter {}",
                p.name
            );
            // The network appends the coupling's parameters (`G`, ...) after the model's.
            assert_ne!(p.name, "G", "{name}: `G` is the coupling's parameter");
            assert!(p.lower <= p.upper, "{name}.{}: bounds", p.name);
            assert!(
                p.admits(p.default),
                "{name}.{}: default {} outside [{}, {}]",
                p.name,
                p.default,
                p.lower,
                p.upper
            );
            assert!(!p.unit.is_empty() && !p.doc.is_empty(), "{name}.{}", p.name);
        }

        let mut inputs = HashSet::new();
        for c in s.coupling {
            assert!(inputs.insert(c.name), "{name}: duplicate input {}", c.name);
            assert!(
                c.var < s.n_vars(),
                "{name}.{}: var {} out of range",
                c.name,
                c.var
            );
            assert!(
                !params.contains(c.name),
                "{name}: input {} shadows a parameter",
                c.name
            );
        }
    }
}

struct DriftCheck;
impl ModelVisitor for DriftCheck {
    type Output = ();
    fn visit<M: Model>(self, m: M) {
        common::check_drift_matches_point(&m, 17, overrides(m.spec().name));
    }
}

struct GradCheck;
impl ModelVisitor for GradCheck {
    type Output = ();
    fn visit<M: Model>(self, m: M) {
        common::check_gradients(&m, 29, overrides(m.spec().name));
    }
}

/// The drift at the default initial state and parameters is finite and not everywhere zero
/// (every model starts somewhere that moves, or at a documented rest state: allowed below).
struct DefaultFinite;
impl ModelVisitor for DefaultFinite {
    type Output = ();
    fn visit<M: Model>(self, m: M) {
        let s = m.spec();
        let dx = common::drift_at(&m, &s.initial(), &s.defaults());
        assert!(
            dx.iter().all(|v| v.is_finite()),
            "{}: non-finite drift at defaults: {dx:?}",
            s.name
        );
    }
}

/// `drift::<f32>` (the fused CPU kernel) agrees with `drift::<f64>` to single
/// precision, relative to the size of each variable's drift over the sample.
struct F32Check;
impl ModelVisitor for F32Check {
    type Output = ();
    fn visit<M: Model>(self, m: M) {
        let spec = m.spec();
        let mut rng = common::Rng::new(41);
        let on = vec![true; spec.coupling.len()];
        let s = common::sample(spec, &mut rng, 8, 8, overrides(spec.name), &on, 1.0);
        let mut want = Vec::new();
        let mut got = Vec::new();
        for b in 0..8 {
            for n in 0..8 {
                let i = b * 8 + n;
                want.push(common::point_drift(&m, &s, b, n));
                let x: Vec<f32> = s.x.iter().map(|v| v[i] as f32).collect();
                let c: Vec<f32> = s.c.iter().map(|c| c.as_ref().unwrap()[i] as f32).collect();
                let p: Vec<f32> = s.p.iter().map(|q| q.at(b, n) as f32).collect();
                let mut dx = vec![f32::NAN; x.len()];
                m.drift(&x, &c, &p, &mut dx);
                got.push(dx);
            }
        }
        for v in 0..spec.n_vars() {
            let scale = want.iter().map(|w| w[v].abs()).fold(0.0, f64::max);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                common::assert_close(
                    &format!("{} f32 d{}/dt at {i}", spec.name, spec.state[v].name),
                    g[v] as f64,
                    w[v],
                    1e-4,
                    scale,
                );
            }
        }
    }
}

#[test]
fn f32_point_drift_matches_f64() {
    for s in catalogue() {
        visit(s.name, F32Check).unwrap();
    }
}

#[test]
fn drift_matches_point_for_every_model() {
    for s in catalogue() {
        visit(s.name, DriftCheck).unwrap();
    }
}

#[test]
fn gradients_match_finite_differences_for_every_model() {
    for s in catalogue() {
        visit(s.name, GradCheck).unwrap();
    }
}

#[test]
fn drift_is_finite_at_defaults_for_every_model() {
    for s in catalogue() {
        visit(s.name, DefaultFinite).unwrap();
    }
}
