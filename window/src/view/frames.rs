//! A view attached to a gateway: the v2 protocol's frames ([`wire::v2`]) read into a [`Picture`] and
//! written from [`Action`]s.

use wire::v2::{ClientFrame, Command, Device, EventKind, OperatorAction, ServerFrame, Train};
use wire::word;

use super::{Action, Picture, TrainView};

/// The v2 frame asking for `action`, with command `id` (operator actions carry `token`).
pub fn command(picture: &Picture, action: Action, id: u64, token: &str) -> String {
    let operator = |action| Command::Operator { token: token.to_string(), action };
    let command = match action {
        Action::Device { device, state } => {
            Command::Device { name: picture.drawing.devices[device].name.clone(), state }
        }
        Action::Speed { train, speed } => Command::Speed { train: picture.drawing.trains[train].name.clone(), speed },
        Action::EmergencyStop => operator(OperatorAction::EmergencyStop),
        Action::Live(true) => operator(OperatorAction::Live),
        Action::Live(false) => operator(OperatorAction::Sim),
        Action::Operation(sim::auto::Operation::Manual) => operator(OperatorAction::Manual),
        Action::Operation(sim::auto::Operation::Auto) => operator(OperatorAction::Auto),
        Action::Operation(sim::auto::Operation::Mixed) => operator(OperatorAction::Mixed),
    };
    ClientFrame { id, command }.encode()
}

/// A block's occupancy, by its id.
fn set_block(picture: &mut Picture, b: &wire::v2::Block) {
    if let Some(i) = picture.drawing.blocks.iter().position(|x| x.id == b.id) {
        picture.blocks[i] = b.occupied;
    }
}

/// Reads a server frame into `picture`. A frame answering a command returns its id and the answer in words.
pub fn apply(picture: &mut Picture, text: &str) -> Result<Option<(u64, String)>, String> {
    let answer = match ServerFrame::decode(text)? {
        ServerFrame::Snapshot(state) => {
            picture.mode = state.mode;
            picture.operation = state.operation;
            picture.plans = state.plans;
            picture.time_ms = state.time_ms;
            for d in &state.devices {
                set_device(picture, d);
            }
            trains(picture, &state.trains);
            picture.boards = state.boards.into_iter().map(|b| (b.name, b.alive)).collect();
            for b in &state.blocks {
                set_block(picture, b);
            }
            return Ok(None);
        }
        ServerFrame::Block(b) => {
            set_block(picture, &b);
            return Ok(None);
        }
        ServerFrame::Device(d) => {
            set_device(picture, &d);
            return Ok(None);
        }
        ServerFrame::Speed { train, speed } => {
            if let Some(i) = picture.drawing.trains.iter().position(|t| t.name == train) {
                picture.trains[i].set_speed = speed;
            }
            return Ok(None);
        }
        ServerFrame::Trains { trains: list } => {
            trains(picture, &list);
            return Ok(None);
        }
        ServerFrame::Board(b) => {
            picture.log(format!("board {} {}", b.name, if b.alive { "answers" } else { "is DOWN" }));
            match picture.boards.iter_mut().find(|x| x.0 == b.name) {
                Some(x) => x.1 = b.alive,
                None => picture.boards.push((b.name, b.alive)),
            }
            return Ok(None);
        }
        ServerFrame::Operation { operation } => {
            picture.operation = operation;
            if operation == sim::auto::Operation::Manual {
                picture.plans.clear();
            }
            picture.log(format!("operation {}", word(&operation)));
            return Ok(None);
        }
        ServerFrame::Plans { plans } => {
            picture.plans = plans;
            return Ok(None);
        }
        ServerFrame::Mode { mode } => {
            picture.mode = mode;
            picture.log(format!("mode {}", word(&mode).to_uppercase()));
            return Ok(None);
        }
        ServerFrame::Online { online } => {
            picture.log(if online { "track online".into() } else { "track OFFLINE: commands are refused".to_string() });
            return Ok(None);
        }
        ServerFrame::Event(e) => {
            if e.kind == EventKind::Sensor
                && let Some(sensor) = picture.drawing.sensors.iter().position(|x| Some(&x.name) == e.sensor.as_ref())
            {
                let train = picture.drawing.trains.iter().position(|t| Some(&t.name) == e.train.as_ref());
                picture.sensor_passed(sensor, train);
            }
            picture.log(e.text);
            return Ok(None);
        }
        ServerFrame::Ack { id, detail: Some(detail) } => (Some(id), format!("applied: {detail}")),
        ServerFrame::Ack { id, detail: None } => (Some(id), "applied".into()),
        ServerFrame::Rejected { id, rule, reason } => (Some(id), format!("REJECTED ({rule}): {reason}")),
        ServerFrame::Failed { id, reason } => (Some(id), format!("FAILED: {reason}")),
        ServerFrame::Denied { id, reason } => (Some(id), format!("DENIED: {reason}")),
        ServerFrame::Error { id, reason } => (id, format!("ERROR: {reason}")),
    };
    Ok(answer.0.map(|id| (id, answer.1)))
}

fn set_device(picture: &mut Picture, d: &Device) {
    if let Some(i) = picture.drawing.devices.iter().position(|x| x.name == d.name) {
        picture.devices[i] = d.state;
    }
}

fn trains(picture: &mut Picture, list: &[Train]) {
    for t in list {
        let Some(i) = picture.drawing.trains.iter().position(|x| x.name == t.name) else { continue };
        let old = std::mem::take(&mut picture.trains[i]);
        picture.trains[i] = TrainView {
            front: [t.x, t.y],
            body: Vec::new(),
            status: t.status,
            speed: t.speed_mm_s,
            set_speed: t.speed.unwrap_or(old.set_speed),
            position: format!("{} at {:.0} mm", t.segment, t.offset_mm),
            last_sensor: old.last_sensor,
        };
    }
}
