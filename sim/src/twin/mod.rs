//! The simulation: a Bevy ECS world that runs trains over a layout with a fixed time step.
//!
//! Trains are entities; the layout, device positions, clock and event outbox are resources. One
//! [`Simulation::step`] runs the systems once, in order: trains move (stopping at raised stop rails, following
//! switches, tripping sensors), then collisions are detected (then pass detectors, on a layout with blocks).
//! They run single-threaded, so a
//! run is deterministic: the same commands at the same steps give the same events.

mod collide;
mod detect;
mod motion;
pub mod thread;

use std::sync::Arc;

use bevy_ecs::prelude::*;

use crate::layout::{
    BlockId, DetectorId, DeviceId, DeviceKind, DevicePlace, Layout, OnOff, Placement, SensorId, TrainId,
};
use crate::track::{Blocked, Body, DevicePosition, PlacementError};

pub use collide::CollisionKind;

/// A command to the simulated track. Commands from visitors pass the interlocking first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SimCommand {
    /// Drive a device to its ON or OFF angle.
    SetDevice {
        /// Device.
        device: DeviceId,
        /// Wanted state.
        state: OnOff,
    },
    /// Drive a device's servo to a raw angle (0..359), as the boards' `ANGLE` command does.
    SetAngle {
        /// Device.
        device: DeviceId,
        /// Servo angle.
        angle: u32,
    },
    /// Set a train's speed in mm/s; negative runs it in reverse.
    SetSpeed {
        /// Train.
        train: TrainId,
        /// Speed, mm/s.
        speed: i32,
    },
    /// Cap a train's speed (set by the interlocking's speed supervision); `None` lifts the cap.
    SetSpeedLimit {
        /// Train.
        train: TrainId,
        /// Cap, mm/s.
        limit: Option<u32>,
    },
    /// Put a train back on the rails with its front at `front` (the body extends back along the track), as
    /// the live-mode mirror does when a sensor reports it; a crashed, derailed or removed train runs again.
    Place {
        /// Train.
        train: TrainId,
        /// Where its front goes.
        front: Placement,
    },
    /// Take a train off the track: it no longer moves, occupies track or collides.
    Remove {
        /// Train.
        train: TrainId,
    },
}

/// Why the simulation refused a command. Nothing changes when a command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No such device.
    #[error("unknown device #{0}")]
    UnknownDevice(DeviceId),
    /// No such train.
    #[error("unknown train #{0}")]
    UnknownTrain(TrainId),
    /// Speed beyond the train's range.
    #[error("speed {speed} mm/s is out of range for {train} (at most {max} mm/s either way)")]
    SpeedOutOfRange {
        /// Train name.
        train: String,
        /// Requested speed.
        speed: i32,
        /// Highest speed.
        max: u32,
    },
    /// Angle beyond 0..359.
    #[error("angle {0} is out of range 0..359")]
    AngleOutOfRange(u32),
    /// A train cannot be placed there.
    #[error("{0}")]
    Placement(String),
    /// The simulation's thread has stopped (the track is shutting down).
    #[error("the simulation has stopped")]
    Stopped,
}

/// Why a train derailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DerailCause {
    /// A switch was thrown while the train stood across it.
    SwitchThrownUnder(DeviceId),
    /// The train trailed a non-trailable switch set against it.
    TrailedAgainst(DeviceId),
    /// The train ran onto a switch whose servo is between ON and OFF.
    SwitchBetween(DeviceId),
    /// The train ran onto a stop rail whose servo is between ON and OFF.
    StopRailBetween(DeviceId),
}

impl From<Blocked> for DerailCause {
    fn from(b: Blocked) -> Self {
        match b {
            Blocked::SwitchBetween(d) => DerailCause::SwitchBetween(d),
            Blocked::TrailedAgainst(d) => DerailCause::TrailedAgainst(d),
        }
    }
}

