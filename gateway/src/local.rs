//! The track in this process: the [`Link`] of a gateway that runs the track itself (`serve`, and the on-site
//! core). Commands go to the track and are journaled before they are acknowledged; operator actions are
//! authorised against the operator token here; one task turns the track's events into v2 frames for the
//! [`Feeds`], records their metrics and hands device changes to the journal.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hil::boards2023::block_word::DetectorHealth;
use hil::track::{Failure, Outcome, Track, TrackEvent};
use serde_json::json;
use sim::auto::Operation;
use sim::interlocking::Request;
use sim::layout::drawing::Drawing;
use sim::layout::{Layout, OnOff};
use sim::twin::EventKind;
use tokio::sync::broadcast::error::RecvError;

use crate::feeds::Feeds;
use crate::journal::{Entry, JournalError, Writer};
use crate::link::{Link, Operated, Pending};
use crate::metrics::Metrics;
use crate::operator;
use wire::record::{self, What};
use wire::v2::{self, OperatorAction, State};

/// The track in this process (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct Local {
    /// The track.
    pub track: Track,
    feeds: Feeds,
    journal: Option<Writer>,
    operator_token: Option<Arc<str>>,
    /// The layout's drawing, made once: where the trains' names go.
    drawing: Arc<Drawing>,
}

impl Local {
    /// Starts following `track`: the feeds, the journal's writer (when `journal` is given) and the
    /// once-a-second samples, recorded into `metrics`.
    pub async fn start(
        track: Track,
        journal: Option<&crate::journal::Journal>,
        operator_token: Option<&str>,
        metrics: Arc<Metrics>,
    ) -> Result<Local, JournalError> {
        metrics.mode(track.mode());
        metrics.operation(track.automatic().0);
        for (_, h) in track.boards() {
            metrics.event(&TrackEvent::Board(h));
        }
        let layout_toml = journal.and_then(|j| j.recorded_layout().map(str::to_string));
        let journal = match journal {
            Some(j) => {
                let names = track.layout().devices.iter().map(|d| d.name.clone()).collect();
                let desired = track.clone();
                Some(j.writer(names, move |d| desired.desired(d))?)
            }
            None => None,
        };
        // Subscribe before the first state is read, so that nothing between the two is missed.
        let events = track.subscribe();
        let snapshot = track.snapshot().await;
        let states: Vec<Option<OnOff>> = snapshot.state.devices.iter().map(|p| p.state()).collect();
        let drawing = Arc::new(track.layout().drawing());
        let feeds = Feeds::new(track.layout().clone(), &crate::views::state(track.layout(), &drawing, &snapshot));
        let follower = Follower {
            feeds: feeds.clone(),
            states,
            blocks: snapshot.state.blocks.clone(),
            detectors: snapshot.detectors.clone(),
            journal: journal.clone(),
            metrics: metrics.clone(),
            drawing: drawing.clone(),
        };
        // Where a session of the track starts, for a replay to start from.
        follower.record(vec![history(What::Session { session: session(&track, layout_toml, &snapshot) })]);
        tokio::spawn(follower.run(track.clone(), events));
        tokio::spawn(sample_every_second(track.clone(), metrics));
        Ok(Local { track, feeds, journal, operator_token: operator_token.map(Arc::from), drawing })
    }

    /// Carries out a request: the track's outcome, recorded before it is returned in the journal (an applied
    /// device state with it), so that an acknowledgement survives a crash.
    async fn carry_out(&self, request: Request, by: By, caller: Option<record::Caller>) -> Outcome {
        let started = Instant::now();
        let outcome = match by {
            By::Visitor => self.track.apply(request).await,
            By::Operator => self.track.apply_as_operator(request).await,
        };
        let by_word = match by {
            By::Visitor => record::By::Visitor,
            By::Operator => record::By::Operator,
        };
        let took_ms = Some(started.elapsed().as_millis() as u64);
        let mut entries = vec![command(self.track.layout(), request, &outcome, (by_word, caller), took_ms)];
        if let (Outcome::Applied, Request::Device { device, .. }) = (&outcome, request) {
            entries.push(Entry::Device(device));
        }
        match self.journal(entries).await {
            Err(e) if outcome == Outcome::Applied => Outcome::Failed(Failure::NotRecorded(e.to_string())),
            _ => outcome,
        }
    }

