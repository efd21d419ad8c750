//! How either role reaches the broker: its URL (`mqtt://HOST:PORT`, or `mqtts://HOST:PORT` for TLS), the login,
//! the CA to trust, and the MQTT client's options; and the connection loop with its backoff.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, EventLoop, LastWill, MqttOptions, QoS, TlsConfiguration, Transport};

/// Largest message either side sends or takes (the layout file is the largest, tens of KiB).
pub const MAX_MESSAGE: usize = 1 << 20;

/// Keep-alive: how soon the broker notices a side that is gone without closing its connection (and sends the
/// core's will).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// The longest wait before trying the broker again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Requests (publishes, subscribes) the client queues before a publisher waits.
const QUEUE: usize = 4096;

/// Where the broker is and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Whether to speak TLS (`mqtts://`).
    pub tls: bool,
    /// User name and password, if the broker wants a login.
    pub login: Option<(String, String)>,
    /// PEM file of the CA that signed the broker's certificate (`mqtts://` only; the system's roots otherwise).
    pub ca_file: Option<std::path::PathBuf>,
}

impl Broker {
    /// Reads `mqtt://HOST:PORT` or `mqtts://HOST:PORT` (the port defaults to 1883 and 8883).
    pub fn parse(url: &str) -> Result<Broker, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else {
            return Err(format!("`{url}` is not a broker URL: mqtt://HOST:PORT or mqtts://HOST:PORT"));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => {
                (host, port.parse::<u16>().map_err(|_| format!("`{port}` in `{url}` is not a port number"))?)
            }
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(format!("`{url}` names no host: mqtt://HOST:PORT"));
        }
        Ok(Broker { host: host.to_string(), port, tls, login: None, ca_file: None })
    }

    /// The URL, for messages (without the login).
    pub fn url(&self) -> String {
        format!("{}://{}:{}", if self.tls { "mqtts" } else { "mqtt" }, self.host, self.port)
    }

    /// The client's options: `client_id`, the login, TLS, and the will if given.
    pub fn options(&self, client_id: &str, will: Option<LastWill>) -> Result<MqttOptions, String> {
        let mut options = MqttOptions::new(client_id, &self.host, self.port);
        options
            .set_keep_alive(KEEP_ALIVE)
            .set_max_packet_size(MAX_MESSAGE, MAX_MESSAGE)
            .set_request_channel_capacity(QUEUE)
            .set_clean_session(true);
        if let Some((user, password)) = &self.login {
            options.set_credentials(user, password);
        }
        if let Some(will) = will {
            options.set_last_will(will);
        }
        if let Some(tls) = self.tls()? {
            options.set_transport(Transport::tls_with_config(tls));
        }
        Ok(options)
    }

    /// The TLS settings of an mqtts:// broker (`None` for mqtt://).
    pub fn tls(&self) -> Result<Option<TlsConfiguration>, String> {
        Ok(if self.tls { Some(TlsConfiguration::Rustls(Arc::new(self.tls_config()?))) } else { None })
    }

    /// The TLS settings: the CA file's certificates, or the system's roots.
    fn tls_config(&self) -> Result<rustls::ClientConfig, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("the CA file {} is not PEM certificates: {e}", path.display()))?;
                if certs.is_empty() {
                    return Err(format!("the CA file {} holds no certificate", path.display()));
                }
                for cert in certs {
                    roots.add(cert).map_err(|e| format!("a certificate in {} is not usable: {e}", path.display()))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    // A system certificate rustls cannot use is skipped, as browsers do.
                    let _ = roots.add(cert);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }

    /// A client and its event loop.
    pub fn client(&self, client_id: &str, will: Option<LastWill>) -> Result<(AsyncClient, EventLoop), String> {
        Ok(AsyncClient::new(self.options(client_id, will)?, QUEUE))
    }
}

/// A QoS 1 message.
pub const AT_LEAST_ONCE: QoS = QoS::AtLeastOnce;

/// What the connection loop saw.
#[derive(Debug)]
pub enum Seen {
    /// Connected (again): subscribe and announce.
    Connected,
    /// A message.
    Message {
        /// Its topic.
        topic: String,
        /// Its payload.
        payload: bytes::Bytes,
    },
    /// The connection is lost; the loop tries again after a backoff.
    Lost(String),
}

/// Drives `events` for ever, handing what it sees to `seen`; after a failure, waits (250 ms, doubling to
/// [`MAX_BACKOFF`]) before the next attempt. Ends when `seen` returns `false`.
pub async fn drive(broker: String, mut events: EventLoop, mut seen: impl FnMut(Seen) -> bool) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let keep_on = match events.poll().await {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(250);
                seen(Seen::Connected)
            }
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                seen(Seen::Message { topic: p.topic, payload: p.payload })
            }
            Ok(_) => true,
            Err(e) => {
                let keep_on = seen(Seen::Lost(format!("broker {broker}: {e}")));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                keep_on
            }
        };
        if !keep_on {
            return;
        }
    }
}
