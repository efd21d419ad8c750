//! The layout drawn live: where the layout sits in the window (fit, pan, zoom), drawing it with Bevy gizmos,
//! and the mouse and keyboard on the map.

use bevy::prelude::*;

use super::{LOG_HEIGHT, PANEL_WIDTH};
use crate::view::Picture;
use sim::layout::{DeviceKind, OnOff};
use sim::twin::TrainStatus;

/// Background colour.
pub const BACKGROUND: Color = Color::srgb(0.07, 0.09, 0.13);
/// Track colour.
pub const TRACK: Color = Color::srgb(0.62, 0.64, 0.68);
/// A raised stop rail (trains stop).
pub const RAISED: Color = Color::srgb(0.90, 0.15, 0.15);
/// A lowered stop rail (trains pass).
pub const LOWERED: Color = Color::srgb(0.15, 0.80, 0.30);
/// A switch's blade.
pub const BLADE: Color = Color::srgb(0.25, 0.55, 1.0);
/// A device between positions, or not known yet.
pub const UNKNOWN: Color = Color::srgb(0.55, 0.55, 0.55);
/// A sensor.
pub const SENSOR: Color = Color::srgb(0.45, 0.47, 0.52);
/// A sensor a train just passed.
pub const FLASH: Color = Color::srgb(1.0, 0.85, 0.1);
/// A free block's track (2023 layouts).
pub const BLOCK_FREE: Color = Color::srgb(0.18, 0.62, 0.27);
/// An occupied block's track.
pub const BLOCK_OCCUPIED: Color = Color::srgb(0.88, 0.19, 0.19);
/// Radius of a stop rail's mark, logical pixels.
pub const STOP_RAIL_RADIUS: f32 = 7.0;
/// How near (logical pixels) a click must be to a device to toggle it.
pub const CLICK_RADIUS: f32 = 14.0;

/// Where the layout sits in the window: a layout point `p` is at `offset + p * scale` (logical pixels, from the
/// window's top left, y down).
#[derive(Resource, Debug, Clone, Copy, PartialEq)]
pub struct MapView {
    /// Logical pixels per layout unit.
    pub scale: f32,
    /// Where the layout's origin is, logical pixels.
    pub offset: Vec2,
}

impl MapView {
    /// The view that fits a `width` x `height` layout into the map area of a `window`-sized window (right of
    /// the panel, above the log), with a margin.
    pub fn fit(width: f64, height: f64, window: Vec2) -> MapView {
        let area_min = Vec2::new(PANEL_WIDTH, 0.0);
        let area = (window - Vec2::new(PANEL_WIDTH, LOG_HEIGHT)).max(Vec2::splat(1.0));
        let scale = (area.x / width as f32).min(area.y / height as f32) * 0.94;
        let offset = area_min + area / 2.0 - Vec2::new(width as f32, height as f32) * scale / 2.0;
        MapView { scale, offset }
    }

    /// A layout point on the screen (logical pixels, top left origin).
    pub fn to_screen(&self, p: [f64; 2]) -> Vec2 {
        self.offset + Vec2::new(p[0] as f32, p[1] as f32) * self.scale
    }

    /// A screen point in the layout.
    pub fn to_layout(&self, screen: Vec2) -> [f64; 2] {
        let p = (screen - self.offset) / self.scale;
        [p.x as f64, p.y as f64]
    }

    /// Zooms by `factor` keeping the screen point `at` in place.
    pub fn zoom(&mut self, factor: f32, at: Vec2) {
        let factor = factor.clamp(0.1, 10.0);
        let new_scale = (self.scale * factor).clamp(0.05, 40.0);
        let real = new_scale / self.scale;
        self.offset = at - (at - self.offset) * real;
        self.scale = new_scale;
    }
}

/// A screen point (top left origin, y down) in the 2D camera's world (centre origin, y up).
fn world(screen: Vec2, window: Vec2) -> Vec2 {
    Vec2::new(screen.x - window.x / 2.0, window.y / 2.0 - screen.y)
}

/// Train colours, one per train.
pub fn train_colour(i: usize, n: usize) -> Color {
    Color::hsl(360.0 * i as f32 / n.max(1) as f32, 0.8, 0.55)
}

/// Draws track, sensors, devices and trains.
pub fn draw(mut gizmos: Gizmos, picture: Res<super::Shown>, view: Res<MapView>, window: Single<&Window>) {
    let picture: &Picture = &picture.0;
    let size = Vec2::new(window.width(), window.height());
    let at = |p: [f64; 2]| world(view.to_screen(p), size);
    for t in &picture.drawing.tracks {
        gizmos.linestrip_2d(t.points.iter().map(|&p| at(p)), TRACK);
    }
    for (b, occupied) in picture.drawing.blocks.iter().zip(&picture.blocks) {
        let colour = if *occupied { BLOCK_OCCUPIED } else { BLOCK_FREE };
        for &t in &b.tracks {
            for k in -1..=1 {
                let nudge = Vec2::splat(k as f32 * 0.7);
                gizmos.linestrip_2d(picture.drawing.tracks[t].points.iter().map(|&p| at(p) + nudge), colour);
            }
        }
    }
    for (s, flash) in picture.drawing.sensors.iter().zip(&picture.flashes) {
        let colour = if *flash > 0.0 { FLASH } else { SENSOR };
        disc(&mut gizmos, at(s.at), if *flash > 0.0 { 5.0 } else { 3.0 }, colour);
    }
    for (d, state) in picture.drawing.devices.iter().zip(&picture.devices) {
        match d.kind {
            DeviceKind::StopRail => {
                let colour = match state {
                    Some(OnOff::On) => RAISED,
                    Some(OnOff::Off) => LOWERED,
                    None => UNKNOWN,
                };
                disc(&mut gizmos, at(d.at), STOP_RAIL_RADIUS, colour);
            }
            DeviceKind::Switch => {
                let (Some(on), Some(off)) = (d.on, d.off) else { continue };
                let (to, colour) = match state {
                    Some(OnOff::On) => (on, BLADE),
                    Some(OnOff::Off) => (off, BLADE),
                    None => (off, UNKNOWN),
                };
                for k in -1..=1 {
                    let nudge = Vec2::splat(k as f32);
                    gizmos.line_2d(at(d.at) + nudge, at(to) + nudge, colour);
                }
                disc(&mut gizmos, at(d.at), 4.0, colour);
            }
        }
    }
    let n = picture.trains.len();
    for (i, t) in picture.trains.iter().enumerate() {
        if t.status == TrainStatus::Removed {
            continue;
        }
        let colour = train_colour(i, n);
        for part in &t.body {
            for k in -2..=2 {
                let nudge = Vec2::new(0.0, k as f32);
                gizmos.linestrip_2d(part.iter().map(|&p| at(p) + nudge), colour);
            }
        }
        disc(&mut gizmos, at(t.front), 6.0, colour);
        if t.status != TrainStatus::Running {
            gizmos.circle_2d(at(t.front), 10.0, RAISED);
        }
    }
}

/// A filled disc out of concentric circles.
fn disc(gizmos: &mut Gizmos, centre: Vec2, radius: f32, colour: Color) {
    let mut r = radius;
    while r > 0.0 {
        gizmos.circle_2d(centre, r, colour);
        r -= 1.0;
    }
}

/// The device nearest to a screen point, if within [`CLICK_RADIUS`].
pub fn device_at(picture: &Picture, view: &MapView, screen: Vec2) -> Option<usize> {
    picture
        .drawing
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (i, view.to_screen(d.at).distance(screen)))
        .filter(|(_, dist)| *dist <= CLICK_RADIUS)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}
