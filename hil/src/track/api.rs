//! The [`Track`] handle's API: start, the live-mode switch, what the doors read, commands and operation.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sim::interlocking::{Interlocking, Request};
use sim::layout::{BoardId, BoardKind, Layout, OnOff};
use sim::twin::{SimCommand, SimError, TrackState};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{Notify, broadcast};

use super::command::{MAX_IN_FLIGHT, carry_out};
use super::core::TrackCore;
use super::follow::{follow, watch_blocks};
use super::housekeeping::{reachable, run_board};
use super::sim_link::{first_blocks, pump, sim_command, sim_state, try_state};
use super::supervise::watch_trains;
use super::{
    BoardHealth, Inner, Mode, Outcome, Setup, Snapshot, SwitchError, SwitchReport, Track, TrackEvent, VirtualBoard,
    VirtualController, VirtualMqttBoard, automatic, live_address, mqtt,
};
use crate::boards2021::client::BoardClient;
use crate::boards2021::ingest::{Senders, SensorReading};
use crate::boards2023::block_word::{BlockWord, DetectorHealth};
use crate::controllers2021::client::SpeedClient;
use crate::track::mirror::Mirror;
use crate::virtual_devices::rig::{Rig, RigError};

impl Track {
    /// Starts a track: the simulation and its virtual boards, and the real boards' addresses. Every device is
    /// then initialised through its board, in the starting mode.
    pub async fn start(layout: Arc<Layout>, setup: Setup) -> Result<Track, RigError> {
        let config = setup.config;
        let rig = Rig::start(layout.clone(), &setup.listen, config.pace).await?;
        let sim_addresses = rig.addresses();
        let Rig { sim: handle, boards, controllers, .. } = rig;
        let live_addresses: Vec<String> = layout.boards.iter().map(|b| live_address(&setup.live_boards, b)).collect();
        let senders = Senders::new(&live_addresses);
        let desired = setup
            .desired
            .filter(|d| d.len() == layout.devices.len())
            .unwrap_or_else(|| layout.devices.iter().map(|d| d.initial).collect());
        let core = TrackCore::new(
            &layout,
            setup.mode,
            desired,
            [sim_addresses, live_addresses],
            config.init_spacing,
            Instant::now(),
        );
        let order = layout.boards.iter().map(|_| Arc::default()).collect();
        let mut word = BlockWord::new(&layout, first_blocks(&handle.requests).await?);
        word.set_live(setup.mode == Mode::Live);
        word.set_pace(config.pace);
        let driven: Vec<BoardId> = core.health().into_iter().map(|(id, _)| id).collect();
        let (events, _) = broadcast::channel(4096);
        let (readings_tx, readings_rx) = tokio::sync::mpsc::unbounded_channel();
        let automatic = automatic::Automatic::new(&layout, setup.operation, setup.quiet);
        let inner = Arc::new(Inner {
            interlocking: Interlocking::new(layout.clone(), config.interlocking),
            core: Mutex::new(core),
            mirror: Mutex::new(Mirror::new(&layout, config.overdue_ms)),
            layout,
            config,
            sim: handle.requests.clone(),
            client: BoardClient::new(config.client),
            speed: SpeedClient::new(config.client),
            events,
            readings: readings_tx,
            pending: Mutex::default(),
            next_id: AtomicU64::new(1),
            mode_lock: tokio::sync::RwLock::new(()),
            checking: tokio::sync::Mutex::new(()),
            in_flight: Mutex::default(),
            in_flight_slots: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            order,
            wake: driven.iter().map(|&b| (b, Notify::new())).collect(),
            restored: Notify::new(),
            mqtt: std::sync::OnceLock::new(),
            automatic: Mutex::new(automatic),
            word: Mutex::new(word),
            epoch: Instant::now(),
        });
        if setup.boards2023.is_some() || setup.live2023.is_some() {
            let (sim, live) = (setup.boards2023.as_ref(), setup.live2023.as_ref());
            mqtt::start(&inner, sim, live, setup.firmware2023, handle.requests.clone()).await;
        }
        pump(inner.clone(), handle.outputs.clone());
        let track = Track { inner, boards, controllers, senders, sim: Arc::new(Mutex::new(Some(handle))) };
        for board in driven {
            tokio::spawn(run_board(Arc::downgrade(&track.inner), board));
        }
        tokio::spawn(watch_trains(Arc::downgrade(&track.inner)));
        tokio::spawn(follow(Arc::downgrade(&track.inner), readings_rx));
        tokio::spawn(automatic::run(Arc::downgrade(&track.inner), track.inner.layout.clone()));
        tokio::spawn(watch_blocks(Arc::downgrade(&track.inner)));
        Ok(track)
    }

    /// Where sensor reports go (the ingest endpoint's channel); in live mode they drive the mirror.
    pub fn readings(&self) -> UnboundedSender<SensorReading> {
        self.inner.readings.clone()
    }

