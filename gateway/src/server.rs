//! The HTTP side: the phone control page on `/`, the 2021 WebSocket protocols on `/ws` and `/speed`, the v2
//! protocol on `/ws/v2` (all driven by [`crate::session`]), the state snapshot on `/api/state`, the layout picture on
//! `/api/layout`, the command history on `/api/history`, Prometheus metrics on `/metrics` and the 2023 state
//! manager's Connect API ([`crate::state_manager`]), all over one [`Core`]; and the sensor ingest on `/registerPosition` of a track in this process ([`ingest`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;

use serde_json::json;

use crate::core::Core;
use crate::session::{Protocol, upgrade};

/// The sensor ingest (`/registerPosition`) of a track in this process.
pub fn ingest(track: &hil::track::Track) -> Router {
    hil::boards2021::ingest::router(track.layout().clone(), track.senders(), track.readings())
}

/// The gateway's routes over `core` (with a track in this process, merge [`ingest`] too).
pub fn router(core: Core) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/page.js", get(|| async { asset(include_str!("page/page.js"), "text/javascript; charset=utf-8") }))
        .route("/page.css", get(|| async { asset(include_str!("page/page.css"), "text/css; charset=utf-8") }))
        .route("/api/layout", get(api_layout))
        .route("/metrics", get(|State(core): State<Core>| async move { core.metrics.render() }))
        .route("/ws", get(websocket))
        .route("/ws/v2", get(websocket))
        .route("/speed", get(websocket))
        .route("/api/state", get(api_state))
        .route("/api/history", get(api_history))
        .with_state(core.clone())
        .merge(crate::state_manager::router(core))
}

/// Time a client has to send a request's headers; a slower one is disconnected (it would hold a connection
/// for nothing).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Time in-flight requests get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` (with each client's address known, for the per-address limit) until `shutdown`,
/// then lets in-flight requests finish (up to 5 s). Small frames go out at once (no Nagle delay waiting for the
/// client's delayed acknowledgement); a client gets [`HEADER_TIMEOUT`] to send each request's headers.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let (alive, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(e) => {
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY on a connection: {e}");
        }
        tokio::spawn(connection(tcp, peer, app.clone(), stop.clone(), alive.clone()));
    }
    let _ = stop_tx.send(true);
    drop(alive);
    let _ = tokio::time::timeout(DRAIN, all_done.recv()).await;
    Ok(())
}

/// Serves one connection (HTTP/1.1, upgraded to a WebSocket where asked, or HTTP/2 with prior knowledge, as the
/// 2023 auto-operation process's Connect client speaks it); at `stop`, ends it gracefully.
async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    _alive: tokio::sync::mpsc::Sender<()>,
) {
    let service = hyper::service::service_fn(move |mut request: axum::http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { tower_service::Service::call(&mut app, request).await }
    });
    let mut http = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    http.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    http.http2().timer(hyper_util::rt::TokioTimer::new());
    let conn = http.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tcp), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
    }
    // A connection that fails only ends: nothing to tell anyone.
    let _ = conn.await;
}

/// `GET /ws` (the 2021 protocol), `GET /speed` (the 2021 speed protocol) and `GET /ws/v2`: a WebSocket
/// session.
async fn websocket(
    State(core): State<Core>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let protocol = match uri.path() {
        "/ws/v2" => Protocol::V2,
        "/speed" => Protocol::Speed2021,
        _ => Protocol::V2021,
    };
    upgrade(core, protocol, peer, &headers, ws)
}

/// Most history entries one page holds.
pub const HISTORY_PAGE: usize = 500;

/// `GET /api/history?limit=N&before=SEQ`: a page of the command history with results, newest first (needs a
/// journal): at most [`HISTORY_PAGE`] entries, before sequence number `SEQ` if given; `next` is the `before`
/// of the following page (absent on the last). Reads take turns ([`Core::history_reads`]): a caller beyond
/// them is told to come back (429).
async fn api_history(
    State(core): State<Core>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let Some(journal) = core.options.journal.clone() else {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": "no command history here: it is kept by the gateway that runs the track, started with --data-dir" }))).into_response();
    };
    let bad = |what: String| (StatusCode::BAD_REQUEST, Json(json!({ "error": what }))).into_response();
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=HISTORY_PAGE).contains(&n) => n,
        Some(_) => return bad(format!("limit must be 1..{HISTORY_PAGE} (page with before=SEQ)")),
    };
    let before = match q.get("before").map(|b| b.parse::<u64>()) {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(_)) => return bad("before must be a sequence number".into()),
    };
    let Ok(_turn) = core.history_reads.clone().try_acquire_owned() else {
        let busy = json!({ "error": "the history is being read by others: try again in a moment" });
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], Json(busy)).into_response();
    };
    match tokio::task::spawn_blocking(move || journal.history(limit, before)).await {
        Ok(Ok(entries)) => {
            let next = (entries.len() == limit).then(|| entries.last().map(|e| e["seq"].clone())).flatten();
            Json(json!({ "history": entries, "next": next })).into_response()
        }
        _ => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": "the journal cannot be read" }))).into_response()
        }
    }
}

/// `GET /`: the phone control page (no CDN: everything it needs is served from here).
async fn index() -> impl IntoResponse {
    axum::response::Html(include_str!("page/index.html"))
}

/// One of the page's files, with its content type.
fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(axum::http::header::CONTENT_TYPE, kind), (axum::http::header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// `GET /api/layout`: the layout as a schematic picture (tracks, devices, sensors, stations, trains).
async fn api_layout(State(core): State<Core>) -> impl IntoResponse {
    Json(core.layout().drawing())
}

/// `GET /api/state`: the mode, every device, train and board (the v2 snapshot without its `type`); 503 once the
/// track is stopped.
async fn api_state(State(core): State<Core>) -> Response {
    match core.link.snapshot().await {
        Some(state) => Json(state).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": "the track is stopped" }))).into_response(),
    }
}
