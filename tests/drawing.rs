//! The layout as a picture: every mark on the canvas, switch stubs along their branches.

use sim::layout::DeviceKind;
use sim::layout::drawing::STUB;

use crate::support::layout_2021;

#[test]
fn switch_stubs_leave_the_node_along_their_branches() {
    let drawing = layout_2021().drawing();
    let switches: Vec<_> = drawing.devices.iter().filter(|d| d.kind == DeviceKind::Switch).collect();
    assert_eq!(switches.len(), 11);
    for switch in switches {
        let (off, on) = (switch.off.unwrap(), switch.on.unwrap());
        let len = |p: [f64; 2]| ((p[0] - switch.at[0]).powi(2) + (p[1] - switch.at[1]).powi(2)).sqrt();
        assert!(len(off) > 0.0 && len(off) <= STUB + 1e-9, "{} off {off:?} from {:?}", switch.name, switch.at);
        assert!(len(on) > 0.0 && len(on) <= STUB + 1e-9, "{} on {on:?} from {:?}", switch.name, switch.at);
        assert_ne!(off, on, "{}", switch.name);
    }
    assert!(drawing.devices.iter().filter(|d| d.kind == DeviceKind::StopRail).all(|d| d.off.is_none()));
}

#[test]
fn every_mark_lies_on_the_canvas() {
    let d = layout_2021().drawing();
    assert_eq!(
        (d.devices.len(), d.sensors.len(), d.trains.len(), d.tracks.len()),
        (39, 28, 8, layout_2021().segments.len())
    );
    let on_canvas = |p: [f64; 2]| p[0] >= 0.0 && p[1] >= 0.0 && p[0] <= d.width && p[1] <= d.height;
    assert!(d.devices.iter().all(|m| on_canvas(m.at)));
    assert!(d.sensors.iter().all(|m| on_canvas(m.at)));
    assert!(d.stations.iter().all(|m| on_canvas(m.at)));
    assert!(d.tracks.iter().all(|t| t.points.iter().all(|&p| on_canvas(p))));
}