/// What happened in the simulation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventKind {
    /// A device moved.
    DeviceChanged {
        /// Device.
        device: DeviceId,
        /// New position.
        position: DevicePosition,
    },
    /// A train's front passed a hall sensor.
    SensorPassed {
        /// Sensor.
        sensor: SensorId,
        /// Train.
        train: TrainId,
    },
    /// A train's front passed a lowered stop rail.
    StopRailPassed {
        /// Stop rail.
        device: DeviceId,
        /// Train.
        train: TrainId,
    },
    /// A train's last car passed a lowered stop rail: the train is wholly past it.
    StopRailCleared {
        /// Stop rail.
        device: DeviceId,
        /// Train.
        train: TrainId,
    },
    /// A pass detector was pressed (a train came over it) or released (its last car left it).
    DetectorChanged {
        /// Detector.
        detector: DetectorId,
        /// Pressed.
        closed: bool,
    },
    /// A block became occupied (`CLOSE`) or free (`OPEN`).
    BlockChanged {
        /// Block.
        block: BlockId,
        /// Occupied.
        occupied: bool,
    },
    /// Two trains touched; both are stopped.
    Collision {
        /// How they met.
        kind: CollisionKind,
        /// The two trains.
        trains: [TrainId; 2],
    },
    /// A train left the rails; it is stopped.
    Derailment {
        /// Train.
        train: TrainId,
        /// Why.
        cause: DerailCause,
    },
}

/// An event with its simulation time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimEvent {
    /// Simulation time in milliseconds.
    pub time_ms: u64,
    /// What happened.
    pub kind: EventKind,
}

/// Which track the commands drive: the simulated one, or the real one that the simulation then mirrors (live
/// mode). `sim` or `live` in the protocols (serde).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The simulated track behind virtual boards.
    Sim,
    /// The real boards; the simulation mirrors them.
    Live,
}

/// Whether a train can move. Its words in the protocols and views (serde): `running`, `crashed`, `derailed`,
/// `removed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainStatus {
    /// On the rails.
    #[default]
    Running,
    /// Stopped by a collision.
    Crashed,
    /// Off the rails.
    Derailed,
    /// Taken off the track.
    Removed,
}

/// A train's state: plain data shared with the interlocking and the views.
#[derive(Component, Debug, PartialEq)]
pub struct TrainState {
    /// Index in the layout's trains.
    pub id: TrainId,
    /// Where it is.
    pub body: Body,
    /// Speed set by commands, mm/s (negative: reverse).
    pub set_speed: i32,
    /// Cap from the interlocking's speed supervision, mm/s.
    pub limit: Option<u32>,
    /// Running, crashed or derailed.
    pub status: TrainStatus,
    /// The raised stop rail holding it, if any.
    pub held_at: Option<DeviceId>,
}

impl Clone for TrainState {
    fn clone(&self) -> TrainState {
        TrainState { body: self.body.clone(), ..*self }
    }

    /// Reuses `self`'s body buffer (see [`Simulation::state_into`]).
    fn clone_from(&mut self, source: &TrainState) {
        self.body.clone_from(&source.body);
        (self.id, self.set_speed, self.limit, self.status, self.held_at) =
            (source.id, source.set_speed, source.limit, source.status, source.held_at);
    }
}

impl TrainState {
    /// Speed it actually runs at, mm/s (0 when crashed, derailed or held).
    pub fn effective_speed(&self) -> u32 {
        if self.status != TrainStatus::Running {
            return 0;
        }
        let v = self.set_speed.unsigned_abs();
        self.limit.map_or(v, |l| v.min(l))
    }
}

/// Everything the interlocking and the views need to know about the track at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackState {
    /// Simulation time, ms.
    pub time_ms: u64,
    /// Position of every device.
    pub devices: Vec<DevicePosition>,
    /// Every train, by id.
    pub trains: Vec<TrainState>,
    /// Whether each pass detector is pressed, by detector id (empty on a layout without blocks).
    pub detectors: Vec<bool>,
    /// Whether each block is occupied, by block id (empty on a layout without blocks).
    pub blocks: Vec<bool>,
}

#[derive(Resource)]
struct LayoutRes(Arc<Layout>);

#[derive(Resource)]
struct Devices(Vec<DevicePosition>);

