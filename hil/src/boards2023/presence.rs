//! Which MQTT clients are connected to a broker, as the broker tells it, read by plain functions.
//!
//! The 2023 boards send no heartbeat and no will, so only their broker knows whether a board is there. Brokers
//! tell it in their own ways:
//! - mosquitto: with `log_dest topic` (and `log_type notice`) it publishes its log on `$SYS/broker/log/N`,
//!   `New client connected from ADDR as ID (…).` and `Client ID disconnected.` (or `closed its connection.`,
//!   `has exceeded timeout, disconnecting.`), and `Socket error on client ID, disconnecting.`; a client that
//!   takes over an id already connected pushes the old one off without a line;
//! - EMQX: `$SYS/brokers/NODE/clients/ID/connected` and `…/disconnected` (JSON with a `reason`; the old
//!   connection of a taken-over id goes with `takenover` or `discarded`, after the new one connected);
//! - the broker embedded in this process: its front reports each id's first connection and its last going.
//!
//! Each is read into [`Presence`]: the newest word on an id is its state.

/// A client id came or went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// The client id is connected.
    Connected(String),
    /// The client id is no longer connected.
    Gone(String),
}

/// What the twin subscribes to on an external broker to hear its clients come and go (mosquitto's log
/// notices, EMQX's client events).
pub const SYS_FILTERS: [&str; 2] = ["$SYS/broker/log/N", "$SYS/brokers/+/clients/+/+"];

/// Reads a message on one of [`SYS_FILTERS`]: the presence it tells, if any.
pub fn read_sys(topic: &str, payload: &[u8]) -> Option<Presence> {
    if topic == SYS_FILTERS[0] {
        return read_mosquitto_log(std::str::from_utf8(payload).ok()?);
    }
    let levels: Vec<&str> = topic.split('/').collect();
    match levels[..] {
        ["$SYS", "brokers", _, "clients", id, "connected"] => Some(Presence::Connected(id.to_string())),
        ["$SYS", "brokers", _, "clients", id, "disconnected"] => {
            let reason = serde_json::from_slice::<serde_json::Value>(payload).ok();
            let reason = reason.as_ref().and_then(|v| v["reason"].as_str());
            // The old connection of an id that connected again: the id is still there.
            (!matches!(reason, Some("takenover" | "discarded"))).then(|| Presence::Gone(id.to_string()))
        }
        _ => None,
    }
}

/// Reads one line of mosquitto's log (`TIMESTAMP: MESSAGE`).
fn read_mosquitto_log(line: &str) -> Option<Presence> {
    let message = line.split_once(": ").map_or(line, |(_, m)| m).trim_end();
    if let Some(rest) = message.strip_prefix("New client connected from ") {
        let (_, after) = rest.split_once(" as ")?;
        let id = after.rsplit_once(" (").map_or(after, |(id, _)| id);
        return Some(Presence::Connected(id.trim_end_matches('.').to_string()));
    }
    if let Some(rest) = message.strip_prefix("Socket error on client ") {
        return Some(Presence::Gone(rest.strip_suffix(", disconnecting.")?.to_string()));
    }
    let rest = message.strip_prefix("Client ")?;
    [
        "disconnected.",
        "closed its connection.",
        "has exceeded timeout, disconnecting.",
        "disconnected due to out of memory.",
    ]
    .iter()
    .find_map(|end| rest.strip_suffix(end)?.strip_suffix(' '))
    .map(|id| Presence::Gone(id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::{Presence, read_sys};

    /// A line of mosquitto's log on its `$SYS` topic, read.
    fn log(line: &str) -> Option<Presence> {
        read_sys("$SYS/broker/log/N", line.as_bytes())
    }

    /// What mosquitto (`log_dest topic`) and EMQX tell of their clients, read into presence.
    #[test]
    fn mosquitto_s_log_lines_tell_clients_coming_and_going() {
        let connected = Presence::Connected("esp32-client-chofu".into());
        let gone = Presence::Gone("esp32-client-chofu".into());
        // As mosquitto 2.0.11 wrote them.
        assert_eq!(
            log("1796550186: New client connected from 127.0.0.1:57126 as esp32-client-chofu (p2, c1, k60)."),
            Some(connected.clone())
        );
        assert_eq!(
            log("1796550188: New client connected from 10.0.0.5:1 as esp32-client-chofu (p2, c1, k60, u'a')."),
            Some(connected)
        );
        assert_eq!(log("1796550186: Client esp32-client-chofu disconnected."), Some(gone.clone()));
        assert_eq!(log("1796550198: Client esp32-client-chofu closed its connection."), Some(gone.clone()));
        assert_eq!(log("1: Client esp32-client-chofu has exceeded timeout, disconnecting."), Some(gone.clone()));
        assert_eq!(log("1: Socket error on client esp32-client-chofu, disconnecting."), Some(gone));
        assert_eq!(log("1796550186: New connection from 127.0.0.1:57126 on port 18831."), None);
        assert_eq!(log("1: Client esp32-client-chofu already connected, closing old connection."), None);
        assert_eq!(log("garbage"), None);
        assert_eq!(read_sys("$SYS/broker/log/N", &[0xff, 0xfe]), None);
    }

    #[test]
    fn emqx_s_client_events_tell_clients_coming_and_going_but_not_a_takeover() {
        let topic = |id: &str, event: &str| format!("$SYS/brokers/emqx@10.0.0.1/clients/{id}/{event}");
        assert_eq!(
            read_sys(&topic("esp32-client-chofu", "connected"), br#"{"clientid":"esp32-client-chofu"}"#),
            Some(Presence::Connected("esp32-client-chofu".into()))
        );
        assert_eq!(
            read_sys(&topic("esp32-client-chofu", "disconnected"), br#"{"reason":"keepalive_timeout"}"#),
            Some(Presence::Gone("esp32-client-chofu".into()))
        );
        assert_eq!(read_sys(&topic("a", "disconnected"), b"not json"), Some(Presence::Gone("a".into())));
        assert_eq!(read_sys(&topic("a", "disconnected"), br#"{"reason":"takenover"}"#), None);
        assert_eq!(read_sys(&topic("a", "disconnected"), br#"{"reason":"discarded"}"#), None);
        assert_eq!(read_sys(&topic("a", "subscribed"), b"{}"), None);
        assert_eq!(read_sys("$SYS/brokers/n/clients/a/b/connected", b"{}"), None);
    }
}
