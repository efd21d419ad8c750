//! The desktop window of the twin. [`view`] is what a view shows and asks, as plain data (a standalone twin of
//! its own, or a gateway's track read from its v2 frames), built and tested without the rendering stack;
//! `render` (feature `render`) draws it with Bevy and bevy_egui.

#[cfg(feature = "render")]
pub mod render;

/// Bevy, as the rendering uses it (for tests that read its pictures).
#[cfg(feature = "render")]
pub use bevy;
pub mod view;
