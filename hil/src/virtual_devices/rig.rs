//! A simulated layout behind virtual boards: the simulation thread, a virtual servo board per servo board, a
//! virtual onboard speed controller per speed-controller board, and virtual sensor boards that post the 2021 sensor reports for the simulation's sensor passes.
//!
//! It is what `plarail-twin boards` serves, the sim-mode track's backend, and the "real" track of the
//! live-mode tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::Receiver;
use sim::layout::Layout;
use sim::twin::thread::{Output, Pacing, Request, SimHandle, spawn};
use sim::twin::{SimEvent, Simulation, StartError};

use crate::boards2021::ingest::report_for;
use crate::boards2021::virtual_board::{VirtualBoard, start};
use crate::controllers2021::virtual_controller::{self, VirtualController};
use crate::virtual_devices::device::SimSink;

/// Why a rig cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    /// The simulation cannot start.
    #[error(transparent)]
    Sim(#[from] StartError),
    /// A virtual board cannot listen (the cause in the message, not a `source` too: a chain of causes would
    /// say it twice).
    #[error("cannot start virtual boards: {0}")]
    Listen(std::io::Error),
    /// The simulation stopped as the track started.
    #[error("the simulation stopped as the track started")]
    Stopped,
}

/// A running simulation with its virtual boards.
pub struct Rig {
    /// The layout.
    pub layout: Arc<Layout>,
    /// The simulation thread.
    pub sim: SimHandle,
    /// The virtual servo boards.
    pub boards: Vec<VirtualBoard>,
    /// The virtual onboard speed controllers.
    pub controllers: Vec<VirtualController>,
}

/// The simulation's fixed step, ms.
pub const STEP_MS: u64 = 10;

impl Rig {
    /// Starts the simulation paced at `pace` times real time, a virtual servo board for every servo board and a
    /// virtual speed controller for every speed-controller board (listening where `listen` says, by board name
    /// or layout address, else on a free loopback port).
    pub async fn start(layout: Arc<Layout>, listen: &HashMap<String, SocketAddr>, pace: f64) -> Result<Rig, RigError> {
        let sim = spawn(Simulation::new(layout.clone(), STEP_MS)?, Pacing::WallClock { factor: pace }, None);
        let requests = sim.requests.clone();
        let sink: SimSink = Arc::new(move |cmd| {
            // After the simulation stops nothing listens, and a servo move has nowhere to go.
            let _ = requests.send(Request::Command { id: 0, cmd });
        });
        let boards = start(&layout, listen, sink.clone()).await.map_err(RigError::Listen)?;
        let controllers = virtual_controller::start(&layout, listen, sink, pace).await.map_err(RigError::Listen)?;
        Ok(Rig { layout, sim, boards, controllers })
    }

    /// The address each board of the layout is served at; a sensor board's is where its reports come from,
    /// loopback.
    pub fn addresses(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .layout
            .boards
            .iter()
            .map(|b| if b.kind == sim::layout::BoardKind::Sensor { "127.0.0.1".into() } else { b.address.clone() })
            .collect();
        let served =
            self.boards.iter().map(|b| (&b.name, b.addr)).chain(self.controllers.iter().map(|c| (&c.name, c.addr)));
        for (name, addr) in served {
            let id = self.layout.boards.iter().position(|b| &b.name == name).expect("board of the layout");
            all[id] = addr.to_string();
        }
        all
    }

    /// The virtual board of the layout's board `name`.
    pub fn board(&self, name: &str) -> Option<&VirtualBoard> {
        self.boards.iter().find(|b| b.name == name)
    }

    /// The virtual speed controller of the layout's board `name`.
    pub fn controller(&self, name: &str) -> Option<&VirtualController> {
        self.controllers.iter().find(|c| c.name == name)
    }
}

/// Counts of reports posted by [`post_sensor_reports`].
#[derive(Debug, Default)]
pub struct ReportCounts {
    /// Reports the ingest endpoint accepted.
    pub accepted: AtomicU64,
    /// Reports that failed or were refused.
    pub failed: AtomicU64,
}