    /// Performs an operator action if `token` is the operator token, and records it in the journal.
    async fn perform(&self, token: &str, action: OperatorAction) -> Operated {
        if !operator::authorised(self.operator_token.as_deref(), token) {
            return Operated::Denied;
        }
        let result = match action {
            OperatorAction::Live | OperatorAction::LiveForce | OperatorAction::Sim => {
                let (to, force) = operator::switch(&action);
                operator::switched(self.track.switch_mode(to, force).await)
            }
            OperatorAction::EmergencyStop | OperatorAction::Reset => {
                // The operator takes the layout over: automatic operation would undo the stop.
                self.track.set_operation(Operation::Manual);
                let requests = operator::requests(self.track.layout(), self.track.mode(), &action);
                let mut outcomes = Vec::with_capacity(requests.len());
                for r in requests {
                    outcomes.push((r, self.carry_out(r, By::Operator, None).await));
                }
                operator::summarise(&action, self.track.layout(), &outcomes)
            }
            OperatorAction::Manual | OperatorAction::Auto | OperatorAction::Mixed => {
                let operation = operator::operation(&action);
                self.track.set_operation(operation);
                Ok(format!("operation {}", json!(operation).as_str().unwrap_or("?")))
            }
            OperatorAction::DetectorOutOfService(ref name) => self.track.set_detector_in_service(name, false),
            OperatorAction::DetectorInService(ref name) => self.track.set_detector_in_service(name, true),
            OperatorAction::PlaceTrain { ref train, ref block } => self.track.place_in_block(train, block).await,
        };
        let (result_word, reason) = match &result {
            Ok(detail) => (record::Result::Applied, detail.clone()),
            Err(reason) => (record::Result::Failed, reason.clone()),
        };
        let operator = What::Operator { operator: json!(action), result: result_word, reason };
        let _ = self.journal(vec![history(operator)]).await;
        match result {
            Ok(detail) => Operated::Done(detail),
            Err(reason) => Operated::Failed(reason),
        }
    }

    /// Writes `entries` to the journal (if there is one) and waits until they are on disk.
    async fn journal(&self, entries: Vec<Entry>) -> Result<(), JournalError> {
        match &self.journal {
            Some(writer) => writer.commit(entries).await,
            None => Ok(()),
        }
    }
}

impl Link for Local {
    fn layout(&self) -> &Arc<Layout> {
        self.track.layout()
    }

    fn feeds(&self) -> &Feeds {
        &self.feeds
    }

    fn apply(&self, request: Request, caller: record::Caller) -> Pending<'_, Outcome> {
        Box::pin(self.carry_out(request, By::Visitor, Some(caller)))
    }

    fn operate(&self, token: String, action: OperatorAction) -> Pending<'_, Operated> {
        Box::pin(async move { self.perform(&token, action).await })
    }

    fn snapshot(&self) -> Pending<'_, Option<State>> {
        Box::pin(async move {
            let track = &self.track;
            let state = track.try_state().await?;
            let (operation, plans) = track.automatic();
            let snapshot = hil::track::Snapshot {
                mode: track.mode(),
                operation,
                plans,
                state,
                boards: track.boards(),
                speeds: track.speeds(),
                detectors: track.detectors(),
            };
            Some(crate::views::state(track.layout(), &self.drawing, &snapshot))
        })
    }
}

/// Who asks for a request: a visitor's is refused under automatic operation, an operator's is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    Visitor,
    Operator,
}

/// The history entry of a request made by `by` (through a door, from a client, where known) and its outcome,
/// with how long the track took, where measured.
fn command(
    layout: &Layout,
    request: Request,
    outcome: &Outcome,
    (by, caller): (record::By, Option<record::Caller>),
    took_ms: Option<u64>,
) -> Entry {
    let (target, value) = match request {
        Request::Device { device, state } => (&layout.devices[device].name, record::Value::State(state)),
        Request::Speed { train, speed } => (&layout.trains[train].name, record::Value::Speed(speed)),
    };
    let (result, reason) = match outcome {
        Outcome::Applied => (record::Result::Applied, None),
        Outcome::Rejected(r) => (record::Result::Rejected, Some(r.message.clone())),
        Outcome::Failed(f) => (record::Result::Failed, Some(f.to_string())),
    };
    let (door, client) = caller.map_or((None, None), |c| (Some(c.door), c.client));
    let command = record::Command { target: target.clone(), value, result, reason, by, door, client, took_ms };
    history(What::Command(command))
}

