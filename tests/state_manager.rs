//! The 2023 state manager's Connect API over the twin: every method in JSON (as connect-web sends it) and in
//! binary protobuf, at the service's path and under `/api`; updates through the interlocking, refusals as
//! Connect errors with the interlocking's reason; bad requests refused, changing nothing.

use gateway::state_manager::pb;
use hil::track::{Setup, Track, TrackConfig};
use prost::Message;
use serde_json::{Value, json};

use crate::support::{layout_2023, serve};

const URL: &str = "state.v1.StateManagerService";

/// The twin on the 2023 layout (4x real time) and its address.
async fn twin() -> (Track, std::net::SocketAddr) {
    let config = TrackConfig { pace: 4.0, ..crate::support::config() };
    let track = Track::start(layout_2023(), Setup { config, ..Setup::default() }).await.unwrap();
    let addr = serve(track.clone(), gateway::core::Options::default()).await;
    (track, addr)
}

/// A JSON call: the HTTP status and the body as JSON.
async fn json_call(addr: std::net::SocketAddr, prefix: &str, method: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}{prefix}/{URL}/{method}"))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_slice(&r.bytes().await.unwrap()).unwrap())
}

/// A binary call: the HTTP status, the content type and the body's bytes.
async fn proto_call(addr: std::net::SocketAddr, method: &str, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/{URL}/{method}"))
        .header("content-type", "application/proto")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let kind = r.headers()["content-type"].to_str().unwrap().to_string();
    (status, kind, r.bytes().await.unwrap().to_vec())
}

