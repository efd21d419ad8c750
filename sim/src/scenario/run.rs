//! Running a scenario headless and as fast as possible, and what it reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::spec::{Expectations, Scenario, ScenarioOperation};
use super::visitors::{Action, Timed, resolve};
use crate::auto::{AUTO_EVERY_MS, Auto, AutoConfig, AutoEvent, Holds, VisitorHolds};
use crate::interlocking::guarded::{Guarded, Refusal};
use crate::interlocking::{Interlocking, RejectKind, Rejection, Request};
use crate::layout::Layout;
use crate::twin::{CollisionKind, DerailCause, EventKind, SimEvent, Simulation, StartError, TrainStatus};

/// A run's settings, independent of any file.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Simulated duration, ms.
    pub duration_ms: u64,
    /// Fixed step, ms.
    pub step_ms: u64,
    /// Whether the interlocking checks commands.
    pub interlocking: bool,
    /// `None`: as fast as possible; `Some(f)`: paced to the wall clock at `f` times real time.
    pub pace: Option<f64>,
    /// Who runs the trains besides the visitors.
    pub operation: ScenarioOperation,
    /// Mixed operation: how long a station or train stays a visitor's after their last command, ms.
    pub quiet_ms: u64,
    /// Boards down for a while: (board id, from ms, until ms); a command for a device on one fails meanwhile.
    pub board_failures: Vec<(usize, u64, u64)>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Simulated time, ms.
    pub sim_ms: u64,
    /// Wall-clock time taken.
    pub wall: Duration,
    /// Visitor actions sent.
    pub commands: usize,
    /// Actions that found no target (e.g. no stop rail ahead of a train).
    pub idle: usize,
    /// Commands applied to the track.
    pub applied: usize,
    /// Commands the track refused as bad input.
    pub failed: usize,
    /// Commands the interlocking rejected, by rule.
    pub rejected: BTreeMap<RejectKind, usize>,
    /// Stop rails the interlocking raised behind passing trains.
    pub auto_raises: usize,
    /// Collisions: time, kind, trains.
    pub collisions: Vec<(u64, CollisionKind, [String; 2])>,
    /// Derailments: time, train, cause.
    pub derailments: Vec<(u64, String, DerailCause)>,
    /// Sensor passes per train, in the layout's train order.
    pub sensor_passes: Vec<(String, usize)>,
    /// Times each block became occupied, in the layout's block order (a layout without blocks has none).
    pub block_entries: Vec<(String, usize)>,
    /// Trains through each station (a train's front coming onto one of its platforms), in the layout's station
    /// order.
    pub station_passes: Vec<(String, usize)>,
    /// Each train's longest standstill beyond its dwell while running (not crashed or derailed), ms, not counting
    /// the time a visitor holds it or its station or its stop rail's board is down (automatic operation cannot
    /// send it on then).
    pub longest_standstill: Vec<(String, u64)>,
    /// Requests automatic operation (or the 2023 rule) made, and how many of them the track refused.
    pub auto_requests: (usize, usize),
    /// Visitor commands refused because automatic operation owns what they were for.
    pub refused_automatic: usize,
    /// Deadlocks reported (trains waiting on each other in a cycle), and how many of them were broken.
    pub deadlocks: (usize, usize),
    /// Times a train was held back because going on would have locked it with others (deadlocks avoided).
    pub held_back: usize,
    /// What came of each input, in the inputs' order, with its simulation time.
    pub taken: Vec<(u64, Taken)>,
}

/// What came of one input of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Taken {
    /// A visitor's intent that found no target.
    Idle,
    /// Carried out.
    Applied,
    /// Refused by the interlocking.
    Rejected(Rejection),
    /// A visitor's command refused: automatic operation runs everything.
    Automatic,
    /// Allowed, but not carried out (its board down, the simulation refused it), and why.
    Failed(String),
    /// An operation switch, made.
    Switched,
}

