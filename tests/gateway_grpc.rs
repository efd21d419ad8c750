//! gRPC: a 2021 client operates devices and trains unchanged; the v2 state feed streams.

use std::time::Duration;

use gateway::grpc::{v2, v2021};
use hil::track::{Setup, Track};

use crate::support::{config, layout_2021, started, until};

async fn grpc() -> (Track, String) {
    grpc_with(Default::default()).await
}

async fn grpc_with(options: gateway::core::Options) -> (Track, String) {
    let track = started(layout_2021(), Setup { config: config(), ..Setup::default() }).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let core = gateway::core::Core::start(track.clone(), options).await.unwrap();
    tokio::spawn(gateway::grpc::Grpc::new(core).serve(listener, std::future::pending()));
    (track, url)
}

fn command(id: v2021::StationId, state: v2021::State) -> v2021::RequestSync {
    v2021::RequestSync { station: Some(v2021::Stations { station_id: id as i32 }), state: state as i32 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2021_client_drives_devices_and_speeds() {
    let (track, url) = grpc().await;
    let mut control = v2021::control_client::ControlClient::connect(url.clone()).await.unwrap();
    let ok = control.command2_internal(command(v2021::StationId::ChofuB3, v2021::State::Off)).await.unwrap();
    assert_eq!(ok.into_inner().response, v2021::Response::Success as i32);
    let chofu_b3 = track.layout().device_id("chofu_b3").unwrap();
    assert_eq!(track.state().await.devices[chofu_b3].state(), Some(sim::layout::OnOff::Off), "actually driven");
    // The interlocking refuses: FAILED, and nothing changes.
    let refused = control.command2_internal(command(v2021::StationId::MeidaimaeS1, v2021::State::Off)).await.unwrap();
    assert_eq!(refused.into_inner().response, v2021::Response::Failed as i32);
    // A station the 2021 enum names but that had no servo: refused clearly.
    let e = control.command2_internal(command(v2021::StationId::KitanoB3, v2021::State::On)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains("kitano_b3"), "{}", e.message());

    let mut speed = v2021::speed_client::SpeedClient::connect(url.clone()).await.unwrap();
    // The 2021 scale: 0..100, percent of the train's top speed.
    let set = speed.control_speed(v2021::SendSpeed { speed: 50, train: v2021::Train::Nikko as i32 }).await.unwrap();
    assert_eq!(set.into_inner().code, v2021::Code::Success as i32);
    assert_eq!(track.state().await.trains[4].set_speed, 150);
    let bad = speed.control_speed(v2021::SendSpeed { speed: 101, train: v2021::Train::Nikko as i32 }).await.unwrap();
    assert_eq!(bad.into_inner().code, v2021::Code::Failed as i32);

    // The v2 feed: the whole state first, then changes.
    let mut twin = v2::twin_client::TwinClient::connect(url).await.unwrap();
    let mut feed = twin.watch_state(v2::WatchRequest {}).await.unwrap().into_inner();
    let first = feed.message().await.unwrap().unwrap();
    assert_eq!((first.mode.as_str(), first.devices.len(), first.trains.len()), ("sim", 39, 8));
    let lowered = control.command2_internal(command(v2021::StationId::KudanshitaS5, v2021::State::Off)).await.unwrap();
    assert_eq!(lowered.into_inner().response, v2021::Response::Success as i32);
    let changed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = feed.message().await.unwrap().unwrap();
            if m.devices.iter().any(|d| d.name == "kudanshita_s5" && d.state == "OFF") {
                return m;
            }
        }
    })
    .await
    .expect("the change streams in");
    assert_eq!(changed.devices.len(), 39);
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_commands_are_in_the_command_history_like_every_other_door_s() {
    let dir = tempfile::tempdir().unwrap();
    let journal = std::sync::Arc::new(gateway::journal::Journal::open(dir.path()).unwrap().0);
    let (track, url) = grpc_with(gateway::core::Options { journal: Some(journal.clone()), ..Default::default() }).await;
    let mut control = v2021::control_client::ControlClient::connect(url.clone()).await.unwrap();
    let ok = control.command2_internal(command(v2021::StationId::ChofuB3, v2021::State::Off)).await.unwrap();
    assert_eq!(ok.into_inner().response, v2021::Response::Success as i32);
    let mut speed = v2021::speed_client::SpeedClient::connect(url).await.unwrap();
    let set = speed.control_speed(v2021::SendSpeed { speed: 5, train: v2021::Train::Nikko as i32 }).await.unwrap();
    assert_eq!(set.into_inner().code, v2021::Code::Success as i32);
    // Answered SUCCESS means recorded: both are in the history, newest first.
    let history = journal.history(10, None).unwrap();
    let entries: Vec<(&str, &str)> =
        history.iter().filter_map(|e| Some((e["target"].as_str()?, e["result"].as_str().unwrap()))).take(2).collect();
    assert_eq!(entries, [("NIKKO", "applied"), ("chofu_b3", "applied")], "{history:?}");
    assert!(history.iter().filter(|e| e.get("target").is_some()).all(|e| e["door"] == "grpc"), "{history:?}");
    assert_eq!(
        journal.device_states(track.layout()).unwrap()[track.layout().device_id("chofu_b3").unwrap()],
        Some(sim::layout::OnOff::Off)
    );
    track.stop();
}

