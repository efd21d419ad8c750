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

use crate::ingest::report_for;
use crate::virtual_boards::{VirtualBoard, start};
use crate::virtual_controllers::{self, VirtualController};

/// Where virtual devices send what they do to the simulation: normally into the simulation thread's request
/// channel.
pub type SimSink = Arc<dyn Fn(sim::twin::SimCommand) + Send + Sync>;

/// Where a virtual board or controller listens: where `listen` says (by the board's name or layout address),
/// else on `127.0.0.1` with a port chosen by the system.
pub(crate) async fn listen(
    listen: &HashMap<String, SocketAddr>,
    board: &sim::layout::Board,
) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let want = listen.get(&board.name).or_else(|| listen.get(&board.address)).copied();
    let listener = tokio::net::TcpListener::bind(want.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Why a rig cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    /// The simulation cannot start.
    #[error(transparent)]
    Sim(#[from] StartError),
    /// A virtual board cannot listen.
    #[error("cannot start virtual boards: {0}")]
    Listen(#[from] std::io::Error),
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

impl Rig {
    /// Starts the simulation paced at `pace` times real time, a virtual servo board for every servo board and a
    /// virtual speed controller for every speed-controller board (listening where `listen` says, by board name
    /// or layout address, else on a free loopback port).
    pub async fn start(layout: Arc<Layout>, listen: &HashMap<String, SocketAddr>, pace: f64) -> Result<Rig, RigError> {
        let sim = spawn(Simulation::new(layout.clone(), 10)?, Pacing::WallClock { factor: pace }, None);
        let requests = sim.requests.clone();
        let sink: SimSink = Arc::new(move |cmd| {
            // After the simulation stops nothing listens, and a servo move has nowhere to go.
            let _ = requests.send(Request::Command { id: 0, cmd });
        });
        let boards = start(&layout, listen, sink.clone()).await?;
        let controllers = virtual_controllers::start(&layout, listen, sink, pace).await?;
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