impl Report {
    /// Simulated time over wall-clock time.
    pub fn real_time_factor(&self) -> f64 {
        self.sim_ms as f64 / 1000.0 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Commands rejected in all.
    pub fn rejected_total(&self) -> usize {
        self.rejected.values().sum()
    }

    /// The expectations that do not hold, in words (empty when all hold).
    pub fn failures(&self, expect: &Expectations) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |ok: bool, what: String| {
            if !ok {
                out.push(what);
            }
        };
        if let Some(n) = expect.collisions {
            check(self.collisions.len() == n, format!("expected {n} collision(s), got {}", self.collisions.len()));
        }
        if let Some(n) = expect.min_collisions {
            check(
                self.collisions.len() >= n,
                format!("expected at least {n} collision(s), got {}", self.collisions.len()),
            );
        }
        if let Some(n) = expect.derailments {
            check(self.derailments.len() == n, format!("expected {n} derailment(s), got {}", self.derailments.len()));
        }
        if let Some(n) = expect.min_applied {
            check(self.applied >= n, format!("expected at least {n} commands applied, got {}", self.applied));
        }
        if let Some(n) = expect.min_sensor_passes_per_train {
            for (train, passes) in &self.sensor_passes {
                check(*passes >= n, format!("expected {train} to pass at least {n} sensors, it passed {passes}"));
            }
        }
        if let Some(n) = expect.min_sensor_passes {
            let total: usize = self.sensor_passes.iter().map(|x| x.1).sum();
            check(total >= n, format!("expected at least {n} sensor passes, got {total}"));
        }
        if let Some(n) = expect.min_trains_per_station {
            for (station, passes) in &self.station_passes {
                check(*passes >= n, format!("expected at least {n} trains through {station}, got {passes}"));
            }
        }
        if let Some(limit) = expect.max_standstill_s {
            for (train, ms) in &self.longest_standstill {
                check(
                    *ms <= limit * 1000,
                    format!(
                        "expected {train} to stand at most {limit} s beyond its dwell, it stood {:.1} s",
                        *ms as f64 / 1000.0
                    ),
                );
            }
        }
        if let Some(n) = expect.deadlocks {
            check(self.deadlocks.0 == n, format!("expected {n} deadlock(s), got {}", self.deadlocks.0));
        }
        if let Some(n) = expect.min_block_entries {
            for (block, entries) in &self.block_entries {
                check(
                    *entries >= n,
                    format!("expected trains to enter block {block} at least {n} times, got {entries}"),
                );
            }
        }
        out
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "commands:     {} sent, {} applied, {} rejected, {} failed, {} without target",
            self.commands,
            self.applied,
            self.rejected_total(),
            self.failed,
            self.idle
        )?;
        for (kind, n) in &self.rejected {
            writeln!(f, "  rejected ({}): {n}", kind.label())?;
        }
        writeln!(f, "protection:   {} stop rails raised behind trains", self.auto_raises)?;
        writeln!(f, "collisions:   {}", self.collisions.len())?;
        for (t, kind, [a, b]) in &self.collisions {
            writeln!(f, "  {:>9.1} s  {kind:?} {a} / {b}", *t as f64 / 1000.0)?;
        }
        writeln!(f, "derailments:  {}", self.derailments.len())?;
        for (t, train, cause) in &self.derailments {
            writeln!(f, "  {:>9.1} s  {train}: {cause:?}", *t as f64 / 1000.0)?;
        }
        writeln!(f, "sensor passes per train:")?;
        for (train, n) in &self.sensor_passes {
            writeln!(f, "  {train:<10} {n}")?;
        }
        if self.auto_requests.0 > 0 || self.refused_automatic > 0 {
            let (requests, refused) = self.auto_requests;
            writeln!(
                f,
                "automatic:    {requests} requests ({refused} refused by the track), {} visitor commands refused, \
                 {} deadlocks ({} broken), {} avoided by holding a train back",
                self.refused_automatic, self.deadlocks.0, self.deadlocks.1, self.held_back
            )?;
        }
        writeln!(f, "trains through each station:")?;
        for (station, n) in &self.station_passes {
            writeln!(f, "  {station:<16} {n}")?;
        }
        writeln!(f, "longest standstill beyond dwell:")?;
        for (train, ms) in &self.longest_standstill {
            writeln!(f, "  {train:<10} {:.1} s", *ms as f64 / 1000.0)?;
        }
        if !self.block_entries.is_empty() {
            writeln!(f, "trains into each block:")?;
            for (block, n) in &self.block_entries {
                writeln!(f, "  {block:<20} {n}")?;
            }
        }
        write!(
            f,
            "sim time {:.1} s, wall time {:.3} s, real-time factor {:.0}x",
            self.sim_ms as f64 / 1000.0,
            self.wall.as_secs_f64(),
            self.real_time_factor()
        )
    }
}

