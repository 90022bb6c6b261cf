//! Parameter values as given on the command line or in a config file, checked against the
//! model's bounds and turned into tensors broadcastable to `[batch, nodes]`.
//!
//! A value is one of:
//! - a number, `eta=-4.6`: the same everywhere;
//! - a list, `G=0.1,0.2,0.3` or `G=linspace(0.1,1.0,16)`: one value per simulation of the batch;
//! - a file, `eta=@eta.npy` (or `.txt`): a vector of one value per region, or a
//!   `[batch, regions]` matrix.
//!
//! All lists of a run must have the same length, which is the batch size.

use std::path::Path;

use burn::prelude::{Backend, Tensor, TensorData};
use neurodiff_models::ParamSpec;

use crate::error::{Error, Result};
use crate::io::{read_matrix, read_npy};

/// A parameter's value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// The same value everywhere.
    Scalar(f64),
    /// One value per batch element.
    Batch(Vec<f64>),
    /// One value per region (`[1, nodes]`) or per batch element and region (`[batch, nodes]`),
    /// row-major.
    Regional {
        /// Number of rows (1 or the batch size).
        rows: usize,
        /// The values.
        values: Vec<f64>,
    },
}

impl ParamValue {
    /// Parses the text after `NAME=`.
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        let t = text.trim();
        let bad = |msg: String| Error::param(name, msg);
        if let Some(path) = t.strip_prefix('@') {
            return Self::from_file(name, Path::new(path));
        }
        if let Some(inner) = t
            .strip_prefix("linspace(")
            .and_then(|s| s.strip_suffix(')'))
        {
            let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
            if parts.len() != 3 {
                return Err(bad(format!(
                    "`{t}`: linspace takes (start, stop, count), e.g. linspace(0.1,1.0,16)"
                )));
            }
            let a: f64 = parse_num(name, parts[0])?;
            let b: f64 = parse_num(name, parts[1])?;
            let n: usize = parts[2]
                .parse()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| bad(format!("`{}` is not a positive count", parts[2])))?;
            let v = if n == 1 {
                vec![a]
            } else {
                (0..n)
                    .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
                    .collect()
            };
            return Ok(Self::Batch(v));
        }
        if t.contains(',') {
            let v = t
                .split(',')
                .map(|s| parse_num(name, s.trim()))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Self::Batch(v));
        }
        Ok(Self::Scalar(parse_num(name, t)?))
    }

    /// Reads a per-region vector or a `[batch, regions]` matrix from `.npy` or text.
    pub fn from_file(name: &str, path: &Path) -> Result<Self> {
        let is_npy = path.extension().is_some_and(|e| e == "npy");
        let a = if is_npy {
            read_npy(path)?
        } else {
            read_matrix(path)?
        };
        let (rows, values) = match a.shape.as_slice() {
            [_] => (1, a.data),
            [1, _] | [_, 1] if !is_npy => (1, a.data),
            [r, _] => (*r, a.data),
            s => {
                return Err(Error::data(
                    path,
                    format!(
                        "values for parameter `{name}` must be a vector (one per region) or a \
                         [batch, regions] matrix, found shape {s:?}"
                    ),
                ))
            }
        };
        Ok(Self::Regional { rows, values })
    }

    fn values(&self) -> &[f64] {
        match self {
            Self::Scalar(v) => std::slice::from_ref(v),
            Self::Batch(v) => v,
            Self::Regional { values, .. } => values,
        }
    }
}

fn parse_num(name: &str, s: &str) -> Result<f64> {
    s.parse::<f64>()
        .map_err(|_| Error::param(name, format!("`{s}` is not a number")))
}

/// Parameter values of a network, complete (defaults filled in) and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamTable {
    /// The parameters, in the network's order.
    pub specs: Vec<ParamSpec>,
    /// One value per parameter.
    pub values: Vec<ParamValue>,
    /// Batch size.
    pub batch: usize,
    /// Number of regions.
    pub nodes: usize,
}

