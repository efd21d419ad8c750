//! The layout file: its on-disk format ([`spec`]), validation ([`build`]) and the validated model.

pub mod build;
pub mod drawing;
mod model;
pub mod spec;

pub use build::{LayoutError, SERVO_PINS};
pub use model::*;
