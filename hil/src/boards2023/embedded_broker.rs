//! An MQTT broker inside the twin's process (rumqttd, MQTT 3.1.1 on loopback), for the 2023 boards when no
//! broker is given: `serve --layout chofufes2023` then runs its virtual boards with nothing installed. It is a
//! plain broker for the boards' topics (QoS 0 and 1, wildcards; the 2023 protocol needs no retain, no will and
//! no MQTT 5); the on-site core's wire to edges needs a real one (mosquitto, EMQX).
//!
//! rumqttd tells nobody when a client comes or goes, and the 2023 boards say nothing either (no will, no
//! heartbeat), so clients reach it through a front in this process that reads each connection's CONNECT and
//! reports [`Presence`]: a client id connected (its first connection), and gone when its last one closes (a
//! client that connects again before its old connection is gone stays connected).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;

use crate::boards2023::presence::Presence;

/// A broker running in this process until the process ends.
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    /// Where clients connect (loopback).
    pub addr: SocketAddr,
    presence: broadcast::Sender<Presence>,
}

/// The largest packet a client may send it (the 2023 boards' own limit is 256 bytes).
pub const MAX_PACKET: usize = 64 * 1024;

impl EmbeddedBroker {
    /// Starts one on a free loopback port and waits (up to 5 s) until it takes connections.
    pub async fn start() -> std::io::Result<EmbeddedBroker> {
        // The broker's own port, free now and given back at once for it to take (it binds it itself).
        let inner = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
        let connections = ConnectionSettings {
            connection_timeout_ms: 5000,
            max_payload_size: MAX_PACKET,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        };
        let server = ServerSettings {
            name: "boards".into(),
            listen: inner,
            tls: None,
            next_connection_delay_ms: 1,
            connections,
        };
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
        while !answers(inner).await {
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!("the embedded MQTT broker did not listen on {inner}")));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let front = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        front.set_nonblocking(true)?;
        let addr = front.local_addr()?;
        let (presence, _) = broadcast::channel(256);
        let tx = presence.clone();
        std::thread::Builder::new().name("mqtt-front".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(serve_front(front, inner, tx));
        })?;
        Ok(EmbeddedBroker { addr, presence })
    }

    /// Clients coming and going from now on.
    pub fn presence(&self) -> broadcast::Receiver<Presence> {
        self.presence.subscribe()
    }

    /// The broker as the 2023 boards' broker of a track, with its presence reports.
    pub fn board_broker(&self) -> crate::boards2023::link::BoardBroker {
        crate::boards2023::link::BoardBroker {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
            login: None,
            tls: None,
            presence: Some(self.presence.clone()),
        }
    }
}

/// The front: every connection passed through to the broker, its CONNECT's client id reported.
async fn serve_front(front: TcpListener, inner: SocketAddr, presence: broadcast::Sender<Presence>) {
    let Ok(front) = tokio::net::TcpListener::from_std(front) else { return };
    let connections = Connections { counts: Default::default(), presence };
    while let Ok((client, _)) = front.accept().await {
        tokio::spawn(pass_through(client, inner, connections.clone()));
    }
}

/// The open connections of each client id, reporting an id's first and its last.
#[derive(Clone)]
struct Connections {
    counts: std::sync::Arc<std::sync::Mutex<HashMap<String, u32>>>,
    presence: broadcast::Sender<Presence>,
}

impl Connections {
    fn opened(&self, id: &str) {
        let mut counts = self.counts.lock().expect("connections");
        let n = counts.entry(id.to_string()).or_default();
        *n += 1;
        if *n == 1 {
            let _ = self.presence.send(Presence::Connected(id.to_string()));
        }
    }

    fn closed(&self, id: &str) {
        let mut counts = self.counts.lock().expect("connections");
        let n = counts.entry(id.to_string()).or_default();
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(id);
            let _ = self.presence.send(Presence::Gone(id.to_string()));
        }
    }
}

/// One connection: its first packet read (a CONNECT names the client), then bytes both ways until either side
/// closes.
async fn pass_through(mut client: tokio::net::TcpStream, inner: SocketAddr, connections: Connections) {
    let mut first = bytes::BytesMut::new();
    let id = loop {
        let mut probe = first.clone();
        match rumqttc::Packet::read(&mut probe, MAX_PACKET) {
            Ok(rumqttc::Packet::Connect(c)) => break Some(c.client_id),
            Ok(_) => break None,
            Err(rumqttc::Error::InsufficientBytes(_)) => {}
            Err(_) => break None,
        }
        match client.read_buf(&mut first).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    };
    let Ok(mut broker) = tokio::net::TcpStream::connect(inner).await else { return };
    let _ = client.set_nodelay(true);
    let _ = broker.set_nodelay(true);
    if broker.write_all(&first).await.is_err() {
        return;
    }
    if let Some(id) = &id {
        connections.opened(id);
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
    if let Some(id) = &id {
        connections.closed(id);
    }
}

/// Whether a broker at `addr` accepts an MQTT connection (a whole CONNECT / CONNACK, so that the broker logs no
/// broken connection; the socket is then closed, which rumqttd takes quietly, unlike a DISCONNECT).
async fn answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else { return false };
    let mut packet = bytes::BytesMut::new();
    if rumqttc::Connect::new("plarail-twin-probe").write(&mut packet).is_err()
        || stream.write_all(&packet).await.is_err()
    {
        return false;
    }
    let mut connack = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut connack)).await;
    matches!(read, Ok(Ok(_))) && connack[0] == 0x20
}
