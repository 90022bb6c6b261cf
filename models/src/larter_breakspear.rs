//! Larter–Breakspear model: a Morris–Lecar-type conductance model of a population of pyramidal
//! cells (mean membrane potential `V`, fraction of open potassium channels `W`) with a third
//! equation for the inhibitory interneurons' membrane potential `Z`.
//!
//! ```text
//! m_ion = (1 + tanh((V - T_ion) / d_ion)) / 2        for ion = Ca, Na, K
//! Q_V   = QV_max (1 + tanh((V - VT) / d_V)) / 2      (excitatory firing rate)
//! Q_Z   = QZ_max (1 + tanh((Z - ZT) / d_Z)) / 2      (inhibitory firing rate)
//! dV/dt = t_scale ( - (gCa + (1 - C) rNMDA aee Q_V + C rNMDA aee c) m_Ca (V - VCa)
//!                   - gK W (V - VK) - gL (V - VL)
//!                   - (gNa m_Na + (1 - C) aee Q_V + C aee c) (V - VNa)
//!                   - aie Z Q_Z + ane Iext )
//! dW/dt = t_scale phi (m_K - W) / tau_K
//! dZ/dt = t_scale b (ani Iext + aei V Q_V)
//! ```
//! All quantities are dimensionless and normalised; like TVB we read time as ms.
//!
//! | parameter | default | meaning                                          |
//! |-----------|---------|--------------------------------------------------|
//! | `gCa`, `gK`, `gL`, `gNa` | 1.1, 2.0, 0.5, 6.7 | Ca, K, leak, Na conductances |
//! | `phi`     | 0.7     | temperature scaling factor                       |
//! | `TK`, `TCa`, `TNa` | 0, -0.01, 0.3 | channel activation thresholds          |
//! | `VCa`, `VK`, `VL`, `VNa` | 1, -0.7, -0.5, 0.53 | Nernst potentials          |
//! | `d_K`, `d_Na`, `d_Ca` | 0.3, 0.15, 0.15 | spreads of the channel thresholds |
//! | `tau_K`   | 1       | K relaxation time                                |
//! | `aei`, `aie`, `aee` | 2, 2, 0.4 | E→I, I→E, E→E synaptic strengths          |
//! | `ane`, `ani` | 1, 0.4 | non-specific input to E and to I              |
//! | `b`       | 0.1     | time-scale factor of Z                           |
//! | `C`       | 0.1     | share of excitation from other regions           |
//! | `Iext`    | 0.3     | subcortical (non-specific) input                 |
//! | `rNMDA`   | 0.25    | NMDA/AMPA receptor ratio                         |
//! | `VT`, `d_V` | 0, 0.65 | excitatory firing threshold and its spread     |
//! | `ZT`, `d_Z` | 0, 0.7  | inhibitory firing threshold and its spread     |
//! | `QV_max`, `QZ_max` | 1, 1 | maximal firing rates                      |
//! | `t_scale` | 1       | time scaling of the whole system                 |
//!
//! Equations and defaults follow TVB's `LarterBreakspear` (the Alstott et al. 2009 / Breakspear
//! et al. 2003 values; vbjax has no Larter–Breakspear model). `d_V` is the main bifurcation
//! parameter: Breakspear et al. (2003) report a fixed point for small `d_V`, then limit cycles
//! and chaos (the default 0.65 is in the chaotic range).
//!
//! **Coupling.** One input `c`: each node sends its excitatory firing rate `Q_V(V)`
//! ([`Model::coupled`], with the sender's own `VT`, `d_V`, `QV_max`) and the network sums it
//! linearly, `c_i = G Σ_j W_ij Q_V(V_j)`. In the paper `c` is the mean firing rate of the
//! connected regions, `⟨Q_V⟩`, so `G` should be about one over the connectome's typical
//! in-strength. This is TVB's usual set-up with its `HyperbolicTangent` coupling
//! (`a = QV_max/2`, `midpoint = VT`, `sigma = d_V`).
//!
//! Breakspear, Terry & Friston (2003), *Modulation of excitatory synaptic coupling facilitates
//! synchronization and complex dynamics in a biophysical model of neuronal dynamics*, Network
//! 14:703–732; Larter, Speelman & Worth (1999), Chaos 9:795; Alstott et al. (2009), PLoS
//! Comput. Biol. 5:e1000408.

use burn::prelude::{Backend, Tensor};
use num_traits::Float;

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, ParamSpec, VarSpec};
use crate::{k, Model};

/// The Larter–Breakspear model.
#[derive(Debug, Clone, Copy, Default)]
pub struct LarterBreakspear;

