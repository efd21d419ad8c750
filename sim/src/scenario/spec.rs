//! The scenario file (TOML), documented in `scenarios/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::run::{Report, Taken};
use super::visitors::{Action, Timed, generate};
use crate::interlocking::Request;
use crate::layout::spec::{LayoutSpec, PlacementSpec};
use crate::layout::{Layout, LayoutError, OnOff};

/// A scenario as written on disk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// Short name.
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// Layout file, relative to the scenario file.
    pub layout: PathBuf,
    /// Simulated duration in seconds.
    pub duration_s: u64,
    /// Seed of the visitors' random choices.
    pub seed: u64,
    /// Fixed simulation step in milliseconds.
    #[serde(default = "default_step_ms")]
    pub step_ms: u64,
    /// Whether the interlocking checks commands.
    #[serde(default = "yes")]
    pub interlocking: bool,
    /// Who runs the trains besides the visitors [default: manual, the visitors alone].
    #[serde(default)]
    pub operation: ScenarioOperation,
    /// Mixed operation: how long a station or train stays a visitor's after their last command, seconds.
    #[serde(default = "default_quiet_s")]
    pub quiet_s: u64,
    /// The simulated visitors [default: none].
    #[serde(default)]
    pub visitors: VisitorsSpec,
    /// Devices whose state at the start is not the layout's (by name).
    #[serde(default)]
    pub devices: BTreeMap<String, OnOff>,
    /// Inputs at given times: commands exactly as written (with the outcome each must have, where given),
    /// operation switches (a recorded hour exported by `replay --export-scenario` is one).
    #[serde(default)]
    pub script: Vec<ScriptEntry>,
    /// Per-train overrides of the layout's speeds and start positions.
    #[serde(default, rename = "train")]
    pub trains: Vec<TrainOverride>,
    /// Boards that fail for a while: every command for a device on one fails meanwhile.
    #[serde(default, rename = "board_failure")]
    pub board_failures: Vec<BoardFailure>,
    /// What must hold at the end.
    #[serde(default)]
    pub expect: Expectations,
}

fn default_step_ms() -> u64 {
    10
}

fn yes() -> bool {
    true
}

fn default_quiet_s() -> u64 {
    30
}

/// Who runs the trains in a scenario besides its visitors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioOperation {
    /// The visitors alone.
    #[default]
    Manual,
    /// The twin's automatic operation; visitors' commands are refused.
    Auto,
    /// The twin's automatic operation, except what visitors operate.
    Mixed,
    /// The 2023 auto-operation's rule alone (a baseline: no interlocking behind it).
    #[serde(rename = "rule2023")]
    Rule2023,
}

/// The load of simulated visitors.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitorsSpec {
    /// Number of visitors.
    pub count: u32,
    /// Commands per second sent by each visitor (on average).
    pub commands_per_s: f64,
    /// Relative weight of stop-rail commands.
    pub stop_rail: f64,
    /// Relative weight of switch commands.
    pub switch: f64,
    /// Relative weight of speed commands.
    pub speed: f64,
    /// Share (0..1) of commands chosen to cause a collision or derailment.
    pub adversarial: f64,
    /// When the visitors go quiet, seconds from the start [default: they act to the end].
    #[serde(default)]
    pub until_s: Option<u64>,
}

/// One scripted input: a command for a device (`device`, `state`) or a train (`train`, `speed`), or an
/// operation switch (`operation`), at `at_ms` from the start.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptEntry {
    /// When, ms from the start.
    pub at_ms: u64,
    /// The device commanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<OnOff>,
    /// The train commanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<String>,
    /// Its speed, mm/s on the 2021 scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<i32>,
    /// Made by the operator (automatic operation does not refuse it) [default: a visitor].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operator: bool,
    /// The operator switches operation to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<ScenarioOperation>,
    /// What must come of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expected>,
}

/// What must come of a scripted command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    /// Carried out.
    Applied,
    /// Refused (by a rule, or because automatic operation runs everything).
    Rejected,
    /// Allowed but not carried out.
    Failed,
}

impl Expected {
    /// What a run's outcome counts as (`None`: an input that is not a command, or found no target).
    pub fn of(taken: &Taken) -> Option<Expected> {
        match taken {
            Taken::Applied => Some(Expected::Applied),
            Taken::Rejected(_) | Taken::Automatic => Some(Expected::Rejected),
            Taken::Failed(_) => Some(Expected::Failed),
            Taken::Idle | Taken::Switched => None,
        }
    }
}