/// How a session starts: the layout (with its file's text, where the journal was given it), every device's
/// state, the simulation's time, the mode and the operation.
fn session(track: &Track, layout_toml: Option<String>, snapshot: &hil::track::Snapshot) -> record::Session {
    let layout = track.layout();
    let devices = (layout.devices.iter().zip(&snapshot.state.devices))
        .filter_map(|(d, p)| Some((d.name.clone(), p.state()?)))
        .collect();
    record::Session {
        layout: layout.name.clone(),
        layout_toml,
        sim_ms: snapshot.state.time_ms,
        step_ms: hil::virtual_devices::rig::STEP_MS,
        devices,
        mode: snapshot.mode,
        operation: snapshot.operation,
    }
}

/// A history entry of `what`, stamped with the time.
fn history(what: What) -> Entry {
    let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Entry::History(serde_json::to_value(record::Entry { seq: None, unix_ms, what }).expect("entries are plain data"))
}

/// What the journal records of a track event, if anything: the inputs a replay compares itself with (sensor
/// passes and reports, blocks, boards, accidents, mode and operation).
fn recorded(layout: &Layout, event: &TrackEvent) -> Option<What> {
    Some(match event {
        TrackEvent::Sim(e) => match e.kind {
            EventKind::SensorPassed { sensor, train } => What::Sensor {
                sensor: layout.sensors[sensor].name.clone(),
                train: Some(layout.trains[train].name.clone()),
                train_id: None,
                sim_ms: Some(e.time_ms),
            },
            EventKind::Collision { .. } | EventKind::Derailment { .. } => {
                What::Accident { accident: e.describe(layout).trim().to_string(), sim_ms: e.time_ms }
            }
            EventKind::BlockChanged { block, occupied } => {
                What::Block { block: layout.blocks[block].id.clone(), occupied, reported: false }
            }
            _ => return None,
        },
        TrackEvent::SensorReport(r) => What::Sensor {
            sensor: layout.sensors[r.sensor].name.clone(),
            train: None,
            train_id: Some(r.train_id),
            sim_ms: None,
        },
        TrackEvent::BlockReport { block, close } => {
            What::Block { block: layout.blocks[*block].id.clone(), occupied: *close, reported: true }
        }
        TrackEvent::Board(h) if !h.unknown => What::Board { board: h.name.clone(), reachable: h.alive },
        TrackEvent::Mode(mode) => What::Mode { mode: *mode },
        TrackEvent::Operation(operation) => What::Operation { operation: *operation },
        _ => return None,
    })
}

/// Samples the simulation's real-time factor every second while the track runs.
async fn sample_every_second(track: Track, metrics: Arc<Metrics>) {
    let started = Instant::now();
    let Some(first) = track.try_state().await else { return };
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let Some(now) = track.try_state().await else { return };
        let wall = started.elapsed().as_secs_f64();
        metrics.real_time_factor((now.time_ms - first.time_ms) as f64 / 1000.0 / wall);
    }
}

/// The task behind the feeds: the track's events as v2 frames.
struct Follower {
    feeds: Feeds,
    states: Vec<Option<OnOff>>,
    /// Each block as the doors show it, and each detector's health, as last sent.
    blocks: Vec<bool>,
    detectors: Vec<DetectorHealth>,
    journal: Option<Writer>,
    metrics: Arc<Metrics>,
    /// The layout's drawing: where the trains' names go.
    drawing: Arc<Drawing>,
}

