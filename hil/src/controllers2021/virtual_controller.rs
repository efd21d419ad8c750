//! Virtual onboard speed controllers: the 2021 controller's gRPC `Speed.ControlSpeed` served on loopback on top
//! of a running simulation, one per speed-controller board of the layout.
//!
//! Like the 2021 one it answers every call `SUCCESS` and ignores the `train` field; it runs the speed through
//! the PWM model ([`crate::controllers2021::onboard`]): the motor of the train it sits on is kicked to full duty for 0.1 s, then
//! held at the speed's duty, and the simulated train runs at the speed the motor gives (a negative speed or
//! one over 100 changes nothing). Every speed it received is kept, for tests and the crew to read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sim::layout::{BoardKind, Layout, TrainId};
use sim::twin::SimCommand;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use crate::controllers2021::onboard;
use crate::controllers2021::proto::speed_server::{Speed, SpeedServer};
use crate::controllers2021::proto::{Code, SendSpeed, StatusCode};
use crate::virtual_devices::device::SimSink;

struct Shared {
    /// The trains it drives (normally one), with their top speed in mm/s.
    trains: Vec<(TrainId, u32)>,
    sink: SimSink,
    pace: f64,
    received: Mutex<Vec<i32>>,
    /// The duty plan being carried out (a new speed replaces it).
    plan: Mutex<Option<JoinHandle<()>>>,
}

/// One running virtual speed controller.
#[derive(Clone)]
pub struct VirtualController {
    /// The controller's board name in the layout.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl VirtualController {
    /// Every speed it was sent, oldest first.
    pub fn received(&self) -> Vec<i32> {
        self.shared.received.lock().expect("received").clone()
    }
}

#[derive(Clone)]
struct Service(Arc<Shared>);

#[tonic::async_trait]
impl Speed for Service {
    async fn control_speed(&self, request: Request<SendSpeed>) -> Result<Response<StatusCode>, Status> {
        let speed = request.into_inner().speed;
        let shared = &self.0;
        shared.received.lock().expect("received").push(speed);
        if let Some(plan) = onboard::plan(speed) {
            let run = tokio::spawn(carry_out(shared.clone(), plan));
            if let Some(old) = shared.plan.lock().expect("plan").replace(run) {
                old.abort();
            }
        }
        Ok(Response::new(StatusCode { code: Code::Success as i32 }))
    }
}

/// Sets each duty of `plan` at its time (scaled by the simulation's pace) on the motors.
async fn carry_out(shared: Arc<Shared>, plan: Vec<(Duration, f64)>) {
    let start = tokio::time::Instant::now();
    for (at, duty) in plan {
        tokio::time::sleep_until(start + at.div_f64(shared.pace)).await;
        for &(train, max) in &shared.trains {
            (shared.sink)(SimCommand::SetSpeed { train, speed: onboard::motor_mm_s(duty, max) as i32 });
        }
    }
}

/// Starts a virtual controller for every speed-controller board of the layout, driving the trains that name
/// it, paced like the simulation. `listen` may give a controller's address by its name or its layout address;
/// the others listen on `127.0.0.1` with a port chosen by the system.
pub async fn start(
    layout: &Layout,
    listen: &HashMap<String, SocketAddr>,
    sink: SimSink,
    pace: f64,
) -> std::io::Result<Vec<VirtualController>> {
    let mut controllers = Vec::new();
    for (id, b) in layout.boards.iter().enumerate().filter(|(_, b)| b.kind == BoardKind::Speed) {
        let (listener, addr) = crate::virtual_devices::device::listen(listen, b).await?;
        let trains = layout
            .trains
            .iter()
            .enumerate()
            .filter(|(_, t)| t.controller == Some(id))
            .map(|(i, t)| (i, t.max_speed))
            .collect();
        let shared =
            Arc::new(Shared { trains, sink: sink.clone(), pace, received: Mutex::default(), plan: Mutex::default() });
        let server = tonic::transport::Server::builder()
            .add_service(SpeedServer::new(Service(shared.clone())))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        tokio::spawn(async move {
            // The server ends only with the runtime; an accept error ends this controller's server.
            let _ = server.await;
        });
        controllers.push(VirtualController { name: b.name.clone(), addr, shared });
    }
    Ok(controllers)
}
