//! gRPC: the 2021 `Control.Command2Internal` and `Speed.ControlSpeed` services, wire-compatible with the 2021
//! protos (a 2021 client works unchanged), and the v2 `Twin.WatchState` server-streaming state feed.
//!
//! `SUCCESS` means the device was actually driven (or the speed set); a command the interlocking refuses or
//! a board fails is `FAILED`. A station id the layout has no servo for (the 2021 enum names four) is refused
//! with status `NOT_FOUND` and says so.

use std::pin::Pin;
use std::time::Duration;

use hil::track::Outcome;
use sim::interlocking::Request as TrackRequest;
use sim::layout::OnOff;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::core::Core;
use wire::word;

/// Code generated from the 2021 proto (`hil/proto/plarail2021.proto`, no package, as in 2021).
pub use hil::controllers2021::proto as v2021;

/// Code generated from `proto/twin_v2.proto`.
#[allow(missing_docs, clippy::all)]
pub mod v2 {
    tonic::include_proto!("plarail.v2");
}

/// Time a gRPC request may take before it is answered `DEADLINE_EXCEEDED`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests one gRPC connection may have in flight at once.
pub const STREAMS_PER_CONNECTION: usize = 32;

/// The gRPC services over one gateway's core (commands are carried out, recorded and journaled as on every
/// other door).
#[derive(Clone)]
pub struct Grpc {
    core: Core,
}

impl Grpc {
    /// Services for `core`.
    pub fn new(core: Core) -> Grpc {
        Grpc { core }
    }

    fn record(&self, method: &'static str, code: &str) {
        self.core.metrics.grpc(method, code);
    }

    /// The visitor limit of every door: commands per second from one address (across the WebSockets and
    /// gRPC alike). A request whose address is unknown counts as loopback's.
    fn allowed<T>(&self, method: &'static str, request: &Request<T>) -> Result<(), Status> {
        let ip = request.remote_addr().map_or(std::net::IpAddr::from([127, 0, 0, 1]), |a| a.ip());
        let limit = self.core.options.limits.per_address;
        if self.core.per_address.take(ip, limit, std::time::Instant::now()) {
            return Ok(());
        }
        self.record(method, "RESOURCE_EXHAUSTED");
        Err(Status::resource_exhausted(format!("too many commands: at most {limit} per second per address")))
    }

    /// Serves every service on `listener` until `shutdown`.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        tonic::transport::Server::builder()
            // A request that takes longer is answered DEADLINE_EXCEEDED (a stream, once started, runs on).
            .timeout(REQUEST_TIMEOUT)
            .concurrency_limit_per_connection(STREAMS_PER_CONNECTION)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_service(v2021::control_server::ControlServer::new(self.clone()))
            .add_service(v2021::speed_server::SpeedServer::new(self.clone()))
            .add_service(v2::twin_server::TwinServer::new(self))
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
            .await
    }
}

#[tonic::async_trait]
impl v2021::control_server::Control for Grpc {
    async fn command2_internal(
        &self,
        request: Request<v2021::RequestSync>,
    ) -> Result<Response<v2021::ResponseSync>, Status> {
        self.allowed("Control.Command2Internal", &request)?;
        let caller = caller(&request);
        let r = request.into_inner();
        let id = r.station.map_or(0, |s| s.station_id);
        let layout = self.core.layout();
        let Some(device) = layout.devices.iter().position(|d| d.grpc_id.is_some_and(|g| g as i32 == id)) else {
            let name = v2021::StationId::try_from(id).map_or("an unknown id", |s| s.as_str_name());
            self.record("Control.Command2Internal", "NOT_FOUND");
            return Err(Status::not_found(format!("station id {id} ({name}) has no servo on this layout")));
        };
        let state = match v2021::State::try_from(r.state) {
            Ok(v2021::State::On) => OnOff::On,
            Ok(v2021::State::Off) => OnOff::Off,
            _ => {
                self.record("Control.Command2Internal", "INVALID_ARGUMENT");
                return Err(Status::invalid_argument("state must be ON or OFF"));
            }
        };
        let outcome = self.core.apply(TrackRequest::Device { device, state }, caller).await;
        let response = if outcome == Outcome::Applied { v2021::Response::Success } else { v2021::Response::Failed };
        self.record("Control.Command2Internal", response.as_str_name());
        Ok(Response::new(v2021::ResponseSync { response: response as i32 }))
    }
}