/// Static description of [`LarterBreakspear`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "larter_breakspear",
    title: "Larter–Breakspear",
    time_unit: "ms",
    default_dt: 0.05,
    state: &[
        VarSpec::new(
            "V",
            "a.u.",
            0.0,
            (-1.0, 1.0),
            "mean membrane potential of the pyramidal cells",
        ),
        VarSpec::new(
            "W",
            "1",
            0.3,
            (0.0, 1.0),
            "fraction of open potassium channels",
        ),
        VarSpec::new(
            "Z",
            "a.u.",
            0.0,
            (-1.0, 1.0),
            "mean membrane potential of the interneurons",
        ),
    ],
    params: &[
        ParamSpec::new("gCa", 1.1, "1", 0.0, 10.0, "Ca conductance"),
        ParamSpec::new("gK", 2.0, "1", 0.0, 10.0, "K conductance"),
        ParamSpec::new("gL", 0.5, "1", 0.0, 10.0, "leak conductance"),
        ParamSpec::new("phi", 0.7, "1", 0.0, 10.0, "temperature scaling factor"),
        ParamSpec::new("gNa", 6.7, "1", 0.0, 20.0, "Na conductance"),
        ParamSpec::new("TK", 0.0, "1", -1.0, 1.0, "K channel threshold"),
        ParamSpec::new("TCa", -0.01, "1", -1.0, 1.0, "Ca channel threshold"),
        ParamSpec::new("TNa", 0.3, "1", -1.0, 1.0, "Na channel threshold"),
        ParamSpec::new("VCa", 1.0, "1", -2.0, 2.0, "Ca Nernst potential"),
        ParamSpec::new("VK", -0.7, "1", -2.0, 2.0, "K Nernst potential"),
        ParamSpec::new("VL", -0.5, "1", -2.0, 2.0, "leak Nernst potential"),
        ParamSpec::new("VNa", 0.53, "1", -2.0, 2.0, "Na Nernst potential"),
        ParamSpec::new(
            "d_K",
            0.3,
            "1",
            1e-3,
            2.0,
            "spread of the K channel threshold",
        ),
        ParamSpec::new("tau_K", 1.0, "ms", 1e-3, 100.0, "K relaxation time"),
        ParamSpec::new(
            "d_Na",
            0.15,
            "1",
            1e-3,
            2.0,
            "spread of the Na channel threshold",
        ),
        ParamSpec::new(
            "d_Ca",
            0.15,
            "1",
            1e-3,
            2.0,
            "spread of the Ca channel threshold",
        ),
        ParamSpec::new(
            "aei",
            2.0,
            "1",
            0.0,
            10.0,
            "excitatory to inhibitory synaptic strength",
        ),
        ParamSpec::new(
            "aie",
            2.0,
            "1",
            0.0,
            10.0,
            "inhibitory to excitatory synaptic strength",
        ),
        ParamSpec::new("b", 0.1, "1", 0.0, 10.0, "time-scale factor of Z"),
        ParamSpec::new(
            "C",
            0.1,
            "1",
            0.0,
            1.0,
            "share of excitation from other regions",
        ),
        ParamSpec::new(
            "ane",
            1.0,
            "1",
            0.0,
            10.0,
            "non-specific to excitatory strength",
        ),
        ParamSpec::new(
            "ani",
            0.4,
            "1",
            0.0,
            10.0,
            "non-specific to inhibitory strength",
        ),
        ParamSpec::new(
            "aee",
            0.4,
            "1",
            0.0,
            10.0,
            "excitatory to excitatory strength",
        ),
        ParamSpec::new("Iext", 0.3, "1", -10.0, 10.0, "subcortical input"),
        ParamSpec::new("rNMDA", 0.25, "1", 0.0, 10.0, "NMDA to AMPA receptor ratio"),
        ParamSpec::new("VT", 0.0, "1", -1.0, 1.0, "excitatory firing threshold"),
        ParamSpec::new(
            "d_V",
            0.65,
            "1",
            1e-3,
            2.0,
            "spread of the excitatory threshold",
        ),
        ParamSpec::new("ZT", 0.0, "1", -1.0, 1.0, "inhibitory firing threshold"),
        ParamSpec::new(
            "d_Z",
            0.7,
            "1",
            1e-3,
            2.0,
            "spread of the inhibitory threshold",
        ),
        ParamSpec::new(
            "QV_max",
            1.0,
            "1",
            0.0,
            10.0,
            "maximal excitatory firing rate",
        ),
        ParamSpec::new(
            "QZ_max",
            1.0,
            "1",
            0.0,
            10.0,
            "maximal inhibitory firing rate",
        ),
        ParamSpec::new(
            "t_scale",
            1.0,
            "1",
            1e-3,
            100.0,
            "time scaling of the whole system",
        ),
    ],
    coupling: &[CouplingSpec {
        name: "c",
        var: 0,
        sends: Some("Q_V(V) = QV_max (1 + tanh((V - VT) / d_V)) / 2"),
        default_on: true,
        doc: "network input: the other regions' excitatory firing rates (⟨Q_V⟩ in the paper)",
    }],
    coupling_function: CouplingFunction::Linear,
    coupling_strength: 0.1,
    citation: "Breakspear, Terry & Friston (2003) Network 14:703-732",
};

