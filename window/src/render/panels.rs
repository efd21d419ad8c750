//! The window's egui panels: devices by station, trains, controls (pace, mode with the live toggle behind a
//! confirmation, emergency stop), a recording's timeline, the event log, and the map's labels.

use std::sync::Arc;

use bevy::prelude::*;
use bevy_egui::{EguiContexts, egui};

use super::map::{MapView, train_colour};
use super::{LOG_HEIGHT, PANEL_WIDTH, Shown, Twin};
use crate::view::replay::{Mark, MarkKind, Replay};
use crate::view::{Action, Pace, Pacer, controller_words};
use sim::auto::Operation;
use sim::interlocking::FULL_SPEED;
use sim::layout::OnOff;
use sim::layout::drawing::{NAME_SIZE, TRAIN_NAME_SIZE};

/// A train's automatic plan in words: `auto · next chofu_s2 · 3 calls · dwell, 4 s left`.
fn plan_words(plan: &wire::v2::Plan) -> String {
    let mut words = vec![if plan.automatic { "auto" } else { "by hand" }.to_string()];
    words.extend(plan.next_stop.as_ref().map(|s| format!("next {s}")));
    words.extend((plan.calls > 0).then(|| format!("{} calls", plan.calls)));
    words.extend(plan.waiting.clone());
    words.join(" · ")
}

/// Fonts tried, in order, for Japanese station names (Debian's `fonts-ipafont-gothic` first).
pub const JAPANESE_FONTS: &[&str] = &[
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
];

/// What the panels remember between frames.
#[derive(Resource, Default)]
pub struct UiState {
    fonts_set: bool,
    japanese: bool,
    /// A mode switch waiting for confirmation: `Some(true)` to go live.
    confirm_live: Option<bool>,
}