/// Virtual sensor boards: drains the simulation's `outputs` on a thread of its own and posts a 2021 sensor
/// report to `url` for every pass of a wired sensor; `forward` also gets every event.
pub fn post_sensor_reports(
    layout: Arc<Layout>,
    outputs: Receiver<Output>,
    url: Option<String>,
    forward: impl Fn(&SimEvent) + Send + 'static,
) -> Arc<ReportCounts> {
    let counts = Arc::new(ReportCounts::default());
    let runtime = tokio::runtime::Handle::current();
    let http = reqwest::Client::new();
    let shared = counts.clone();
    std::thread::Builder::new()
        .name("sensor-boards".into())
        .spawn(move || {
            for output in outputs {
                let Output::Event(event) = output else { continue };
                forward(&event);
                let (Some(url), Some(report)) = (url.as_ref(), report_for(&layout, &event)) else { continue };
                let request = http.post(url).header("content-type", "application/json").body(report.encode());
                let counts = shared.clone();
                runtime.spawn(async move {
                    let ok = matches!(request.send().await, Ok(r) if r.status().is_success());
                    let counter = if ok { &counts.accepted } else { &counts.failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                });
            }
        })
        .expect("spawn sensor board thread");
    counts
}

/// A layout's 2023 MQTT boards as virtual boards (the firmware's state machine, [`crate::boards2023::firmware`]) on a
/// broker, over a simulation: their servos move the simulated devices, and the simulation's detectors press
/// their switches ([`MqttBoards::detector_changed`]). The sim-mode track's 2023 boards, and the "real" boards of
/// the live-mode tests.
pub struct MqttBoards {
    layout: Arc<Layout>,
    sink: SimSink,
    broker: (String, u16, Option<(String, String)>),
    /// The virtual boards, by layout board (a reboot replaces one).
    boards: std::sync::Mutex<Vec<(sim::layout::BoardId, crate::boards2023::virtual_board::VirtualMqttBoard)>>,
    /// Each detector's virtual board (index into `boards`) and its index in that board's setting.
    slots: Vec<Option<(usize, usize)>>,
    /// Each detector's level, so that a rebooted board starts with its switches as they are.
    levels: std::sync::Mutex<Vec<bool>>,
}

impl MqttBoards {
    /// Boots a virtual board per MQTT board of `layout` on the broker at `host:port` (with `login`), each
    /// running the firmware `build` gives it; servo moves go to `sink`.
    pub fn start(
        layout: Arc<Layout>,
        sink: SimSink,
        host: &str,
        port: u16,
        login: Option<(String, String)>,
        build: impl Fn(sim::layout::BoardId) -> crate::boards2023::firmware::Build,
    ) -> MqttBoards {
        let mut slots = vec![None; layout.detectors.len()];
        let mqtt = layout.boards.iter().enumerate().filter(|(_, b)| b.kind == sim::layout::BoardKind::Mqtt);
        let ids: Vec<sim::layout::BoardId> = mqtt.map(|(id, _)| id).collect();
        for (index, &id) in ids.iter().enumerate() {
            let wired = layout.detectors.iter().enumerate().filter(|(_, d)| d.wiring.is_some_and(|(b, _)| b == id));
            for (slot, (detector, _)) in wired.enumerate() {
                slots[detector] = Some((index, slot));
            }
        }
        let set = MqttBoards {
            levels: std::sync::Mutex::new(vec![false; layout.detectors.len()]),
            layout,
            sink,
            broker: (host.into(), port, login),
            boards: std::sync::Mutex::new(Vec::new()),
            slots,
        };
        let boards = ids.iter().map(|&id| (id, set.boot(id, build(id)))).collect();
        *set.boards.lock().expect("boards") = boards;
        set
    }

    fn boot(
        &self,
        id: sim::layout::BoardId,
        build: crate::boards2023::firmware::Build,
    ) -> crate::boards2023::virtual_board::VirtualMqttBoard {
        let pins: Vec<(u32, usize)> =
            self.layout.devices.iter().enumerate().filter(|(_, d)| d.board == id).map(|(i, d)| (d.pin, i)).collect();
        let sink = self.sink.clone();
        let servo: crate::boards2023::virtual_board::Servo = Arc::new(move |pin, angle| {
            if let Some(&(_, device)) = pins.iter().find(|(p, _)| *p == pin as u32) {
                sink(sim::twin::SimCommand::SetAngle { device, angle });
            }
        });
        let setting = crate::boards2023::link::setting_of(&self.layout, id);
        let (host, port, login) = &self.broker;
        let board = crate::boards2023::virtual_board::VirtualMqttBoard::start(
            setting,
            build,
            host,
            *port,
            login.clone(),
            servo,
        );
        let levels = self.levels.lock().expect("levels");
        for (detector, &closed) in levels.iter().enumerate() {
            if let Some(slot) = self.slots[detector].filter(|_| closed).map(|s| s.1)
                && self.layout.detectors[detector].wiring.is_some_and(|(b, _)| b == id)
            {
                board.set_detector(slot, true);
            }
        }
        board
    }

    /// The simulation pressed or released a detector: its virtual board's switch follows.
    pub fn detector_changed(&self, detector: usize, closed: bool) {
        self.levels.lock().expect("levels")[detector] = closed;
        if let Some((board, slot)) = self.slots[detector] {
            self.boards.lock().expect("boards")[board].1.set_detector(slot, closed);
        }
    }

    /// The virtual boards.
    pub fn boards(&self) -> Vec<crate::boards2023::virtual_board::VirtualMqttBoard> {
        self.boards.lock().expect("boards").iter().map(|(_, b)| b.clone()).collect()
    }

    /// The virtual board of the layout's board `name`.
    pub fn board(&self, name: &str) -> Option<crate::boards2023::virtual_board::VirtualMqttBoard> {
        self.boards().into_iter().find(|b| b.name() == name)
    }

    /// Power-cycles the board `name` (its connection cut, a new one booted with `build`): the festival build
    /// asks its state again as it boots.
    pub fn reboot(&self, name: &str, build: crate::boards2023::firmware::Build) {
        let Some(id) = self.layout.boards.iter().position(|b| b.name == name) else { return };
        let Some(index) = self.boards.lock().expect("boards").iter().position(|(b, _)| *b == id) else { return };
        let old = self.boards.lock().expect("boards")[index].1.clone();
        old.stop();
        let new = self.boot(id, build);
        self.boards.lock().expect("boards")[index].1 = new;
    }

    /// Disconnects every board for good.
    pub fn stop(&self) {
        for board in self.boards() {
            board.stop();
        }
    }
}
