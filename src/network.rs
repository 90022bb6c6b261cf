//! A network: a model at every node of a connectome, joined by a coupling. The bound
//! [`Field`] (network + parameter values) is the only vector field an integrator sees.

use burn::prelude::{Backend, Tensor, TensorData};
use neurodiff_models::{Dynamics, ModelSpec, ParamSpec};

use crate::connectome::Connectome;
use crate::coupling::CouplingKind;
use crate::error::{Error, Result};
use crate::integrate::VectorField;

/// A model on every node of a connectome, with a coupling.
pub struct Network<B: Backend> {
    model: Box<dyn Dynamics<B>>,
    spec: &'static ModelSpec,
    coupling: CouplingKind,
    /// `Wᵀ`, so that the input of a batch of states `[batch, nodes]` is `x · Wᵀ`.
    wt: Tensor<B, 2>,
    inputs_on: Vec<bool>,
    n: usize,
}

impl<B: Backend> Network<B> {
    /// Builds a network of the model called `model` on `connectome`. `inputs` names the
    /// model's coupling inputs to compute (`None`: the model's defaults).
    pub fn new(
        model: &str,
        connectome: &Connectome,
        coupling: CouplingKind,
        inputs: Option<&[String]>,
        device: &B::Device,
    ) -> Result<Self> {
        let dynamics = neurodiff_models::dynamics::<B>(model)?;
        let spec = dynamics.spec();
        let inputs_on = resolve_inputs(spec, inputs)?;
        let n = connectome.n;
        let mut wt = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                wt[j * n + i] = connectome.weights[i * n + j];
            }
        }
        Ok(Self {
            model: dynamics,
            spec,
            coupling,
            wt: Tensor::from_data(TensorData::new(wt, [n, n]), crate::float_opts::<B>(device)),
            inputs_on,
            n,
        })
    }

    /// The model's static description.
    pub fn spec(&self) -> &'static ModelSpec {
        self.spec
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.n
    }

    /// The coupling function.
    pub fn coupling(&self) -> CouplingKind {
        self.coupling
    }

    /// Which of the model's coupling inputs are computed.
    pub fn inputs_on(&self) -> &[bool] {
        &self.inputs_on
    }

    /// The full parameter list: the model's parameters, then the coupling's (see
    /// [`param_specs`]).
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        param_specs(self.spec, self.coupling)
    }

    /// The model's default initial state at every node, `[batch, nodes]` per variable.
    pub fn initial_state(&self, batch: usize, device: &B::Device) -> Vec<Tensor<B, 2>> {
        self.spec
            .state
            .iter()
            .map(|v| Tensor::full([batch, self.n], v.initial, crate::float_opts::<B>(device)))
            .collect()
    }

    /// Binds parameter values (one tensor per entry of [`Network::param_specs`], each
    /// broadcastable to `[batch, nodes]`) to make a vector field.
    pub fn field<'a>(&'a self, params: &'a [Tensor<B, 2>]) -> Field<'a, B> {
        debug_assert_eq!(params.len(), self.param_specs().len());
        let (model_p, coupling_p) = params.split_at(self.spec.params.len());
        Field {
            net: self,
            model_p,
            coupling_p,
        }
    }

    /// The coupling inputs for state `x`.
    pub fn inputs(
        &self,
        x: &[Tensor<B, 2>],
        coupling_p: &[Tensor<B, 2>],
    ) -> Vec<Option<Tensor<B, 2>>> {
        let mut out: Vec<Option<Tensor<B, 2>>> = Vec::with_capacity(self.inputs_on.len());
        for (k, c) in self.spec.coupling.iter().enumerate() {
            if !self.inputs_on[k] {
                out.push(None);
                continue;
            }
            // Reuse an input already formed from the same variable.
            let same = (0..k).find(|&m| self.inputs_on[m] && self.spec.coupling[m].var == c.var);
            let value = match same {
                Some(m) => out[m].clone(),
                None => Some(self.coupling.apply(&x[c.var], &self.wt, coupling_p)),
            };
            out.push(value);
        }
        out
    }
}

/// The full parameter list of a model with a coupling: the model's parameters, then the
/// coupling's. The coupling's `G` defaults to the model's typical coupling strength.
pub fn param_specs(spec: &ModelSpec, coupling: CouplingKind) -> Vec<ParamSpec> {
    let mut v: Vec<ParamSpec> = spec.params.to_vec();
    for p in coupling.params() {
        let mut p = *p;
        if p.name == "G" {
            p.default = spec.coupling_strength;
        }
        v.push(p);
    }
    v
}

/// Which coupling inputs of a model are computed: the named ones, or the model's defaults.
pub fn resolve_inputs(spec: &ModelSpec, inputs: Option<&[String]>) -> Result<Vec<bool>> {
    match inputs {
        None => Ok(spec.coupling.iter().map(|c| c.default_on).collect()),
        Some(names) => {
            let mut on = vec![false; spec.coupling.len()];
            for name in names {
                let k = spec
                    .coupling
                    .iter()
                    .position(|c| c.name == name)
                    .ok_or_else(|| {
                        Error::setting(
                            "coupling-inputs",
                            format!(
                                "model `{}` has no coupling input `{name}`; it has: {}",
                                spec.name,
                                spec.coupling
                                    .iter()
                                    .map(|c| c.name)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })?;
                on[k] = true;
            }
            Ok(on)
        }
    }
}

/// A network with its parameter values bound: the vector field integrators step.
pub struct Field<'a, B: Backend> {
    net: &'a Network<B>,
    model_p: &'a [Tensor<B, 2>],
    coupling_p: &'a [Tensor<B, 2>],
}

impl<B: Backend> VectorField<B> for Field<'_, B> {
    fn eval(&self, x: &[Tensor<B, 2>]) -> Vec<Tensor<B, 2>> {
        let c = self.net.inputs(x, self.coupling_p);
        self.net.model.drift(x, &c, self.model_p)
    }

    fn project(&self, x: Vec<Tensor<B, 2>>) -> Vec<Tensor<B, 2>> {
        if self.net.model.has_projection() {
            self.net.model.project(x)
        } else {
            x
        }
    }
}
