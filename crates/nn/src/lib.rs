//! rudder's models, losses, optimizers and data sets over candle: the reference
//! arithmetic (candle's autograd), the CUDA path, and the storage of every tensor a
//! checkpoint holds. The CPU engine (`rudder-engine`) computes the same steps with
//! its own kernels and imports from and exports to the models built here.

pub mod data;
pub mod loss;
pub mod model;
pub mod optim;