    /// Where each sensor board's reports must come from (the real boards' addresses), for the ingest endpoint.
    pub fn senders(&self) -> Senders {
        self.senders.clone()
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.inner.core().mode()
    }

    /// Switches between the simulated and the real track. Commands that arrive meanwhile wait and then go
    /// to the new track: none is lost or applied twice. To live: the real boards' health is checked first,
    /// and the switch refused with the list of boards that do not answer unless `force`. Then the desired
    /// state of every device is pushed to the target boards, and commands are routed to them.
    pub async fn switch_mode(&self, to: Mode, force: bool) -> Result<SwitchReport, SwitchError> {
        let inner = &self.inner;
        let has_mqtt = inner.layout.boards.iter().any(|b| b.kind == BoardKind::Mqtt);
        let mut checked = match (to, inner.mqtt.get()) {
            (Mode::Live, Some(mqtt)) => mqtt.check_live().map_err(SwitchError::Unsupported)?,
            (Mode::Live, None) if has_mqtt => {
                return Err(SwitchError::Unsupported("the layout's 2023 boards have no broker".into()));
            }
            _ => Vec::new(),
        };
        let _switch = inner.mode_lock.write().await;
        let targets = inner.core().addresses_in(to);
        for (b, address) in targets {
            let alive = reachable(inner, b, &address).await;
            checked.push((inner.layout.boards[b].name.clone(), address, alive));
        }
        checked.sort();
        if self.mode() == to {
            return Ok(SwitchReport { mode: to, checked });
        }
        let down: Vec<String> = checked.iter().filter(|c| !c.2).map(|c| format!("{} ({})", c.0, c.1)).collect();
        if !down.is_empty() && !force {
            return Err(SwitchError::Unhealthy(down));
        }
        let changed = inner.core().switch(to, Instant::now());
        for h in changed {
            let _ = inner.events.send(TrackEvent::Board(h));
        }
        if let Some(mqtt) = inner.mqtt.get() {
            mqtt.switched(inner, to);
        }
        let notes = inner.word().set_live(to == Mode::Live);
        inner.tell(notes);
        for wake in inner.wake.values() {
            wake.notify_one();
        }
        // Every board's restore runs to its end (done, or given up on a board that does not answer).
        loop {
            let step = inner.restored.notified();
            if !inner.core().restoring() {
                break;
            }
            step.await;
        }
        let _ = inner.events.send(TrackEvent::Mode(to));
        Ok(SwitchReport { mode: to, checked })
    }

    /// The layout of the track.
    pub fn layout(&self) -> &Arc<Layout> {
        &self.inner.layout
    }

    /// The virtual boards (sim mode).
    pub fn virtual_boards(&self) -> &[VirtualBoard] {
        &self.boards
    }

