//! Scenarios: a layout, trains, a load of simulated visitors, and what must hold.

mod run;
pub mod spec;
pub mod visitors;

pub use run::{Report, RunConfig, Runner, Taken, run, run_scenario, runner};
pub use spec::{Expectations, Expected, Scenario, ScenarioError, ScenarioSpec, ScriptEntry, VisitorsSpec};
