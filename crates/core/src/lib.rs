//! rudder's shared vocabulary: what every other crate of the workspace means by a
//! task, a loss, an optimizer, a metric and which way it improves, an event of a run,
//! and the typed configuration of a run, read from flags and files and validated.
//!
//! Nothing here knows a tensor, a script engine or a file format beyond JSON: the
//! crate depends on serde, thiserror and libc (the open flags of [`input`]) only, so
//! every layer above can share it.

pub mod atomic;
pub mod config;
pub mod event;
pub mod input;
pub mod interrupt;
pub mod kinds;
pub mod launcher;
pub mod metric;
pub mod name;
pub mod param;
pub mod range;
pub mod rescale;
pub mod term;
pub mod text;
pub mod time;
pub mod watch;

pub use config::{ConfigError, ModelKind, Overrides, TrainConfig, TrainOptions};
pub use event::EventKind;
pub use kinds::{Hyper, Kernels, Loss, OptimizerKind, SweepLauncher, Task};
pub use name::UnknownName;
pub use param::{Param, ParamError};
pub use range::{Invalid, MAX_ACCUMULATION, MAX_EPOCHS, check_count, check_hyper};
pub use rescale::Rescale;
pub use watch::WatchMode;
