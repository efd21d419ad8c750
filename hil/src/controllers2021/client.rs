//! The client that drives onboard speed controllers over the 2021 gRPC `Speed.ControlSpeed`, real or virtual
//! alike: one request at a time per controller, a timeout per attempt, bounded retries with backoff for
//! failures that may pass, every failure classified as the servo boards' are ([`Failure`]). Success only on
//! an answer `SUCCESS`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tonic::transport::{Channel, Endpoint};

use crate::boards2021::client::{ClientConfig, Failure, with_retries};
use crate::controllers2021::proto::speed_client::SpeedClient as Grpc;
use crate::controllers2021::proto::{Code, SendSpeed, Train};

/// A controller's channel, and its turn (one request at a time).
type Line = (Channel, Arc<tokio::sync::Mutex<()>>);

/// Drives speed controllers by address (`host:port`).
#[derive(Clone)]
pub struct SpeedClient {
    config: ClientConfig,
    channels: Arc<Mutex<HashMap<String, Line>>>,
}

impl SpeedClient {
    /// A client with the given settings.
    pub fn new(config: ClientConfig) -> SpeedClient {
        SpeedClient { config, channels: Arc::default() }
    }

    fn endpoint(&self, address: &str) -> Result<Endpoint, Failure> {
        Endpoint::from_shared(format!("http://{address}"))
            .map(|e| e.connect_timeout(self.config.timeout).timeout(self.config.timeout))
            .map_err(|e| Failure::BadAnswer { board: address.to_string(), detail: format!("bad address: {e}") })
    }

    /// The controller's channel (connected on first use, and again after a failure) and its turn.
    fn channel(&self, address: &str) -> Result<Line, Failure> {
        let mut channels = self.channels.lock().expect("channels");
        if let Some(c) = channels.get(address) {
            return Ok(c.clone());
        }
        let entry = (self.endpoint(address)?.connect_lazy(), Arc::default());
        channels.insert(address.to_string(), entry.clone());
        Ok(entry)
    }

    /// Sends `speed` for `train` (its name, as the 2021 `Train` enum names it) to the controller at `address`.
    pub async fn set(&self, address: &str, train: &str, speed: i32) -> Result<(), Failure> {
        let (channel, turn) = self.channel(address)?;
        let _turn = turn.lock().await;
        let request = SendSpeed { speed, train: Train::from_str_name(train).unwrap_or(Train::Unknown) as i32 };
        with_retries(&self.config, || async {
            match Grpc::new(channel.clone()).control_speed(request).await {
                Ok(answer) if answer.get_ref().code == Code::Success as i32 => Ok(()),
                Ok(answer) => Err(Failure::Refused {
                    board: address.to_string(),
                    answer: Code::try_from(answer.get_ref().code).map_or("an unknown code", |c| c.as_str_name()).into(),
                }),
                Err(status) => Err(classify(address, &status)),
            }
        })
        .await
    }

    /// Whether a controller answers at `address`: a connection (TCP and the HTTP/2 handshake) within the
    /// timeout. It sends no speed: a `ControlSpeed` would kick the motor.
    pub async fn reachable(&self, address: &str) -> bool {
        match self.endpoint(address) {
            Ok(endpoint) => endpoint.connect().await.is_ok(),
            Err(_) => false,
        }
    }
}

fn classify(address: &str, status: &tonic::Status) -> Failure {
    match status.code() {
        tonic::Code::Unavailable => Failure::Unreachable(address.to_string()),
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => Failure::Timeout(address.to_string()),
        _ => Failure::BadAnswer { board: address.to_string(), detail: status.to_string() },
    }
}