/// Runs the inputs `actions` (sorted by time) on `layout` to the end; `observe(sim_ms, events)` sees every step.
pub fn run(
    layout: Arc<Layout>,
    config: &RunConfig,
    actions: &[Timed],
    mut observe: impl FnMut(u64, &[SimEvent]),
) -> Result<Report, StartError> {
    let started = Instant::now();
    let mut runner = Runner::new(layout, config, actions.to_vec())?;
    while let Some((after, events)) = runner.step() {
        observe(after, events);
        if let Some(factor) = config.pace {
            let due = Duration::from_secs_f64(after as f64 / 1000.0 / factor);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let mut report = runner.finish();
    report.wall = started.elapsed();
    Ok(report)
}

/// A run one step at a time: what [`run`] does to the end, for a caller that steps at its own pace (the
/// desktop window playing a recording).
pub struct Runner {
    layout: Arc<Layout>,
    config: RunConfig,
    actions: Vec<Timed>,
    /// The next input to take.
    next: usize,
    track: Guarded,
    report: Report,
    events: Vec<SimEvent>,
    auto: Auto,
    holds: VisitorHolds<u64>,
    /// Each train's standstill so far and where its front was (see `stood`).
    standing: Vec<(u64, Option<(usize, f64)>)>,
    operation: ScenarioOperation,
    /// Steps left.
    left: u64,
}

impl Runner {
    /// A run of `actions` (sorted by time) on `layout`, at time 0.
    pub fn new(layout: Arc<Layout>, config: &RunConfig, actions: Vec<Timed>) -> Result<Runner, StartError> {
        let sim = Simulation::new(layout.clone(), config.step_ms)?;
        let track = Guarded::new(sim, Interlocking::new(layout.clone(), config.interlocking));
        let report = Report {
            sensor_passes: layout.trains.iter().map(|t| (t.name.clone(), 0)).collect(),
            block_entries: layout.blocks.iter().map(|b| (b.id.clone(), 0)).collect(),
            station_passes: layout.stations.iter().map(|s| (s.id.clone(), 0)).collect(),
            longest_standstill: layout.trains.iter().map(|t| (t.name.clone(), 0)).collect(),
            ..Report::default()
        };
        Ok(Runner {
            auto: Auto::new(layout.clone(), AutoConfig::default()),
            holds: VisitorHolds::new(&layout),
            standing: vec![(0, None); layout.trains.len()],
            operation: config.operation,
            left: config.duration_ms / config.step_ms,
            config: config.clone(),
            actions,
            next: 0,
            track,
            report,
            events: Vec::new(),
            layout,
        })
    }

    /// The track as it is now.
    pub fn track(&self) -> &Guarded {
        &self.track
    }

    /// Who runs the trains now.
    pub fn operation(&self) -> ScenarioOperation {
        self.operation
    }

    /// One step: the inputs due taken, automatic operation's round where one is due, the track stepped; the time
    /// after it and what happened in it (`None` once the run is over).
    pub fn step(&mut self) -> Option<(u64, &[SimEvent])> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.events.clear();
        let layout = &self.layout;
        let config = &self.config;
        let now = self.track.sim().time_ms();
        while let Some(timed) = self.actions.get(self.next).filter(|a| a.time_ms <= now) {
            let (track, operation, report) = (&mut self.track, &mut self.operation, &mut self.report);
            let taken = take(timed.action, track, operation, (config, &mut self.holds), &mut self.events, report);
            self.report.taken.push((now, taken));
            self.next += 1;
        }
        if now.is_multiple_of(AUTO_EVERY_MS) {
            let failures = (&**layout, &config.board_failures[..], now);
            let holds = self.holds.at(now);
            let (track, auto, events, report) = (&mut self.track, &mut self.auto, &mut self.events, &mut self.report);
            operate(self.operation, track, auto, &holds, failures, events, report);
        }
        self.report.auto_raises += self.track.step(&mut self.events);
        tally(layout, &self.events, &mut self.report);
        let after = self.track.sim().time_ms();
        let held = self.holds.at(after);
        // Held by a stop rail whose board is down, or by a visitor, a train is not automatic operation's to send on.
        let excused = |t: &crate::twin::TrainState| {
            let station = |d: crate::layout::DeviceId| layout.devices[d].station;
            held.train(t.id)
                || t.held_at
                    .is_some_and(|d| held.station(station(d)) || board_down(layout, &config.board_failures, d, now))
        };
        // The trains as they are, read in place (no copy of the whole state every step).
        let trains = self.track.sim().trains();
        stood(layout, trains, config.step_ms, &excused, &mut self.standing, &mut self.report);
        Some((after, &self.events))
    }

    /// The run's report (its wall time not set: the caller knows how long it took).
    pub fn finish(mut self) -> Report {
        self.report.sim_ms = self.track.sim().time_ms();
        self.report
    }
}

/// Takes one input at the track's time: a visitor's intent resolved against the track, a command as given, or an
/// operation switch; what came of it is also counted in `report`.
fn take(
    action: Action,
    track: &mut Guarded,
    operation: &mut ScenarioOperation,
    (config, holds): (&RunConfig, &mut VisitorHolds<u64>),
    events: &mut Vec<SimEvent>,
    report: &mut Report,
) -> Taken {
    if let Action::Operation(to) = action {
        *operation = to;
        return Taken::Switched;
    }
    report.commands += 1;
    let layout = track.sim().layout().clone();
    let now = track.sim().time_ms();
    let Some(request) = resolve(action, &layout, &track.sim().state()) else {
        report.idle += 1;
        return Taken::Idle;
    };
    let operator = matches!(action, Action::Exact { operator: true, .. });
    if !operator {
        if *operation == ScenarioOperation::Auto {
            report.refused_automatic += 1;
            return Taken::Automatic;
        }
        holds.commanded(&layout, &request, now + config.quiet_ms);
    }
    if down(&layout, &config.board_failures, &request, now) {
        report.failed += 1;
        return Taken::Failed("its board is down".into());
    }
    match track.request(&request, events) {
        Ok(()) => {
            report.applied += 1;
            Taken::Applied
        }
        Err(Refusal::Failed(e)) => {
            report.failed += 1;
            Taken::Failed(e.to_string())
        }
        Err(Refusal::Rejected(rejection)) => {
            *report.rejected.entry(rejection.kind).or_default() += 1;
            Taken::Rejected(rejection)
        }
    }
}

/// Whether `request` is for a device on a board that is down at `now`.
fn down(layout: &Layout, failures: &[(usize, u64, u64)], request: &Request, now: u64) -> bool {
    match *request {
        Request::Device { device, .. } => board_down(layout, failures, device, now),
        Request::Speed { .. } => false,
    }
}

/// Whether `device`'s board is down at `now`.
fn board_down(layout: &Layout, failures: &[(usize, u64, u64)], device: usize, now: u64) -> bool {
    failures.iter().any(|&(board, from, until)| layout.devices[device].board == board && (from..until).contains(&now))
}

/// One round of automatic operation (or of the 2023 rule): its requests made (a request for a device on a board
/// that is down fails, and the rest of the round is dropped), its findings counted.
fn operate(
    operation: ScenarioOperation,
    track: &mut Guarded,
    auto: &mut Auto,
    holds: &dyn Holds,
    (layout, failures, now): (&Layout, &[(usize, u64, u64)], u64),
    events: &mut Vec<SimEvent>,
    report: &mut Report,
) {
    // The state is copied only where someone operates (not every round of a manual run).
    let (requests, guarded) = match operation {
        ScenarioOperation::Manual => return,
        ScenarioOperation::Auto | ScenarioOperation::Mixed => {
            let (requests, found) = auto.tick(&track.sim().state(), track.interlocking(), holds);
            for e in found {
                match e {
                    AutoEvent::Deadlock { .. } => report.deadlocks.0 += 1,
                    AutoEvent::DeadlockBroken { .. } => report.deadlocks.1 += 1,
                    AutoEvent::HeldBack { .. } => report.held_back += 1,
                    AutoEvent::Arrived { .. } | AutoEvent::Departed { .. } => {}
                }
            }
            (requests, true)
        }
        ScenarioOperation::Rule2023 => (crate::auto::rule_2023(track.sim().layout(), &track.sim().state()), false),
    };
    for r in requests {
        report.auto_requests.0 += 1;
        let failed = down(layout, failures, &r, now);
        if failed {
            auto.failed(&r, now);
        }
        let done =
            !failed && if guarded { track.request(&r, events).is_ok() } else { track.unguarded(&r, events).is_ok() };
        if !done {
            report.auto_requests.1 += 1;
            if guarded {
                break;
            }
        }
    }
}

/// Counts how long each running train has stood (its front where it was a step before), and keeps each
/// one's longest standstill beyond its dwell (not counting the time it is `excused`).
fn stood<'a>(
    layout: &Layout,
    trains: impl Iterator<Item = &'a crate::twin::TrainState>,
    step_ms: u64,
    excused: &dyn Fn(&crate::twin::TrainState) -> bool,
    standing: &mut [(u64, Option<(usize, f64)>)],
    report: &mut Report,
) {
    for train in trains {
        let t = train.id;
        // Where its front is: the segment and the distance into it (no need of the offset's direction here).
        let (seg, _) = *train.body.segs.back().expect("a body");
        let here = Some((seg, train.body.head));
        let (still, at) = &mut standing[t];
        *still = match train.status == TrainStatus::Running && *at == here {
            true if excused(train) => *still,
            true => *still + step_ms,
            false => 0,
        };
        if at.is_some_and(|(was, _)| was != seg) {
            for station in layout.platforms.iter().filter(|p| p.seg == seg).map(|p| p.station) {
                report.station_passes[station].1 += 1;
            }
        }
        *at = here;
        let standing = &standing[t].0;
        let beyond = standing.saturating_sub(layout.trains[t].dwell_ms);
        report.longest_standstill[t].1 = report.longest_standstill[t].1.max(beyond);
    }
}

