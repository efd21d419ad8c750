//! The desktop window under Xvfb with Mesa's software Vulkan: the 2021 layout is drawn where its geometry says,
//! and a stop rail toggled through the window's command path changes colour, standalone and attached to a
//! gateway. Built with `--features window`; run by `.ci/run` (it installs xvfb, xauth and mesa-vulkan-drivers).

use std::path::{Path, PathBuf};
use std::process::Command;

use sim::layout::OnOff;
use window::bevy::math::Vec2;
use window::render::map::{LOWERED, MapView, RAISED, TRACK};

use crate::support::{gateway_with, layout_2021};

/// An RGB image.
struct Image {
    width: usize,
    height: usize,
    rgb: Vec<[u8; 3]>,
}

fn read_png(path: &Path) -> Image {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()].chunks(channels).map(|p| [p[0], p[1], p[2]]).collect();
    Image { width: info.width as usize, height: info.height as usize, rgb }
}

impl Image {
    /// Whether a pixel within `r` of `at` is within `tolerance` of `colour`.
    fn near(&self, at: Vec2, r: i32, colour: window::bevy::color::Color, tolerance: i32) -> bool {
        let c = colour.to_srgba();
        let want = [c.red, c.green, c.blue].map(|v| (v * 255.0) as i32);
        (-r..=r).flat_map(|dx| (-r..=r).map(move |dy| (dx, dy))).any(|(dx, dy)| {
            let (x, y) = (at.x as i32 + dx, at.y as i32 + dy);
            if x < 0 || y < 0 || x >= self.width as i32 || y >= self.height as i32 {
                return false;
            }
            let p = self.rgb[y as usize * self.width + x as usize];
            (0..3).all(|k| (p[k] as i32 - want[k]).abs() <= tolerance)
        })
    }
}

/// Runs `plarail-twin window` under Xvfb with `args`, saving `name`.png (and `name`-after.png) under target/tmp.
fn window(name: &str, args: &[&str]) -> (Image, Image) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let (file, after) = (dir.join(format!("{name}.png")), dir.join(format!("{name}-after.png")));
    let _ = (std::fs::remove_file(&file), std::fs::remove_file(&after));
    let out = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x720x24", env!("CARGO_BIN_EXE_plarail-twin"), "window"])
        .args(["--screenshot", file.to_str().unwrap(), "--frames", "40", "--toggle", "chofu_s2"])
        .args(args)
        .env("WGPU_BACKEND", "vulkan")
        .output()
        .expect("xvfb-run must be installed (apt-get install xvfb xauth mesa-vulkan-drivers); .ci/run installs it");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the window failed: {log}");
    (read_png(&file), read_png(&after))
}

/// Checks the picture shows the layout where its geometry says, and chofu_s2 lowered, then raised.
fn check(before: &Image, after: &Image) {
    let layout = layout_2021();
    let drawing = layout.drawing();
    assert_eq!((before.width, before.height), (1280, 720));
    let view = MapView::fit(drawing.width, drawing.height, Vec2::new(1280.0, 720.0));
    // Track pixels at the middle of every segment's first stretch.
    let on_track = drawing
        .tracks
        .iter()
        .filter(|t| {
            let (a, b) = (t.points[0], t.points[1]);
            let mid = view.to_screen([(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0]);
            before.near(mid, 2, TRACK, 40)
        })
        .count();
    assert!(
        on_track * 10 >= drawing.tracks.len() * 8,
        "track drawn at {on_track} of {} segments",
        drawing.tracks.len()
    );
    // Not one colour: the map area has background and track.
    let distinct: std::collections::HashSet<[u8; 3]> = before.rgb.iter().step_by(97).copied().collect();
    assert!(distinct.len() > 20, "{} colours", distinct.len());
    let chofu_s2 = drawing.devices.iter().find(|d| d.name == "chofu_s2").unwrap();
    let at = view.to_screen(chofu_s2.at);
    assert!(before.near(at, 2, LOWERED, 40), "chofu_s2 green (lowered) before");
    assert!(after.near(at, 2, RAISED, 40), "chofu_s2 red (raised) after the toggle");
    assert!(!after.near(at, 1, LOWERED, 40));
}

#[test]
#[ignore = "needs xvfb, xauth and mesa-vulkan-drivers: run by .ci/run"]
fn the_standalone_window_draws_the_layout_and_a_toggled_stop_rail_changes_colour() {
    let _alone = crate::support::CPU_HEAVY.blocking_lock();
    let (before, after) = window("window-standalone", &[]);
    check(&before, &after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs xvfb, xauth and mesa-vulkan-drivers: run by .ci/run"]
async fn the_window_attached_to_a_gateway_operates_its_track() {
    let _alone = crate::support::CPU_HEAVY.lock().await;
    let (track, addr) = gateway_with(gateway::core::Options::default()).await;
    let url = format!("http://{addr}");
    let (before, after) =
        tokio::task::spawn_blocking(move || window("window-attached", &["--connect", &url])).await.unwrap();
    check(&before, &after);
    let id = track.layout().device_id("chofu_s2").unwrap();
    assert_eq!(track.state().await.devices[id].state(), Some(OnOff::On), "the gateway's track changed");
    track.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs xvfb, xauth and mesa-vulkan-drivers: run by .ci/run"]
async fn the_window_plays_a_recording_back_on_its_timeline_and_takes_no_commands() {
    let (_dir, data) = crate::replay::record_2021().await;
    let _alone = crate::support::CPU_HEAVY.lock().await;
    let data = data.to_str().unwrap().to_string();
    let (before, after) =
        tokio::task::spawn_blocking(move || window("window-replay", &["--replay", &data, "--at", "5s"])).await.unwrap();
    // The timeline in the controls: the recorded refusal (meidaimae_s1) marked orange, the playhead black.
    let refused = window::bevy::color::Color::srgb_u8(224, 128, 0);
    let marked = (0..330).any(|x| (120..240).any(|y| before.near(Vec2::new(x as f32, y as f32), 0, refused, 30)));
    assert!(marked, "a refusal marked on the timeline");
    // The map as recorded; the toggle a click would send is not taken (a recording takes no commands).
    let layout = layout_2021();
    let drawing = layout.drawing();
    let view = MapView::fit(drawing.width, drawing.height, Vec2::new(1280.0, 720.0));
    let chofu_s2 = drawing.devices.iter().find(|d| d.name == "chofu_s2").unwrap();
    let at = view.to_screen(chofu_s2.at);
    assert!(before.near(at, 2, LOWERED, 40) && after.near(at, 2, LOWERED, 40), "chofu_s2 as recorded, untouched");
}
