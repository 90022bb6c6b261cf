//! The one place where a backend chosen at run time (`--backend`) becomes the type parameter
//! `B` that all engine code is generic over.

use burn::prelude::Backend;

use crate::error::{Error, Result};
use crate::io::Dtype;
use crate::noise::NoiseSource;

/// A backend choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Burn's `NdArray` CPU backend, `f32`.
    Ndarray,
    /// Burn's `NdArray` CPU backend in `f64` (slower; for precision checks).
    Ndarray64,
    /// Burn's `Flex` CPU backend (multi-threaded, SIMD), `f32`.
    Flex,
    /// Burn's `Wgpu` backend (Vulkan/Metal/DX12) with kernel fusion, `f32`.
    Wgpu,
    /// Burn's `Cuda` backend with kernel fusion, `f32`.
    Cuda,
}

crate::choice!(BackendKind, "backend", [Ndarray => "ndarray", Ndarray64 => "ndarray64", Flex => "flex", Wgpu => "wgpu", Cuda => "cuda"]);

impl BackendKind {
    /// The float type the backend computes in (and the fused engine with it), as NumPy names
    /// it: `float64` for `ndarray64`, `float32` for the others. `simulate` writes its output in
    /// this type.
    pub fn float_dtype(self) -> Dtype {
        match self {
            Self::Ndarray64 => Dtype::F64,
            _ => Dtype::F32,
        }
    }

    /// Whether the backend runs on the CPU.
    pub fn is_cpu(self) -> bool {
        matches!(self, Self::Ndarray | Self::Ndarray64 | Self::Flex)
    }

    /// The noise generator that suits the backend: the host for CPU backends (identical across
    /// them), the device for GPUs (nothing large crosses the bus).
    pub fn default_noise_source(self) -> NoiseSource {
        if self.is_cpu() {
            NoiseSource::Host
        } else {
            NoiseSource::Device
        }
    }

    /// An error naming the feature to rebuild with if this build lacks the backend.
    pub fn ensure_compiled(self) -> Result<()> {
        if Self::available().contains(&self) {
            Ok(())
        } else {
            Err(missing(self, self.name()))
        }
    }

    /// Backends compiled into this build.
    pub fn available() -> Vec<BackendKind> {
        let mut v = Vec::new();
        if cfg!(feature = "ndarray") {
            v.push(Self::Ndarray);
        }
        if cfg!(feature = "ndarray64") {
            v.push(Self::Ndarray64);
        }
        if cfg!(feature = "flex") {
            v.push(Self::Flex);
        }
        if cfg!(feature = "wgpu") {
            v.push(Self::Wgpu);
        }
        if cfg!(feature = "cuda") {
            v.push(Self::Cuda);
        }
        v
    }
}

/// Code to run on a backend chosen at run time.
pub trait BackendTask {
    /// What the task returns.
    type Output;
    /// Runs the task on backend `B` and `device`.
    fn run<B: Backend>(self, kind: BackendKind, device: B::Device) -> Self::Output;
}

pub(crate) fn missing(kind: BackendKind, feature: &str) -> Error {
    Error::Backend {
        name: kind.name().into(),
        message: format!(
            "not compiled into this build; rebuild with `--features {feature}` (this build has: \
             {})",
            BackendKind::available()
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs `task` on the backend `kind`. GPU backends are checked for a usable device first, and a
/// failure to start one becomes an error rather than a crash.
pub fn with_backend<T: BackendTask>(kind: BackendKind, task: T) -> Result<T::Output> {
    match kind {
        BackendKind::Ndarray => {
            #[cfg(feature = "ndarray")]
            {
                return Ok(task.run::<burn::backend::NdArray<f32>>(kind, Default::default()));
            }
            #[allow(unreachable_code)]
            Err(missing(kind, "ndarray"))
        }
        BackendKind::Ndarray64 => {
            #[cfg(feature = "ndarray64")]
            {
                return Ok(task.run::<burn::backend::NdArray<f64>>(kind, Default::default()));
            }
            #[allow(unreachable_code)]
            Err(missing(kind, "ndarray64"))
        }
        BackendKind::Flex => {
            #[cfg(feature = "flex")]
            {
                return Ok(task.run::<burn::backend::Flex>(kind, Default::default()));
            }
            #[allow(unreachable_code)]
            Err(missing(kind, "flex"))
        }
        BackendKind::Wgpu => {
            #[cfg(feature = "wgpu")]
            {
                return guarded(kind, || {
                    task.run::<burn::backend::Wgpu>(
                        kind,
                        burn::backend::wgpu::WgpuDevice::default(),
                    )
                });
            }
            #[allow(unreachable_code)]
            Err(missing(kind, "wgpu"))
        }
        BackendKind::Cuda => {
            #[cfg(feature = "cuda")]
            {
                if !nvidia_driver_present() {
                    return Err(Error::Backend {
                        name: "cuda".into(),
                        message: "no NVIDIA driver found on this machine (no \
                                  /proc/driver/nvidia/version); use --backend ndarray or flex"
                            .into(),
                    });
                }
                return guarded(kind, || {
                    task.run::<burn::backend::Cuda>(
                        kind,
                        burn::backend::cuda::CudaDevice::default(),
                    )
                });
            }
            #[allow(unreachable_code)]
            Err(missing(kind, "cuda"))
        }
    }
}

/// Whether the NVIDIA kernel driver is loaded.
pub fn nvidia_driver_present() -> bool {
    std::path::Path::new("/proc/driver/nvidia/version").exists()
}

/// Runs a GPU task, turning a panic inside the backend (no adapter, driver failure) into an error.
#[allow(dead_code)]
fn guarded<R>(kind: BackendKind, f: impl FnOnce() -> R) -> Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown failure".into());
        Error::Backend {
            name: kind.name().into(),
            message: format!("the backend failed: {msg}"),
        }
    })
}
