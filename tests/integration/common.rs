//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use burn::prelude::{Backend, Tensor, TensorData};
use neurodiff::connectome::Connectome;
use neurodiff::integrate::Integrator;
use neurodiff::monitor::Monitor;
use neurodiff::network::Network;
use neurodiff::noise::{Noise, NoiseMode, NoiseSource};
use neurodiff::params::{ParamTable, ParamValue};
use neurodiff::sim::{simulate_collect, Run};

pub type Nd = burn::backend::NdArray<f32>;
pub type Nd64 = burn::backend::NdArray<f64>;
pub type Flex = burn::backend::Flex;

/// Instantiates a backend-generic test `fn name<B: Backend>()` once per enabled backend.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod per_backend {
            $(
                mod $name {
                    #[test]
                    fn ndarray() { super::super::$name::<$crate::common::Nd>(); }
                    #[test]
                    fn flex() { super::super::$name::<$crate::common::Flex>(); }
                }
            )*
        }
    };
}

/// A run of `steps` steps with the given integrator, noise amplitude (0 = none) and sampling.
pub fn run(steps: usize, integrator: Integrator, sigma: f64, seed: u64, every: usize) -> Run {
    Run {
        dt: 0.01,
        steps,
        integrator,
        noise: Noise {
            sigma: vec![sigma; 2],
            mode: if sigma > 0.0 {
                NoiseMode::Independent
            } else {
                NoiseMode::None
            },
            seed,
            source: NoiseSource::Host,
        },
        chunk: 100,
        monitor: Monitor {
            every,
            mean: false,
            transient: 0,
            vars: vec![0, 1],
            bold: None,
        },
    }
}

/// MPR on the bundled HCP connectome.
pub fn mpr_net<B: Backend>(device: &B::Device) -> (Network<B>, Connectome) {
    let conn = Connectome::load("hcp80", None).unwrap();
    let net = Network::<B>::new("mpr", &conn, None, None, device).unwrap();
    (net, conn)
}

/// Parameter tensors with some values set.
pub fn params<B: Backend>(
    net: &Network<B>,
    given: &[(&str, ParamValue)],
    device: &B::Device,
) -> (Vec<Tensor<B, 2>>, usize) {
    let given: Vec<(String, ParamValue)> = given
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    let t = ParamTable::new(&net.param_specs(), &given, net.nodes(), None).unwrap();
    (t.tensors(device), t.batch)
}

/// Simulates and returns the samples on the host.
pub fn sim<B: Backend>(
    net: &Network<B>,
    p: &[Tensor<B, 2>],
    batch: usize,
    run: &Run,
    device: &B::Device,
) -> (Vec<f32>, [usize; 4]) {
    simulate_collect(net, p, net.initial_state(batch, device), run).unwrap()
}

/// A `[rows, cols]` tensor from host values.
pub fn tensor2<B: Backend>(v: Vec<f32>, rows: usize, cols: usize, d: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(
        TensorData::new(v, [rows, cols]),
        neurodiff::float_opts::<B>(d),
    )
}

/// Largest absolute difference relative to the largest magnitude.
pub fn rel_diff<T: Copy + Into<f64>>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = a
        .iter()
        .fold(0f64, |m, &x| m.max(x.into().abs()))
        .max(1e-12);
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x.into() - y.into()).abs())
        .fold(0.0, f64::max)
        / scale
}

/// Runs the fused engine in float type `T`, returning every sample in order, rounded to `f32`
/// (what the tensor engine's helpers return).
pub fn fused_samples<T: neurodiff::fused::Real>(
    fr: &neurodiff::fused::FusedRun<'_>,
) -> neurodiff::Result<Vec<f32>> {
    let mut out = Vec::new();
    neurodiff::fused::simulate_fused::<T>(
        fr,
        &mut |_, _, v| {
            out.extend(v.into_iter().map(|x| x as f32));
            Ok(())
        },
        &mut |_| {},
    )?;
    Ok(out)
}

/// A fresh empty folder for one test.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("neurodiff-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a little-endian f64 .npy file.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f64]) {
    let dims = shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let dims = if shape.len() == 1 {
        format!("{dims},")
    } else {
        dims
    };
    let mut dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({dims}), }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// The standard error of a finished command.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Deterministic pseudo-random numbers in [-1, 1) (a 64-bit LCG, independent of every generator
/// under test; `neurodiff-optim`'s unit tests use the same sequence).
pub fn rand_vec(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}
