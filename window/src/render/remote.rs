//! A window attached to a gateway: a v2 WebSocket on its own thread, frames in and commands out over
//! crossbeam channels; reconnects by itself.

use std::net::TcpStream;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// What the connection thread reports.
#[derive(Debug)]
pub enum Incoming {
    /// Connected (a snapshot follows).
    Connected,
    /// A server frame.
    Frame(String),
    /// Lost the connection (or never got it); retrying.
    Disconnected(String),
}

/// The window's end of the connection.
pub struct Connection {
    /// Frames to send.
    pub outbox: Sender<String>,
    /// What arrived.
    pub inbox: Receiver<Incoming>,
}

/// The v2 WebSocket URL of a gateway at `base` (`http://host:port`, `ws://host:port` or `host:port`).
pub fn v2_url(base: &str) -> String {
    let host = base.trim_start_matches("http://").trim_start_matches("ws://").trim_end_matches('/');
    let host = host.split('/').next().unwrap_or(host);
    format!("ws://{host}/ws/v2")
}

/// Starts the connection thread for the gateway at `base`.
pub fn connect(base: &str) -> Connection {
    let url = v2_url(base);
    let (outbox, out_rx) = unbounded::<String>();
    let (in_tx, inbox) = unbounded::<Incoming>();
    std::thread::Builder::new()
        .name("gateway connection".into())
        .spawn(move || {
            loop {
                match tungstenite::connect(url.as_str()) {
                    Ok((mut ws, _)) => {
                        if in_tx.send(Incoming::Connected).is_err() {
                            return;
                        }
                        let reason = serve(&mut ws, &out_rx, &in_tx);
                        if in_tx.send(Incoming::Disconnected(reason)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        if in_tx.send(Incoming::Disconnected(format!("cannot connect to {url}: {e}"))).is_err() {
                            return;
                        }
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .expect("spawn the connection thread");
    Connection { outbox, inbox }
}

/// Moves frames both ways until the connection fails; returns why.
fn serve(ws: &mut WebSocket<MaybeTlsStream<TcpStream>>, out: &Receiver<String>, inbox: &Sender<Incoming>) -> String {
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        let _ = s.set_read_timeout(Some(Duration::from_millis(15)));
    }
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                if inbox.send(Incoming::Frame(t.to_string())).is_err() {
                    return "window closed".into();
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return format!("connection lost: {e}"),
        }
        while let Ok(frame) = out.try_recv() {
            if let Err(e) = ws.send(Message::Text(frame.into())) {
                return format!("connection lost: {e}");
            }
        }
    }
}
