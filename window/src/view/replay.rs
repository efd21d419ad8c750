//! A recorded session played back for a view: the recording's scenario (see `plarail-twin replay`) run step by
//! step at the view's pace, paused, or sought to any time on its timeline (a seek runs the scenario again from
//! its start, as fast as it goes: a run is deterministic, so the map shows the track as it was then), with the
//! timeline's marks: refusals, failures, divergences from the recording, accidents, operation switches.

use sim::auto::Operation;
use sim::scenario::spec::ScenarioOperation;
use sim::scenario::{Runner, Scenario};
use sim::twin::EventKind;

use super::{Pace, Pacer, Picture};

/// What a mark on the timeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// A command the interlocking refused (then).
    Refused,
    /// A command that failed (then).
    Failed,
    /// A command whose outcome now is not the recorded one.
    Divergence,
    /// A collision or derailment.
    Accident,
    /// The operation switched.
    Switch,
}

/// A mark on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// When, simulation ms.
    pub ms: u64,
    /// What.
    pub kind: MarkKind,
    /// In words.
    pub words: String,
}

/// A recording played back (see the module documentation).
pub struct Replay {
    scenario: Scenario,
    runner: Runner,
    marks: Vec<Mark>,
    pacer: Pacer,
}

impl Replay {
    /// The recording's `scenario` at its start, paused, with its timeline's `marks`.
    pub fn new(scenario: Scenario, marks: Vec<Mark>) -> Result<Replay, String> {
        let runner = sim::scenario::runner(&scenario).map_err(|e| e.to_string())?;
        Ok(Replay { scenario, runner, marks, pacer: Pacer::new(Pace::Paused) })
    }

    /// The marks, by time.
    pub fn marks(&self) -> &[Mark] {
        &self.marks
    }

    /// How long the recording runs, ms.
    pub fn duration_ms(&self) -> u64 {
        self.scenario.spec.duration_s * 1000
    }

    /// Where the playback is, ms.
    pub fn time_ms(&self) -> u64 {
        self.runner.track().sim().time_ms()
    }

    /// Its pace.
    pub fn pacer(&mut self) -> &mut Pacer {
        &mut self.pacer
    }

    /// Plays on for `dt_s` seconds of wall time at the pace, and shows the result in `picture`; pauses at the
    /// recording's end.
    pub fn update(&mut self, dt_s: f64, picture: &mut Picture) {
        for _ in 0..self.pacer.due(dt_s, self.scenario.spec.step_ms) {
            if !self.step(picture) {
                self.pacer.set_pace(Pace::Paused);
                break;
            }
        }
        self.show(picture);
    }

    /// Goes to `ms` (from the start again if it lies behind), and shows the track as it was then.
    pub fn seek(&mut self, ms: u64, picture: &mut Picture) -> Result<(), String> {
        if ms < self.time_ms() {
            self.runner = sim::scenario::runner(&self.scenario).map_err(|e| e.to_string())?;
        }
        while self.time_ms() < ms.min(self.duration_ms()) {
            if self.runner.step().is_none() {
                break;
            }
        }
        picture.log(format!("at {:.1} s", self.time_ms() as f64 / 1000.0));
        self.show(picture);
        Ok(())
    }

    /// One step; its sensor passes flash and its accidents go to the log. `false` at the recording's end.
    fn step(&mut self, picture: &mut Picture) -> bool {
        let layout = &self.scenario.layout;
        let Some((_, events)) = self.runner.step() else { return false };
        for e in events {
            match e.kind {
                EventKind::SensorPassed { sensor, train } => picture.sensor_passed(sensor, Some(train)),
                EventKind::Collision { .. } | EventKind::Derailment { .. } => picture.log(e.describe(layout)),
                _ => {}
            }
        }
        true
    }

    fn show(&self, picture: &mut Picture) {
        let operation = match self.runner.operation() {
            ScenarioOperation::Auto => Operation::Auto,
            ScenarioOperation::Mixed => Operation::Mixed,
            ScenarioOperation::Manual | ScenarioOperation::Rule2023 => Operation::Manual,
        };
        super::local::show(self.runner.track(), operation, Vec::new(), picture);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: &str = sim::layout::festival::CHOFUFES2021;

    fn replay() -> (Replay, Picture) {
        let scenario = "name = \"r\"\nlayout = \"l.toml\"\nduration_s = 20\nseed = 0\n\n[[script]]\nat_ms = 1000\n\
                        device = \"kudanshita_s6\"\nstate = \"OFF\"\n";
        let scenario = Scenario::from_texts(std::path::Path::new("r.toml"), scenario, LAYOUT).unwrap();
        let picture = Picture::new(scenario.layout.drawing());
        (Replay::new(scenario, Vec::new()).unwrap(), picture)
    }

    #[test]
    fn a_seek_shows_the_track_as_it_was_then_wherever_it_comes_from() {
        let (mut replay, mut picture) = replay();
        let kudanshita_s6 = replay.scenario.layout.device_id("kudanshita_s6").unwrap();
        replay.seek(500, &mut picture).unwrap();
        assert_eq!(picture.devices[kudanshita_s6], Some(sim::layout::OnOff::On));
        replay.seek(2_000, &mut picture).unwrap();
        assert_eq!((replay.time_ms(), picture.devices[kudanshita_s6]), (2_000, Some(sim::layout::OnOff::Off)));
        replay.seek(15_000, &mut picture).unwrap();
        let at_15 = picture.trains.clone();
        replay.seek(2_000, &mut picture).unwrap();
        assert_eq!((replay.time_ms(), picture.devices[kudanshita_s6]), (2_000, Some(sim::layout::OnOff::Off)));
        replay.seek(15_000, &mut picture).unwrap();
        assert_eq!(picture.trains, at_15, "the same track at the same time, however it got there");
    }

    #[test]
    fn it_plays_at_its_pace_and_stops_at_the_end() {
        let (mut replay, mut picture) = replay();
        replay.update(1.0, &mut picture);
        assert_eq!(replay.time_ms(), 0, "paused at the start");
        replay.pacer().set_pace(Pace::Times(10.0));
        replay.update(1.0, &mut picture);
        assert_eq!(replay.time_ms(), 10_000);
        replay.update(5.0, &mut picture);
        assert_eq!((replay.time_ms(), replay.pacer().pace()), (20_000, Pace::Paused));
    }
}
