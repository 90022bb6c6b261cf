//! Observation models: what is compared with data, computed from simulated time series.
//!
//! - [`fc`](mod@fc): functional connectivity (Pearson correlation between regions) and its
//!   dynamics over sliding windows (FCD).
//! - [`bold`](mod@bold): the Balloon–Windkessel haemodynamic model, from neural activity to
//!   BOLD.
//!
//! Everything is differentiable and generic over the backend.

pub mod bold;
pub mod fc;

pub use bold::{bold_drift, bold_signal, bold_step, BoldParams, BoldState};
pub use fc::{fc, fcd, fcd_windows, FC_EPS};
