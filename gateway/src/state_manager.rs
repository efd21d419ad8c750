//! The 2023 state manager's API: the Connect service `state.v1.StateManagerService` that the 2023 dashboard and
//! the 2023 auto-operation process call, served over the track, so that both run against the twin unchanged.
//!
//! Every method is unary, `POST /state.v1.StateManagerService/<Method>` (and under `/api`, as the dashboard's
//! proxy had it; any origin may call), with a JSON body (`application/json`, the protobuf JSON mapping, as connect-web sends it) or a
//! binary one (`application/proto`); the answer comes in the request's encoding, an error as Connect's JSON
//! error (`{"code": ..., "message": ...}`) with its HTTP status. Unlike 2023, every update passes the
//! interlocking: a refused one is a `failed_precondition` error whose message is the interlocking's reason.
//! Block states come from the pass detectors; `UpdateBlockState` is refused (see the README). The trains are
//! the layout's, where the simulation (or the mirror) has them; `AddTrain` and `UpdateTrain` set a layout train's
//! priority, NFC id and destination, kept by this door.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hil::track::Outcome;
use sim::interlocking::Request;
use sim::layout::{DeviceKind, Layout, OnOff};

use crate::core::Core;
use wire::v2;

/// The `state.v1` messages (prost) with the protobuf JSON mapping (pbjson).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/state.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/state.v1.serde.rs"));
}

/// The service's path prefix.
pub const SERVICE: &str = "state.v1.StateManagerService";

/// The largest request body taken (the largest real one is a few dozen bytes).
pub const MAX_BODY: usize = 16 * 1024;

/// The service's routes over `core`: at `/state.v1.StateManagerService/<Method>` and `/api/...`.
pub fn router(core: Core) -> Router {
    let service = Service { core, trains: Arc::default() };
    Router::new()
        .route(&format!("/{SERVICE}/{{method}}"), post(call))
        .route(&format!("/api/{SERVICE}/{{method}}"), post(call))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(cors())
        .with_state(service)
}

/// Any origin may call (a dashboard served from elsewhere, as in 2023, where the state manager allowed every
/// origin too), with Connect's headers.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method};
    tower_http::cors::CorsLayer::new().allow_origin(tower_http::cors::Any).allow_methods([Method::POST]).allow_headers(
        [
            header::CONTENT_TYPE,
            HeaderName::from_static("connect-protocol-version"),
            HeaderName::from_static("connect-timeout-ms"),
        ],
    )
}

/// The door's state: the track, and what clients told of each layout train.
#[derive(Clone)]
struct Service {
    core: Core,
    trains: Arc<Mutex<HashMap<String, pb::Train>>>,
}

/// A Connect error code (the ones this service answers with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The request cannot be read, or names an impossible state.
    InvalidArgument,
    /// No such device, block or train.
    NotFound,
    /// The interlocking refused it, or the twin does not take it.
    FailedPrecondition,
    /// Allowed, but the track could not carry it out.
    Unavailable,
    /// No such method.
    Unimplemented,
}

impl Code {
    /// The code's word on the wire.
    pub fn word(self) -> &'static str {
        match self {
            Code::InvalidArgument => "invalid_argument",
            Code::NotFound => "not_found",
            Code::FailedPrecondition => "failed_precondition",
            Code::Unavailable => "unavailable",
            Code::Unimplemented => "unimplemented",
        }
    }

    /// The HTTP status Connect gives the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

/// A Connect error: its code and the message in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    /// The code.
    pub code: Code,
    /// Why, in words.
    pub message: String,
}

