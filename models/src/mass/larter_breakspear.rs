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

use crate::spec::{CouplingFunction, CouplingSpec, ModelSpec, VarSpec};
use crate::{k, Model, Real};

crate::params! {
    /// Larter–Breakspear parameters.
    pub struct Params, const PARAMS {
        /// Ca conductance
        gCa = 1.1, "1", [0.0, 10.0];
        /// K conductance
        gK = 2.0, "1", [0.0, 10.0];
        /// leak conductance
        gL = 0.5, "1", [0.0, 10.0];
        /// temperature scaling factor
        phi = 0.7, "1", [0.0, 10.0];
        /// Na conductance
        gNa = 6.7, "1", [0.0, 20.0];
        /// K channel threshold
        TK = 0.0, "1", [-1.0, 1.0];
        /// Ca channel threshold
        TCa = -0.01, "1", [-1.0, 1.0];
        /// Na channel threshold
        TNa = 0.3, "1", [-1.0, 1.0];
        /// Ca Nernst potential
        VCa = 1.0, "1", [-2.0, 2.0];
        /// K Nernst potential
        VK = -0.7, "1", [-2.0, 2.0];
        /// leak Nernst potential
        VL = -0.5, "1", [-2.0, 2.0];
        /// Na Nernst potential
        VNa = 0.53, "1", [-2.0, 2.0];
        /// spread of the K channel threshold
        d_K = 0.3, "1", [1e-3, 2.0];
        /// K relaxation time
        tau_K = 1.0, "ms", [1e-3, 100.0];
        /// spread of the Na channel threshold
        d_Na = 0.15, "1", [1e-3, 2.0];
        /// spread of the Ca channel threshold
        d_Ca = 0.15, "1", [1e-3, 2.0];
        /// excitatory to inhibitory synaptic strength
        aei = 2.0, "1", [0.0, 10.0];
        /// inhibitory to excitatory synaptic strength
        aie = 2.0, "1", [0.0, 10.0];
        /// time-scale factor of Z
        b = 0.1, "1", [0.0, 10.0];
        /// share of excitation from other regions
        C = 0.1, "1", [0.0, 1.0];
        /// non-specific to excitatory strength
        ane = 1.0, "1", [0.0, 10.0];
        /// non-specific to inhibitory strength
        ani = 0.4, "1", [0.0, 10.0];
        /// excitatory to excitatory strength
        aee = 0.4, "1", [0.0, 10.0];
        /// subcortical input
        Iext = 0.3, "1", [-10.0, 10.0];
        /// NMDA to AMPA receptor ratio
        rNMDA = 0.25, "1", [0.0, 10.0];
        /// excitatory firing threshold
        VT = 0.0, "1", [-1.0, 1.0];
        /// spread of the excitatory threshold
        d_V = 0.65, "1", [1e-3, 2.0];
        /// inhibitory firing threshold
        ZT = 0.0, "1", [-1.0, 1.0];
        /// spread of the inhibitory threshold
        d_Z = 0.7, "1", [1e-3, 2.0];
        /// maximal excitatory firing rate
        QV_max = 1.0, "1", [0.0, 10.0];
        /// maximal inhibitory firing rate
        QZ_max = 1.0, "1", [0.0, 10.0];
        /// time scaling of the whole system
        t_scale = 1.0, "1", [1e-3, 100.0];
    }
}

/// The Larter–Breakspear model.
#[derive(Debug, Clone, Copy, Default)]
pub struct LarterBreakspear;

/// Static description of [`LarterBreakspear`].
pub const SPEC: ModelSpec = ModelSpec {
    name: "larter_breakspear",
    title: "Larter–Breakspear",
    time_unit: crate::TimeUnit::Ms,
    default_dt: 0.05,
    sample_period: None,
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
    params: PARAMS,
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

#[inline(always)]
fn act<R: Real>(v: R, t: R, d: R) -> R {
    let half = k::<R>(0.5);
    half + half * ((v - t) / d).tanh()
}

impl Model for LarterBreakspear {
    fn spec(&self) -> &'static ModelSpec {
        &SPEC
    }

    #[inline(always)]
    fn drift<R: Real>(&self, x: &[R], c: &[R], p: &[R], dx: &mut [R]) {
        let (v, w, z) = (x[0], x[1], x[2]);
        let Params {
            gCa: g_ca,
            gK: g_k,
            gL: g_l,
            phi,
            gNa: g_na,
            TK: t_k,
            TCa: t_ca,
            TNa: t_na,
            VCa: v_ca,
            VK: v_k,
            VL: v_l,
            VNa: v_na,
            d_K: d_k,
            tau_K: tau_k,
            d_Na: d_na,
            d_Ca: d_ca,
            aei,
            aie,
            b,
            C: cc,
            ane,
            ani,
            aee,
            Iext: iext,
            rNMDA: r_nmda,
            VT: vt,
            d_V: d_v,
            ZT: zt,
            d_Z: d_z,
            QV_max: qv_max,
            QZ_max: qz_max,
            t_scale,
        } = Params::from_slice(p);

        let m_ca = act(v, t_ca, d_ca);
        let m_na = act(v, t_na, d_na);
        let m_k = act(v, t_k, d_k);
        let qv = qv_max * act(v, vt, d_v);
        let qz = qz_max * act(z, zt, d_z);
        let drive = (k::<R>(1.0) - cc) * qv + cc * c[0];
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

    #[inline(always)]
    fn coupled<R: Real>(&self, _k: usize, x: &[R], p: &[R]) -> R {
        Params::from_slice(p).QV_max
            * act(x[0], Params::from_slice(p).VT, Params::from_slice(p).d_V)
    }
}
