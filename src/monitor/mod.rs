//! Monitors: what is kept of a run. [`Monitor`] holds the settings (schedule, variables,
//! kind); [`Observer`] is the monitor itself, written once over `Real` and run by both
//! engines; [`tensor`] applies it to the tensor engine's carry.

mod observer;
mod settings;
pub mod tensor;

pub use observer::{Bold, Mean, Observe, Observer, Raw};
pub use settings::{neural_run, BoldMonitor, Monitor, MonitorKind};
