//! Draws the twin as a camera sees it, on the CPU: a station camera shows its station's part of the schematic
//! layout (track, stop rails, switch blades, moving trains), an onboard camera the track ahead of its train,
//! turned so the train heads up the picture. RGB, 3 bytes per pixel; the capture timestamp strip is stamped on
//! top by the caller.

use sim::layout::drawing::Drawing;
use sim::layout::{CameraView, DeviceKind, Layout};
use sim::twin::{TrackState, TrainStatus};

/// Colours of the picture.
const GROUND: [u8; 3] = [34, 74, 52];
const RAIL: [u8; 3] = [150, 150, 140];
const RAISED: [u8; 3] = [230, 40, 40];
const LOWERED: [u8; 3] = [90, 200, 90];
const BLADE: [u8; 3] = [250, 210, 40];
const BETWEEN: [u8; 3] = [255, 0, 255];
const TRAIN_FRONT: [u8; 3] = [255, 255, 255];
/// One colour per train, in layout order (repeats after eight).
const TRAINS: [[u8; 3]; 8] = [
    [60, 130, 240],
    [240, 140, 30],
    [200, 60, 200],
    [40, 200, 220],
    [240, 240, 80],
    [250, 110, 150],
    [130, 90, 250],
    [170, 230, 120],
];

/// Schematic units seen across the picture by an onboard camera.
const AHEAD_SPAN: f64 = 160.0;

/// An RGB picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Rows of `width * 3` bytes.
    pub rgb: Vec<u8>,
}

impl Picture {
    /// A picture filled with one colour.
    pub fn new(width: usize, height: usize) -> Picture {
        Picture { width, height, rgb: vec![0; width * height * 3] }
    }

    fn fill(&mut self, c: [u8; 3]) {
        for px in self.rgb.chunks_exact_mut(3) {
            px.copy_from_slice(&c);
        }
    }

    /// A thick line (a capsule) from `a` to `b`, in pixels.
    fn line(&mut self, a: [f64; 2], b: [f64; 2], half_width: f64, c: [u8; 3]) {
        let (w, h) = (self.width as f64, self.height as f64);
        let x0 = (a[0].min(b[0]) - half_width).floor().max(0.0);
        let x1 = (a[0].max(b[0]) + half_width).ceil().min(w - 1.0);
        let y0 = (a[1].min(b[1]) - half_width).floor().max(0.0);
        let y1 = (a[1].max(b[1]) + half_width).ceil().min(h - 1.0);
        if x0 > x1 || y0 > y1 {
            return;
        }
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len2 = (dx * dx + dy * dy).max(1e-9);
        let r2 = half_width * half_width;
        for y in y0 as usize..=y1 as usize {
            let py = y as f64 + 0.5;
            for x in x0 as usize..=x1 as usize {
                let px = x as f64 + 0.5;
                let t = (((px - a[0]) * dx + (py - a[1]) * dy) / len2).clamp(0.0, 1.0);
                let (ex, ey) = (px - a[0] - t * dx, py - a[1] - t * dy);
                if ex * ex + ey * ey <= r2 {
                    let i = (y * self.width + x) * 3;
                    self.rgb[i..i + 3].copy_from_slice(&c);
                }
            }
        }
    }
}

/// Where a camera looks: a schematic point at the picture's centre, pixels per unit, and the turn that brings
/// the view's "up" to the picture's top.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Eye {
    centre: [f64; 2],
    scale: f64,
    /// Unit vector of the direction that points up in the picture.
    up: [f64; 2],
}

/// Draws cameras' views of one layout.
#[derive(Debug)]
pub struct Painter {
    layout: std::sync::Arc<Layout>,
    drawing: Drawing,
}

impl Painter {
    /// A painter for a layout.
    pub fn new(layout: std::sync::Arc<Layout>) -> Painter {
        let drawing = layout.drawing();
        Painter { layout, drawing }
    }