impl ConnectError {
    fn new(code: Code, message: impl Into<String>) -> ConnectError {
        ConnectError { code, message: message.into() }
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code.word(), "message": self.message });
        (self.code.status(), [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

/// How a request's body (and so its answer) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// `application/json`: the protobuf JSON mapping.
    Json,
    /// `application/proto`: protobuf binary.
    Proto,
}

impl Codec {
    /// The codec a request's `Content-Type` names; anything else is refused (in words; Connect answers it with
    /// 415, see [`unsupported`]).
    pub fn of(headers: &HeaderMap) -> Result<Codec, String> {
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/json" => Ok(Codec::Json),
            "application/proto" => Ok(Codec::Proto),
            other => Err(format!("unary Connect requests are application/json or application/proto, not `{other}`")),
        }
    }

    /// Reads a request message.
    pub fn decode<M: prost::Message + Default + serde::de::DeserializeOwned>(
        self,
        body: &[u8],
    ) -> Result<M, ConnectError> {
        match self {
            // An empty body is the empty message (connect-web sends `{}`; some clients send nothing).
            Codec::Json if body.iter().all(u8::is_ascii_whitespace) => Ok(M::default()),
            Codec::Json => serde_json::from_slice(body).map_err(|e| {
                ConnectError::new(Code::InvalidArgument, format!("the request is not the method's JSON: {e}"))
            }),
            Codec::Proto => M::decode(body).map_err(|e| {
                ConnectError::new(Code::InvalidArgument, format!("the request is not the method's message: {e}"))
            }),
        }
    }

    /// Writes an answer.
    pub fn encode<M: prost::Message + serde::Serialize>(self, message: &M) -> Response {
        match self {
            Codec::Json => (
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::to_string(message).expect("messages serialise"),
            )
                .into_response(),
            Codec::Proto => ([(header::CONTENT_TYPE, "application/proto")], message.encode_to_vec()).into_response(),
        }
    }
}

