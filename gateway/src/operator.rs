//! Operator actions, behind the operator token: the festival live-mode toggle, emergency stop, and reset to
//! the initial state. Visitors need no login; operators send the token with each action.

use hil::track::{Mode, Outcome, SwitchError, Track};
use sim::interlocking::Request;
use sim::layout::{DeviceKind, OnOff};
use subtle::ConstantTimeEq;

/// An operator action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Switch to the real boards (refused while any does not answer, unless `force`).
    Live {
        /// Switch even with boards not answering.
        force: bool,
    },
    /// Switch back to the simulation.
    Sim,
    /// Raise every stop rail and set every train's speed to 0.
    EmergencyStop,
    /// Drive every device and train back to the layout's initial state, as far as the interlocking allows.
    Reset,
}

impl Action {
    /// Reads an action name: `live`, `live_force`, `sim`, `emergency_stop`, `reset`.
    pub fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "live" => Action::Live { force: false },
            "live_force" => Action::Live { force: true },
            "sim" => Action::Sim,
            "emergency_stop" => Action::EmergencyStop,
            "reset" => Action::Reset,
            _ => return None,
        })
    }
}

/// Whether `given` is the operator token, compared in constant time. With no token configured, nothing is.
pub fn authorised(configured: Option<&str>, given: &str) -> bool {
    configured.is_some_and(|t| bool::from(t.as_bytes().ct_eq(given.as_bytes())))
}

/// Carries out an action; returns what it did in words, or why it could not.
pub async fn perform(track: &Track, action: Action) -> Result<String, String> {
    match action {
        Action::Live { .. } | Action::Sim => {
            let to = if action == Action::Sim { Mode::Sim } else { Mode::Live };
            match track.switch_mode(to, matches!(action, Action::Live { force: true })).await {
                Ok(report) => {
                    let checked: Vec<String> = report
                        .checked
                        .iter()
                        .map(|(name, addr, alive)| {
                            format!("{name} at {addr} {}", if *alive { "answers" } else { "DOWN" })
                        })
                        .collect();
                    Ok(format!("mode {:?}; checked: {}", report.mode, checked.join(", ")))
                }
                Err(SwitchError::Unhealthy(down)) => {
                    Err(format!("not switched: boards not answering: {}", down.join(", ")))
                }
            }
        }
        Action::EmergencyStop => {
            let layout = track.layout().clone();
            let mut requests: Vec<Request> = (0..layout.devices.len())
                .filter(|&d| layout.devices[d].kind == DeviceKind::StopRail)
                .map(|device| Request::Device { device, state: OnOff::On })
                .collect();
            requests.extend((0..layout.trains.len()).map(|train| Request::Speed { train, speed: 0 }));
            summarise("emergency stop", track, requests).await
        }
        Action::Reset => {
            let layout = track.layout().clone();
            let initial = |kind: DeviceKind, state: Option<OnOff>| -> Vec<usize> {
                (0..layout.devices.len())
                    .filter(|&d| layout.devices[d].kind == kind && state.is_none_or(|s| layout.devices[d].initial == s))
                    .collect()
            };
            // Raise first, then set switches, then lower what starts lowered: each step keeps the track safe.
            let mut requests: Vec<Request> = initial(DeviceKind::StopRail, Some(OnOff::On))
                .into_iter()
                .map(|device| Request::Device { device, state: OnOff::On })
                .collect();
            requests.extend(
                initial(DeviceKind::Switch, None)
                    .into_iter()
                    .map(|device| Request::Device { device, state: track.layout().devices[device].initial }),
            );
            requests.extend(
                initial(DeviceKind::StopRail, Some(OnOff::Off))
                    .into_iter()
                    .map(|device| Request::Device { device, state: OnOff::Off }),
            );
            requests.extend(
                track
                    .layout()
                    .trains
                    .iter()
                    .enumerate()
                    .map(|(train, t)| Request::Speed { train, speed: t.speed as i32 }),
            );
            summarise("reset", track, requests).await
        }
    }
}

/// Applies every request; `Ok` when all were applied, else the list of what was not.
async fn summarise(what: &str, track: &Track, requests: Vec<Request>) -> Result<String, String> {
    let layout = track.layout().clone();
    let mut problems = Vec::new();
    let total = requests.len();
    for r in requests {
        let target = match r {
            Request::Device { device, .. } => layout.devices[device].name.clone(),
            Request::Speed { train, .. } => layout.trains[train].name.clone(),
        };
        match track.apply(r).await {
            Outcome::Applied => {}
            Outcome::Rejected(x) => problems.push(format!("{target}: {}", x.message)),
            Outcome::Failed(reason) => problems.push(format!("{target}: {reason}")),
        }
    }
    if problems.is_empty() {
        Ok(format!("{what}: {total} commands applied"))
    } else {
        Err(format!("{what}: {} of {total} commands not applied: {}", problems.len(), problems.join("; ")))
    }
}