fn state_of<'a>(states: &'a Value, key: &str, id: &str) -> &'a str {
    states.as_array().unwrap().iter().find(|s| s[key] == id).unwrap_or_else(|| panic!("{id} in {states}"))["state"]
        .as_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_s_calls_in_json_read_and_drive_the_track_through_the_interlocking() {
    let (track, addr) = twin().await;
    // The four reads the dashboard polls, under its /api prefix.
    let (status, stops) = json_call(addr, "/api", "GetStopStates", json!({})).await;
    assert_eq!(status, 200, "{stops}");
    assert_eq!(stops["states"].as_array().unwrap().len(), 14);
    assert_eq!(state_of(&stops["states"], "id", "shinjyuku_down_s1"), "STOP_STATE_STOP");
    let (_, points) = json_call(addr, "/api", "GetPointStates", json!({})).await;
    assert_eq!(points["states"].as_array().unwrap().len(), 3);
    assert_eq!(state_of(&points["states"], "id", "chofu_down_p1"), "POINT_STATE_NORMAL");
    let (_, blocks) = json_call(addr, "/api", "GetBlockStates", json!({})).await;
    assert_eq!(blocks["states"].as_array().unwrap().len(), 11);
    assert_eq!(state_of(&blocks["states"], "blockId", "shinjyuku_down_b1"), "BLOCK_STATE_OPEN");
    let (_, trains) = json_call(addr, "/api", "GetTrains", json!({})).await;
    let keio = trains["trains"].as_array().unwrap().iter().find(|t| t["trainId"] == "KEIO8000").unwrap();
    assert_eq!(keio["positionId"], "shinjyuku_down_s1", "{trains}");

    // The dashboard's click on a stop rail: GO. The train departs into the block, which closes.
    let go = json!({"state": {"id": "shinjyuku_down_s1", "state": "STOP_STATE_GO"}});
    let (status, body) = json_call(addr, "", "UpdateStopState", go.clone()).await;
    assert_eq!((status, &body), (200, &json!({})));
    crate::support::until("block closed", std::time::Duration::from_secs(10), async || {
        let (_, blocks) = json_call(addr, "", "GetBlockStates", json!({})).await;
        state_of(&blocks["states"], "blockId", "shinjyuku_down_b1") == "BLOCK_STATE_CLOSE"
    })
    .await;
    // STOP again, then GO into the occupied block: refused with the interlocking's reason.
    let stop = json!({"state": {"id": "shinjyuku_down_s1", "state": "STOP_STATE_STOP"}});
    assert_eq!(json_call(addr, "", "UpdateStopState", stop).await.0, 200);
    let (status, error) = json_call(addr, "", "UpdateStopState", go).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["code"], "failed_precondition");
    assert!(error["message"].as_str().unwrap().contains("block shinjyuku_down_b1 ahead is occupied"), "{error}");
    let (_, stops) = json_call(addr, "", "GetStopStates", json!({})).await;
    assert_eq!(state_of(&stops["states"], "id", "shinjyuku_down_s1"), "STOP_STATE_STOP", "the refusal changed nothing");

    // A point under the interlocking too: thrown when free.
    let reverse = json!({"state": {"id": "chofu_down_p1", "state": "POINT_STATE_REVERSE"}});
    assert_eq!(json_call(addr, "", "UpdatePointState", reverse).await.0, 200);
    let (_, points) = json_call(addr, "", "GetPointStates", json!({})).await;
    assert_eq!(state_of(&points["states"], "id", "chofu_down_p1"), "POINT_STATE_REVERSE");

    // A manual block override is refused, saying why; the train's details are kept, its position is the track's.
    let (status, error) = json_call(
        addr,
        "",
        "UpdateBlockState",
        json!({"state": {"blockId": "chofu_up_b1", "state": "BLOCK_STATE_CLOSE"}}),
    )
    .await;
    assert_eq!((status, error["code"].as_str()), (400, Some("failed_precondition")), "{error}");
    assert!(error["message"].as_str().unwrap().contains("pass detectors"), "{error}");
    let add = json!({"train": {"trainId": "KEIO9000", "positionId": "nowhere", "priority": "PRIORITY_HIGH", "destination": "hashimoto"}});
    let (status, added) = json_call(addr, "", "AddTrain", add).await;
    assert_eq!(status, 200, "{added}");
    let (_, trains) = json_call(addr, "", "GetTrains", json!({})).await;
    let t = trains["trains"].as_array().unwrap().iter().find(|t| t["trainId"] == "KEIO9000").unwrap();
    assert_eq!((t["priority"].as_str(), t["destination"].as_str()), (Some("PRIORITY_HIGH"), Some("hashimoto")));
    assert_eq!(t["positionId"], "chofu_down_s1");
    let (status, error) = json_call(addr, "", "AddTrain", json!({"train": {"trainId": "test"}})).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("failed_precondition")), "{error}");
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_protobuf_calls_get_binary_answers() {
    let (track, addr) = twin().await;
    let (status, kind, body) = proto_call(addr, "GetStopStates", pb::GetStopStatesRequest {}.encode_to_vec()).await;
    assert_eq!((status, kind.as_str()), (200, "application/proto"));
    let stops = pb::GetStopStatesResponse::decode(body.as_slice()).unwrap();
    assert_eq!(stops.states.len(), 14);
    assert!(stops.states.iter().all(|s| s.state == pb::StopStateEnum::StopStateStop as i32));
    let go = pb::UpdateStopStateRequest {
        state: Some(pb::StopAndState { id: "chofu_down_s1".into(), state: pb::StopStateEnum::StopStateGo as i32 }),
    };
    let (status, _, body) = proto_call(addr, "UpdateStopState", go.encode_to_vec()).await;
    assert_eq!(status, 200);
    assert_eq!(pb::UpdateStopStateResponse::decode(body.as_slice()).unwrap(), pb::UpdateStopStateResponse {});
    let (_, _, body) = proto_call(addr, "GetBlockStates", Vec::new()).await;
    let blocks = pb::GetBlockStatesResponse::decode(body.as_slice()).unwrap();
    assert_eq!(blocks.states.len(), 11);
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_connect_errors_and_change_nothing() {
    let (track, addr) = twin().await;
    let before = json_call(addr, "", "GetStopStates", json!({})).await.1;
    let cases = [
        ("UpdateStopState", json!({"state": {"id": "nowhere_s1", "state": "STOP_STATE_GO"}}), 404, "not_found"),
        ("UpdateStopState", json!({"state": {"id": "chofu_down_p1", "state": "STOP_STATE_GO"}}), 404, "not_found"),
        (
            "UpdateStopState",
            json!({"state": {"id": "chofu_down_s1", "state": "STOP_STATE_UNKNOWN"}}),
            400,
            "invalid_argument",
        ),
        ("UpdateStopState", json!({"state": {"id": "chofu_down_s1", "state": "SIDEWAYS"}}), 400, "invalid_argument"),
        ("UpdateStopState", json!({}), 400, "invalid_argument"),
        (
            "UpdatePointState",
            json!({"state": {"id": "chofu_down_s1", "state": "POINT_STATE_REVERSE"}}),
            404,
            "not_found",
        ),
        ("UpdatePointState", json!({"state": {"id": "chofu_down_p1"}}), 400, "invalid_argument"),
        ("Fly", json!({}), 501, "unimplemented"),
    ];
    for (method, body, status, code) in cases {
        let (got, error) = json_call(addr, "", method, body.clone()).await;
        assert_eq!((got, error["code"].as_str()), (status, Some(code)), "{method} {body}: {error}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/{URL}/GetStopStates");
    let r = http.post(&url).header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r =
        http.post(&url).header("content-type", "application/proto").body(vec![0xff, 0xff, 0xff]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http.post(&url).header("content-type", "text/plain").body("{}").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let huge = format!("{{\"state\": {{\"id\": \"{}\"}}}}", "x".repeat(100_000));
    let r = http
        .post(format!("http://{addr}/{URL}/UpdateStopState"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert_eq!(json_call(addr, "", "GetStopStates", json!({})).await.1, before, "nothing changed");
    track.stop();
}

/// The 2023 auto-operation process's Connect client speaks HTTP/2 without TLS (prior knowledge): the gateway
/// answers it there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_client_on_http2_without_tls_is_answered() {
    let (track, addr) = twin().await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let r = h2
        .post(format!("http://{addr}/{URL}/GetBlockStates"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!((r.version(), r.status().as_u16()), (reqwest::Version::HTTP_2, 200));
    let blocks: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(blocks["states"].as_array().unwrap().len(), 11);
    track.stop();
}