impl Follower {
    async fn run(mut self, track: Track, mut events: tokio::sync::broadcast::Receiver<TrackEvent>) {
        let layout = track.layout().clone();
        loop {
            match events.recv().await {
                Ok(e) => {
                    self.metrics.event(&e);
                    match &e {
                        TrackEvent::Auto(a) => {
                            self.metrics.automatic(&layout, a);
                            self.record(vec![history(What::Automatic { automatic: a.describe(&layout) })]);
                        }
                        TrackEvent::AutoRequest { request, outcome } => {
                            let by = (record::By::Automatic, None);
                            self.record(vec![command(&layout, *request, outcome, by, None)]);
                        }
                        TrackEvent::Plans { plans, .. } => self.metrics.waiting(plans),
                        // No train waits on automatic operation in manual operation.
                        TrackEvent::Operation(Operation::Manual) => self.metrics.waiting(&[]),
                        _ => {}
                    }
                    if let Some(what) = recorded(&layout, &e) {
                        self.record(vec![history(what)]);
                    }
                    if let Some(frame) = self.frame(&layout, e) {
                        self.feeds.publish(&frame);
                    }
                }
                // Missed events: read the devices again (trains and boards come again by themselves).
                Err(RecvError::Lagged(_)) => {
                    let Some(state) = track.try_state().await else { return };
                    for (device, p) in state.devices.iter().enumerate() {
                        if let Some(frame) = self.device(&layout, device, p.state()) {
                            self.feeds.publish(&frame);
                        }
                    }
                    self.blocks = state.blocks;
                    self.detectors = track.detectors();
                    for b in 0..self.blocks.len() {
                        self.feeds.publish(&self.block(&layout, b));
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// The v2 frame of what an event shows, if it shows anything.
    fn frame(&mut self, layout: &Layout, event: TrackEvent) -> Option<v2::ServerFrame> {
        Some(match event {
            TrackEvent::Sim(e) => match e.kind {
                EventKind::DeviceChanged { device, position } => return self.device(layout, device, position.state()),
                EventKind::SensorPassed { sensor, train } => v2::ServerFrame::Event(v2::Event {
                    kind: v2::EventKind::Sensor,
                    text: e.describe(layout),
                    sensor: Some(layout.sensors[sensor].name.clone()),
                    train: Some(layout.trains[train].name.clone()),
                }),
                EventKind::Collision { .. } => v2::ServerFrame::event(v2::EventKind::Collision, e.describe(layout)),
                EventKind::Derailment { .. } => v2::ServerFrame::event(v2::EventKind::Derailment, e.describe(layout)),
                _ => return None,
            },
            TrackEvent::Block { block, occupied } => {
                self.blocks[block] = occupied;
                self.block(layout, block)
            }
            TrackEvent::Detector { detector, health } => {
                self.detectors[detector] = health;
                let block = layout.detectors[detector].block;
                self.feeds.publish(&self.block(layout, block));
                let name = hil::boards2023::block_word::detector_name(layout, detector);
                v2::ServerFrame::event(v2::EventKind::Detector, format!("detector {name} {}", health.word()))
            }
            TrackEvent::Divergence(d) => v2::ServerFrame::event(v2::EventKind::Divergence, d.describe(layout)),
            TrackEvent::Board(h) => v2::ServerFrame::Board(crate::views::board(&h)),
            TrackEvent::Mode(mode) => v2::ServerFrame::Mode { mode },
            TrackEvent::Operation(operation) => v2::ServerFrame::Operation { operation },
            TrackEvent::Plans { time_ms, plans } => {
                v2::ServerFrame::Plans { plans: v2::Plan::all(layout, &plans, time_ms) }
            }
            TrackEvent::Auto(e) => v2::ServerFrame::event(v2::EventKind::Automatic, e.describe(layout)),
            TrackEvent::Trains(now) => {
                v2::ServerFrame::Trains { trains: crate::views::trains(layout, &self.drawing, &now) }
            }
            TrackEvent::Speed { train, speed } => {
                v2::ServerFrame::Speed { train: layout.trains[train].name.clone(), speed }
            }
            TrackEvent::Confirmed { device, state } => v2::ServerFrame::Device(v2::Device {
                name: layout.devices[device].name.clone(),
                kind: None,
                state: Some(state),
            }),
            TrackEvent::SensorReport(_) | TrackEvent::BlockReport { .. } | TrackEvent::AutoRequest { .. } => {
                return None;
            }
        })
    }

    /// A block's frame as last told.
    fn block(&self, layout: &Layout, block: usize) -> v2::ServerFrame {
        v2::ServerFrame::Block(crate::views::block(layout, block, self.blocks[block], &self.detectors))
    }

    /// Hands `entries` to the journal, if there is one (without waiting for the disk: nobody waits on
    /// automatic operation's acknowledgement).
    fn record(&self, entries: Vec<Entry>) {
        if let Some(journal) = &self.journal {
            journal.submit(entries);
        }
    }

    /// A device's state now: its frame if it changed, and the journal told.
    fn device(&mut self, layout: &Layout, device: usize, state: Option<OnOff>) -> Option<v2::ServerFrame> {
        if self.states[device] == state {
            return None;
        }
        self.states[device] = state;
        if state.is_some() {
            self.record(vec![Entry::Device(device)]);
        }
        Some(v2::ServerFrame::Device(v2::Device { name: layout.devices[device].name.clone(), kind: None, state }))
    }
}