/// A servo board that stops answering for a while, then comes back (its devices stay where they were).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardFailure {
    /// The board's name.
    pub board: String,
    /// When it fails, seconds from the start.
    pub from_s: u64,
    /// For how long, seconds.
    pub for_s: u64,
}

/// Overrides one train of the layout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainOverride {
    /// Train name.
    pub name: String,
    /// Speed at start, mm/s.
    pub speed_mm_s: Option<u32>,
    /// Start position of its front.
    pub start: Option<PlacementSpec>,
}

/// What must hold when the scenario ends. Unset fields are not checked.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Exact number of collisions.
    pub collisions: Option<usize>,
    /// At least this many collisions (for runs that show what happens without the interlocking).
    pub min_collisions: Option<usize>,
    /// Exact number of derailments.
    pub derailments: Option<usize>,
    /// At least this many commands applied to the track.
    pub min_applied: Option<usize>,
    /// Every train passes at least this many sensors.
    pub min_sensor_passes_per_train: Option<usize>,
    /// At least this many sensor passes in all.
    pub min_sensor_passes: Option<usize>,
    /// Trains enter every block at least this many times (layouts with blocks).
    pub min_block_entries: Option<usize>,
    /// Trains pass through every station at least this many times.
    pub min_trains_per_station: Option<usize>,
    /// No running train stands still longer than this beyond its dwell, seconds.
    pub max_standstill_s: Option<u64>,
    /// Exact number of deadlocks reported.
    pub deadlocks: Option<usize>,
}

/// Why a scenario cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file cannot be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause (in the message: not a `source` too, or a chain of causes would say it twice).
        cause: std::io::Error,
    },
    /// The file is not a scenario.
    #[error("{path} is not a valid scenario: {message}")]
    Malformed {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Its layout is not valid (with the overrides applied).
    #[error("layout {path}: {cause}")]
    Layout {
        /// Layout file.
        path: PathBuf,
        /// Cause (in the message only, as for `Read`).
        cause: LayoutError,
    },
}

/// A scenario ready to run: its spec and its layout with the overrides applied.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The spec.
    pub spec: ScenarioSpec,
    /// The layout.
    pub layout: Layout,
    /// The script's inputs, resolved against the layout, in the script's order.
    pub script: Vec<(Timed, Option<Expected>)>,
}

impl Scenario {
    /// Every input of a run, sorted by time (the visitors' drawn from the seed, then the script's, which come
    /// after the visitors' at the same millisecond), and where each script entry is among them.
    pub fn inputs(&self) -> (Vec<Timed>, Vec<usize>) {
        let spec = &self.spec;
        let duration_ms = spec.duration_s * 1000;
        let visiting_ms = spec.visitors.until_s.map_or(duration_ms, |s| (s * 1000).min(duration_ms));
        let visitors = generate(&spec.visitors, visiting_ms, spec.seed);
        let mut all: Vec<(Timed, Option<usize>)> = visitors.into_iter().map(|t| (t, None)).collect();
        all.extend(self.script.iter().enumerate().map(|(i, (t, _))| (*t, Some(i))));
        // A stable sort: the visitors' keep their order, the script's its own.
        all.sort_by_key(|(t, i)| (t.time_ms, i.is_some()));
        let mut at = vec![0; self.script.len()];
        for (pos, (_, i)) in all.iter().enumerate() {
            if let Some(i) = i {
                at[*i] = pos;
            }
        }
        (all.into_iter().map(|(t, _)| t).collect(), at)
    }

    /// What does not hold at the end of `report`'s run, in words: the expectations, and each scripted
    /// command's outcome where it says one.
    pub fn failures(&self, report: &Report) -> Vec<String> {
        let mut out = report.failures(&self.spec.expect);
        let (_, at) = self.inputs();
        for ((timed, expected), pos) in self.script.iter().zip(at) {
            let Some(expected) = expected else { continue };
            let Some((_, taken)) = report.taken.get(pos) else { continue };
            if Expected::of(taken) != Some(*expected) {
                out.push(format!(
                    "script at {:.2} s ({:?}): expected {expected:?}, got {taken:?}",
                    timed.time_ms as f64 / 1000.0,
                    timed.action
                ));
            }
        }
        out
    }

