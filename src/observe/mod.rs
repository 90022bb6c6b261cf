//! Observation models: what is compared with data, computed from simulated time series.
//!
//! - [`fc`](mod@fc): functional connectivity (Pearson correlation between regions) and its
//!   dynamics over sliding windows (FCD).
//! - [`bold`](mod@bold): the Balloon–Windkessel haemodynamic model, from neural activity to
//!   BOLD.
//! - [`spectra`](mod@spectra): host-side metrics of recorded series — Welch power spectra, band
//!   power, ISI coefficient of variation, phase–amplitude coupling (Tort's modulation index).
//!
//! FC and BOLD are differentiable and generic over the backend; `spectra` works on host `f64`
//! slices and carries no gradient.

pub mod bold;
pub mod fc;
pub mod spectra;

pub use bold::{bold_drift, bold_signal, bold_step, BoldParams, BoldState};
pub use fc::{fc, fcd, fcd_windows, FC_EPS};
