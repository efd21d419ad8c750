//! Live mode on loopback: a "real" layout (a simulation behind virtual boards) driven by a live track whose
//! simulation mirrors it from sensor reports only; the live-mode toggle.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hil::boards2021::virtual_board::Faults;
use hil::track::mirror::Divergence;
use hil::track::{Outcome, Setup, SwitchError, Track, TrackConfig, TrackEvent};
use hil::virtual_devices::rig::{Rig, post_sensor_reports};
use sim::layout::{DeviceKind, Layout, OnOff, Placement};
use sim::track::{DevicePosition, next_segment, offset_of};
use sim::twin::Mode;
use sim::twin::thread::Request as SimRequest;
use sim::twin::{SimCommand, TrackState};

use crate::support::{config, device, layout_2021, layout_2021_with, live_boards, position, started, until};

fn real_state(rig: &Rig) -> TrackState {
    let (tx, rx) = crossbeam_channel::bounded(1);
    rig.sim.requests.send(SimRequest::Snapshot(tx)).unwrap();
    rx.recv_timeout(Duration::from_secs(5)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_mode_toggle_checks_health_pushes_the_state_and_loses_no_command() {
    let real = Rig::start(layout_2021(), &HashMap::new(), 1.0).await.unwrap();
    let setup = Setup { live_boards: live_boards(&real), config: config(), ..Setup::default() };
    let track = started(layout_2021(), setup).await;
    assert_eq!(track.apply(device(&track, "chofu_b3", OnOff::Off)).await, Outcome::Applied);

    // One real board does not answer: the switch is refused, naming it.
    real.board("servo-110").unwrap().set_faults(Faults { error_500: true, ..Faults::default() });
    match track.switch_mode(Mode::Live, false).await {
        Err(SwitchError::Unhealthy(down)) => assert_eq!(down.len(), 1, "{down:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(track.mode(), Mode::Sim);
    real.board("servo-110").unwrap().set_faults(Faults::default());

    // Commands sent while the switch runs wait for it and go to the real track, each exactly once.
    let mut events = track.subscribe();
    // Six commands in a row from one client, the first of them sent as the switch starts.
    let commands = {
        let track = track.clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..6 {
                let state = if i % 2 == 0 { OnOff::Off } else { OnOff::On };
                outcomes.push(track.apply(device(&track, "kudanshita_s5", state)).await);
            }
            outcomes
        })
    };
    let report = track.switch_mode(Mode::Live, false).await.expect("all real boards answer");
    assert_eq!(report.mode, Mode::Live);
    assert_eq!(report.checked.len(), 5, "four servo boards and TAKAO's speed controller");
    assert!(report.checked.iter().all(|(_, _, alive)| *alive), "{report:?}");
    assert_eq!(commands.await.unwrap(), vec![Outcome::Applied; 6]);
    // The desired state was pushed to the real boards: chofu_b3 is OFF on the real track too.
    let layout = track.layout().clone();
    let real_pos = |name: &str| real_state(&real).devices[layout.device_id(name).unwrap()];
    assert_eq!(real_pos("chofu_b3"), DevicePosition::Off);
    assert_eq!(real_pos("kudanshita_s5"), DevicePosition::On, "the last of the six commands (ON) holds");
    let mut saw_mode = false;
    while let Ok(e) = events.try_recv() {
        saw_mode |= e == TrackEvent::Mode(Mode::Live);
    }
    assert!(saw_mode, "the switch is announced");

    // Live: commands drive the real boards, and the mirror follows the acknowledged state.
    assert_eq!(track.apply(device(&track, "kitano_s5", OnOff::Off)).await, Outcome::Applied);
    assert_eq!(real_pos("kitano_s5"), DevicePosition::Off);
    assert_eq!(position(&track, "kitano_s5").await, DevicePosition::Off);

    // And back to the simulation.
    track.switch_mode(Mode::Sim, false).await.expect("virtual boards answer");
    assert_eq!(track.apply(device(&track, "kitano_s5", OnOff::On)).await, Outcome::Applied);
    assert_eq!(position(&track, "kitano_s5").await, DevicePosition::On);
    assert_eq!(real_pos("kitano_s5"), DevicePosition::Off, "the real track is left alone in sim mode");
    track.stop();
    real.sim.stop();
}

/// Distance along the track from `from` forward to `to`, if within `limit`.
fn along(layout: &Layout, devices: &[DevicePosition], from: Placement, to: Placement, limit: f64) -> Option<f64> {
    let (mut seg, mut dir) = (from.seg, from.dir);
    let mut pos = offset_of(&layout.segments[seg], dir, from.offset);
    let mut walked = 0.0;
    loop {
        let s = &layout.segments[seg];
        if seg == to.seg && dir == to.dir {
            let p = offset_of(s, dir, to.offset);
            if p >= pos {
                return Some(walked + p - pos);
            }
        }
        walked += s.length - pos;
        if walked > limit {
            return None;
        }
        (seg, dir) = next_segment(layout, seg, dir, devices).ok()?;
        pos = 0.0;
    }
}

/// The largest distance between two wired sensors in a row along the route from `start`.
fn sensor_spacing(layout: &Layout, devices: &[DevicePosition], start: Placement) -> f64 {
    let wired: Vec<Placement> = layout
        .sensors
        .iter()
        .filter(|s| s.wiring.is_some())
        .map(|s| Placement { seg: s.seg, offset: s.offset, dir: sim::layout::Dir::Forward })
        .collect();
    let lap = layout.track_length();
    let mut distances: Vec<f64> = wired
        .iter()
        .flat_map(|&w| [w, Placement { dir: sim::layout::Dir::Backward, ..w }])
        .filter_map(|w| along(layout, devices, start, w, lap))
        .collect();
    distances.sort_by(f64::total_cmp);
    distances.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_follows_the_real_track_from_sensor_reports_and_reports_a_missing_train() {
    let _alone = crate::support::CPU_HEAVY.lock().await;
    let layout = layout_2021_with(&["TAKAO"]);
    // 5x real time: two laps in 32 s. Faster, a busy machine's scheduling delays (multiplied by the pace)
    // alone could put the mirror a sensor spacing behind.
    let pace = 5.0;
    let real = Rig::start(layout.clone(), &HashMap::new(), pace).await.unwrap();
    // A report may be overdue by 10 s of simulated time (2 s here) before it counts: on a busy machine the
    // reports' path (HTTP post, ingest, the follow task) can take a good part of a second.
    let cfg = TrackConfig { interlocking: false, pace, overdue_ms: 10_000, ..config() };
    let setup = Setup { live_boards: live_boards(&real), mode: Mode::Live, config: cfg, ..Setup::default() };
    let track = Track::start(layout.clone(), setup).await.unwrap();
    // The real sensor boards report to the live track's ingest endpoint; nothing else reaches the mirror.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ingest = listener.local_addr().unwrap();
    let readings = track.readings();
    let ingest_layout = layout.clone();
    let app = hil::boards2021::ingest::router(ingest_layout, track.senders(), readings)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{ingest}/registerPosition");
    let reports = post_sensor_reports(layout.clone(), real.sim.outputs.clone(), Some(url), |_| {});
    until("start-up restore", Duration::from_secs(10), async || track.ready()).await;
    let mut events = track.subscribe();

    // The real TAKAO runs faster than the mirror assumes (the layout's 200 mm/s): only the reports keep the
    // mirror with it.
    real.sim.requests.send(SimRequest::Command { id: 0, cmd: SimCommand::SetSpeed { train: 0, speed: 260 } }).unwrap();
    // Send TAKAO round the eastern loop (Motoyawata, Iwamotocho 1, Kudanshita, the Sasazuka loop) with every
    // stop rail lowered, through the live track.
    for (name, state) in [("iwamotocho_b1", OnOff::On), ("sasazuka_b1", OnOff::Off), ("iwamotocho_b4", OnOff::Off)] {
        assert_eq!(track.apply(device(&track, name, state)).await, Outcome::Applied, "{name}");
    }
    for d in layout.devices.iter().filter(|d| d.kind == DeviceKind::StopRail) {
        assert_eq!(track.apply(device(&track, &d.name, OnOff::Off)).await, Outcome::Applied, "{}", d.name);
    }
    let devices = real_state(&real).devices;
    assert_eq!(devices, track.state().await.devices, "the mirror's devices follow the acknowledged commands");
    let spacing = sensor_spacing(&layout, &devices, layout.trains[0].start);
    assert!(spacing > 500.0 && spacing < 10_000.0, "sensor spacing {spacing} mm");

    // Two laps: the mirror's TAKAO stays within one sensor spacing of the real one.
    let started = Instant::now();
    let mut worst: f64 = 0.0;
    let mut samples = 0;
    while started.elapsed() < Duration::from_secs(32) {
        let r = real_state(&real).trains[0].body.front(&layout);
        let m = track.state().await.trains[0].body.front(&layout);
        let d = along(&layout, &devices, m, r, 2.0 * spacing)
            .into_iter()
            .chain(along(&layout, &devices, r, m, 2.0 * spacing))
            .reduce(f64::min)
            .unwrap_or(f64::INFINITY);
        worst = worst.max(d);
        samples += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let accepted = reports.accepted.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "mirror: {samples} samples, worst {worst:.0} mm apart, sensor spacing {spacing:.0} mm, {accepted} reports"
    );
    assert!(accepted >= 20, "the real track reported {accepted} sensor passes");
    assert!(
        worst <= spacing,
        "mirror and real TAKAO {worst:.0} mm apart (sensor spacing {spacing:.0} mm, {samples} samples)"
    );
    while let Ok(e) = events.try_recv() {
        assert!(!matches!(e, TrackEvent::Divergence(_)), "no divergence while the mirror agrees: {e:?}");
    }

    // Take TAKAO off the real track: the mirror runs on, and reports it overdue at its next sensor.
    real.sim.requests.send(SimRequest::Command { id: 0, cmd: SimCommand::Remove { train: 0 } }).unwrap();
    let overdue = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match events.recv().await {
                Ok(TrackEvent::Divergence(d @ Divergence::Overdue { train: 0, .. })) => return d,
                Ok(_) => {}
                Err(e) => panic!("event stream: {e}"),
            }
        }
    })
    .await
    .expect("a divergence within 15 s");
    assert!(overdue.describe(&layout).starts_with("TAKAO is overdue at "), "{}", overdue.describe(&layout));
    track.stop();
    real.sim.stop();
}

