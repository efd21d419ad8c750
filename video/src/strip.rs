//! The capture timestamp every frame carries: a strip of black and white blocks along the top edge, so that a
//! viewer (a Rust test, the load tool, a browser reading a canvas) can measure the delay end to end from the
//! picture alone, through any codec.
//!
//! Layout of the strip, left to right, each block `block(width)` pixels square: a white and a black marker, then
//! [`BITS`] bits of the capture time (Unix milliseconds modulo 2^36, most significant first; white = 1), then
//! an even-parity block. The page's reader (`gateway/src/page/video.js`) implements the same layout.

/// Bits of the timestamp (milliseconds modulo 2^36: about 795 days before it wraps).
pub const BITS: usize = 36;
/// Blocks in the strip: two markers, the bits, the parity block.
pub const BLOCKS: usize = 2 + BITS + 1;
const MODULUS: u64 = 1 << BITS;

/// Side of one block in pixels for a frame this wide: a multiple of 8, at least 8.
pub fn block(width: usize) -> usize {
    (width / (BLOCKS + 1) / 8 * 8).max(8)
}

/// The strip's block values (true = white) for a capture time in Unix milliseconds.
pub fn blocks(unix_ms: u64) -> [bool; BLOCKS] {
    let t = unix_ms % MODULUS;
    let mut out = [false; BLOCKS];
    out[0] = true;
    for i in 0..BITS {
        out[2 + i] = (t >> (BITS - 1 - i)) & 1 == 1;
    }
    out[BLOCKS - 1] = t.count_ones() % 2 == 1;
    out
}

/// Draws the strip into an RGB picture (3 bytes per pixel, rows `width * 3` long).
pub fn stamp_rgb(rgb: &mut [u8], width: usize, unix_ms: u64) {
    let b = block(width);
    for (i, white) in blocks(unix_ms).iter().enumerate() {
        let v = if *white { 255 } else { 0 };
        for row in rgb.chunks_mut(width * 3).take(b) {
            row[i * b * 3..(i + 1) * b * 3].fill(v);
        }
    }
}

/// Reads the capture time (Unix milliseconds modulo 2^36) back from a luma plane; `None` when the strip is not
/// there or does not check (markers without contrast, wrong parity).
pub fn read_luma(plane: &[u8], width: usize, height: usize, stride: usize) -> Option<u64> {
    let b = block(width);
    if width < BLOCKS * b || height < b || plane.len() < stride * (b - 1) + BLOCKS * b {
        return None;
    }
    // The mean of each block's middle half, so that blurred edges do not count.
    let mean = |i: usize| -> u32 {
        let (x0, y0) = (i * b + b / 4, b / 4);
        let mut sum = 0u32;
        for y in y0..y0 + b / 2 {
            sum += plane[y * stride + x0..y * stride + x0 + b / 2].iter().map(|&v| v as u32).sum::<u32>();
        }
        sum / (b as u32 / 2).pow(2)
    };
    let (white, black) = (mean(0), mean(1));
    if white < black + 64 {
        return None;
    }
    let threshold = (white + black) / 2;
    let mut t = 0u64;
    for i in 0..BITS {
        t = (t << 1) | u64::from(mean(2 + i) > threshold);
    }
    let parity = mean(BLOCKS - 1) > threshold;
    (parity == (t.count_ones() % 2 == 1)).then_some(t)
}

/// Milliseconds from a read capture time to `now_unix_ms`, modulo the strip's range.
pub fn delay_ms(captured: u64, now_unix_ms: u64) -> u64 {
    (now_unix_ms % MODULUS + MODULUS - captured) % MODULUS
}

/// The wall clock in Unix milliseconds (the strip's clock).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
