//! Operator actions, behind the operator token: the festival live-mode toggle, emergency stop, and reset to
//! the initial state. Visitors need no login; operators send the token with each action.

use hil::track::{Mode, Outcome, SwitchError};
use sim::interlocking::{Request, on_scale};
use sim::layout::{DeviceKind, OnOff};
use subtle::ConstantTimeEq;

use crate::core::Core;
use crate::wire::v2::OperatorAction as Action;

/// The fewest characters an operator token may have: a short token is guessed (and an empty one would make
/// every visitor who sends `""` an operator).
pub const MIN_TOKEN_CHARS: usize = 16;

/// Whether `token` may be the operator token; else why not.
pub fn usable_token(token: &str) -> Result<(), String> {
    if token.trim() != token {
        return Err("the operator token must not begin or end with spaces".into());
    }
    let n = token.chars().count();
    if n < MIN_TOKEN_CHARS {
        return Err(format!(
            "the operator token is {n} characters long; it needs at least {MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 16`)"
        ));
    }
    Ok(())
}

/// Whether `given` is the operator token, compared in constant time. With no token configured, nothing is.
pub fn authorised(configured: Option<&str>, given: &str) -> bool {
    configured.is_some_and(|t| bool::from(t.as_bytes().ct_eq(given.as_bytes())))
}

/// Carries out an action; returns what it did in words, or why it could not.
pub async fn perform(core: &Core, action: Action) -> Result<String, String> {
    let track = &core.track;
    match action {
        Action::Live | Action::LiveForce | Action::Sim => {
            let to = if action == Action::Sim { Mode::Sim } else { Mode::Live };
            match track.switch_mode(to, action == Action::LiveForce).await {
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
            requests.extend(settable(core).into_iter().map(|train| Request::Speed { train, speed: 0 }));
            summarise("emergency stop", core, requests).await
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
                settable(core)
                    .into_iter()
                    .map(|train| Request::Speed { train, speed: on_scale(&layout, train, layout.trains[train].speed) }),
            );
            summarise("reset", core, requests).await
        }
    }
}

/// The trains whose speed can be set: every one in sim mode; in live mode those with an onboard controller
/// (the others run at their own speed, and only stop rails stop them).
fn settable(core: &Core) -> Vec<usize> {
    let layout = core.track.layout();
    let live = core.track.mode() == Mode::Live;
    (0..layout.trains.len()).filter(|&t| !live || layout.trains[t].controller.is_some()).collect()
}

/// Applies every request; `Ok` when all were applied, else the list of what was not.
async fn summarise(what: &str, core: &Core, requests: Vec<Request>) -> Result<String, String> {
    let layout = core.track.layout().clone();
    let mut problems = Vec::new();
    let total = requests.len();
    for r in requests {
        let target = match r {
            Request::Device { device, .. } => layout.devices[device].name.clone(),
            Request::Speed { train, .. } => layout.trains[train].name.clone(),
        };
        match core.apply(r).await {
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
