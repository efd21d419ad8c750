//! The desktop window (feature `window`): the layout drawn live with Bevy, operated through bevy_egui panels.
//! It shows a standalone twin of its own, a gateway's track (v2 protocol), or a recording played back on a
//! timeline, and can render a few frames,
//! save a screenshot and exit, for headless checks.

pub mod map;
mod panels;
pub mod remote;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bevy::input::mouse::AccumulatedMouseScroll;
use bevy::prelude::*;
use bevy::render::view::window::screenshot::{Screenshot, save_to_disk};
use bevy::window::WindowResolution;
use bevy_egui::input::EguiWantsInput;
use bevy_egui::{EguiPlugin, EguiPrimaryContextPass};

use crate::view::{Action, Picture, frames};
use crate::view::{local, replay};
use map::MapView;
use remote::{Connection, Incoming};
use sim::layout::{Layout, OnOff};

/// Width of the controls panel, logical pixels.
pub const PANEL_WIDTH: f32 = 340.0;
/// Height of the event log, logical pixels.
pub const LOG_HEIGHT: f32 = 150.0;
/// The window's size at start, logical pixels.
pub const WINDOW_SIZE: (u32, u32) = (1280, 720);

/// How the window is started.
pub struct Options {
    /// The layout to draw (and to simulate when standalone).
    pub layout: Arc<Layout>,
    /// A gateway to attach to (`http://host:port`); none: a standalone twin.
    pub connect: Option<String>,
    /// The operator token for operator actions on an attached gateway.
    pub token: Option<String>,
    /// Render `frames` frames, save a screenshot here, and exit.
    pub screenshot: Option<PathBuf>,
    /// Frames rendered before the screenshot.
    pub frames: u32,
    /// After the screenshot, toggle this device as a click would and save a second screenshot (`*-after.png`).
    pub toggle: Option<String>,
    /// A recording to play back (its scenario and its timeline's marks) instead of a twin; `seek`: start there, ms.
    pub replay: Option<(sim::scenario::Scenario, Vec<replay::Mark>, u64)>,
}

/// The picture shown.
#[derive(Resource)]
pub struct Shown(pub Picture);

/// The twin the window shows: its own, or a gateway's.
#[derive(Resource)]
pub enum Twin {
    /// A standalone simulation.
    Local(Box<local::Local>),
    /// A recording played back.
    Replay(Box<replay::Replay>),
    /// A gateway over the v2 protocol.
    Remote {
        /// The gateway's address as given.
        base: String,
        /// The connection thread's channels.
        connection: Connection,
        /// The operator token sent with operator actions.
        token: String,
        /// The next command id.
        next_id: u64,
        /// Commands waiting for their answer, in words.
        pending: HashMap<u64, String>,
    },
}

impl Twin {
    /// What this twin is, in words.
    pub fn describe(&self) -> String {
        match self {
            Twin::Local(_) => "standalone simulation of the layout".into(),
            Twin::Replay(_) => "a recording played back (read-only)".into(),
            Twin::Remote { base, .. } => format!("attached to {base}"),
        }
    }

    /// Asks the twin for `action`; the answer goes to the picture's log.
    pub fn act(&mut self, action: Action, picture: &mut Picture) {
        match self {
            Twin::Local(local) => local.act(action, picture),
            Twin::Replay(_) => picture.log("a recording plays back as it was: it takes no commands"),
            Twin::Remote { connection, token, next_id, pending, .. } => {
                let id = *next_id;
                *next_id += 1;
                pending.insert(id, action.describe(&picture.drawing));
                if connection.outbox.send(frames::command(picture, action, id, token)).is_err() {
                    picture.log("not sent: the connection thread ended");
                }
            }
        }
    }