#[test]
fn a_report_of_an_unknown_train_or_out_of_order_is_a_divergence() {
    use hil::boards2021::ingest::SensorReading;
    use hil::track::mirror::Mirror;
    use sim::twin::Simulation;
    let layout = layout_2021();
    let state = Simulation::new(layout.clone(), 10).unwrap().state();
    let mut mirror = Mirror::new(&layout, 1000);
    let sensor = |n: &str| layout.sensor_id(n).unwrap();
    let (snap, d) =
        mirror.on_reading(&layout, SensorReading { sensor: sensor("kudanshita_s5_b"), train_id: 42 }, &state);
    assert_eq!((snap, d), (None, Some(Divergence::UnknownTrain { train_id: 42, sensor: sensor("kudanshita_s5_b") })));
    // TAKAO (id 1) reported at motoyawata_s1_f: snapped there, next expected at iwamotocho_s1_b (b1 ON).
    let (snap, d) =
        mirror.on_reading(&layout, SensorReading { sensor: sensor("motoyawata_s1_f"), train_id: 1 }, &state);
    assert!(matches!(snap, Some(SimCommand::Place { train: 0, .. })) && d.is_none());
    let (_, d) = mirror.on_reading(&layout, SensorReading { sensor: sensor("sasazuka_s4_b"), train_id: 1 }, &state);
    assert_eq!(
        d,
        Some(Divergence::UnexpectedOrder {
            train: 0,
            expected: sensor("iwamotocho_s1_b"),
            got: sensor("sasazuka_s4_b")
        })
    );
}