/// The time, for the systems: [`Simulation`] keeps the clock and sets this one before each step.
#[derive(Resource, Clone, Copy)]
struct Clock {
    step: u64,
    dt_ms: u64,
}

impl Clock {
    fn now_ms(&self) -> u64 {
        self.step * self.dt_ms
    }
}

#[derive(Resource, Default)]
struct Outbox(Vec<SimEvent>);

/// The systems of one step, run in the order they were added. A Bevy `Schedule` would find the same order for
/// this chain, but its work on every run (initialising, conditions, the executor) cost 6 % of a step.
#[derive(Default)]
struct Systems(Vec<Box<dyn System<In = (), Out = ()>>>);

impl Systems {
    /// Adds `system` after the others.
    fn add<M>(&mut self, world: &mut World, system: impl IntoSystem<(), (), M>) {
        let mut system = IntoSystem::into_system(system);
        system.initialize(world);
        self.0.push(Box::new(system));
    }

    /// Runs every system once, in order. None defers work (no `Commands`), so there is none to apply.
    fn run(&mut self, world: &mut World) {
        // As a schedule does: ticks are kept from growing too old for change detection.
        if let Some(check) = world.check_change_ticks() {
            self.0.iter_mut().for_each(|s| s.check_change_tick(check));
        }
        for system in &mut self.0 {
            system
                .run_without_applying_deferred((), world)
                .expect("the simulation's systems take no fallible parameter");
        }
    }
}

/// Why a simulation cannot start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StartError {
    /// A train cannot be placed where the layout says.
    #[error("train {train}: {error}")]
    Placement {
        /// Train name.
        train: String,
        /// Why.
        error: PlacementError,
    },
    /// The time step is zero.
    #[error("the time step must be at least 1 ms")]
    ZeroStep,
}

/// A running simulation of one layout.
pub struct Simulation {
    layout: Arc<Layout>,
    world: World,
    systems: Systems,
    trains: Vec<Entity>,
    /// Every train, read in place (the trains never change archetype, so it needs no update after the start).
    all_trains: QueryState<&'static TrainState>,
    /// The clock, read here without a lookup in the world (whose copy the systems read).
    clock: Clock,
}

impl Simulation {
    /// Starts a simulation with every device at its initial state and every train at its start, at time 0.
    pub fn new(layout: Arc<Layout>, dt_ms: u64) -> Result<Simulation, StartError> {
        if dt_ms == 0 {
            return Err(StartError::ZeroStep);
        }
        let devices: Vec<DevicePosition> = layout.devices.iter().map(|d| d.initial.into()).collect();
        let mut world = World::new();
        let mut trains = Vec::with_capacity(layout.trains.len());
        for (id, t) in layout.trains.iter().enumerate() {
            let body = Body::place(&layout, t.start, t.length, &devices)
                .map_err(|error| StartError::Placement { train: t.name.clone(), error })?;
            let state = TrainState {
                id,
                body,
                set_speed: t.speed as i32,
                limit: None,
                status: TrainStatus::Running,
                held_at: None,
            };
            trains.push(world.spawn(state).id());
        }
        let occupancy = {
            let placed: Vec<TrainState> = world.query::<&TrainState>().iter(&world).cloned().collect();
            detect::Occupancy::new(&layout, &placed)
        };
        world.insert_resource(occupancy);
        world.insert_resource(collide::Scratch::new(&layout));
        world.insert_resource(LayoutRes(layout.clone()));
        world.insert_resource(Devices(devices));
        let clock = Clock { step: 0, dt_ms };
        world.insert_resource(clock);
        world.insert_resource(Outbox::default());
        let mut systems = Systems::default();
        systems.add(&mut world, motion::move_trains);
        systems.add(&mut world, collide::detect_collisions);
        // Pass detectors only where the layout has them (a system costs its dispatch every step).
        if !layout.detectors.is_empty() {
            systems.add(&mut world, detect::detect);
        }
        let all_trains = world.query::<&TrainState>();
        Ok(Simulation { layout, world, systems, trains, all_trains, clock })
    }

    /// The layout being simulated.
    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    /// Simulation time in milliseconds.
    pub fn time_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The fixed time step in milliseconds.
    pub fn dt_ms(&self) -> u64 {
        self.clock.dt_ms
    }