fn tally(layout: &Layout, events: &[SimEvent], report: &mut Report) {
    let name = |t: usize| layout.trains[t].name.clone();
    for e in events {
        match e.kind {
            EventKind::SensorPassed { train, .. } => report.sensor_passes[train].1 += 1,
            EventKind::BlockChanged { block, occupied: true } => report.block_entries[block].1 += 1,
            EventKind::Collision { kind, trains: [a, b] } => {
                report.collisions.push((e.time_ms, kind, [name(a), name(b)]))
            }
            EventKind::Derailment { train, cause } => report.derailments.push((e.time_ms, name(train), cause)),
            _ => {}
        }
    }
}

/// Runs a loaded scenario with its own visitors, as fast as possible or paced (`pace`, see [`RunConfig`]).
pub fn run_scenario(
    scenario: &Scenario,
    pace: Option<f64>,
    observe: impl FnMut(u64, &[SimEvent]),
) -> Result<Report, StartError> {
    let (actions, _) = scenario.inputs();
    run(Arc::new(scenario.layout.clone()), &config(scenario, pace), &actions, observe)
}

/// A run of `scenario` one step at a time.
pub fn runner(scenario: &Scenario) -> Result<Runner, StartError> {
    let (actions, _) = scenario.inputs();
    Runner::new(Arc::new(scenario.layout.clone()), &config(scenario, None), actions)
}

/// A scenario's settings.
fn config(scenario: &Scenario, pace: Option<f64>) -> RunConfig {
    let spec = &scenario.spec;
    RunConfig {
        duration_ms: spec.duration_s * 1000,
        step_ms: spec.step_ms,
        interlocking: spec.interlocking,
        pace,
        operation: spec.operation,
        quiet_ms: spec.quiet_s * 1000,
        board_failures: spec
            .board_failures
            .iter()
            .filter_map(|f| {
                let board = scenario.layout.boards.iter().position(|b| b.name == f.board)?;
                Some((board, f.from_s * 1000, (f.from_s + f.for_s) * 1000))
            })
            .collect(),
    }
}
