//! What a view of the twin (the desktop window) shows, as plain data: a [`Picture`] filled by a twin (a
//! standalone [`local::Local`] one, a recording played back by [`replay::Replay`], or a gateway's v2 frames read by [`frames::apply`]), and the [`Action`]s
//! a view can ask of a twin. No rendering here, so all of it is tested in plain `cargo test`.

pub mod frames;
pub mod local;
pub mod replay;

use std::collections::VecDeque;

use sim::layout::OnOff;
use sim::layout::drawing::Drawing;
use sim::twin::Mode;
use sim::twin::TrainStatus;

/// Lines kept in the event log.
pub const LOG_LINES: usize = 300;

/// How long a sensor flashes after a train passed it, seconds.
pub const FLASH_S: f32 = 0.6;

/// One train as the window shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainView {
    /// Where its front is, in layout units.
    pub front: [f64; 2],
    /// Its body as polylines in layout units (empty when only the front is known).
    pub body: Vec<Vec<[f64; 2]>>,
    /// Running, crashed, derailed or removed.
    pub status: TrainStatus,
    /// Speed it runs at, mm/s.
    pub speed: u32,
    /// Speed it was last commanded, on the 2021 scale (0..100).
    pub set_speed: i32,
    /// Where it is, in words (segment and offset).
    pub position: String,
    /// The last hall sensor it passed.
    pub last_sensor: Option<String>,
}

/// Everything the window draws.
#[derive(Debug, Clone)]
pub struct Picture {
    /// The layout's geometry.
    pub drawing: Drawing,
    /// Each device's state (`None`: between positions or not yet known).
    pub devices: Vec<Option<OnOff>>,
    /// Each train.
    pub trains: Vec<TrainView>,
    /// `sim` or `live`.
    pub mode: Mode,
    /// How the layout is run: manual, auto or mixed.
    pub operation: sim::auto::Operation,
    /// Automatic operation's plan for each train (empty in manual operation).
    pub plans: Vec<wire::v2::Plan>,
    /// Each board's name and whether it answers.
    pub boards: Vec<(String, bool)>,
    /// Whether each block of the drawing is occupied (2023 layouts).
    pub blocks: Vec<bool>,
    /// The event log, oldest first.
    pub log: VecDeque<String>,
    /// Seconds each sensor still flashes.
    pub flashes: Vec<f32>,
    /// Simulation time, ms.
    pub time_ms: u64,
    /// Whether the twin is reachable (always for a standalone one).
    pub connected: bool,
}

impl Picture {
    /// A picture of `drawing` with nothing known yet.
    pub fn new(drawing: Drawing) -> Picture {
        Picture {
            devices: vec![None; drawing.devices.len()],
            trains: vec![TrainView::default(); drawing.trains.len()],
            flashes: vec![0.0; drawing.sensors.len()],
            blocks: vec![false; drawing.blocks.len()],
            drawing,
            mode: Mode::Sim,
            operation: sim::auto::Operation::Manual,
            plans: Vec::new(),
            boards: Vec::new(),
            log: VecDeque::new(),
            time_ms: 0,
            connected: false,
        }
    }

    /// Adds a line to the event log.
    pub fn log(&mut self, line: impl Into<String>) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line.into());
    }

    /// A sensor was passed: it flashes, and the train remembers it.
    pub fn sensor_passed(&mut self, sensor: usize, train: Option<usize>) {
        self.flashes[sensor] = FLASH_S;
        if let Some(t) = train {
            self.trains[t].last_sensor = Some(self.drawing.sensors[sensor].name.clone());
        }
    }

    /// Lets flashes fade by `dt` seconds.
    pub fn fade(&mut self, dt: f32) {
        for f in &mut self.flashes {
            *f = (*f - dt).max(0.0);
        }
    }
}

/// What a train's speed control reaches, in words: its onboard controller, or the simulation only.
pub fn controller_words(controller: bool) -> &'static str {
    if controller { "onboard controller" } else { "simulated only (no onboard controller)" }
}