    /// Brings the picture up to date after `dt` seconds.
    fn update(&mut self, dt: f64, picture: &mut Picture) {
        match self {
            Twin::Local(local) => local.update(dt, picture),
            Twin::Replay(replay) => replay.update(dt, picture),
            Twin::Remote { connection, pending, .. } => {
                while let Ok(incoming) = connection.inbox.try_recv() {
                    match incoming {
                        Incoming::Connected => {
                            picture.connected = true;
                            picture.log("connected");
                        }
                        Incoming::Disconnected(reason) => {
                            if picture.connected || picture.log.is_empty() {
                                picture.log(reason);
                            }
                            picture.connected = false;
                            for (_, what) in pending.drain() {
                                picture.log(format!("{what}: no answer (connection lost)"));
                            }
                        }
                        Incoming::Frame(text) => match frames::apply(picture, &text) {
                            Ok(Some((id, words))) => {
                                let what = pending.remove(&id).unwrap_or_else(|| format!("command {id}"));
                                picture.log(format!("{what}: {words}"));
                            }
                            Ok(None) => {}
                            Err(e) => picture.log(format!("gateway: {e}")),
                        },
                    }
                }
            }
        }
    }
}

/// Toggles a device, as a click on it does.
pub fn toggle(twin: &mut Twin, picture: &mut Picture, device: usize) {
    let state = if picture.devices[device] == Some(OnOff::On) { OnOff::Off } else { OnOff::On };
    twin.act(Action::Device { device, state }, picture);
}

/// Opens the window; returns when it is closed (or the screenshot is saved).
pub fn run(options: Options) -> Result<(), String> {
    let drawing = options.layout.drawing();
    let toggle = match &options.toggle {
        Some(name) => Some(options.layout.device_id(name).ok_or_else(|| format!("--toggle {name}: no such device"))?),
        None => None,
    };
    let mut picture = Picture::new(drawing);
    let twin = match (&options.connect, options.replay) {
        (_, Some((scenario, marks, at))) => {
            let mut replay = replay::Replay::new(scenario, marks)?;
            replay.seek(at, &mut picture)?;
            Twin::Replay(Box::new(replay))
        }
        (Some(base), None) => Twin::Remote {
            base: base.clone(),
            connection: remote::connect(base),
            token: options.token.clone().unwrap_or_default(),
            next_id: 1,
            pending: HashMap::new(),
        },
        (None, None) => {
            let mut local = local::Local::new(options.layout.clone())?;
            local.update(0.0, &mut picture);
            Twin::Local(Box::new(local))
        }
    };
    let (w, h) = WINDOW_SIZE;
    let view = MapView::fit(picture.drawing.width, picture.drawing.height, Vec2::new(w as f32, h as f32));
    let mut app = App::new();
    app.insert_resource(ClearColor(map::BACKGROUND))
        .add_plugins(DefaultPlugins.set(WindowPlugin {
            primary_window: Some(Window {
                title: format!("plarail-twin: {}", picture.drawing.name),
                resolution: WindowResolution::new(w, h),
                ..default()
            }),
            ..default()
        }))
        .add_plugins(EguiPlugin::default())
        .insert_resource(Shown(picture))
        .insert_resource(twin)
        .insert_resource(view)
        .init_resource::<panels::UiState>()
        .add_systems(Startup, setup)
        .add_systems(Update, (update_twin, map_input, map::draw).chain())
        .add_systems(EguiPrimaryContextPass, panels::ui);
    if let Some(file) = options.screenshot {
        let after = toggle.map(|_| {
            let stem = file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "screenshot".into());
            file.with_file_name(format!("{stem}-after.png"))
        });
        app.insert_resource(Plan { file, after, frames: options.frames.max(1), toggle, frame: 0 })
            .add_systems(Update, screenshots.after(update_twin));
    }
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => Err(format!("the window ended with error {code}")),
    }
}

fn setup(mut commands: Commands, mut gizmos: ResMut<GizmoConfigStore>) {
    commands.spawn(Camera2d);
    gizmos.config_mut::<DefaultGizmoConfigGroup>().0.line.width = 3.0;
}

fn update_twin(time: Res<Time>, mut twin: ResMut<Twin>, mut shown: ResMut<Shown>) {
    twin.update(time.delta_secs_f64(), &mut shown.0);
    shown.0.fade(time.delta_secs());
}

