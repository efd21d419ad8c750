//! Free ports, an HTTP app served on loopback, WebSocket frames sent and awaited, devices read from a state.

/// A free loopback port (bound, then released for the caller to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `what` (a process just started) takes connections on loopback port `port` (fails after 10 s).
pub fn listening(what: &str, port: u16) {
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{what} did not listen on {port}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The sum of a Prometheus metric's values in `text` over the lines of `name` whose labels contain every one of
/// `labels` (e.g. `"\"applied\""`).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Serves `app` on a free loopback port until the test ends; its address.
pub async fn serve_app(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(gateway::server::serve(listener, app, std::future::pending()));
    addr
}

/// A test's WebSocket client connection.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends `v` as a text frame.
pub async fn send(ws: &mut Ws, v: serde_json::Value) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(v.to_string().into())).await.unwrap();
}

/// A device's state (`ON`, `OFF`) in an `/api/state` document or a v2 snapshot, by name.
pub fn device_state(state: &serde_json::Value, name: &str) -> Option<String> {
    state["devices"].as_array()?.iter().find(|d| d["name"] == name)?["state"].as_str().map(String::from)
}

/// Reads frames until one satisfies `want` (or fails after 5 s); returns it.
pub async fn expect(ws: &mut Ws, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    expect_within(ws, std::time::Duration::from_secs(5), want).await
}

/// Reads text frames until one satisfies `want`, within `limit`.
pub async fn expect_within(
    ws: &mut Ws,
    limit: std::time::Duration,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    use futures_util::StreamExt;
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let msg = tokio::time::timeout(left, ws.next()).await.expect("a frame in time").expect("open").expect("frame");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("JSON frame");
            if want(&v) {
                return v;
            }
        }
    }
}

/// A WebSocket to `path` on `addr`.
pub async fn ws(addr: std::net::SocketAddr, path: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await.expect("connect").0
}

/// The gateway's `/api/state` at `addr`.
pub async fn api_state(addr: std::net::SocketAddr) -> serde_json::Value {
    let text = reqwest::get(format!("http://{addr}/api/state")).await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap()
}
