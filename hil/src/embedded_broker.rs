//! An MQTT broker inside the twin's process (rumqttd, MQTT 3.1.1 on loopback), for the 2023 boards when no
//! broker is given: `serve --layout chofufes2023` then runs its virtual boards with nothing installed. It is a
//! plain broker for the boards' topics (QoS 0 and 1, wildcards; the 2023 protocol needs no retain, no will and
//! no MQTT 5); the on-site core's wire to edges needs a real one (mosquitto, EMQX).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// A broker running in this process until the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedBroker {
    /// Where it listens (loopback).
    pub addr: SocketAddr,
}

/// The largest packet a client may send it (the 2023 boards' own limit is 256 bytes).
pub const MAX_PACKET: usize = 64 * 1024;

impl EmbeddedBroker {
    /// Starts one on a free loopback port and waits (up to 5 s) until it takes connections.
    pub fn start() -> std::io::Result<EmbeddedBroker> {
        // A free port, given back at once for the broker to take (it binds it itself).
        let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
        let connections = ConnectionSettings {
            connection_timeout_ms: 5000,
            max_payload_size: MAX_PACKET,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        };
        let server =
            ServerSettings { name: "boards".into(), listen: addr, tls: None, next_connection_delay_ms: 1, connections };
        let config = Config {
            id: 0,
            router: RouterConfig {
                max_connections: 1000,
                max_outgoing_packet_count: 200,
                max_segment_size: 1024 * 1024,
                max_segment_count: 10,
                ..RouterConfig::default()
            },
            v4: Some(HashMap::from([("boards".to_string(), server)])),
            ..Config::default()
        };
        let mut broker = Broker::new(config);
        std::thread::Builder::new().name("mqtt-broker".into()).spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!("the embedded MQTT broker stopped: {e}");
            }
        })?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !answers(addr) {
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!("the embedded MQTT broker did not listen on {addr}")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(EmbeddedBroker { addr })
    }
}

/// Whether a broker at `addr` accepts an MQTT connection (a whole CONNECT / CONNACK, so that the broker logs no
/// broken connection; the socket is then closed, which rumqttd takes quietly, unlike a DISCONNECT).
fn answers(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(addr) else { return false };
    let mut packet = bytes::BytesMut::new();
    let written = rumqttc::Connect::new("plarail-twin-probe").write(&mut packet).is_ok();
    let mut connack = [0u8; 4];
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    written && stream.write_all(&packet).is_ok() && stream.read_exact(&mut connack).is_ok() && connack[0] == 0x20
}