/// Draws the panels and the map labels; carries out what the user asks.
pub fn ui(
    mut contexts: EguiContexts,
    mut shown: ResMut<Shown>,
    mut twin: ResMut<Twin>,
    mut state: ResMut<UiState>,
    view: Res<MapView>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    if !state.fonts_set {
        state.japanese = set_fonts(ctx);
        state.fonts_set = true;
    }
    let mut actions = Vec::new();
    let mut step = false;
    let mut seek = None;
    let picture = &shown.0;
    let mut screen = egui::Ui::new(
        ctx.clone(),
        "screen".into(),
        egui::UiBuilder::new().layer_id(egui::LayerId::background()).max_rect(ctx.viewport_rect()),
    );
    egui::Panel::left("controls").exact_size(PANEL_WIDTH).resizable(false).show(&mut screen, |ui| {
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.heading("plarail-twin");
            ui.label(twin.describe());
            ui.horizontal(|ui| {
                let live = picture.mode == sim::twin::Mode::Live;
                let badge = egui::RichText::new(if live { " LIVE " } else { " SIM " }).strong().size(18.0);
                let colour =
                    if live { egui::Color32::from_rgb(230, 110, 0) } else { egui::Color32::from_rgb(47, 128, 237) };
                ui.label(badge.background_color(colour).color(egui::Color32::WHITE));
                if !picture.connected {
                    ui.colored_label(egui::Color32::RED, "not connected");
                }
                ui.label(format!("t = {:.1} s", picture.time_ms as f64 / 1000.0));
            });
            ui.horizontal(|ui| {
                let stop =
                    egui::Button::new(egui::RichText::new("EMERGENCY STOP").strong().color(egui::Color32::WHITE))
                        .fill(egui::Color32::from_rgb(176, 0, 32));
                if ui.add(stop).clicked() {
                    actions.push(Action::EmergencyStop);
                }
                let to_live = picture.mode != sim::twin::Mode::Live;
                if ui.button(if to_live { "Go LIVE…" } else { "Back to SIM…" }).clicked() {
                    state.confirm_live = Some(to_live);
                }
            });
            ui.horizontal(|ui| {
                ui.label("operation");
                for operation in [Operation::Manual, Operation::Auto, Operation::Mixed] {
                    let chosen = picture.operation == operation;
                    if ui.selectable_label(chosen, wire::word(&operation)).clicked() && !chosen {
                        actions.push(Action::Operation(operation));
                    }
                }
            });
            if let Twin::Replay(replay) = &mut *twin {
                timeline(ui, replay, &mut seek);
            }
            if let Twin::Local(local) = &mut *twin {
                ui.horizontal(|ui| {
                    ui.label("speed");
                    paces(ui, local.pacer());
                    if ui.button("step").clicked() {
                        local.pacer().set_pace(Pace::Paused);
                        step = true;
                    }
                });
            }
            egui::CollapsingHeader::new("Devices").default_open(true).show(ui, |ui| {
                for (s, station) in picture.drawing.stations.iter().enumerate() {
                    let devices: Vec<usize> = (0..picture.drawing.devices.len())
                        .filter(|&d| picture.drawing.devices[d].station == s)
                        .collect();
                    if devices.is_empty() {
                        continue;
                    }
                    let title = if state.japanese {
                        format!("{} {}", station.name_ja, station.name_en)
                    } else {
                        station.name_en.clone()
                    };
                    ui.label(egui::RichText::new(title).strong());
                    for d in devices {
                        let mark = &picture.drawing.devices[d];
                        let now = picture.devices[d];
                        ui.horizontal(|ui| {
                            ui.monospace(format!("{:<16}", mark.name));
                            ui.label(now.map_or("moving", |s| mark.kind.words(s)));
                            let next = if now == Some(OnOff::On) { OnOff::Off } else { OnOff::On };
                            if ui.small_button(mark.kind.words(next).replace("set ", "")).clicked() {
                                actions.push(Action::Device { device: d, state: next });
                            }
                        });
                    }
                }
            });
            egui::CollapsingHeader::new("Trains").default_open(true).show(ui, |ui| {
                let n = picture.trains.len();
                for (i, t) in picture.trains.iter().enumerate() {
                    let label = &picture.drawing.trains[i];
                    let c = train_colour(i, n).to_srgba();
                    let colour =
                        egui::Color32::from_rgb((c.red * 255.0) as u8, (c.green * 255.0) as u8, (c.blue * 255.0) as u8);
                    ui.horizontal(|ui| {
                        ui.colored_label(colour, "●");
                        ui.label(egui::RichText::new(&label.name).strong());
                        ui.label(format!("{} · {} mm/s", wire::word(&t.status), t.speed));
                    });
                    if let Some(plan) = picture.plans.get(i) {
                        ui.label(plan_words(plan));
                    }
                    ui.horizontal(|ui| {
                        // The 2021 page's speed: 0..100 in steps of 5 (no reverse: the blocks protect forward
                        // running only).
                        // Shown at the nearest step: a speed off the steps (automatic operation's) would otherwise
                        // be stepped by the slider itself, as if the user had moved it.
                        let mut speed = ((t.set_speed.max(0) + 2) / 5 * 5).min(FULL_SPEED);
                        let slider = egui::Slider::new(&mut speed, 0..=FULL_SPEED).step_by(5.0);
                        let moved = ui.add(slider);
                        if moved.drag_stopped() || (moved.changed() && !moved.dragged()) {
                            actions.push(Action::Speed { train: i, speed });
                        }
                        ui.small(controller_words(label.controller));
                    });
                    let meter = t.speed as f32 / label.max_speed.max(1) as f32;
                    ui.add(egui::ProgressBar::new(meter).desired_height(6.0));
                    ui.small(format!(
                        "{}; last sensor: {}",
                        t.position,
                        t.last_sensor.as_deref().unwrap_or("none yet")
                    ));
                }
            });
            egui::CollapsingHeader::new("Boards").default_open(false).show(ui, |ui| {
                if picture.boards.is_empty() {
                    ui.label("none (standalone simulation)");
                }
                for (name, alive) in &picture.boards {
                    ui.label(format!("{name}: {}", if *alive { "answers" } else { "DOWN" }));
                }
            });
        });
    });
    egui::Panel::bottom("log").exact_size(LOG_HEIGHT).resizable(false).show(&mut screen, |ui| {
        ui.label(egui::RichText::new("Event log").strong());
        egui::ScrollArea::vertical().stick_to_bottom(true).auto_shrink([false, false]).show(ui, |ui| {
            for line in &picture.log {
                ui.small(line);
            }
        });
    });
    if let Some(live) = state.confirm_live {
        egui::Window::new("Confirm")
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ctx, |ui| {
                ui.label(if live {
                    "Switch to the real boards (LIVE)? Commands will drive the real track."
                } else {
                    "Switch back to the simulation (SIM)?"
                });
                ui.horizontal(|ui| {
                    if ui.button("Confirm").clicked() {
                        actions.push(Action::Live(live));
                        state.confirm_live = None;
                    }
                    if ui.button("Cancel").clicked() {
                        state.confirm_live = None;
                    }
                });
            });
    }
    labels(ctx, &shown.0, &view, state.japanese);
    for action in actions {
        twin.act(action, &mut shown.0);
    }
    if step && let Twin::Local(local) = &mut *twin {
        local.step_once(&mut shown.0);
    }
    if let (Some(ms), Twin::Replay(replay)) = (seek, &mut *twin)
        && let Err(e) = replay.seek(ms, &mut shown.0)
    {
        shown.0.log(e);
    }
    Ok(())
}