/// What the window asks of a twin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Set a device.
    Device {
        /// Index into the layout's devices.
        device: usize,
        /// The state wanted.
        state: OnOff,
    },
    /// Set a train's speed.
    Speed {
        /// Index into the layout's trains.
        train: usize,
        /// On the 2021 scale: 0..100, percent of its top speed.
        speed: i32,
    },
    /// Every stop rail raised, every train stopped.
    EmergencyStop,
    /// Switch to the real boards (`true`) or back to the simulation.
    Live(bool),
    /// Run the layout by hand, automatically, or mixed.
    Operation(sim::auto::Operation),
}

impl Action {
    /// The action in words, for logs: `chofu_s2 raised`, `TAKAO speed 50`.
    pub fn describe(&self, drawing: &Drawing) -> String {
        match *self {
            Action::Device { device, state } => {
                let d = &drawing.devices[device];
                format!("{} {}", d.name, d.kind.words(state))
            }
            Action::Speed { train, speed } => format!("{} speed {speed}", drawing.trains[train].name),
            Action::EmergencyStop => "emergency stop".into(),
            Action::Operation(o) => format!("operation {}", wire::word(&o)),
            Action::Live(true) => "go LIVE".into(),
            Action::Live(false) => "back to SIM".into(),
        }
    }
}

/// How fast a standalone twin (or a recording played back) runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Stopped (single steps still possible).
    Paused,
    /// This many times real time.
    Times(f64),
}

impl Pace {
    /// The paces a view offers, with their labels.
    pub const CHOICES: [(&str, Pace); 4] =
        [("pause", Pace::Paused), ("1x", Pace::Times(1.0)), ("10x", Pace::Times(10.0)), ("100x", Pace::Times(100.0))];
}

/// Most steps one update may run (so a slow frame at 100x does not stall the view).
pub const MAX_STEPS_PER_UPDATE: u32 = 2_000;

/// A view's own simulation kept in step with the wall clock at its pace: how many steps it owes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacer {
    pace: Pace,
    owed_ms: f64,
}

impl Pacer {
    /// At `pace`, owing nothing.
    pub fn new(pace: Pace) -> Pacer {
        Pacer { pace, owed_ms: 0.0 }
    }

    /// The pace.
    pub fn pace(&self) -> Pace {
        self.pace
    }

    /// Sets the pace (what was owed is dropped).
    pub fn set_pace(&mut self, pace: Pace) {
        *self = Pacer::new(pace);
    }

    /// The steps of `step_ms` owed after `dt_s` more seconds of wall time, taken as run: at most
    /// [`MAX_STEPS_PER_UPDATE`] (a debt beyond them is dropped).
    pub fn due(&mut self, dt_s: f64, step_ms: u64) -> u32 {
        if let Pace::Times(factor) = self.pace {
            self.owed_ms += dt_s * 1000.0 * factor;
        }
        let owed = (self.owed_ms / step_ms as f64) as u64;
        if owed >= u64::from(MAX_STEPS_PER_UPDATE) {
            self.owed_ms = 0.0;
            return MAX_STEPS_PER_UPDATE;
        }
        self.owed_ms -= (owed * step_ms) as f64;
        owed as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pacer_owes_the_steps_of_the_wall_time_at_its_pace_and_drops_a_debt_too_large() {
        let mut pacer = Pacer::new(Pace::Times(1.0));
        assert_eq!((pacer.due(0.025, 10), pacer.due(0.005, 10)), (2, 1), "the 5 ms left over are kept");
        pacer.set_pace(Pace::Paused);
        assert_eq!(pacer.due(10.0, 10), 0);
        pacer.set_pace(Pace::Times(100.0));
        assert_eq!((pacer.due(1_000.0, 10), pacer.due(0.0, 10)), (MAX_STEPS_PER_UPDATE, 0));
    }
}
