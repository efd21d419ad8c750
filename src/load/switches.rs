//! The switches the load commands: the server's, or those named with `--switches`, with their states.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use sim::layout::{DeviceKind, OnOff};
use tokio_tungstenite::tungstenite::Message;
use wire::v2;

use super::clients::{connect, device_change, next_text};

/// A switch to command and its state when the load starts.
pub struct Switch {
    /// Its name.
    pub name: String,
    /// Its state, if known.
    pub state: Option<OnOff>,
}

/// The switches to command: those `named` (each checked against the server's), or else every switch the server
/// reports, learnt over v2 at `v2_url` or from the 2021 feed at `url_2021`.
pub async fn chosen(named: &[String], commands_v2: bool, v2_url: &str, url_2021: &str) -> anyhow::Result<Vec<Switch>> {
    let switches = if commands_v2 { switches_v2(v2_url).await? } else { switches_2021(url_2021).await? };
    let switches: Vec<Switch> = if named.is_empty() {
        switches
    } else {
        let known: HashMap<String, Option<OnOff>> = switches.into_iter().map(|s| (s.name, s.state)).collect();
        named
            .iter()
            .map(|name| match known.get(name) {
                Some(&state) => Ok(Switch { name: name.clone(), state }),
                None => anyhow::bail!("--switches {name}: the server reports no such device"),
            })
            .collect::<anyhow::Result<_>>()?
    };
    anyhow::ensure!(!switches.is_empty(), "the server reports no switches to command (name some with --switches)");
    Ok(switches)
}

/// The switches and their states, from a v2 snapshot taken once no board is being restored (commands to a
/// board being restored fail).
async fn switches_v2(url: &str) -> anyhow::Result<Vec<Switch>> {
    let started = Instant::now();
    loop {
        let (mut probe, _) = connect(url).await.with_context(|| format!("cannot open {url}"))?;
        let first = next_text(&mut probe).await.context("no snapshot from the gateway")?;
        let Ok(v2::ServerFrame::Snapshot(state)) = v2::ServerFrame::decode(&first) else {
            anyhow::bail!("the first v2 frame is not a snapshot: {first}");
        };
        if state.boards.iter().all(|b| !b.restoring) || started.elapsed() > Duration::from_secs(120) {
            return Ok(state
                .devices
                .into_iter()
                .filter(|d| d.kind == Some(DeviceKind::Switch))
                .map(|d| Switch { name: d.name, state: d.state })
                .collect());
        }
        eprintln!("waiting for the gateway to finish restoring its boards");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The devices named like 2021's switches (`chofu_b1`) and their states, learnt from a 2021 feed: the server
/// sends every device's state every 2 seconds.
async fn switches_2021(url: &str) -> anyhow::Result<Vec<Switch>> {
    let (mut ws, _) = connect(url).await.with_context(|| format!("cannot open {url}"))?;
    let mut states: std::collections::BTreeMap<String, OnOff> = Default::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(text) = msg {
            device_change(text.as_str(), false, |name, state| {
                states.insert(name.to_string(), state);
            });
        }
    }
    anyhow::ensure!(!states.is_empty(), "{url} sent no device state within 3 s");
    let switch_2021 = |name: &str| {
        name.rsplit_once("_b").is_some_and(|(_, n)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    Ok(states
        .into_iter()
        .filter(|(name, _)| switch_2021(name))
        .map(|(name, state)| Switch { name, state: Some(state) })
        .collect())
}
