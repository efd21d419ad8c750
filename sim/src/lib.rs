//! The twin's core: the layout model, the Bevy simulation, the interlocking and the scenario runner. Its
//! modules:
//!
//! - [`layout`]: the layout file, its validation and the model;
//! - [`track`]: track geometry as plain functions (passing a node, a train's body);
//! - [`twin`]: the simulation, a Bevy ECS world with a fixed step, and its thread;
//! - [`interlocking`]: whether a command may reach the track (rules, route locking, protection);
//! - [`auto`]: automatic operation, as plain functions over the track's state;
//! - [`scenario`]: scenarios (a layout, trains, simulated visitors, expectations) and their runner;
//! - [`generated`]: a generated layout of any size, for benchmarks.

pub mod auto;
pub mod generated;
pub mod interlocking;
pub mod layout;
pub mod scenario;
pub mod track;
pub mod twin;
