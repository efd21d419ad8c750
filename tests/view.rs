//! What the desktop window shows and asks, without rendering: the standalone twin behind the interlocking, and
//! the v2 frames of an attached one, against a real gateway.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sim::layout::OnOff;
use tokio_tungstenite::tungstenite::Message;
use window::view::local::Local;
use window::view::{Action, Pace, Picture, frames};

use crate::support::{gateway_with, layout_2021};

fn local() -> (Local, Picture) {
    let layout = layout_2021();
    let mut picture = Picture::new(layout.drawing());
    let mut local = Local::new(layout).unwrap();
    local.update(0.0, &mut picture);
    (local, picture)
}

#[test]
fn the_standalone_twin_applies_allowed_commands_and_logs_refusals_with_their_reason() {
    let (mut local, mut picture) = local();
    let layout = layout_2021();
    let chofu_s2 = layout.device_id("chofu_s2").unwrap();
    assert_eq!(picture.devices[chofu_s2], Some(OnOff::Off));
    local.act(Action::Device { device: chofu_s2, state: OnOff::On }, &mut picture);
    assert_eq!(picture.devices[chofu_s2], Some(OnOff::On));
    assert!(picture.log.back().unwrap().contains("chofu_s2 raised: applied"), "{:?}", picture.log);

    let meidaimae_s1 = layout.device_id("meidaimae_s1").unwrap();
    local.act(Action::Device { device: meidaimae_s1, state: OnOff::Off }, &mut picture);
    assert_eq!(picture.devices[meidaimae_s1], Some(OnOff::On), "a refused command changes nothing");
    let line = picture.log.back().unwrap();
    assert!(line.contains("REJECTED") && line.contains("OKUTAMA"), "{line}");

    let live = picture.log.len();
    local.act(Action::Live(true), &mut picture);
    assert!(picture.log.len() > live && picture.log.back().unwrap().contains("refused"));
}

#[test]
fn the_standalone_twin_runs_at_its_pace_and_shows_trains_moving() {
    let (mut local, mut picture) = local();
    let layout = layout_2021();
    // Release CHICHIBU (held at kudanshita_s6).
    local.act(Action::Device { device: layout.device_id("kudanshita_s6").unwrap(), state: OnOff::Off }, &mut picture);
    let before = picture.trains[1].clone();
    local.pacer().set_pace(Pace::Paused);
    local.update(1.0, &mut picture);
    assert_eq!(picture.time_ms, 0, "paused: no time passes");
    local.step_once(&mut picture);
    assert_eq!(picture.time_ms, window::view::local::STEP_MS);
    local.pacer().set_pace(Pace::Times(10.0));
    local.update(1.0, &mut picture);
    assert_eq!(picture.time_ms, 10_010, "1 s of wall time at 10x is 10 s");
    let after = &picture.trains[1];
    assert_ne!(after.front, before.front, "CHICHIBU moved");
    assert!(!after.body.is_empty() && after.position.contains("mm"));
    assert!(after.last_sensor.is_some(), "it passed a sensor in 10 s: {after:?}");
    assert!(picture.flashes.iter().any(|&f| f > 0.0) || picture.log.iter().any(|l| l.contains("sensor")));

    local.act(Action::EmergencyStop, &mut picture);
    local.update(0.5, &mut picture);
    assert!(picture.trains.iter().all(|t| t.set_speed == 0 && t.speed == 0), "{:?}", picture.trains);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_view_reads_the_gateway_s_frames_and_its_commands_are_understood() {
    let (track, addr) = gateway_with(gateway::core::Options::default()).await;
    let layout = layout_2021();
    let mut picture = Picture::new(layout.drawing());
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/v2")).await.unwrap();
    let snapshot = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    let snapshot = snapshot.into_text().unwrap().to_string();
    assert_eq!(frames::apply(&mut picture, &snapshot), Ok(None));
    assert_eq!(picture.mode, sim::twin::Mode::Sim);
    assert!(picture.devices.iter().all(|d| d.is_some()));
    assert_eq!(picture.boards.len(), 5);
    assert!(picture.trains[0].front[0] > 0.0, "trains placed from the snapshot");

    let chofu_s2 = layout.device_id("chofu_s2").unwrap();
    let command = frames::command(&picture, Action::Device { device: chofu_s2, state: OnOff::On }, 7, "");
    ws.send(Message::Text(command.into())).await.unwrap();
    let meidaimae_s1 = layout.device_id("meidaimae_s1").unwrap();
    let refused = frames::command(&picture, Action::Device { device: meidaimae_s1, state: OnOff::Off }, 8, "");
    ws.send(Message::Text(refused.into())).await.unwrap();
    let stop = frames::command(&picture, Action::EmergencyStop, 9, "wrong");
    ws.send(Message::Text(stop.into())).await.unwrap();
    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < 3 || picture.devices[chofu_s2] != Some(OnOff::On) {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        if let Some((id, words)) = frames::apply(&mut picture, msg.to_text().unwrap()).unwrap() {
            answers.insert(id, words);
        }
    }
    assert_eq!(answers[&7], "applied");
    assert!(answers[&8].starts_with("REJECTED") && answers[&8].contains("OKUTAMA"), "{}", answers[&8]);
    assert!(answers[&9].starts_with("DENIED"), "{}", answers[&9]);
    assert!(frames::apply(&mut picture, "{").is_err());
    track.stop();
}
