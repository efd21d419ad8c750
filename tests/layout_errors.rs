//! Every kind of bad layout file gets a clear error naming the offending entry.

use sim::layout::{Layout, LayoutError};

use crate::support::layout_2021_text;

/// The 2021 layout with `from` replaced (exactly once) by `to`.
fn mutated(from: &str, to: &str) -> Result<Layout, LayoutError> {
    let text = layout_2021_text();
    assert_eq!(text.matches(from).count(), 1, "mutation anchor `{from}` must be unique");
    Layout::from_toml(&text.replacen(from, to, 1))
}

fn message(r: Result<Layout, LayoutError>) -> (LayoutError, String) {
    let e = r.expect_err("the mutated layout must be refused");
    let m = e.to_string();
    (e, m)
}

#[test]
fn the_2021_layout_is_valid_and_complete() {
    let layout = Layout::from_toml(&layout_2021_text()).expect("valid");
    let s = layout.summary();
    assert_eq!(s.servo_devices, 39);
    assert_eq!(s.stop_rails, 28);
    assert_eq!(s.switches, 11);
    assert_eq!(s.sensors, 28);
    assert_eq!(s.wired_sensors, 26);
    assert_eq!(s.trains, 8);
    assert_eq!(s.rule_groups, 10);
    assert_eq!(s.servo_boards, 4);
    assert_eq!(s.sensor_boards, 5);
    let chofu_b3 = &layout.devices[layout.device_id("chofu_b3").unwrap()];
    assert_eq!((chofu_b3.pin, chofu_b3.on_angle, chofu_b3.off_angle, chofu_b3.grpc_id), (4, 70, 180, Some(59)));
    assert_eq!(layout.boards[chofu_b3.board].address, "192.168.100.107:80");
}

#[test]
fn malformed_toml_is_refused() {
    let (e, m) = message(Layout::from_toml("name = \"x\"\ncanvas = ["));
    assert!(matches!(e, LayoutError::Malformed(_)), "{m}");
}

#[test]
fn unknown_field_is_refused() {
    let (e, m) = message(mutated("name = \"chofufes2021\"", "name = \"chofufes2021\"\ncolour = \"red\""));
    assert!(matches!(e, LayoutError::Malformed(_)) && m.contains("colour"), "{m}");
}

#[test]
fn unknown_reference_names_the_entry() {
    let (e, m) = message(mutated("segment = \"kd_ch_1\"\noffset_mm", "segment = \"nowhere\"\noffset_mm"));
    assert!(matches!(e, LayoutError::UnknownReference { .. }), "{m}");
    assert!(m.contains("chofu_s1") && m.contains("nowhere"), "{m}");
}

#[test]
fn dangling_segment_end_is_refused() {
    // The Takaosanguchi loop's bottom joint loses one of its two segments.
    let (e, m) = message(mutated("from = \"tsg_bottom\"", "from = \"kt_D\""));
    assert!(matches!(e, LayoutError::DanglingEnd { .. }) || m.contains("same node"), "{m}");
    let (e, m) = message(mutated(
        "[[node]]\nid = \"tsg_bottom\"",
        "[[node]]\nid = \"lonely\"\nx = 0\ny = 0\n\n[[node]]\nid = \"tsg_bottom\"",
    ));
    assert!(matches!(e, LayoutError::DanglingEnd { ref node, found: 0, .. } if node == "lonely"), "{m}");
}

#[test]
fn duplicate_name_is_refused() {
    let (e, m) = message(mutated("name = \"chofu_s6\"", "name = \"chofu_s5\""));
    assert_eq!(e, LayoutError::Duplicate { kind: "device", name: "chofu_s5".into() }, "{m}");
    assert!(m.contains("duplicate device `chofu_s5`"));
}

#[test]
fn pin_used_twice_on_one_board_is_refused() {
    // chofu_s2 takes chofu_s1's pin 27 on board servo-107.
    let (e, m) = message(mutated("pin = 33\non_angle = 100", "pin = 27\non_angle = 100"));
    assert!(matches!(e, LayoutError::PinUsedTwice { pin: 27, .. }), "{m}");
    assert!(m.contains("servo-107") && m.contains("chofu_s1") && m.contains("chofu_s2"), "{m}");
}

#[test]
fn non_servo_pin_is_refused() {
    let (e, m) = message(mutated("pin = 33\non_angle = 100", "pin = 5\non_angle = 100"));
    assert_eq!(e, LayoutError::NotServoPin { device: "chofu_s2".into(), pin: 5 }, "{m}");
}

#[test]
fn missing_switch_branch_is_refused() {
    let (e, m) =
        message(mutated("straight = \"kd_ch_b2_k\"\ndiverging = \"ch_b2_cross\"\n", "straight = \"kd_ch_b2_k\"\n"));
    assert_eq!(e, LayoutError::BranchMissing { kind: "switch", node: "ch_b2".into(), branch: "diverging" }, "{m}");
}