/// Pan (drag, arrow keys), zoom (wheel, + and -), fit (F), and clicks on devices.
#[allow(clippy::too_many_arguments)]
fn map_input(
    mut view: ResMut<MapView>,
    window: Single<&Window>,
    buttons: Res<ButtonInput<MouseButton>>,
    keys: Res<ButtonInput<KeyCode>>,
    scroll: Res<AccumulatedMouseScroll>,
    egui: Res<EguiWantsInput>,
    time: Res<Time>,
    mut shown: ResMut<Shown>,
    mut twin: ResMut<Twin>,
    mut drag: Local<Option<(Vec2, f32)>>,
) {
    let size = Vec2::new(window.width(), window.height());
    if !egui.wants_keyboard_input() {
        let step = 400.0 * time.delta_secs();
        for (key, delta) in [
            (KeyCode::ArrowLeft, Vec2::X),
            (KeyCode::ArrowRight, -Vec2::X),
            (KeyCode::ArrowUp, Vec2::Y),
            (KeyCode::ArrowDown, -Vec2::Y),
        ] {
            if keys.pressed(key) {
                view.offset += delta * step;
            }
        }
        let centre = Vec2::new((size.x + PANEL_WIDTH) / 2.0, (size.y - LOG_HEIGHT) / 2.0);
        if keys.just_pressed(KeyCode::Equal) || keys.just_pressed(KeyCode::NumpadAdd) {
            view.zoom(1.25, centre);
        }
        if keys.just_pressed(KeyCode::Minus) || keys.just_pressed(KeyCode::NumpadSubtract) {
            view.zoom(0.8, centre);
        }
        if keys.just_pressed(KeyCode::KeyF) {
            *view = MapView::fit(shown.0.drawing.width, shown.0.drawing.height, size);
        }
    }
    let Some(cursor) = window.cursor_position() else { return };
    if egui.wants_pointer_input() && drag.is_none() {
        return;
    }
    if scroll.delta.y != 0.0 {
        view.zoom(1.1f32.powf(scroll.delta.y.clamp(-5.0, 5.0)), cursor);
    }
    if buttons.just_pressed(MouseButton::Left) {
        *drag = Some((cursor, 0.0));
    }
    if let Some((last, moved)) = drag.as_mut() {
        let delta = cursor - *last;
        view.offset += delta;
        *moved += delta.length();
        *last = cursor;
    }
    if buttons.just_released(MouseButton::Left)
        && let Some((_, moved)) = drag.take()
        && moved < 4.0
        && let Some(device) = map::device_at(&shown.0, &view, cursor)
    {
        toggle(&mut twin, &mut shown.0, device);
    }
}

/// A headless run: screenshot after `frames` frames, optionally a toggle and a second screenshot, then exit.
#[derive(Resource)]
struct Plan {
    file: PathBuf,
    after: Option<PathBuf>,
    frames: u32,
    toggle: Option<usize>,
    frame: u32,
}

fn screenshots(
    mut commands: Commands,
    mut plan: ResMut<Plan>,
    mut twin: ResMut<Twin>,
    mut shown: ResMut<Shown>,
    mut exit: MessageWriter<AppExit>,
) {
    plan.frame += 1;
    let n = plan.frames;
    if plan.frame == n {
        commands.spawn(Screenshot::primary_window()).observe(save_to_disk(plan.file.clone()));
    }
    if let (Some(device), Some(after)) = (plan.toggle, plan.after.clone()) {
        if plan.frame == n + 10 {
            toggle(&mut twin, &mut shown.0, device);
        }
        if plan.frame == 2 * n + 10 {
            commands.spawn(Screenshot::primary_window()).observe(save_to_disk(after));
        }
    }
    let last = if plan.toggle.is_some() { 2 * n + 10 } else { n };
    let saved = |p: &PathBuf| std::fs::metadata(p).is_ok_and(|m| m.len() > 0);
    let done = saved(&plan.file) && plan.after.as_ref().is_none_or(saved);
    if plan.frame > last + 5 && done {
        exit.write(AppExit::Success);
    } else if plan.frame > last + 1000 {
        error!("the screenshot was not saved");
        exit.write(AppExit::error());
    }
}