/// One call: the method by its name, its request read in the body's codec, its answer in the same.
async fn call(State(service): State<Service>, Path(method): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let codec = match Codec::of(&headers) {
        Ok(c) => c,
        Err(why) => return unsupported(why),
    };
    let answer = match method.as_str() {
        "GetBlockStates" => service.read(codec, &body, block_states).await,
        "GetStopStates" => service.read(codec, &body, stop_states).await,
        "GetPointStates" => service.read(codec, &body, point_states).await,
        "GetTrains" => {
            let known = service.trains.lock().expect("trains").clone();
            service.read(codec, &body, |layout, state, _: pb::GetTrainsRequest| trains(layout, state, &known)).await
        }
        "UpdateStopState" => match codec.decode::<pb::UpdateStopStateRequest>(&body) {
            Ok(r) => service
                .update(stop_request(service.core.layout(), r.state))
                .await
                .map(|()| codec.encode(&pb::UpdateStopStateResponse {})),
            Err(e) => Err(e),
        },
        "UpdatePointState" => match codec.decode::<pb::UpdatePointStateRequest>(&body) {
            Ok(r) => service
                .update(point_request(service.core.layout(), r.state))
                .await
                .map(|()| codec.encode(&pb::UpdatePointStateResponse {})),
            Err(e) => Err(e),
        },
        "UpdateBlockState" => codec.decode::<pb::UpdateBlockStateRequest>(&body).and_then(|_| Err(block_override())),
        "AddTrain" => codec
            .decode::<pb::AddTrainRequest>(&body)
            .and_then(|r| service.describe(r.train))
            .map(|train| codec.encode(&pb::AddTrainResponse { train: Some(train) })),
        "UpdateTrain" => codec
            .decode::<pb::UpdateTrainRequest>(&body)
            .and_then(|r| service.describe(r.train))
            .map(|train| codec.encode(&pb::UpdateTrainResponse { train: Some(train) })),
        other => Err(ConnectError::new(Code::Unimplemented, format!("{SERVICE} has no method `{other}`"))),
    };
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// The answer to a body in an encoding Connect does not speak: 415, naming the ones it does.
fn unsupported(why: String) -> Response {
    let accept = [(header::HeaderName::from_static("accept-post"), "application/json, application/proto")];
    (StatusCode::UNSUPPORTED_MEDIA_TYPE, accept, why).into_response()
}

impl Service {
    /// A read: the request read (it carries nothing), the answer made from the track's state now.
    async fn read<Q, A>(
        &self,
        codec: Codec,
        body: &[u8],
        answer: impl FnOnce(&Layout, &v2::State, Q) -> A,
    ) -> Result<Response, ConnectError>
    where
        Q: prost::Message + Default + serde::de::DeserializeOwned,
        A: prost::Message + serde::Serialize,
    {
        let request = codec.decode::<Q>(body)?;
        let state = self.core.link.snapshot().await.ok_or_else(stopped)?;
        Ok(codec.encode(&answer(self.core.layout(), &state, request)))
    }

    /// An update: the request through the interlocking and the track; refused or failed, a Connect error.
    async fn update(&self, request: Result<Request, ConnectError>) -> Result<(), ConnectError> {
        // The 2023 dashboard's API: no client address reaches this far.
        let caller = wire::record::Caller { door: "2023".into(), client: None };
        outcome(self.core.apply(request?, caller).await)
    }

    /// `AddTrain` and `UpdateTrain`: what a client tells of a layout train (its position is the track's).
    fn describe(&self, train: Option<pb::Train>) -> Result<pb::Train, ConnectError> {
        let train = train.ok_or_else(|| ConnectError::new(Code::InvalidArgument, "the request names no train"))?;
        if self.core.layout().train_id(&train.train_id).is_none() {
            let names: Vec<&str> = self.core.layout().trains.iter().map(|t| t.name.as_str()).collect();
            return Err(ConnectError::new(
                Code::FailedPrecondition,
                format!(
                    "the twin runs the layout's trains ({}); `{}` is not one of them",
                    names.join(", "),
                    train.train_id
                ),
            ));
        }
        let kept = pb::Train { position_id: String::new(), ..train };
        self.trains.lock().expect("trains").insert(kept.train_id.clone(), kept.clone());
        Ok(kept)
    }
}

fn stopped() -> ConnectError {
    ConnectError::new(Code::Unavailable, "the track is stopped")
}

/// Why `UpdateBlockState` is refused.
fn block_override() -> ConnectError {
    ConnectError::new(
        Code::FailedPrecondition,
        "block states come from the pass detectors: the twin takes no manual override (a block set free by hand \
         would let the interlocking send a train into an occupied one)",
    )
}

/// A track outcome as a Connect answer.
pub fn outcome(outcome: Outcome) -> Result<(), ConnectError> {
    match outcome {
        Outcome::Applied => Ok(()),
        Outcome::Rejected(r) => Err(ConnectError::new(Code::FailedPrecondition, r.message)),
        Outcome::Failed(reason) => Err(ConnectError::new(Code::Unavailable, reason.to_string())),
    }
}

/// Every block, `BLOCK_STATE_CLOSE` while a train is in it.
pub fn block_states(_: &Layout, state: &v2::State, _: pb::GetBlockStatesRequest) -> pb::GetBlockStatesResponse {
    let word = |occupied: bool| {
        if occupied { pb::BlockStateEnum::BlockStateClose } else { pb::BlockStateEnum::BlockStateOpen }
    };
    pb::GetBlockStatesResponse {
        states: state
            .blocks
            .iter()
            .map(|b| pb::BlockState { block_id: b.id.clone(), state: word(b.occupied) as i32 })
            .collect(),
    }
}

/// The devices of one kind with their state (`None` while between positions).
fn devices_of<'a>(
    layout: &'a Layout,
    state: &'a v2::State,
    kind: DeviceKind,
) -> impl Iterator<Item = (&'a str, Option<OnOff>)> {
    layout
        .devices
        .iter()
        .zip(&state.devices)
        .filter(move |(d, _)| d.kind == kind)
        .map(|(d, s)| (d.name.as_str(), s.state))
}

/// Every stop rail: STOP raised (ON), GO lowered (OFF), UNKNOWN between.
pub fn stop_states(layout: &Layout, state: &v2::State, _: pb::GetStopStatesRequest) -> pb::GetStopStatesResponse {
    pb::GetStopStatesResponse {
        states: devices_of(layout, state, DeviceKind::StopRail)
            .map(|(name, s)| pb::StopAndState {
                id: name.to_string(),
                state: match s {
                    Some(OnOff::On) => pb::StopStateEnum::StopStateStop,
                    Some(OnOff::Off) => pb::StopStateEnum::StopStateGo,
                    None => pb::StopStateEnum::StopStateUnknown,
                } as i32,
            })
            .collect(),
    }
}