impl ParamTable {
    /// Fills in defaults, overrides them with `given` (later entries win), checks names, bounds
    /// and shapes, and finds the batch size. `batch` forces a batch size (values that are not
    /// per batch element are repeated).
    pub fn new(
        specs: &[ParamSpec],
        given: &[(String, ParamValue)],
        nodes: usize,
        batch: Option<usize>,
    ) -> Result<Self> {
        let mut values: Vec<ParamValue> = specs
            .iter()
            .map(|s| ParamValue::Scalar(s.default))
            .collect();
        for (name, v) in given {
            let k = specs.iter().position(|s| s.name == name).ok_or_else(|| {
                Error::param(
                    name,
                    format!(
                        "no such parameter; known parameters: {}",
                        specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            values[k] = v.clone();
        }
        if batch == Some(0) {
            return Err(Error::setting(
                "batch",
                "must be at least 1 (the number of simulations run together)",
            ));
        }
        let mut found: Option<(usize, &str)> = batch.map(|b| (b, "--batch"));
        for (s, v) in specs.iter().zip(&values) {
            let rows = match v {
                ParamValue::Scalar(_) => 1,
                ParamValue::Batch(l) => l.len(),
                ParamValue::Regional { rows, values } => {
                    if values.len() != rows * nodes {
                        return Err(Error::param(
                            s.name,
                            format!(
                                "{} values given per row but the connectome has {nodes} regions",
                                values.len() / rows.max(&1)
                            ),
                        ));
                    }
                    *rows
                }
            };
            if rows == 0 {
                return Err(Error::param(s.name, "empty list of values"));
            }
            if rows > 1 {
                match found {
                    Some((b, who)) if b != rows => {
                        return Err(Error::param(
                            s.name,
                            format!(
                                "{rows} values but {who} gives {b}: every list must have the \
                                 batch size"
                            ),
                        ))
                    }
                    None => found = Some((rows, s.name)),
                    _ => {}
                }
            }
            if let Some(bad) = v.values().iter().find(|&&x| !s.admits(x)) {
                return Err(Error::param(
                    s.name,
                    format!(
                        "value {bad} is outside the admissible range [{}, {}] ({})",
                        s.lower, s.upper, s.doc
                    ),
                ));
            }
        }
        Ok(Self {
            specs: specs.to_vec(),
            values,
            batch: found.map_or(1, |f| f.0),
            nodes,
        })
    }

    /// Index of a parameter by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.specs.iter().position(|s| s.name == name)
    }

    /// The values as tensors, each `[1 or batch, 1 or nodes]`.
    pub fn tensors<B: Backend>(&self, device: &B::Device) -> Vec<Tensor<B, 2>> {
        self.values
            .iter()
            .map(|v| {
                // f64 data, converted by Burn to the backend's float type (no f32 detour).
                let (shape, data): ([usize; 2], Vec<f64>) = match v {
                    ParamValue::Scalar(x) => ([1, 1], vec![*x]),
                    ParamValue::Batch(l) => ([l.len(), 1], l.clone()),
                    ParamValue::Regional { rows, values } => ([*rows, self.nodes], values.clone()),
                };
                Tensor::from_data(TensorData::new(data, shape), crate::float_opts::<B>(device))
            })
            .collect()
    }

    /// Per parameter, its value if it is the same for every batch element and node
    /// ([`ParamValue::Scalar`]), for [`crate::network::Network::fold_params`].
    pub fn globals(&self) -> Vec<Option<f64>> {
        self.values
            .iter()
            .map(|v| match v {
                ParamValue::Scalar(x) => Some(*x),
                _ => None,
            })
            .collect()
    }

    /// The value of parameter `k` for batch element `b` and node `i`.
    pub fn value_at(&self, k: usize, b: usize, i: usize) -> f64 {
        match &self.values[k] {
            ParamValue::Scalar(x) => *x,
            ParamValue::Batch(l) => l[b],
            ParamValue::Regional { rows, values } => {
                let r = if *rows == 1 { 0 } else { b };
                values[r * self.nodes + i]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[ParamSpec] = &[
        ParamSpec {
            name: "a",
            default: 1.0,
            unit: "1",
            lower: 0.0,
            upper: 10.0,
            doc: "a",
        },
        ParamSpec {
            name: "b",
            default: 2.0,
            unit: "1",
            lower: -10.0,
            upper: 10.0,
            doc: "b",
        },
    ];

    #[test]
    fn parses_values() {
        assert_eq!(
            ParamValue::parse("a", "1.5").unwrap(),
            ParamValue::Scalar(1.5)
        );
        assert_eq!(
            ParamValue::parse("a", "1,2,3").unwrap(),
            ParamValue::Batch(vec![1.0, 2.0, 3.0])
        );
        assert_eq!(
            ParamValue::parse("a", "linspace(0, 1, 5)").unwrap(),
            ParamValue::Batch(vec![0.0, 0.25, 0.5, 0.75, 1.0])
        );
        assert!(ParamValue::parse("a", "linspace(0,1)").is_err());
        assert!(ParamValue::parse("a", "x")
            .unwrap_err()
            .to_string()
            .contains("`x`"));
    }

    #[test]
    fn batch_size_and_errors() {
        let t = ParamTable::new(
            SPECS,
            &[("b".into(), ParamValue::Batch(vec![1.0, 2.0, 3.0]))],
            4,
            None,
        )
        .unwrap();
        assert_eq!(t.batch, 3);
        assert_eq!(t.value_at(0, 2, 1), 1.0);
        assert_eq!(t.value_at(1, 2, 1), 3.0);
        let e = ParamTable::new(SPECS, &[("c".into(), ParamValue::Scalar(1.0))], 4, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`c`") && e.contains("a, b"), "{e}");
        let e = ParamTable::new(SPECS, &[("a".into(), ParamValue::Scalar(-1.0))], 4, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[0, 10]"), "{e}");
        let e = ParamTable::new(
            SPECS,
            &[
                ("a".into(), ParamValue::Batch(vec![1.0, 2.0])),
                ("b".into(), ParamValue::Batch(vec![1.0, 2.0, 3.0])),
            ],
            4,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("batch size"), "{e}");
    }
}
