//! Observation models: what is compared with data, computed from simulated time series.
//!
//! - [`fc`](mod@fc): functional connectivity (Pearson correlation between regions) and its
//!   dynamics over sliding windows (FCD).
//!
//! Everything is differentiable and generic over the backend.

pub mod fc;

pub use fc::{fc, fcd, fcd_windows, FC_EPS};