/// gRPC commands count against the same per-address limit as the WebSockets' (the 2021 services had none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_commands_have_the_visitor_limit_of_every_door() {
    let limits = gateway::limits::Limits { per_address: 5.0, ..Default::default() };
    let (track, url) = grpc_with(gateway::core::Options { limits, ..Default::default() }).await;
    let mut speed = v2021::speed_client::SpeedClient::connect(url).await.unwrap();
    let mut refused = 0;
    for _ in 0..30 {
        match speed.control_speed(v2021::SendSpeed { speed: 40, train: v2021::Train::Nikko as i32 }).await {
            Ok(answer) => assert_eq!(answer.into_inner().code, v2021::Code::Success as i32),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}");
                assert!(status.message().contains("per second per address"), "{status}");
                refused += 1;
            }
        }
    }
    assert!(refused >= 20, "{refused} of 30 refused at 5 a second");
    track.stop();
}

/// WatchState streams that are dropped end their tasks, even on a track where nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_watch_streams_end_their_tasks_on_a_still_track() {
    // One train, standing: nothing changes.
    let layout = crate::support::siding_layout(false, &crate::support::train("T", "main", 500.0, "M", 0));
    let track = started(layout, Setup { config: config(), ..Setup::default() }).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let core = gateway::core::Core::start(track.clone(), Default::default()).await.unwrap();
    tokio::spawn(gateway::grpc::Grpc::new(core).serve(listener, std::future::pending()));
    let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let mut twin = v2::twin_client::TwinClient::connect(url).await.unwrap();
    let mut feeds = Vec::new();
    for _ in 0..50 {
        let mut feed = twin.watch_state(v2::WatchRequest {}).await.unwrap().into_inner();
        feed.message().await.unwrap().unwrap();
        feeds.push(feed);
    }
    let with_streams = tasks();
    drop(feeds);
    until("the streams' tasks ended", Duration::from_secs(5), async || tasks() + 50 <= with_streams).await;
    track.stop();
}

/// The v2 gRPC feed carries how the layout is run and each train's automatic plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_feed_carries_the_operation_and_each_train_s_plan() {
    let setup = Setup { config: config(), operation: sim::auto::Operation::Auto, ..Setup::default() };
    let track = Track::start(crate::support::layout_2021(), setup).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let core = gateway::core::Core::start(track.clone(), Default::default()).await.unwrap();
    tokio::spawn(gateway::grpc::Grpc::new(core).serve(listener, std::future::pending()));
    let mut twin = v2::twin_client::TwinClient::connect(url).await.unwrap();
    let mut feed = twin.watch_state(v2::WatchRequest {}).await.unwrap().into_inner();
    let planned = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = feed.message().await.unwrap().unwrap();
            if m.plans.iter().any(|p| !p.waiting.is_empty()) {
                return m;
            }
        }
    })
    .await
    .expect("the plans stream in");
    assert_eq!(planned.operation, "auto");
    assert_eq!(planned.plans.len(), 8);
    assert!(planned.plans.iter().all(|p| p.automatic), "{:?}", planned.plans);
    assert!(planned.plans.iter().any(|p| p.waiting.starts_with("dwell")), "{:?}", planned.plans);
    assert!(planned.plans.iter().any(|p| p.calls >= 1), "calls counted: {:?}", planned.plans);
    track.set_operation(sim::auto::Operation::Manual);
    let manual = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = feed.message().await.unwrap().unwrap();
            if m.operation == "manual" {
                return m;
            }
        }
    })
    .await
    .expect("the change of operation streams in");
    assert!(manual.plans.iter().all(|p| !p.automatic), "{:?}", manual.plans);
    track.stop();
}
