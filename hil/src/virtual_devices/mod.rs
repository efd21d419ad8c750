//! Virtual devices over a simulation: the hardware's protocols served from a simulated layout.
//!
//! - [`device`]: what every virtual device shares (where it sends what it does, where it listens);
//! - [`rig`]: a simulated layout behind virtual boards and controllers (`plarail-twin boards`, tests).

pub mod device;
pub mod rig;