    /// Loads a scenario file and its layout.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|cause| ScenarioError::Read { path: p.into(), cause });
        let spec = parse_spec(path, &read(path)?)?;
        let layout_path = path.parent().unwrap_or(Path::new(".")).join(&spec.layout);
        let layout_text = read(&layout_path)?;
        Scenario::build(path, spec, &layout_path, &layout_text)
    }

    /// Builds a scenario from texts already in memory (the binary's embedded defaults); `path` names the
    /// scenario in errors and places its layout.
    pub fn from_texts(path: &Path, text: &str, layout_text: &str) -> Result<Scenario, ScenarioError> {
        let spec = parse_spec(path, text)?;
        let layout_path = path.parent().unwrap_or(Path::new(".")).join(&spec.layout);
        Scenario::build(path, spec, &layout_path, layout_text)
    }

    fn build(
        path: &Path,
        spec: ScenarioSpec,
        layout_path: &Path,
        layout_text: &str,
    ) -> Result<Scenario, ScenarioError> {
        let malformed = |p: &Path, message: String| ScenarioError::Malformed { path: p.into(), message };
        let mut layout_spec: LayoutSpec =
            toml::from_str(layout_text).map_err(|e| malformed(layout_path, e.to_string()))?;
        let check = |message: String| malformed(path, message);
        let v = &spec.visitors;
        if !(0.0..=1.0).contains(&v.adversarial) {
            return Err(check(format!("visitors.adversarial {} must be within 0..1", v.adversarial)));
        }
        let visiting = v.count > 0 && v.commands_per_s > 0.0;
        if v.stop_rail < 0.0 || v.switch < 0.0 || v.speed < 0.0 || (visiting && v.stop_rail + v.switch + v.speed <= 0.0)
        {
            return Err(check("visitors: the command mix weights must be non-negative and not all zero".into()));
        }
        if !(v.commands_per_s.is_finite() && v.commands_per_s >= 0.0) {
            return Err(check(format!("visitors.commands_per_s {} must be a non-negative number", v.commands_per_s)));
        }
        if spec.step_ms == 0 {
            return Err(check("step_ms must be at least 1".into()));
        }
        for o in &spec.trains {
            let t = layout_spec
                .trains
                .iter_mut()
                .find(|t| t.name == o.name)
                .ok_or_else(|| check(format!("train override names unknown train `{}`", o.name)))?;
            if let Some(s) = o.speed_mm_s {
                t.speed_mm_s = s;
            }
            if let Some(p) = &o.start {
                t.start = p.clone();
            }
        }
        for (name, state) in &spec.devices {
            let d = layout_spec
                .devices
                .iter_mut()
                .find(|d| &d.name == name)
                .ok_or_else(|| check(format!("devices names unknown device `{name}`")))?;
            d.initial = *state;
        }
        let layout = Layout::from_spec(&layout_spec)
            .map_err(|cause| ScenarioError::Layout { path: layout_path.into(), cause })?;
        let script = spec
            .script
            .iter()
            .map(|e| Ok((Timed { time_ms: e.at_ms, action: script_action(&layout, e).map_err(&check)? }, e.expect)))
            .collect::<Result<Vec<_>, ScenarioError>>()?;
        for f in &spec.board_failures {
            if !layout.boards.iter().any(|b| b.name == f.board) {
                return Err(check(format!("board_failure names unknown board `{}`", f.board)));
            }
        }
        Ok(Scenario { spec, layout, script })
    }
}

/// The input a script entry names (what is wrong with it, if it names nothing or too much).
fn script_action(layout: &Layout, e: &ScriptEntry) -> Result<Action, String> {
    let at = format!("script entry at {} ms", e.at_ms);
    let request = match (&e.device, e.state, &e.train, e.speed, e.operation) {
        (Some(name), Some(state), None, None, None) => Request::Device {
            device: layout.device_id(name).ok_or_else(|| format!("{at}: unknown device `{name}`"))?,
            state,
        },
        (None, None, Some(name), Some(speed), None) => Request::Speed {
            train: layout.train_id(name).ok_or_else(|| format!("{at}: unknown train `{name}`"))?,
            speed,
        },
        (None, None, None, None, Some(operation)) => return Ok(Action::Operation(operation)),
        _ => return Err(format!("{at}: give device and state, or train and speed, or operation")),
    };
    Ok(Action::Exact { request, operator: e.operator })
}

fn parse_spec(path: &Path, text: &str) -> Result<ScenarioSpec, ScenarioError> {
    toml::from_str(text).map_err(|e| ScenarioError::Malformed { path: path.into(), message: e.to_string() })
}
