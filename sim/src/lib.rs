//! The twin's core: the layout model, the Bevy simulation, the interlocking and the scenario runner.

pub mod auto;
pub mod generated;
pub mod interlocking;
pub mod layout;
pub mod scenario;
pub mod track;
pub mod twin;
