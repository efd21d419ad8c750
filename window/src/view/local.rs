//! A standalone twin for a view: the simulation behind its interlocking, stepped at the view's chosen pace, with
//! automatic operation when the user turns it on (the user's commands then come as a visitor's: refused in
//! `auto`, holding their station or train for [`QUIET_MS`] in `mixed`).

use std::sync::Arc;

use super::{Action, Pace, Pacer, Picture, TrainView};
use sim::auto::{Auto, AutoConfig, Operation, VisitorHolds};
use sim::interlocking::guarded::{Guarded, Refusal};
use sim::interlocking::{Interlocking, Request, on_scale};
use sim::layout::{DeviceKind, Layout, OnOff};
use sim::twin::{EventKind, SimEvent, Simulation};

/// Simulation step, ms.
pub const STEP_MS: u64 = 10;

/// The simulation of a layout, guarded by the interlocking, for a view.
pub struct Local {
    track: Guarded,
    events: Vec<SimEvent>,
    pacer: Pacer,
    operation: Operation,
    auto: Auto,
    holds: VisitorHolds<u64>,
}

/// Mixed operation: how long the user's station or train stays theirs after their last command, simulated ms.
pub const QUIET_MS: u64 = 30_000;

impl Local {
    /// A twin of `layout` at real time.
    pub fn new(layout: Arc<Layout>) -> Result<Local, String> {
        let sim = Simulation::new(layout.clone(), STEP_MS).map_err(|e| format!("{e:?}"))?;
        let track = Guarded::new(sim, Interlocking::new(layout.clone(), true));
        Ok(Local {
            track,
            events: Vec::new(),
            pacer: Pacer::new(Pace::Times(1.0)),
            operation: Operation::Manual,
            holds: VisitorHolds::new(&layout),
            auto: Auto::new(layout, AutoConfig::default()),
        })
    }

    /// Its pace.
    pub fn pacer(&mut self) -> &mut Pacer {
        &mut self.pacer
    }

    /// Runs the simulation for `dt_s` seconds of wall time at the pace, and shows the result in `picture`.
    pub fn update(&mut self, dt_s: f64, picture: &mut Picture) {
        for _ in 0..self.pacer.due(dt_s, STEP_MS) {
            self.step(picture);
        }
        self.show(picture);
    }

    /// One step, whatever the pace.
    pub fn step_once(&mut self, picture: &mut Picture) {
        self.step(picture);
        self.show(picture);
    }

    fn step(&mut self, picture: &mut Picture) {
        let now = self.track.sim().time_ms();
        if self.operation != Operation::Manual && now.is_multiple_of(sim::auto::AUTO_EVERY_MS) {
            let state = self.track.sim().state();
            let (requests, found) = self.auto.tick(&state, self.track.interlocking(), &self.holds.at(now));
            let layout = self.track.sim().layout().clone();
            for e in found {
                picture.log(e.describe(&layout));
            }
            for r in requests {
                if self.track.request(&r, &mut self.events).is_err() {
                    break;
                }
            }
        }
        self.track.step(&mut self.events);
        self.log_events(picture);
    }

    /// Carries out `action` through the interlocking; what happened goes to the log.
    pub fn act(&mut self, action: Action, picture: &mut Picture) {
        let layout = self.track.sim().layout().clone();
        match action {
            Action::Device { device, state } => {
                self.visitor(Request::Device { device, state }, &action.describe(&picture.drawing), picture);
            }
            Action::Speed { train, speed } => {
                self.visitor(Request::Speed { train, speed }, &action.describe(&picture.drawing), picture);
            }
            Action::Operation(operation) => {
                self.operation = operation;
                picture.log(action.describe(&picture.drawing));
            }
            Action::EmergencyStop => {
                self.operation = Operation::Manual;
                picture.log("emergency stop: every stop rail up, every train stopped");
                for (device, d) in layout.devices.iter().enumerate() {
                    if d.kind == DeviceKind::StopRail {
                        let what = Action::Device { device, state: OnOff::On }.describe(&picture.drawing);
                        self.request(Request::Device { device, state: OnOff::On }, &what, picture);
                    }
                }
                for (train, t) in layout.trains.iter().enumerate() {
                    self.request(Request::Speed { train, speed: 0 }, &format!("{} stop", t.name), picture);
                }
            }
            Action::Live(_) => picture.log("refused: a standalone twin has no real boards (attach to a gateway)"),
        }
        self.show(picture);
    }