#[test]
fn angle_out_of_range_is_refused() {
    let (e, m) = message(mutated("on_angle = 70\n", "on_angle = 360\n"));
    assert_eq!(e, LayoutError::AngleOutOfRange { device: "chofu_b3".into(), which: "ON", angle: 360 }, "{m}");
}

#[test]
fn offset_beyond_segment_is_refused() {
    let (e, m) = message(mutated(
        "name = \"shinjuku\"\nsegment = \"shinjuku_loop\"\noffset_mm = ",
        "name = \"shinjuku\"\nsegment = \"shinjuku_loop\"\noffset_mm = 9",
    ));
    assert!(matches!(e, LayoutError::Invalid { .. }) && m.contains("sensor `shinjuku`"), "{m}");
}

#[test]
fn every_device_has_schematic_coordinates_on_its_segment() {
    let layout = Layout::from_toml(&layout_2021_text()).expect("valid");
    let chofu_s1 = layout.device_id("chofu_s1").unwrap();
    let sim::layout::DevicePlace::StopRail { seg, offset } = layout.devices[chofu_s1].place else {
        panic!("chofu_s1 is a stop rail")
    };
    let [x, y] = layout.point_at(seg, offset);
    assert!(
        (x - 520.0).abs() < 1.0 && (y - 160.0).abs() < 1.0,
        "chofu_s1 drawn at ({x}, {y}), 2021 page had (520, 160)"
    );
    let line = layout.polyline(seg);
    assert_eq!(line.first(), Some(&[600.0, 120.0]), "the segment starts at chofu_b1");
}

#[test]
fn the_generated_benchmark_ring_runs_without_accidents() {
    for trains in [1, 8, 64] {
        let layout = std::sync::Arc::new(sim::generated::ring(trains).expect("valid ring"));
        assert_eq!(layout.trains.len(), trains);
        let mut twin = sim::twin::Simulation::new(layout, 10).unwrap();
        let mut events = Vec::new();
        for _ in 0..6_000 {
            twin.step(&mut events);
        }
        let sensors = events.iter().filter(|e| matches!(e.kind, sim::twin::EventKind::SensorPassed { .. })).count();
        assert!(sensors >= trains * 3, "{trains} trains passed {sensors} sensors in a minute");
        assert!(!events.iter().any(|e| matches!(
            e.kind,
            sim::twin::EventKind::Collision { .. } | sim::twin::EventKind::Derailment { .. }
        )));
    }
}

#[test]
fn the_2021_layout_has_the_seven_2021_cameras() {
    let layout = Layout::from_toml(&layout_2021_text()).expect("valid");
    let ids: Vec<&str> = layout.cameras.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["hachioji", "kitano", "chofu", "meidaimae", "sasazuka", "iwamotocho", "onboard"]);
    let onboard = &layout.cameras[6];
    assert_eq!(onboard.name_ja, "車両前景");
    assert_eq!(onboard.view, sim::layout::CameraView::Ahead(layout.train_id("TAKAO").unwrap()));
    assert_eq!(layout.boards[onboard.board.unwrap()].address, "192.168.100.160:80");
    assert!(layout.cameras[..6].iter().all(|c| c.board.is_none()), "station cameras are sent with WHIP");
}

#[test]
fn a_bad_camera_is_refused_naming_it() {
    let both = message(mutated(
        "name_en = \"Keio-Hachioji\"\nstation = \"hachioji\"\n",
        "name_en = \"Keio-Hachioji\"\nstation = \"hachioji\"\ntrain = \"TAKAO\"\n",
    ))
    .1;
    assert!(both.contains("camera `hachioji`") && both.contains("exactly one"), "{both}");
    let unknown = message(mutated(
        "name_en = \"Kitano\"\nstation = \"kitano\"\n",
        "name_en = \"Kitano\"\nstation = \"kitanoo\"\n",
    ))
    .1;
    assert!(unknown.contains("camera `kitano`") && unknown.contains("kitanoo"), "{unknown}");
    let wrong_board = message(mutated("board = \"camera-takao\"", "board = \"servo-102\"")).1;
    assert!(wrong_board.contains("camera `onboard`") && wrong_board.contains("not a camera board"), "{wrong_board}");
    let bad_id = message(mutated(
        "id = \"chofu\"\nname_ja = \"調布\"\nname_en = \"Chofu\"\nstation",
        "id = \"cho fu\"\nname_ja = \"調布\"\nname_en = \"Chofu\"\nstation",
    ))
    .1;
    assert!(bad_id.contains("URL"), "{bad_id}");
}
