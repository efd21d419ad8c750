//! The ESP32 camera board's MJPEG stream (2022's onboard camera, firmware esp32-cam-mjpeg) as plain functions:
//! the exact bytes it sends, and a parser that takes the stream in pieces and yields the JPEG frames. IO-free;
//! the virtual board (`camera_board.rs`) and the puller (`pull.rs`) do the IO.

/// The multipart boundary the firmware uses.
pub const BOUNDARY: &str = "123456789000000000000987654321";
/// Largest JPEG frame accepted (a QVGA frame at quality 12 is about 10 KiB).
pub const MAX_FRAME: usize = 1 << 20;
/// Largest part header accepted.
const MAX_HEADER: usize = 1024;

/// The response head of `GET /mjpeg/1`, byte for byte as the firmware sends it (no Content-Length, no
/// chunking), followed by the first boundary.
pub fn stream_head() -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: multipart/x-mixed-replace; \
         boundary={BOUNDARY}\r\n\r\n--{BOUNDARY}\r\n"
    )
    .into_bytes()
}

/// One frame's part: its header, the JPEG bytes, the next boundary.
pub fn frame_part(jpeg: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len()).into_bytes();
    out.extend_from_slice(jpeg);
    out.extend_from_slice(format!("\r\n--{BOUNDARY}\r\n").as_bytes());
    out
}

/// The answer to `GET /jpg`: one JPEG, `Content-type: image/jpeg`, no Content-Length; the connection closes.
pub fn single_jpeg(jpeg: &[u8]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nContent-type: image/jpeg\r\n\r\n".to_vec();
    out.extend_from_slice(jpeg);
    out
}

/// The answer to any other path: `200 text / plain` "Server is running!" with the path, method and argument
/// count, as the firmware's not-found handler writes it.
pub fn other(method: &str, uri: &str) -> Vec<u8> {
    // The ESP32 web server reports the path without the query, and the query's arguments as a count.
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let arguments = query.split('&').filter(|a| !a.is_empty()).count();
    let body = format!("Server is running!\n\nURI: {path}\nMethod: {method}\nArguments: {arguments}\n");
    format!("HTTP/1.1 200 OK\r\nContent-Type: text / plain\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        .into_bytes()
}

/// Why a stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MjpegError {
    /// The response was not `200` multipart.
    #[error("not an MJPEG stream: {0}")]
    NotMjpeg(String),
    /// A part was malformed.
    #[error("malformed part: {0}")]
    Malformed(String),
    /// A frame or header was larger than allowed.
    #[error("part too large ({0} bytes)")]
    TooLarge(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the HTTP response head.
    Head,
    /// Reading a part's headers (after a boundary line).
    PartHeader,
    /// Reading `n` bytes of JPEG.
    Body(usize),
    /// Reading the CRLF and boundary line after a body.
    Boundary,
}

/// Reads an MJPEG stream fed in arbitrary pieces.
#[derive(Debug, Clone)]
pub struct MjpegParser {
    buf: Vec<u8>,
    state: State,
    boundary: String,
}

impl Default for MjpegParser {
    fn default() -> Self {
        MjpegParser { buf: Vec::new(), state: State::Head, boundary: BOUNDARY.to_string() }
    }
}

impl MjpegParser {
    /// Feeds bytes; returns the JPEG frames they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, MjpegError> {
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        loop {
            match self.state {
                State::Head => {
                    let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                        return self.limit(MAX_HEADER * 4, frames);
                    };
                    let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                    let status = head.lines().next().unwrap_or_default();
                    if !status.starts_with("HTTP/1.") || status.split(' ').nth(1) != Some("200") {
                        return Err(MjpegError::NotMjpeg(status.to_string()));
                    }
                    let boundary = head
                        .lines()
                        .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
                        .filter(|l| l.to_ascii_lowercase().contains("multipart/x-mixed-replace"))
                        .and_then(|l| l.split("boundary=").nth(1))
                        .map(|b| b.trim().trim_matches('"').to_string())
                        .ok_or_else(|| MjpegError::NotMjpeg("no multipart boundary".into()))?;
                    self.boundary = boundary;
                    self.buf.drain(..end + 4);
                    self.state = State::Boundary;
                }
                State::Boundary => {
                    // The CRLF that ends a body, then `--boundary` and CRLF.
                    if self.buf.starts_with(b"\r\n") {
                        self.buf.drain(..2);
                    } else if self.buf.len() < 2 {
                        return Ok(frames);
                    }
                    let Some(end) = find(&self.buf, b"\r\n") else {
                        return self.limit(MAX_HEADER, frames);
                    };
                    let line = String::from_utf8_lossy(&self.buf[..end]).trim().to_string();
                    if line != format!("--{}", self.boundary) {
                        return Err(MjpegError::Malformed(format!("expected the boundary, got {line:?}")));
                    }
                    self.buf.drain(..end + 2);
                    self.state = State::PartHeader;
                }
                State::PartHeader => {
                    let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                        return self.limit(MAX_HEADER, frames);
                    };
                    let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
                        })
                        .ok_or_else(|| MjpegError::Malformed("a part without Content-Length".into()))?;
                    if length > MAX_FRAME {
                        return Err(MjpegError::TooLarge(length));
                    }
                    self.buf.drain(..end + 4);
                    self.state = State::Body(length);
                }
                State::Body(n) => {
                    if self.buf.len() < n {
                        return Ok(frames);
                    }
                    frames.push(self.buf.drain(..n).collect());
                    self.state = State::Boundary;
                }
            }
        }
    }

    fn limit(&self, max: usize, frames: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, MjpegError> {
        if self.buf.len() > max { Err(MjpegError::TooLarge(self.buf.len())) } else { Ok(frames) }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