    /// The virtual speed controllers (sim mode).
    pub fn virtual_controllers(&self) -> &[VirtualController] {
        &self.controllers
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<TrackEvent> {
        self.inner.events.subscribe()
    }

    /// Health of every servo board, speed controller and (where the broker tells) 2023 MQTT board, by board id.
    pub fn boards(&self) -> Vec<(BoardId, BoardHealth)> {
        let mut all = self.inner.core().health();
        if let Some(mqtt) = self.inner.mqtt.get() {
            all.extend(mqtt.health(self.mode()));
            all.sort_by_key(|(id, _)| *id);
        }
        all
    }

    /// A device's desired state: the last one commanded (or started from).
    pub fn desired(&self, device: usize) -> OnOff {
        self.inner.core().desired(device)
    }

    /// A train's speed: the last one commanded (or started from), on the 2021 scale.
    pub fn speed(&self, train: usize) -> i32 {
        self.inner.core().wanted_speed(train)
    }

    /// Every train's speed as [`Track::speed`] gives it, by train.
    pub fn speeds(&self) -> Vec<i32> {
        self.inner.core().wanted_speeds()
    }

    /// Whether every board is alive and restored.
    pub fn ready(&self) -> bool {
        self.inner.core().ready()
    }

    /// The mode, the devices and trains, and the boards' health.
    pub async fn snapshot(&self) -> Snapshot {
        let (operation, plans) = self.automatic();
        Snapshot {
            mode: self.mode(),
            operation,
            plans,
            state: self.state().await,
            boards: self.boards(),
            speeds: self.speeds(),
            detectors: self.detectors(),
        }
    }

    /// Like [`Track::state`], but `None` once the track is stopped.
    pub async fn try_state(&self) -> Option<TrackState> {
        let mut state = sim_state(&self.inner).await?;
        state.blocks = self.inner.word().shown_view(&state.blocks);
        Some(state)
    }

    /// The state of the simulated track (in live mode the mirror), once every command sent so far has been
    /// taken; its blocks as every door shows them (in live mode the detectors' last reports).
    pub async fn state(&self) -> TrackState {
        self.try_state().await.expect("the track's simulation runs until the track is stopped")
    }

    /// Each block as the interlocking takes it (occupied if the hardware or the mirror says so, or a faulty
    /// detector keeps it); `None` once the track is stopped.
    pub async fn held_blocks(&self) -> Option<Vec<bool>> {
        Some(try_state(&self.inner).await?.blocks)
    }

    /// Each 2023 pass detector's health, by detector.
    pub fn detectors(&self) -> Vec<DetectorHealth> {
        self.inner.word().health()
    }

    /// The detectors' counts so far (reports taken and ignored, faults and phantoms found).
    pub fn detector_counts(&self) -> crate::boards2023::block_word::Counts {
        self.inner.word().counts()
    }

    /// The operator takes a detector out of service (its reports ignored, so a stuck one no longer holds its
    /// block) or puts it back; what was done in words, or why not.
    pub fn set_detector_in_service(&self, name: &str, in_service: bool) -> Result<String, String> {
        let layout = &self.inner.layout;
        let Some(detector) = crate::boards2023::block_word::detector_id(layout, name) else {
            return Err(format!(
                "the layout has no detector `{name}` (a block's id and CLOSE or OPEN, e.g. `{}`)",
                layout.blocks.first().map_or("chofu_down_b1/CLOSE".into(), |b| format!("{}/CLOSE", b.id))
            ));
        };
        let notes = self.inner.word().set_in_service(detector, in_service);
        let done = !notes.is_empty();
        self.inner.tell(notes);
        let name = crate::boards2023::block_word::detector_name(layout, detector);
        Ok(match (done, in_service) {
            (true, false) => format!("detector {name} out of service: its reports are ignored"),
            (true, true) => format!("detector {name} back in service"),
            (false, false) => format!("detector {name} was out of service already"),
            (false, true) => format!("detector {name} was in service already"),
        })
    }

    /// The operator places a train in a block (the mirror's train, in live mode, where the hardware says a
    /// train is); what was done, or why not.
    pub async fn place_in_block(&self, train: &str, block: &str) -> Result<String, String> {
        let layout = &self.inner.layout;
        let t =
            layout.trains.iter().position(|t| t.name == train).ok_or(format!("the layout has no train `{train}`"))?;
        let b = layout.block_id(block).ok_or(format!("the layout has no block `{block}`"))?;
        let state = sim_state(&self.inner).await.ok_or(SimError::Stopped.to_string())?;
        let front = crate::track::mirror::in_block(layout, &state, b, layout.trains[t].length)
            .ok_or(format!("block {block} has no entry and exit detector on one way to place a train between"))?;
        self.inner.word().placed(b, self.inner.now_ms());
        sim_command(&self.inner, SimCommand::Place { train: t, front }).await.map_err(|e| e.to_string())?;
        Ok(format!("{train} placed in block {block}"))
    }

    /// A visitor's command: refused under automatic operation (in mixed operation it holds its station or
    /// train), else checked with the interlocking and carried out.
    pub async fn apply(&self, req: Request) -> Outcome {
        let visitor = self.inner.automatic.lock().expect("automatic").visitor(&self.inner.layout, &req, Instant::now());
        if let Err(r) = visitor {
            return Outcome::Rejected(r);
        }
        carry_out(&self.inner, req).await
    }

    /// Carries out an operator's request (emergency stop, reset): as [`Track::apply`], whatever the operation.
    pub async fn apply_as_operator(&self, req: Request) -> Outcome {
        carry_out(&self.inner, req).await
    }

    /// How the layout is run, and automatic operation's plan for each train (by train).
    pub fn automatic(&self) -> (sim::auto::Operation, Vec<sim::auto::TrainPlan>) {
        let automatic = self.inner.automatic.lock().expect("automatic");
        (automatic.operation(), automatic.plans())
    }

    /// Sets how the layout is run (the operator's); told to subscribers if it changed.
    pub fn set_operation(&self, operation: sim::auto::Operation) {
        if self.inner.automatic.lock().expect("automatic").set(operation) {
            let _ = self.inner.events.send(TrackEvent::Operation(operation));
        }
    }

    /// Stops the simulation (the virtual boards stop with the runtime).
    pub fn stop(&self) {
        if let Some(handle) = self.sim.lock().expect("sim handle").take() {
            handle.stop();
        }
        if let Some(mqtt) = self.inner.mqtt.get() {
            mqtt.stop();
        }
    }

    /// The virtual 2023 boards (sim mode with a boards' broker), by name.
    pub fn virtual_mqtt_boards(&self) -> Vec<VirtualMqttBoard> {
        self.inner.mqtt.get().map(|m| m.virtual_boards()).unwrap_or_default()
    }

    /// Messages on the boards' broker the twin could not read so far (0 without a boards' broker).
    pub fn unreadable_mqtt(&self) -> u64 {
        self.inner.mqtt.get().map_or(0, |m| m.unreadable())
    }
}