    /// Advances one fixed step and appends what happened to `out`.
    pub fn step(&mut self, out: &mut Vec<SimEvent>) {
        self.clock.step += 1;
        *self.world.resource_mut::<Clock>() = self.clock;
        self.systems.run(&mut self.world);
        out.append(&mut self.world.resource_mut::<Outbox>().0);
    }

    /// Position of every device.
    pub fn devices(&self) -> &[DevicePosition] {
        &self.world.resource::<Devices>().0
    }

    /// Every train's state, read in place (in no promised order: each knows its id).
    pub fn trains(&self) -> impl Iterator<Item = &TrainState> {
        self.all_trains.iter_manual(&self.world)
    }

    /// One train's state.
    pub fn train(&self, id: TrainId) -> Option<&TrainState> {
        self.trains.get(id).and_then(|&e| self.world.get::<TrainState>(e))
    }

    /// A copy of the whole track state.
    pub fn state(&self) -> TrackState {
        let mut state = TrackState {
            time_ms: 0,
            devices: Vec::new(),
            trains: Vec::new(),
            detectors: Vec::new(),
            blocks: Vec::new(),
        };
        self.state_into(&mut state);
        state
    }

    /// [`Simulation::state`] into `state`, reusing its buffers: copied every few steps, it allocates nothing
    /// once they are large enough.
    pub fn state_into(&self, state: &mut TrackState) {
        state.time_ms = self.time_ms();
        state.devices.clone_from(&self.world.resource::<Devices>().0);
        let n = self.trains.len();
        state.trains.truncate(n);
        for id in 0..n {
            let t = self.train(id).expect("train entity exists");
            match state.trains.get_mut(id) {
                Some(into) => into.clone_from(t),
                None => state.trains.push(t.clone()),
            }
        }
        let occupancy = self.world.resource::<detect::Occupancy>();
        state.detectors.clone_from(&occupancy.detectors);
        occupancy.blocks_into(&mut state.blocks);
    }

    /// Whether each block is occupied, by block id (empty on a layout without blocks).
    pub fn blocks(&self) -> Vec<bool> {
        self.world.resource::<detect::Occupancy>().blocks()
    }

    /// Applies a command at the current time; events it causes are appended to `out`.
    pub fn apply(&mut self, cmd: SimCommand, out: &mut Vec<SimEvent>) -> Result<(), SimError> {
        match cmd {
            SimCommand::SetDevice { device, state } => {
                self.check_device(device)?;
                self.move_device(device, state.into(), out);
            }
            SimCommand::SetAngle { device, angle } => {
                self.check_device(device)?;
                if angle > 359 {
                    return Err(SimError::AngleOutOfRange(angle));
                }
                let d = &self.layout.devices[device];
                let position = if angle == d.on_angle {
                    DevicePosition::On
                } else if angle == d.off_angle {
                    DevicePosition::Off
                } else {
                    DevicePosition::Between(angle)
                };
                self.move_device(device, position, out);
            }
            SimCommand::SetSpeed { train, speed } => {
                let t = self.layout.trains.get(train).ok_or(SimError::UnknownTrain(train))?;
                if speed.unsigned_abs() > t.max_speed {
                    return Err(SimError::SpeedOutOfRange { train: t.name.clone(), speed, max: t.max_speed });
                }
                self.train_mut(train).set_speed = speed;
            }
            SimCommand::SetSpeedLimit { train, limit } => {
                self.check_train(train)?;
                self.train_mut(train).limit = limit;
            }
            SimCommand::Place { train, front } => {
                self.check_train(train)?;
                if front.seg >= self.layout.segments.len()
                    || !(0.0..=self.layout.segments[front.seg].length).contains(&front.offset)
                {
                    return Err(SimError::Placement(format!("no such place on the track: {front:?}")));
                }
                let length = self.layout.trains[train].length;
                let body = Body::place(&self.layout, front, length, self.devices())
                    .map_err(|e| SimError::Placement(e.to_string()))?;
                let mut t = self.train_mut(train);
                t.body = body;
                t.status = TrainStatus::Running;
                t.held_at = None;
                self.put_in_blocks(train);
            }
            SimCommand::Remove { train } => {
                self.check_train(train)?;
                self.train_mut(train).status = TrainStatus::Removed;
                self.put_in_blocks(train);
            }
        }
        Ok(())
    }

