//! `plarail-twin replay`: a recorded session re-run against the simulation of the layout it was recorded on.
//!
//! The recording becomes a scenario: the session's layout and device states at its start, and a script of the
//! visitors' and the operator's commands and the operation switches at their simulation times (the session's
//! simulation time at its start plus the wall-clock time since, at the rate the recorded passes show), each
//! with the outcome it had. The scenario runner plays it (deterministically: a recording replays to the same
//! report every time), and the replay compares: each command's outcome then and now, the simulation's sensor
//! passes with the recorded ones (or the boards' reports), the accidents. A what-if run (`--layout`,
//! `--operation`, `--no-interlocking`) plays the same inputs with one setting changed, and the two runs are
//! compared side by side. `--export-scenario` writes the scenario, so that a recorded hour becomes a
//! `cargo test` scenario.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use sim::scenario::spec::ScenarioOperation;
use sim::scenario::visitors::Action;
use sim::scenario::{Expected, Report, Scenario, ScriptEntry, Taken};
use sim::twin::EventKind;
use wire::record::{self, Entry, What};

use crate::recording::{Recording, SessionRun, parse_time};

/// A line of the report into `out` (a `String`: writing cannot fail).
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Part of a line of the report into `out`.
macro_rules! out_write {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

/// Flags of `replay`.
#[derive(clap::Args)]
pub(crate) struct ReplayArgs {
    /// The recording: a gateway's data directory (`serve --data-dir`; the gateway stopped), or a file that
    /// `journal export` wrote.
    source: PathBuf,
    /// Compare from this time on (the session is replayed from its start to get there): `+DURATION` after the
    /// session's start (`+90s`, `+15m`), Unix milliseconds, or `YYYY-MM-DDTHH:MM:SSZ`.
    #[arg(long)]
    from: Option<String>,
    /// Replay up to this time (same forms) [default: the session's last entry].
    #[arg(long)]
    to: Option<String>,
    /// Paced at N times real time [default: as fast as possible].
    #[arg(long, conflicts_with = "fast")]
    speed: Option<f64>,
    /// As fast as possible (the default).
    #[arg(long)]
    fast: bool,
    /// Exit non-zero when the replay (the what-if run, if one is asked for) differs from the recording.
    #[arg(long)]
    expect_same: bool,
    /// What-if: the same inputs on this layout (a file, or an embedded layout by name).
    #[arg(long)]
    layout: Option<PathBuf>,
    /// What-if: under this operation throughout (manual, auto, mixed, rule2023).
    #[arg(long, value_parser = parse_operation)]
    operation: Option<ScenarioOperation>,
    /// What-if: with the interlocking off.
    #[arg(long)]
    no_interlocking: bool,
    /// Write the recording as a scenario to this file (its layout beside it, FILE's stem + `.layout.toml`) and
    /// exit: its script the recorded commands, its expectations their recorded outcomes and accidents.
    #[arg(long)]
    export_scenario: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

fn parse_operation(s: &str) -> Result<ScenarioOperation, String> {
    serde_json::from_value(serde_json::Value::from(s)).map_err(|_| format!("`{s}`: manual, auto, mixed or rule2023"))
}

/// A recorded command, beside the script entry it became.
struct Recorded {
    /// Its script entry's index.
    script: usize,
    /// In words (`chofu_b1 ON by visitor`).
    what: String,
    /// What came of it then.
    result: record::Result,
    /// Why, then.
    reason: Option<String>,
}

/// A recorded sensor pass: its simulation time, the sensor, the train where known.
type Pass = (u64, String, Option<String>);

/// A session made ready to replay.
struct Plan {
    /// The scenario's text (what `--export-scenario` writes).
    scenario: String,
    /// The layout file's text.
    layout_toml: String,
    /// The commands, by script entry.
    recorded: Vec<Recorded>,
    /// The sensor passes recorded within the window, in order: the simulation's in sim mode, the boards' reports
    /// in live mode.
    passes: Vec<Pass>,
    /// The blocks' changes recorded within the window, in order, as ("block ID occupied" or "... free"): the
    /// simulation's in sim mode, the detectors' reports in live mode.
    blocks: Vec<Pass>,
    /// Collisions and derailments recorded within the replayed time.
    accidents: Vec<String>,
    /// Automatic operation's requests recorded (automatic operation replays its own).
    automatic: usize,
    /// The window compared, simulation ms.
    window: (u64, u64),
    /// Things to know about this replay.
    notes: Vec<String>,
    /// The session's layout's name.
    layout: String,
    /// When the session started, Unix ms.
    started_unix_ms: u64,
}

/// A recording's session made ready to replay: the one under way at `from` (a time as `replay --from` takes it),
/// else the first, up to `to`; its plan and its scenario. What cannot be read of the recording is warned of.
fn load(source: &Path, from: Option<&str>, to: Option<&str>) -> anyhow::Result<(Plan, Scenario)> {
    let recording = Recording::read(source)?;
    if let Some(damage) = &recording.damage {
        eprintln!("warning: {}: {damage}; replaying what comes before", source.display());
    }
    let origin = recording.first_unix_ms().ok_or_else(|| anyhow::anyhow!("{}: nothing recorded", source.display()))?;
    let session = recording.session_at(from.map(|t| parse_time(t, origin)).transpose()?).ok_or_else(|| {
        anyhow::anyhow!("{}: no session start recorded (a gateway records one as it starts)", source.display())
    })?;
    let from = from.map(|t| parse_time(t, session.start_unix_ms)).transpose()?;
    let to = to.map(|t| parse_time(t, session.start_unix_ms)).transpose()?;
    let plan = plan(&session, from, to)?;
    let scenario = Scenario::from_texts(Path::new("recording.toml"), &plan.scenario, &plan.layout_toml)?;
    Ok((plan, scenario))
}

/// `replay`: see the module documentation (a failure exit code: asked to expect the same, it differed).
pub(crate) fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let (plan, recorded) = load(&args.source, args.from.as_deref(), args.to.as_deref())?;
    if let Some(file) = &args.export_scenario {
        return export_scenario(&plan, file);
    }
    let pace = args.speed.filter(|_| !args.fast);
    if let Some(f) = pace {
        anyhow::ensure!(f.is_finite() && f > 0.0, "--speed must be a positive number, not {f}");
    }
    // The report is written whole at the end (a reader that closes early, `| head`, is not an error).
    let mut out = String::new();
    let what_if = what_if(&args, &plan, &recorded)?;
    say!(
        out,
        "replay of {}: a session of {} started {} ({} commands, {} automatic requests, {} sensor passes recorded); \
         compared from {:.1} s to {:.1} s",
        args.source.display(),
        plan.layout,
        utc(plan.started_unix_ms),
        plan.recorded.len(),
        plan.automatic,
        plan.passes.len(),
        plan.window.0 as f64 / 1000.0,
        plan.window.1 as f64 / 1000.0
    );
    for note in &plan.notes {
        say!(out, "note: {note}");
    }
    let first = play(&recorded, pace, args.quiet, "replay")?;
    let judged = match &what_if {
        Some((label, scenario)) => {
            let second = play(scenario, pace, args.quiet, "what-if")?;
            // The run as recorded is shown beside; the what-if run is the one judged.
            say!(out, "\n== as recorded ==");
            compare(&plan, &recorded, &first, &mut out);
            say!(out, "\n== what if: {label} ==");
            let same = compare(&plan, scenario, &second, &mut out);
            say!(out, "\n== side by side ==");
            out.push_str(&side_by_side(&plan, (&recorded, &first), (scenario, &second), label));
            same
        }
        None => compare(&plan, &recorded, &first, &mut out),
    };
    if judged {
        say!(out, "\nverdict: the replay matches the recording");
    } else {
        say!(out, "\nverdict: the replay differs from the recording");
    }
    let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
    Ok(if args.expect_same && !judged { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// A recording's first session for the desktop window: its scenario, and its timeline's marks (each recorded
/// refusal and failure, each command whose outcome now differs, the accidents of a run, the operation switches).
#[cfg(feature = "window")]
pub(crate) fn timeline(source: &Path) -> anyhow::Result<(Scenario, Vec<window::view::replay::Mark>)> {
    use window::view::replay::{Mark, MarkKind};
    let (plan, scenario) = load(source, None, None)?;
    let (report, ..) = play(&scenario, None, false, "reading the recording")?;
    let (_, at) = scenario.inputs();
    let mut marks = Vec::new();
    for r in &plan.recorded {
        let Some((ms, taken)) = at.get(r.script).and_then(|&pos| report.taken.get(pos)) else { continue };
        let reason = r.reason.as_deref().unwrap_or("");
        let (kind, words) = if Expected::of(taken) != Some(expected(r.result)) {
            let then = wire::word(&r.result);
            (MarkKind::Divergence, format!("{}: then {then}, now {}", r.what, taken_words(taken)))
        } else {
            match r.result {
                record::Result::Applied => continue,
                record::Result::Rejected => (MarkKind::Refused, format!("{}: refused: {reason}", r.what)),
                record::Result::Failed => (MarkKind::Failed, format!("{}: failed: {reason}", r.what)),
            }
        };
        marks.push(Mark { ms: *ms, kind, words });
    }
    for (ms, kind, [a, b]) in &report.collisions {
        marks.push(Mark { ms: *ms, kind: MarkKind::Accident, words: format!("collision ({kind:?}): {a} and {b}") });
    }
    for (ms, train, cause) in &report.derailments {
        marks.push(Mark { ms: *ms, kind: MarkKind::Accident, words: format!("derailment: {train} ({cause:?})") });
    }
    for (timed, _) in &scenario.script {
        if let Action::Operation(op) = timed.action {
            let words = format!("operation {}", serde_json::to_value(op)?.as_str().unwrap_or("?"));
            marks.push(Mark { ms: timed.time_ms, kind: MarkKind::Switch, words });
        }
    }
    marks.sort_by_key(|m| m.ms);
    Ok((scenario, marks))
}

/// Turns a session into a scenario and what to compare it with.
fn plan(session: &SessionRun<'_>, from: Option<u64>, to: Option<u64>) -> anyhow::Result<Plan> {
    let s = session.session;
    let layout_toml = match &s.layout_toml {
        Some(text) => text.clone(),
        None => sim::layout::festival::EMBEDDED
            .iter()
            .find(|(name, _)| *name == s.layout)
            .map(|(_, text)| text.to_string())
            .ok_or_else(|| {
                anyhow::anyhow!("the session does not say its layout file's text, and `{}` is not embedded", s.layout)
            })?,
    };
    let to_unix = to.unwrap_or(u64::MAX);
    let entries: Vec<&Entry> = session.entries.iter().filter(|e| e.unix_ms <= to_unix).collect();
    let clock = Clock::of(session, &entries);
    let window = (from.map_or(0, |f| clock.sim_ms(f)), to.map_or(u64::MAX, |t| clock.sim_ms(t)));
    let inside = |ms: u64| (window.0..=window.1).contains(&ms);
    let mut script = Vec::new();
    let mut recorded = Vec::new();
    // What the track ran on is compared: the simulation's passes and blocks in sim mode, the boards' reports in
    // live mode (the mirror's own, recorded too, are not).
    let (mut passes, mut blocks) = (Vec::new(), Vec::new());
    let mut live = s.mode == sim::twin::Mode::Live;
    // Boards not answering, from when (a board's failures are replayed as the scenario's board failures).
    let mut down: std::collections::BTreeMap<String, u64> = Default::default();
    let mut failures: Vec<(String, u64, u64)> = Vec::new();
    let mut accidents = Vec::new();
    let mut automatic = 0;
    let mut notes = Vec::new();
    let mut last_ms = s.sim_ms;
    for e in &entries {
        let at_ms = clock.sim_ms(e.unix_ms);
        last_ms = last_ms.max(at_ms);
        match &e.what {
            What::Command(c) if c.by == record::By::Automatic => automatic += 1,
            What::Command(c) => {
                let (device, state, train, speed) = match c.value {
                    record::Value::State(st) => (Some(c.target.clone()), Some(st), None, None),
                    record::Value::Speed(v) => (None, None, Some(c.target.clone()), Some(v)),
                };
                let expect = expected(c.result);
                let operator = c.by == record::By::Operator;
                if inside(at_ms) {
                    let value = match c.value {
                        record::Value::State(st) => wire::word(&st),
                        record::Value::Speed(v) => v.to_string(),
                    };
                    let by = wire::word(&c.by);
                    let what = format!("{} {value} by {by}", c.target);
                    recorded.push(Recorded { script: script.len(), what, result: c.result, reason: c.reason.clone() });
                }
                let expect = Some(expect);
                script.push(ScriptEntry { at_ms, device, state, train, speed, operator, operation: None, expect });
            }
            What::Operation { operation } => {
                let operation = Some(match operation {
                    sim::auto::Operation::Manual => ScenarioOperation::Manual,
                    sim::auto::Operation::Auto => ScenarioOperation::Auto,
                    sim::auto::Operation::Mixed => ScenarioOperation::Mixed,
                });
                let entry = ScriptEntry {
                    at_ms,
                    device: None,
                    state: None,
                    train: None,
                    speed: None,
                    operator: true,
                    operation,
                    expect: None,
                };
                script.push(entry);
            }
            What::Sensor { sensor, train: Some(train), sim_ms: Some(ms), .. } if !live && inside(*ms) => {
                passes.push((*ms, sensor.clone(), Some(train.clone())));
            }
            What::Sensor { sensor, train_id: Some(_), .. } if live && inside(at_ms) => {
                // A board's report names the magnets' id, not the train: compared by sensor.
                passes.push((at_ms, sensor.clone(), None));
            }
            What::Block { block, occupied, reported } if *reported == live && inside(at_ms) => {
                blocks.push((at_ms, block_words(block, *occupied), None));
            }
            What::Accident { accident, sim_ms } => {
                accidents.push(format!("{:.2} s {accident}", *sim_ms as f64 / 1000.0))
            }
            What::Board { board, reachable: false } => {
                down.entry(board.clone()).or_insert(at_ms);
            }
            What::Board { board, reachable: true } => {
                if let Some(from) = down.remove(board) {
                    failures.push((board.clone(), from, at_ms));
                }
            }
            What::Mode { mode } => {
                live = *mode == sim::twin::Mode::Live;
                if live {
                    let at = at_ms as f64 / 1000.0;
                    notes.push(format!(
                        "the track went live at {at:.1} s: the replay simulates throughout and compares with the boards' reports"
                    ));
                }
            }
            _ => {}
        }
    }
    let window = (window.0, window.1.min(last_ms));
    // Past the last entry, time for a pass that came a little later in the replay.
    let duration_s = (last_ms + SAME_PASS_MS) / 1000 + 1;
    failures.extend(down.into_iter().map(|(board, from)| (board, from, duration_s * 1000)));
    let scenario = scenario_text(session, duration_s, (&script, &failures), &accidents)?;
    let (layout, started_unix_ms) = (s.layout.clone(), session.start_unix_ms);
    Ok(Plan {
        scenario,
        layout_toml,
        recorded,
        passes,
        blocks,
        accidents,
        automatic,
        window,
        notes,
        layout,
        started_unix_ms,
    })
}

/// A recorded result as a scenario's expectation.
fn expected(result: record::Result) -> Expected {
    match result {
        record::Result::Applied => Expected::Applied,
        record::Result::Rejected => Expected::Rejected,
        record::Result::Failed => Expected::Failed,
    }
}

/// The recording's clock: an entry's simulation time from its wall-clock time, from the session's start (and
/// at the rate the recorded passes show, for a track paced other than at real time).
struct Clock {
    start: (u64, u64),
    rate: f64,
}

impl Clock {
    fn of(session: &SessionRun<'_>, entries: &[&Entry]) -> Clock {
        let start = (session.start_unix_ms, session.session.sim_ms);
        let last = entries.iter().rev().find_map(|e| match e.what {
            What::Sensor { sim_ms: Some(ms), .. } | What::Accident { sim_ms: ms, .. } => Some((e.unix_ms, ms)),
            _ => None,
        });
        let rate = match last {
            // Over a short span the passes' own delays would weigh: real time is taken then.
            Some((unix, ms)) if unix > start.0 + 30_000 && ms > start.1 => {
                (ms - start.1) as f64 / (unix - start.0) as f64
            }
            _ => 1.0,
        };
        Clock { start, rate }
    }

    fn sim_ms(&self, unix_ms: u64) -> u64 {
        self.start.1 + (unix_ms.saturating_sub(self.start.0) as f64 * self.rate) as u64
    }
}

/// The scenario of a session's inputs.
/// The scenario of a session's inputs: `script`, and `failures` (board, from ms, until ms) as the scenario's
/// board failures (whole seconds: a failure's start rounded down, its end up).
fn scenario_text(
    session: &SessionRun<'_>,
    duration_s: u64,
    (script, failures): (&[ScriptEntry], &[(String, u64, u64)]),
    accidents: &[String],
) -> anyhow::Result<String> {
    let s = session.session;
    let operation = match s.operation {
        sim::auto::Operation::Manual => "manual",
        sim::auto::Operation::Auto => "auto",
        sim::auto::Operation::Mixed => "mixed",
    };
    let collisions = accidents.iter().filter(|a| a.contains("COLLISION")).count();
    let derailments = accidents.iter().filter(|a| a.contains("DERAILMENT")).count();
    let mut text = String::new();
    writeln!(text, "name = \"recorded-{}\"", s.layout)?;
    writeln!(
        text,
        "description = \"A session of {} recorded from {}: {} inputs replayed as recorded\"",
        s.layout,
        utc(session.start_unix_ms),
        script.len()
    )?;
    writeln!(text, "layout = \"layout.toml\"\nduration_s = {duration_s}\nseed = 0\nstep_ms = {}", s.step_ms)?;
    writeln!(text, "operation = \"{operation}\"\n")?;
    writeln!(text, "[devices]")?;
    for (name, state) in &s.devices {
        writeln!(text, "{name} = \"{}\"", wire::word(state))?;
    }
    writeln!(text, "\n[expect]\ncollisions = {collisions}\nderailments = {derailments}\n")?;
    for (board, from, until) in failures {
        let from_s = from / 1000;
        let for_s = until.div_ceil(1000).saturating_sub(from_s).max(1);
        writeln!(text, "[[board_failure]]\nboard = \"{board}\"\nfrom_s = {from_s}\nfor_s = {for_s}\n")?;
    }
    #[derive(serde::Serialize)]
    struct Script<'a> {
        script: &'a [ScriptEntry],
    }
    text.push_str(&toml::to_string(&Script { script })?);
    Ok(text)
}

/// The what-if scenario, if one is asked for: its label and the scenario.
fn what_if(args: &ReplayArgs, plan: &Plan, recorded: &Scenario) -> anyhow::Result<Option<(String, Scenario)>> {
    let mut label = Vec::new();
    let mut scenario = match &args.layout {
        Some(path) => {
            label.push(format!("layout {}", path.display()));
            let layout = crate::layout_file(Some(path))?;
            Scenario::from_texts(Path::new("what-if.toml"), &plan.scenario, &layout)?
        }
        None => recorded.clone(),
    };
    if let Some(op) = args.operation {
        // Under one operation throughout: each recorded switch switches to it (kept, so that every script entry
        // keeps its place).
        scenario.spec.operation = op;
        for (timed, _) in &mut scenario.script {
            if let Action::Operation(_) = timed.action {
                timed.action = Action::Operation(op);
            }
        }
        label.push(format!("operation {}", serde_json::to_value(op)?.as_str().unwrap_or("?")));
    }
    if args.no_interlocking {
        scenario.spec.interlocking = false;
        label.push("interlocking off".into());
    }
    Ok((!label.is_empty()).then(|| (label.join(", "), scenario)))
}

/// A run: its report, the sensor passes and the blocks' changes it saw.
type Run = (Report, Vec<Pass>, Vec<Pass>);

/// A run of a scenario with a progress bar.
fn play(scenario: &Scenario, pace: Option<f64>, quiet: bool, label: &str) -> anyhow::Result<Run> {
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(scenario.spec.duration_s) };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} sim-s ({elapsed}, {eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    let layout = &scenario.layout;
    let (mut passes, mut blocks) = (Vec::new(), Vec::new());
    let report = sim::scenario::run_scenario(scenario, pace, |ms, events| {
        bar.set_position(ms / 1000);
        for e in events {
            if let EventKind::SensorPassed { sensor, train } = e.kind {
                passes.push((e.time_ms, layout.sensors[sensor].name.clone(), Some(layout.trains[train].name.clone())));
            }
            if let EventKind::BlockChanged { block, occupied } = e.kind {
                blocks.push((e.time_ms, block_words(&layout.blocks[block].id, occupied), None));
            }
        }
    })?;
    bar.finish_and_clear();
    Ok((report, passes, blocks))
}

/// Prints how a run compares with the recording; whether it is the same.
fn compare(plan: &Plan, scenario: &Scenario, (report, passes, blocks): &Run, out: &mut String) -> bool {
    let (_, at) = scenario.inputs();
    let mut differ = Vec::new();
    for r in &plan.recorded {
        let Some(&pos) = at.get(r.script) else { continue };
        let Some((ms, taken)) = report.taken.get(pos) else { continue };
        let then = expected(r.result);
        if Expected::of(taken) != Some(then) {
            let was = match &r.reason {
                Some(reason) => format!("{} ({reason})", wire::word(&r.result)),
                None => wire::word(&r.result),
            };
            differ.push(format!("{:>9.2} s  {}: then {was}, now {}", *ms as f64 / 1000.0, r.what, taken_words(taken)));
        }
    }
    say!(
        out,
        "commands: {} compared, {} the same, {} different",
        plan.recorded.len(),
        plan.recorded.len() - differ.len(),
        differ.len()
    );
    for d in differ.iter().take(20) {
        say!(out, "  {d}");
    }
    if differ.len() > 20 {
        say!(out, "  ... and {} more", differ.len() - 20);
    }
    // Up to a second past the last pass recorded: the last moments of a recording cut short (a gateway killed)
    // may not have reached the disk.
    let (w0, w1) = plan.window;
    // A simulated pass a little after the window's end may still be a recorded one (a command is carried out a
    // few milliseconds after its recorded time), but is not one too many.
    let within = |then: &[Pass], now: &'_ [Pass]| -> (Vec<Pass>, u64) {
        let w1 = then.last().map_or(w1, |p| w1.min(p.0 + 1000));
        (now.iter().filter(|p| (w0..=w1 + SAME_PASS_MS).contains(&p.0)).cloned().collect(), w1)
    };
    let sensors_same = compare_passes("sensor passes", &plan.passes, within(&plan.passes, passes), out);
    let blocks_same = compare_passes("block changes", &plan.blocks, within(&plan.blocks, blocks), out);
    let accidents_now = report.collisions.len() + report.derailments.len();
    say!(out, "accidents: {} recorded, {} now", plan.accidents.len(), accidents_now);
    for a in plan.accidents.iter().take(5) {
        say!(out, "  recorded {a}");
    }
    say!(out, "{report}");
    differ.is_empty() && sensors_same && blocks_same && plan.accidents.len() == accidents_now
}

/// How far apart in time a recorded pass and a simulated one may be and still be the same pass, ms.
const SAME_PASS_MS: u64 = 2000;

/// Writes how the sensor passes compare; whether they are the same. Each recorded pass, in order, is matched with
/// the first simulated pass not yet matched over the same sensor (by the same train, where both know it) within
/// [`SAME_PASS_MS`]: passes of different trains close together may come in either order.
/// `now`: the simulated ones, with the time after which one not matched is not counted as one too many.
fn compare_passes(label: &str, then: &[Pass], (now, end): (Vec<Pass>, u64), out: &mut String) -> bool {
    let mut taken = vec![false; now.len()];
    let mut largest_offset = 0u64;
    let mut unmatched = Vec::new();
    for pass in then {
        let same = |q: &Pass| q.1 == pass.1 && (pass.2.is_none() || q.2.is_none() || q.2 == pass.2);
        let found = (0..now.len()).find(|&i| !taken[i] && same(&now[i]) && now[i].0.abs_diff(pass.0) <= SAME_PASS_MS);
        match found {
            Some(i) => {
                taken[i] = true;
                largest_offset = largest_offset.max(now[i].0.abs_diff(pass.0));
            }
            None => unmatched.push(pass),
        }
    }
    let extra = (0..now.len()).filter(|&i| !taken[i] && now[i].0 <= end).count();
    let counted = now.iter().filter(|p| p.0 <= end).count();
    out_write!(out, "{label}: {} recorded, {counted} now", then.len());
    match unmatched.first() {
        Some(first) => {
            let nearest = now.iter().filter(|q| q.1 == first.1).min_by_key(|q| q.0.abs_diff(first.0));
            let off = match nearest {
                Some(q) => format!("the nearest like it now: {} at {:.2} s", pass_words(q), q.0 as f64 / 1000.0),
                None => "none like it now".into(),
            };
            say!(
                out,
                "; {} recorded not matched, the first: {} at {:.2} s ({off}); {extra} now not recorded",
                unmatched.len(),
                pass_words(first),
                first.0 as f64 / 1000.0
            );
        }
        None if extra > 0 => say!(out, "; every recorded one matched, {extra} now not recorded"),
        None => say!(out, "; all match, at most {largest_offset} ms apart"),
    }
    unmatched.is_empty() && extra == 0
}

fn pass_words(p: &Pass) -> String {
    match &p.2 {
        Some(train) => format!("{train} over {}", p.1),
        None => p.1.clone(),
    }
}

fn block_words(block: &str, occupied: bool) -> String {
    format!("block {block} {}", if occupied { "occupied" } else { "free" })
}

fn taken_words(taken: &Taken) -> String {
    match taken {
        Taken::Applied => "applied".into(),
        Taken::Rejected(r) => format!("rejected ({})", r.message),
        Taken::Automatic => "rejected (automatic operation runs everything)".into(),
        Taken::Failed(why) => format!("failed ({why})"),
        Taken::Idle => "no target".into(),
        Taken::Switched => "switched".into(),
    }
}

/// A figure of a run: its name, and how to read it from the run's report.
type Row = (&'static str, fn(&Report) -> String);

/// The two runs' figures side by side, and the commands whose outcome changed between them.
fn side_by_side(
    plan: &Plan,
    (a_scenario, (a, ..)): (&Scenario, &Run),
    (b_scenario, (b, ..)): (&Scenario, &Run),
    label: &str,
) -> String {
    let mut out = String::new();
    let rows: [Row; 8] = [
        ("commands applied", |r: &Report| r.applied.to_string()),
        ("commands refused", |r: &Report| (r.rejected_total() + r.refused_automatic).to_string()),
        ("commands failed", |r: &Report| r.failed.to_string()),
        ("collisions", |r: &Report| r.collisions.len().to_string()),
        ("derailments", |r: &Report| r.derailments.len().to_string()),
        ("sensor passes", |r: &Report| r.sensor_passes.iter().map(|p| p.1).sum::<usize>().to_string()),
        ("trains through stations", |r: &Report| r.station_passes.iter().map(|p| p.1).sum::<usize>().to_string()),
        ("longest standstill", |r: &Report| {
            format!("{:.1} s", r.longest_standstill.iter().map(|p| p.1).max().unwrap_or(0) as f64 / 1000.0)
        }),
    ];
    let _ = writeln!(out, "{:<26} {:>14} {:>14}", "", "as recorded", "what if");
    for (name, f) in &rows {
        let _ = writeln!(out, "{name:<26} {:>14} {:>14}", f(a), f(b));
    }
    let (_, at_a) = a_scenario.inputs();
    let (_, at_b) = b_scenario.inputs();
    let mut changed = Vec::new();
    for r in &plan.recorded {
        let (Some(&pa), Some(&pb)) = (at_a.get(r.script), at_b.get(r.script)) else { continue };
        if let (Some((ms, ta)), Some((_, tb))) = (a.taken.get(pa), b.taken.get(pb))
            && Expected::of(ta) != Expected::of(tb)
        {
            let (ms, what) = (*ms as f64 / 1000.0, &r.what);
            changed.push(format!("{ms:>9.2} s  {what}: {}; with {label}: {}", taken_words(ta), taken_words(tb)));
        }
    }
    let _ = writeln!(out, "commands whose outcome changed: {}", changed.len());
    for c in changed.iter().take(20) {
        let _ = writeln!(out, "  {c}");
    }
    out
}

/// Writes the plan's scenario and its layout beside it.
fn export_scenario(plan: &Plan, file: &Path) -> anyhow::Result<ExitCode> {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("recorded");
    let layout_name = format!("{stem}.layout.toml");
    let layout_path = file.with_file_name(&layout_name);
    let text = plan.scenario.replacen("layout = \"layout.toml\"", &format!("layout = \"{layout_name}\""), 1);
    std::fs::write(&layout_path, &plan.layout_toml)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", layout_path.display()))?;
    std::fs::write(file, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
    println!(
        "wrote {} ({} recorded commands with their outcomes) and its layout {}",
        file.display(),
        plan.recorded.len(),
        layout_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Unix ms as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_down_in_the_recording_fails_its_commands_in_the_replay_too() {
        let lines = [
            r#"{"unix_ms":1000,"session":{"layout":"chofufes2021","sim_ms":0,"step_ms":10,"devices":{},"mode":"sim","operation":"manual"}}"#,
            r#"{"unix_ms":3500,"board":"servo-107","reachable":false}"#,
            r#"{"unix_ms":5000,"target":"chofu_b3","value":"OFF","result":"failed","reason":"down","by":"visitor"}"#,
            r#"{"unix_ms":8000,"board":"servo-107","reachable":true}"#,
            r#"{"unix_ms":9000,"target":"chofu_b3","value":"OFF","result":"applied","reason":null,"by":"visitor"}"#,
        ]
        .join("\n");
        let recording = Recording::from_lines(&lines);
        let plan = plan(&recording.session_at(None).unwrap(), None, None).unwrap();
        assert!(
            plan.scenario.contains("[[board_failure]]\nboard = \"servo-107\"\nfrom_s = 2\nfor_s = 5\n"),
            "{}",
            plan.scenario
        );
        let scenario = Scenario::from_texts(Path::new("r.toml"), &plan.scenario, &plan.layout_toml).unwrap();
        let run = play(&scenario, None, true, "").unwrap();
        let mut out = String::new();
        assert!(compare(&plan, &scenario, &run, &mut out), "{out}");
        assert!(out.contains("commands: 2 compared, 2 the same, 0 different"), "{out}");
    }

    #[test]
    fn dates_print_in_utc() {
        assert_eq!(super::utc(1_796_601_600_000 + 3_723_000), "2026-12-07 01:02:03 UTC");
    }
}