/// Every point: REVERSE diverging (ON), NORMAL straight (OFF), UNKNOWN between.
pub fn point_states(layout: &Layout, state: &v2::State, _: pb::GetPointStatesRequest) -> pb::GetPointStatesResponse {
    pb::GetPointStatesResponse {
        states: devices_of(layout, state, DeviceKind::Switch)
            .map(|(name, s)| pb::PointAndState {
                id: name.to_string(),
                state: match s {
                    Some(OnOff::On) => pb::PointStateEnum::PointStateReverse,
                    Some(OnOff::Off) => pb::PointStateEnum::PointStateNormal,
                    None => pb::PointStateEnum::PointStateUnknown,
                } as i32,
            })
            .collect(),
    }
}

/// Every layout train where it is: the stop rail of the segment its front is on (it stands at or runs to that
/// station), else the block it is in, else nothing; with what clients told of it.
pub fn trains(layout: &Layout, state: &v2::State, known: &HashMap<String, pb::Train>) -> pb::GetTrainsResponse {
    let position = |segment: &str| -> String {
        let Some(seg) = layout.segment_id(segment) else { return String::new() };
        if let Some((device, _)) = layout.stop_rails_on(seg).next() {
            return layout.devices[device].name.clone();
        }
        layout.blocks.iter().find(|b| b.segs.contains(&seg)).map(|b| b.id.clone()).unwrap_or_default()
    };
    pb::GetTrainsResponse {
        trains: state
            .trains
            .iter()
            .filter(|t| t.status != sim::twin::TrainStatus::Removed)
            .map(|t| pb::Train {
                train_id: t.name.clone(),
                position_id: position(&t.segment),
                ..known.get(&t.name).cloned().unwrap_or_default()
            })
            .collect(),
    }
}

/// A request to set the device `id` of `kind` (`what` in words) to `state` (`None`: the request's word is not
/// one of the two this device takes, `words`).
fn device_request(
    layout: &Layout,
    id: &str,
    state: Option<OnOff>,
    (kind, what, words): (DeviceKind, &str, &str),
) -> Result<Request, ConnectError> {
    let device = match layout.device_id(id) {
        Some(d) if layout.devices[d].kind == kind => d,
        _ => return Err(ConnectError::new(Code::NotFound, format!("the layout has no {what} `{id}`"))),
    };
    let state = state.ok_or_else(|| ConnectError::new(Code::InvalidArgument, format!("a {what} is set to {words}")))?;
    Ok(Request::Device { device, state })
}

/// `UpdateStopState`'s request as a track request.
pub fn stop_request(layout: &Layout, s: Option<pb::StopAndState>) -> Result<Request, ConnectError> {
    let s = s.ok_or_else(|| ConnectError::new(Code::InvalidArgument, "the request names no stop rail"))?;
    let state = match pb::StopStateEnum::try_from(s.state) {
        Ok(pb::StopStateEnum::StopStateStop) => Some(OnOff::On),
        Ok(pb::StopStateEnum::StopStateGo) => Some(OnOff::Off),
        _ => None,
    };
    device_request(layout, &s.id, state, (DeviceKind::StopRail, "stop rail", "STOP_STATE_STOP or STOP_STATE_GO"))
}

/// `UpdatePointState`'s request as a track request.
pub fn point_request(layout: &Layout, s: Option<pb::PointAndState>) -> Result<Request, ConnectError> {
    let s = s.ok_or_else(|| ConnectError::new(Code::InvalidArgument, "the request names no point"))?;
    let state = match pb::PointStateEnum::try_from(s.state) {
        Ok(pb::PointStateEnum::PointStateReverse) => Some(OnOff::On),
        Ok(pb::PointStateEnum::PointStateNormal) => Some(OnOff::Off),
        _ => None,
    };
    device_request(layout, &s.id, state, (DeviceKind::Switch, "point", "POINT_STATE_NORMAL or POINT_STATE_REVERSE"))
}