    /// The user's command, as a visitor's: refused under automatic operation, holding its station or train in
    /// mixed operation.
    fn visitor(&mut self, request: Request, what: &str, picture: &mut Picture) {
        match self.operation {
            Operation::Auto => {
                picture.log(format!("{what}: REJECTED (automatic operation): switch to mixed or manual"))
            }
            Operation::Mixed => {
                let until = self.track.sim().time_ms() + QUIET_MS;
                self.holds.commanded(self.track.sim().layout(), &request, until);
                self.request(request, what, picture);
            }
            Operation::Manual => self.request(request, what, picture),
        }
    }

    fn request(&mut self, request: Request, what: &str, picture: &mut Picture) {
        match self.track.request(&request, &mut self.events) {
            Ok(()) => picture.log(format!("{what}: applied")),
            Err(Refusal::Rejected(r)) => picture.log(format!("{what}: REJECTED ({}): {}", r.kind.label(), r.message)),
            Err(Refusal::Failed(e)) => picture.log(format!("{what}: FAILED: {e:?}")),
        }
        self.log_events(picture);
    }

    /// Logs (and clears) the events since the last call: sensor passes flash, collisions and derailments.
    fn log_events(&mut self, picture: &mut Picture) {
        let layout = self.track.sim().layout().clone();
        for e in self.events.drain(..) {
            match e.kind {
                EventKind::SensorPassed { sensor, train } => {
                    picture.sensor_passed(sensor, Some(train));
                    picture.log(e.describe(&layout));
                }
                EventKind::Collision { .. } | EventKind::Derailment { .. } => picture.log(e.describe(&layout)),
                _ => {}
            }
        }
    }

    /// Copies the simulation's state into `picture`.
    fn show(&self, picture: &mut Picture) {
        let plans = match self.operation {
            Operation::Manual => Vec::new(),
            _ => wire::v2::Plan::all(self.track.sim().layout(), &self.auto.plans(), self.track.sim().time_ms()),
        };
        show(&self.track, self.operation, plans, picture);
    }
}

/// Copies the track's state into `picture`, with who runs it and automatic operation's plans.
pub fn show(track: &Guarded, operation: Operation, plans: Vec<wire::v2::Plan>, picture: &mut Picture) {
    let sim = track.sim();
    let layout = sim.layout();
    picture.connected = true;
    picture.time_ms = sim.time_ms();
    picture.operation = operation;
    picture.plans = plans;
    picture.devices = sim.devices().iter().map(|p| p.state()).collect();
    picture.blocks = sim.blocks();
    for (i, view) in picture.trains.iter_mut().enumerate() {
        let Some(t) = sim.train(i) else { continue };
        let front = t.body.front(layout);
        let body = t
            .body
            .spans(layout)
            .map(|s| (0..=4).map(|k| layout.point_at(s.seg, s.lo + (s.hi - s.lo) * k as f64 / 4.0)).collect())
            .collect();
        *view = TrainView {
            front: layout.point_at(front.seg, front.offset),
            body,
            status: t.status,
            speed: t.effective_speed(),
            set_speed: t.set_speed.signum() * on_scale(layout, i, t.set_speed.unsigned_abs()),
            position: format!("{} at {:.0} mm", layout.segments[front.seg].id, front.offset),
            last_sensor: view.last_sensor.take(),
        };
    }
}
