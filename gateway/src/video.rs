//! The video doors: WHEP viewers on `/whep/{camera}`, WHIP publishers on `/whip/{camera}` (behind the operator
//! token), the camera list on `/api/cameras`, the crew's publishing page on `/publish`, and the per-camera
//! metrics. The SFU itself is in the `video` crate.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get, post};
use video::{SessionError, Video};

use crate::core::Core;

/// Largest SDP offer accepted (a browser's, with every candidate, is a few KiB).
pub const MAX_OFFER: usize = 64 * 1024;

#[derive(Clone)]
struct Doors {
    core: Core,
    video: Video,
}

/// The video routes over a running [`Video`]; also records the cameras' metrics into the core's recorder every
/// second.
pub fn router(core: Core, video: Video) -> Router {
    let (metrics, cameras) = (core.metrics.clone(), video.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            metrics.cameras(&cameras.cameras());
        }
    });
    Router::new()
        .route("/api/cameras", get(|State(d): State<Doors>| async move { Json(d.video.cameras()) }))
        .route("/whep/{camera}", post(whep))
        .route("/whep/{camera}/{session}", delete(end))
        .route("/whip/{camera}", post(whip))
        .route("/whip/{camera}/{session}", delete(end_publisher))
        .route("/publish", get(|| async { asset(include_str!("page/publish.html"), "text/html; charset=utf-8") }))
        .route("/video.js", get(|| async { asset(include_str!("page/video.js"), "text/javascript; charset=utf-8") }))
        .with_state(Doors { core, video })
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// A plain-text error answer.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message.into()).into_response()
}

fn session_error(e: SessionError) -> Response {
    let status = match e {
        SessionError::UnknownCamera(_) | SessionError::UnknownSession(_) => StatusCode::NOT_FOUND,
        SessionError::BadOffer(_) => StatusCode::BAD_REQUEST,
        SessionError::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
        SessionError::TooManyFromAddress(_) => StatusCode::TOO_MANY_REQUESTS,
        SessionError::WebRtc(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// The offer of a WHIP/WHEP `POST`: `application/sdp`, UTF-8, at most [`MAX_OFFER`] bytes; else the status and
/// why.
fn offer(headers: &HeaderMap, body: &Bytes) -> Result<String, (StatusCode, String)> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/sdp") {
        return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, "the offer must be sent as application/sdp".into()));
    }
    if body.len() > MAX_OFFER {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, format!("an offer is at most {MAX_OFFER} bytes")));
    }
    String::from_utf8(body.to_vec()).map_err(|_| (StatusCode::BAD_REQUEST, "the offer is not UTF-8".into()))
}

fn created(kind: &str, camera: &str, session: &str, answer: String) -> Response {
    let location = format!("/{kind}/{camera}/{session}");
    let mut response = (StatusCode::CREATED, answer).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Location"));
    response
}

/// Opens a viewer's (WHEP) or a publisher's (WHIP) session from a `POST`.
async fn open(d: &Doors, camera: &str, from: IpAddr, headers: &HeaderMap, body: &Bytes, publisher: bool) -> Response {
    if d.video.sfu.hub(camera).is_none() {
        return session_error(SessionError::UnknownCamera(camera.to_string()));
    }
    let sdp = match offer(headers, body) {
        Ok(s) => s,
        Err((status, why)) => return error(status, why),
    };
    let (kind, opened) = if publisher {
        ("whip", d.video.sfu.publish(camera, sdp, from).await)
    } else {
        ("whep", d.video.sfu.view(camera, sdp, from).await)
    };
    match opened {
        Ok((session, answer)) => {
            if publisher {
                tracing::info!(camera, "a WHIP publisher now sends this camera");
            }
            created(kind, camera, &session, answer)
        }
        Err(e) => session_error(e),
    }
}

async fn whep(
    State(d): State<Doors>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(camera): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    open(&d, &camera, peer.ip(), &headers, &body, false).await
}

fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
}

fn unauthorised() -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, "publishing needs the operator token (Authorization: Bearer ...)");
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

async fn whip(
    State(d): State<Doors>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(camera): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !crate::operator::authorised(d.core.options.operator_token.as_deref(), bearer(&headers)) {
        return unauthorised();
    }
    open(&d, &camera, peer.ip(), &headers, &body, true).await
}

async fn end(State(d): State<Doors>, Path((_camera, session)): Path<(String, String)>) -> Response {
    match d.video.sfu.end(&session).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => session_error(e),
    }
}

async fn end_publisher(
    State(d): State<Doors>,
    Path((camera, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !crate::operator::authorised(d.core.options.operator_token.as_deref(), bearer(&headers)) {
        return unauthorised();
    }
    end(State(d), Path((camera, session))).await
}