    /// A train put somewhere or taken off leaves the blocks it was in (see the `detect` module).
    fn put_in_blocks(&mut self, train: TrainId) {
        let t = self.world.get::<TrainState>(self.trains[train]).expect("train entity exists").clone();
        let layout = self.layout.clone();
        self.world.resource_mut::<detect::Occupancy>().put(&layout, &t);
    }

    fn check_train(&self, train: TrainId) -> Result<(), SimError> {
        if train < self.trains.len() { Ok(()) } else { Err(SimError::UnknownTrain(train)) }
    }

    fn check_device(&self, device: DeviceId) -> Result<(), SimError> {
        if device < self.layout.devices.len() { Ok(()) } else { Err(SimError::UnknownDevice(device)) }
    }

    fn train_mut(&mut self, id: TrainId) -> Mut<'_, TrainState> {
        self.world.get_mut::<TrainState>(self.trains[id]).expect("train entity exists")
    }

    fn move_device(&mut self, device: DeviceId, position: DevicePosition, out: &mut Vec<SimEvent>) {
        let time_ms = self.time_ms();
        let old = std::mem::replace(&mut self.world.resource_mut::<Devices>().0[device], position);
        if old == position {
            return;
        }
        out.push(SimEvent { time_ms, kind: EventKind::DeviceChanged { device, position } });
        let layout = self.layout.clone();
        if layout.devices[device].kind != DeviceKind::Switch {
            return;
        }
        debug_assert!(matches!(layout.devices[device].place, DevicePlace::Switch { .. }));
        for id in 0..self.trains.len() {
            let mut t = self.train_mut(id);
            if matches!(t.status, TrainStatus::Running | TrainStatus::Crashed)
                && t.body.straddles_switch(&layout, device)
            {
                t.status = TrainStatus::Derailed;
                let cause = DerailCause::SwitchThrownUnder(device);
                out.push(SimEvent { time_ms, kind: EventKind::Derailment { train: id, cause } });
            }
        }
    }
}

impl SimEvent {
    /// The event in words, with device, sensor and train names from the layout.
    pub fn describe(&self, layout: &Layout) -> String {
        let train = |t: TrainId| layout.trains[t].name.as_str();
        let device = |d: DeviceId| layout.devices[d].name.as_str();
        let what = match self.kind {
            EventKind::DeviceChanged { device: d, position } => match position.state() {
                Some(s) => format!("{} {}", device(d), layout.devices[d].kind.words(s)),
                None => format!("{} stuck between positions ({position:?})", device(d)),
            },
            EventKind::SensorPassed { sensor, train: t } => {
                format!("{} passed sensor {}", train(t), layout.sensors[sensor].name)
            }
            EventKind::StopRailPassed { device: d, train: t } => format!("{} passed stop rail {}", train(t), device(d)),
            EventKind::StopRailCleared { device: d, train: t } => {
                format!("{} cleared stop rail {} (last car past)", train(t), device(d))
            }
            EventKind::DetectorChanged { detector, closed } => {
                let d = &layout.detectors[detector];
                let word = if closed { "pressed" } else { "released" };
                format!("{:?} detector of {} {word}", d.target, layout.blocks[d.block].id)
            }
            EventKind::BlockChanged { block, occupied } => {
                format!(
                    "block {} {}",
                    layout.blocks[block].id,
                    if occupied { "CLOSE (occupied)" } else { "OPEN (free)" }
                )
            }
            EventKind::Collision { kind, trains: [a, b] } => {
                format!("COLLISION ({kind:?}): {} and {}", train(a), train(b))
            }
            EventKind::Derailment { train: t, cause } => format!("DERAILMENT: {} ({cause:?})", train(t)),
        };
        format!("{:>9.2} s  {what}", self.time_ms as f64 / 1000.0)
    }
}