/// `(1 + tanh((v - t) / d)) / 2` on tensors.
fn act<B: Backend>(v: Tensor<B, 2>, t: &Tensor<B, 2>, d: &Tensor<B, 2>) -> Tensor<B, 2> {
    ((v - t.clone()) / d.clone()).tanh() * 0.5 + 0.5
}

#[inline(always)]
fn act_point<T: Float>(v: T, t: T, d: T) -> T {
    let half = k::<T>(0.5);
    half + half * ((v - t) / d).tanh()
}

impl Model for LarterBreakspear {
    const SPEC: &'static ModelSpec = &SPEC;

    fn drift<B: Backend>(
        &self,
        x: &[Tensor<B, 2>],
        c: &[Option<Tensor<B, 2>>],
        p: &[Tensor<B, 2>],
    ) -> Vec<Tensor<B, 2>> {
        let [v, w, z] = x else {
            panic!("larter_breakspear: expected 3 state variables")
        };
        let [g_ca, g_k, g_l, phi, g_na, t_k, t_ca, t_na, v_ca, v_k, v_l, v_na, d_k, tau_k, d_na, d_ca, aei, aie, b, cc, ane, ani, aee, iext, r_nmda, vt, d_v, zt, d_z, qv_max, qz_max, t_scale] =
            p
        else {
            panic!("larter_breakspear: expected 32 parameters")
        };
        let [c] = c else {
            panic!("larter_breakspear: expected 1 coupling input")
        };
        let m_ca = act(v.clone(), t_ca, d_ca);
        let m_na = act(v.clone(), t_na, d_na);
        let m_k = act(v.clone(), t_k, d_k);
        let qv = qv_max.clone() * act(v.clone(), vt, d_v);
        let qz = qz_max.clone() * act(z.clone(), zt, d_z);
        // Excitatory drive: the node's own rate, weighted 1 - C, and the network's, weighted C.
        let mut drive = (cc.clone().neg() + 1.0) * qv.clone();
        if let Some(c) = c {
            drive = drive + cc.clone() * c.clone();
        }
        let ca = (g_ca.clone() + r_nmda.clone() * aee.clone() * drive.clone())
            * m_ca
            * (v.clone() - v_ca.clone());
        let na = (g_na.clone() * m_na + aee.clone() * drive) * (v.clone() - v_na.clone());
        let dv = t_scale.clone()
            * (ane.clone() * iext.clone()
                - ca
                - g_k.clone() * w.clone() * (v.clone() - v_k.clone())
                - g_l.clone() * (v.clone() - v_l.clone())
                - na
                - aie.clone() * z.clone() * qz);
        let dw = t_scale.clone() * phi.clone() * (m_k - w.clone()) / tau_k.clone();
        let dz = t_scale.clone()
            * b.clone()
            * (ani.clone() * iext.clone() + aei.clone() * v.clone() * qv);
        vec![dv, dw, dz]
    }

    #[inline(always)]
    fn drift_point<T: Float>(&self, x: &[T], c: &[T], p: &[T], dx: &mut [T]) {
        let (v, w, z) = (x[0], x[1], x[2]);
        let (g_ca, g_k, g_l, phi, g_na, t_k, t_ca, t_na) =
            (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
        let (v_ca, v_k, v_l, v_na, d_k, tau_k, d_na, d_ca) =
            (p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]);
        let (aei, aie, b, cc, ane, ani, aee, iext) =
            (p[16], p[17], p[18], p[19], p[20], p[21], p[22], p[23]);
        let (r_nmda, vt, d_v, zt, d_z, qv_max, qz_max, t_scale) =
            (p[24], p[25], p[26], p[27], p[28], p[29], p[30], p[31]);
        let m_ca = act_point(v, t_ca, d_ca);
        let m_na = act_point(v, t_na, d_na);
        let m_k = act_point(v, t_k, d_k);
        let qv = qv_max * act_point(v, vt, d_v);
        let qz = qz_max * act_point(z, zt, d_z);
        let drive = (T::one() - cc) * qv + cc * c[0];
        dx[0] = t_scale
            * (-(g_ca + r_nmda * aee * drive) * m_ca * (v - v_ca)
                - g_k * w * (v - v_k)
                - g_l * (v - v_l)
                - (g_na * m_na + aee * drive) * (v - v_na)
                - aie * z * qz
                + ane * iext);
        dx[1] = t_scale * phi * (m_k - w) / tau_k;
        dx[2] = t_scale * b * (ani * iext + aei * v * qv);
    }

    fn coupled<B: Backend>(
        &self,
        _k: usize,
        x: &[Tensor<B, 2>],
        p: &[Tensor<B, 2>],
    ) -> Tensor<B, 2> {
        p[29].clone() * act(x[0].clone(), &p[25], &p[26])
    }

    #[inline(always)]
    fn coupled_point<T: Float>(&self, _k: usize, x: &[T], p: &[T]) -> T {
        p[29] * act_point(x[0], p[25], p[26])
    }
}