    /// The picture a camera with this view takes of the track in `state`.
    pub fn paint(&self, view: CameraView, state: &TrackState, width: usize, height: usize) -> Picture {
        let mut pic = Picture::new(width, height);
        pic.fill(GROUND);
        let eye = self.eye(view, state, width, height);
        let to_px = |p: [f64; 2]| -> [f64; 2] {
            let (rx, ry) = (p[0] - eye.centre[0], p[1] - eye.centre[1]);
            // Picture x along the right of `up`, picture y against `up`.
            let right = [-eye.up[1], eye.up[0]];
            let (x, y) = (rx * right[0] + ry * right[1], -(rx * eye.up[0] + ry * eye.up[1]));
            [width as f64 / 2.0 + x * eye.scale, height as f64 / 2.0 + y * eye.scale]
        };
        let rail = (eye.scale * 1.6).max(1.5);
        for line in &self.drawing.tracks {
            for pair in line.points.windows(2) {
                pic.line(to_px(pair[0]), to_px(pair[1]), rail, RAIL);
            }
        }
        for (d, mark) in self.drawing.devices.iter().enumerate() {
            let position = state.devices.get(d).copied();
            let on = position.and_then(|p| p.state());
            match mark.kind {
                DeviceKind::StopRail => {
                    let c = match on {
                        Some(sim::layout::OnOff::On) => RAISED,
                        Some(sim::layout::OnOff::Off) => LOWERED,
                        None => BETWEEN,
                    };
                    pic.line(to_px(mark.at), to_px(mark.at), rail * 2.6, c);
                }
                DeviceKind::Switch => {
                    let to = match on {
                        Some(sim::layout::OnOff::On) => mark.on,
                        Some(sim::layout::OnOff::Off) => mark.off,
                        None => None,
                    };
                    match to {
                        Some(to) => pic.line(to_px(mark.at), to_px(to), rail * 1.4, BLADE),
                        None => pic.line(to_px(mark.at), to_px(mark.at), rail * 2.6, BETWEEN),
                    }
                }
            }
        }
        for t in &state.trains {
            if t.status == TrainStatus::Removed {
                continue;
            }
            let colour = TRAINS[t.id % TRAINS.len()];
            let mut last = None;
            for span in t.body.spans(&self.layout) {
                let steps = ((span.hi - span.lo) / 20.0).ceil().max(1.0) as usize;
                let mut prev = to_px(self.layout.point_at(span.seg, span.lo));
                for i in 1..=steps {
                    let at = span.lo + (span.hi - span.lo) * i as f64 / steps as f64;
                    let p = to_px(self.layout.point_at(span.seg, at));
                    pic.line(prev, p, rail * 2.4, colour);
                    prev = p;
                }
                last = Some(prev);
            }
            let front = t.body.front(&self.layout);
            if last.is_some() {
                pic.line(
                    to_px(self.layout.point_at(front.seg, front.offset)),
                    to_px(self.layout.point_at(front.seg, front.offset)),
                    rail * 1.6,
                    TRAIN_FRONT,
                );
            }
        }
        pic
    }

    fn eye(&self, view: CameraView, state: &TrackState, width: usize, height: usize) -> Eye {
        match view {
            CameraView::Station(s) => {
                let points: Vec<[f64; 2]> = self
                    .drawing
                    .devices
                    .iter()
                    .filter(|d| d.station == s)
                    .map(|d| d.at)
                    .chain(
                        self.layout
                            .platforms
                            .iter()
                            .filter(|p| p.station == s)
                            .flat_map(|p| self.layout.polyline(p.seg)),
                    )
                    .collect();
                let at = self.drawing.stations.get(s).map_or([0.0, 0.0], |l| l.at);
                let (mut lo, mut hi) = ([at[0] - 40.0, at[1] - 30.0], [at[0] + 40.0, at[1] + 30.0]);
                for p in &points {
                    lo = [lo[0].min(p[0]), lo[1].min(p[1])];
                    hi = [hi[0].max(p[0]), hi[1].max(p[1])];
                }
                let margin = 20.0;
                let scale =
                    (width as f64 / (hi[0] - lo[0] + 2.0 * margin)).min(height as f64 / (hi[1] - lo[1] + 2.0 * margin));
                Eye { centre: [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0], scale, up: [0.0, -1.0] }
            }
            CameraView::Ahead(train) => {
                let scale = width as f64 / AHEAD_SPAN;
                let Some(t) = state.trains.iter().find(|t| t.id == train) else {
                    return Eye { centre: [0.0, 0.0], scale, up: [0.0, -1.0] };
                };
                let front = t.body.front(&self.layout);
                let seg = &self.layout.segments[front.seg];
                let sign = if front.dir == sim::layout::Dir::Forward { 1.0 } else { -1.0 };
                let ahead = (front.offset + sign * 40.0).clamp(0.0, seg.length);
                let behind = (front.offset - sign * 40.0).clamp(0.0, seg.length);
                let (a, b) = (self.layout.point_at(front.seg, behind), self.layout.point_at(front.seg, ahead));
                let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
                let len = (dx * dx + dy * dy).sqrt();
                let up = if len > 1e-6 { [dx / len, dy / len] } else { [0.0, -1.0] };
                let f = self.layout.point_at(front.seg, front.offset);
                // The train's front sits low in the picture; the track ahead fills the rest.
                let lead = height as f64 * 0.35 / scale;
                Eye { centre: [f[0] + up[0] * lead, f[1] + up[1] * lead], scale, up }
            }
        }
    }
}