#[tonic::async_trait]
impl v2021::speed_server::Speed for Grpc {
    async fn control_speed(&self, request: Request<v2021::SendSpeed>) -> Result<Response<v2021::StatusCode>, Status> {
        self.allowed("Speed.ControlSpeed", &request)?;
        let caller = caller(&request);
        let r = request.into_inner();
        let layout = self.core.layout();
        let train = v2021::Train::try_from(r.train).ok().and_then(|t| layout.train_id(t.as_str_name()));
        let code = match train {
            Some(train) => match self.core.apply(TrackRequest::Speed { train, speed: r.speed }, caller).await {
                Outcome::Applied => v2021::Code::Success,
                _ => v2021::Code::Failed,
            },
            None => v2021::Code::Failed,
        };
        self.record("Speed.ControlSpeed", code.as_str_name());
        Ok(Response::new(v2021::StatusCode { code: code as i32 }))
    }
}

type StateStream = Pin<Box<dyn Stream<Item = Result<v2::TrackState, Status>> + Send>>;

#[tonic::async_trait]
impl v2::twin_server::Twin for Grpc {
    type WatchStateStream = StateStream;

    async fn watch_state(&self, _: Request<v2::WatchRequest>) -> Result<Response<StateStream>, Status> {
        self.record("Twin.WatchState", "OK");
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let link = self.core.link.clone();
        tokio::spawn(async move {
            let mut last: Option<v2::TrackState> = None;
            loop {
                let Some(state) = link.snapshot().await else { return };
                let now = message(state);
                // Only what changed (anything but the time), and a slow reader waits for the latest state rather
                // than a queue.
                if last.as_ref().is_none_or(|l| *l != v2::TrackState { time_ms: l.time_ms, ..now.clone() }) {
                    if tx.send(Ok(now.clone())).await.is_err() {
                        return;
                    }
                    last = Some(now);
                }
                // Ends with the stream, even while nothing changes.
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

/// The feed's message: the v2 state's words and numbers (a device between positions has the empty state).
fn message(state: wire::v2::State) -> v2::TrackState {
    v2::TrackState {
        mode: word(&state.mode),
        time_ms: state.time_ms,
        devices: state
            .devices
            .into_iter()
            .map(|d| v2::DeviceState { name: d.name, state: d.state.as_ref().map(word).unwrap_or_default() })
            .collect(),
        trains: state
            .trains
            .into_iter()
            .map(|t| v2::TrainState {
                name: t.name,
                segment: t.segment,
                offset_mm: t.offset_mm,
                speed_mm_s: t.speed_mm_s,
                status: word(&t.status),
                speed: t.speed.unwrap_or_default(),
            })
            .collect(),
        blocks: state.blocks.into_iter().map(|b| v2::BlockState { id: b.id, occupied: b.occupied }).collect(),
        operation: word(&state.operation),
        plans: state
            .plans
            .into_iter()
            .map(|p| v2::TrainPlan {
                train: p.train,
                automatic: p.automatic,
                next_stop: p.next_stop.unwrap_or_default(),
                waiting: p.waiting.unwrap_or_default(),
                calls: p.calls,
            })
            .collect(),
        online: state.online,
    }
}

/// Who sent a gRPC request, for the journal.
fn caller<T>(request: &Request<T>) -> wire::record::Caller {
    wire::record::Caller { door: "grpc".into(), client: request.remote_addr().map(|a| a.ip().to_string()) }
}
