//! The layout file: its on-disk format ([`spec`]), validation ([`build`]) and the validated model; the
//! schematic picture ([`drawing`]); the festivals' own layouts, built in ([`festival`]).

pub mod build;
pub mod drawing;
pub mod festival;
mod model;
pub mod spec;

pub use build::{LayoutError, SERVO_PINS};
pub use model::*;