/// A recording's controls: play and pause at a pace, and its timeline with its marks and where the playback is
/// (a click on the timeline, or on a mark in the list, goes there).
fn timeline(ui: &mut egui::Ui, replay: &mut Replay, seek: &mut Option<u64>) {
    ui.separator();
    ui.label(egui::RichText::new("Recording").strong());
    ui.horizontal(|ui| {
        ui.label("play");
        paces(ui, replay.pacer());
    });
    let (now, end) = (replay.time_ms(), replay.duration_ms().max(1));
    ui.label(format!("{} of {}", clock(now), clock(end)));
    let (rect, response) = ui.allocate_exact_size(egui::vec2(ui.available_width(), 24.0), egui::Sense::click());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, egui::Color32::from_gray(225));
    let x_of = |ms: u64| rect.left() + rect.width() * ms as f32 / end as f32;
    let line = |x: f32, colour: egui::Color32, width: f32| {
        painter
            .line_segment([egui::pos2(x, rect.top()), egui::pos2(x, rect.bottom())], egui::Stroke::new(width, colour));
    };
    for m in replay.marks() {
        line(x_of(m.ms), mark_colour(m.kind), 2.0);
    }
    line(x_of(now), egui::Color32::BLACK, 3.0);
    if response.clicked()
        && let Some(p) = response.interact_pointer_pos()
    {
        *seek = Some((((p.x - rect.left()) / rect.width()).clamp(0.0, 1.0) * end as f32) as u64);
    }
    egui::CollapsingHeader::new(format!("Marks ({})", replay.marks().len())).default_open(true).show(ui, |ui| {
        for Mark { ms, kind, words } in replay.marks().iter().take(300) {
            let text = egui::RichText::new(format!("{} {words}", clock(*ms))).color(mark_colour(*kind)).small();
            if ui.add(egui::Label::new(text).sense(egui::Sense::click())).clicked() {
                *seek = Some(*ms);
            }
        }
    });
    ui.separator();
}

/// A choice of the paces, the one at work selected.
fn paces(ui: &mut egui::Ui, pacer: &mut Pacer) {
    for (label, pace) in Pace::CHOICES {
        if ui.selectable_label(pacer.pace() == pace, label).clicked() {
            pacer.set_pace(pace);
        }
    }
}

/// A mark's colour on the timeline (as on the page's).
fn mark_colour(kind: MarkKind) -> egui::Color32 {
    match kind {
        MarkKind::Refused => egui::Color32::from_rgb(224, 128, 0),
        MarkKind::Failed => egui::Color32::from_rgb(176, 0, 32),
        MarkKind::Divergence => egui::Color32::from_rgb(142, 36, 170),
        MarkKind::Accident => egui::Color32::BLACK,
        MarkKind::Switch => egui::Color32::from_rgb(21, 101, 192),
    }
}

/// Simulation ms as `m:ss.s`.
fn clock(ms: u64) -> String {
    format!("{}:{:04.1}", ms / 60_000, (ms % 60_000) as f64 / 1000.0)
}

/// Station and train names over the map.
fn labels(ctx: &egui::Context, picture: &crate::view::Picture, view: &MapView, japanese: bool) {
    let painter = ctx.layer_painter(egui::LayerId::background());
    // Where the layout's drawing placed them (clear of each other, as on the page), at their size on the map.
    let font = egui::FontId::proportional(NAME_SIZE as f32 * view.scale);
    for s in &picture.drawing.stations {
        let at = view.to_screen(s.label);
        let text = if japanese { format!("{} {}", s.name_ja, s.name_en) } else { s.name_en.clone() };
        painter.text(
            egui::pos2(at.x, at.y),
            egui::Align2::CENTER_BOTTOM,
            text,
            font.clone(),
            egui::Color32::from_rgb(200, 215, 240),
        );
    }
    // Train names where the drawing places them: clear of the station names and of each other.
    let fronts: Vec<Option<[f64; 2]>> =
        picture.trains.iter().map(|t| (t.status != sim::twin::TrainStatus::Removed).then_some(t.front)).collect();
    let font = egui::FontId::proportional(TRAIN_NAME_SIZE as f32 * view.scale);
    for (i, at) in picture.drawing.train_names(&fronts).into_iter().enumerate() {
        let Some(at) = at else { continue };
        let at = view.to_screen(at);
        painter.text(
            egui::pos2(at.x, at.y),
            egui::Align2::CENTER_BOTTOM,
            &picture.drawing.trains[i].name,
            font.clone(),
            egui::Color32::WHITE,
        );
    }
}

/// Adds the first Japanese font found to egui's fonts; whether one was found.
fn set_fonts(ctx: &egui::Context) -> bool {
    let Some(bytes) = JAPANESE_FONTS.iter().find_map(|p| std::fs::read(p).ok()) else { return false };
    let mut fonts = egui::FontDefinitions::default();
    fonts.font_data.insert("japanese".into(), Arc::new(egui::FontData::from_owned(bytes)));
    for family in [egui::FontFamily::Proportional, egui::FontFamily::Monospace] {
        fonts.families.entry(family).or_default().push("japanese".into());
    }
    ctx.set_fonts(fonts);
    true
}
