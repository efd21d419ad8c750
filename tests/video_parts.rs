//! Plain-function parts of the video crate without IO: the timestamp strip, the MJPEG wire, a camera's hub.

mod strip {
    use video::strip::*;

    /// A grey picture stamped with `t`, as its luma plane (grey: luma is any channel).
    fn stamped(w: usize, h: usize, fill: u8, t: u64) -> Vec<u8> {
        let mut rgb = vec![fill; w * h * 3];
        stamp_rgb(&mut rgb, w, t);
        rgb.chunks_exact(3).map(|p| p[0]).collect()
    }

    #[test]
    fn a_stamped_plane_reads_back_its_time() {
        for (w, h) in [(320, 240), (640, 360), (1280, 720)] {
            let t = 1_795_000_123_456;
            let plane = stamped(w, h, 90, t);
            assert_eq!(read_luma(&plane, w, h, w), Some(t % (1 << BITS)));
            assert_eq!(delay_ms(t % (1 << BITS), t + 42), 42);
        }
    }

    #[test]
    fn a_plane_without_a_strip_reads_nothing() {
        assert_eq!(read_luma(&[128u8; 320 * 240], 320, 240, 320), None);
        let mut plane = stamped(320, 240, 0, 12345);
        // One flipped bit breaks the parity.
        let b = block(320);
        for y in 0..b {
            for x in 2 * b..3 * b {
                plane[y * 320 + x] = 255 - plane[y * 320 + x];
            }
        }
        assert_eq!(read_luma(&plane, 320, 240, 320), None);
    }
}

mod mjpeg {
    use video::mjpeg::*;

    #[test]
    fn the_firmware_stream_parses_back_into_its_frames_whatever_the_pieces() {
        let frames: Vec<Vec<u8>> = (0..5u8).map(|i| vec![0xff, 0xd8, i, 13, 10, 0xff, 0xd9]).collect();
        let mut stream = stream_head();
        for f in &frames {
            stream.extend(frame_part(f));
        }
        for piece in [1, 3, 7, 64, stream.len()] {
            let mut p = MjpegParser::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                got.extend(p.feed(chunk).unwrap());
            }
            assert_eq!(got, frames, "pieces of {piece}");
        }
    }

    #[test]
    fn the_head_is_the_firmware_s_bytes() {
        assert_eq!(
            stream_head(),
            b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: multipart/x-mixed-replace; \
              boundary=123456789000000000000987654321\r\n\r\n--123456789000000000000987654321\r\n"
                .to_vec()
        );
    }

    #[test]
    fn a_stream_that_is_not_mjpeg_or_is_too_large_is_refused() {
        let mut p = MjpegParser::default();
        assert!(matches!(p.feed(b"HTTP/1.1 404 Not Found\r\n\r\n"), Err(MjpegError::NotMjpeg(_))));
        let mut p = MjpegParser::default();
        let mut s = stream_head();
        s.extend(format!("Content-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", MAX_FRAME + 1).bytes());
        assert_eq!(p.feed(&s), Err(MjpegError::TooLarge(MAX_FRAME + 1)));
        let mut p = MjpegParser::default();
        assert!(matches!(p.feed(&vec![b'x'; 10_000]), Err(MjpegError::TooLarge(_))));
    }
}

mod hub {
    use std::sync::atomic::Ordering;

    use sim::layout::Camera;
    use sim::layout::CameraView;
    use video::hub::*;
    use video::rtp;

    fn hub() -> Hub {
        Hub::new(Camera {
            id: "c".into(),
            name_ja: "c".into(),
            name_en: "c".into(),
            view: CameraView::Station(0),
            board: None,
        })
    }

    fn packet(ssrc: u32, seq: u16, ts: u32, marker: bool) -> rtp::Packet {
        let mut p = rtp::Packet { payload: video::bytes::Bytes::from_static(&[0x65, 1, 2]), ..Default::default() };
        (p.header.ssrc, p.header.sequence_number, p.header.timestamp, p.header.marker) = (ssrc, seq, ts, marker);
        p
    }

    #[test]
    fn loss_from_the_source_asks_for_a_keyframe() {
        let hub = hub();
        let mut gate = hub.keyframe_requests();
        assert!(!hub.push(packet(7, 1, 0, true)));
        assert!(!hub.push(packet(7, 2, 3000, true)));
        assert!(!gate.due(), "no loss, no request");
        assert!(hub.push(packet(7, 4, 6000, true)), "packet 3 is missing");
        assert!(gate.due(), "the loss asked for a keyframe");
        assert_eq!(hub.counters.keyframe_requests.load(Ordering::Relaxed), 1);
        // Requests closer than 300 ms wait: due again only after the spacing.
        hub.request_keyframe();
        assert!(!gate.due());
    }

    #[test]
    fn a_new_source_continues_the_hub_s_stream_without_a_gap() {
        let hub = hub();
        let mut rx = hub.subscribe();
        hub.push(packet(1, 100, 90_000, true));
        hub.push(packet(1, 101, 93_000, true));
        // Another publisher, other numbers: viewers see the next sequence number and a timestamp one frame on.
        hub.push(packet(2, 5, 7, true));
        let got: Vec<(u16, u32)> =
            (0..3).map(|_| rx.try_recv().unwrap()).map(|p| (p.header.sequence_number, p.header.timestamp)).collect();
        assert_eq!(got[1].0, got[0].0.wrapping_add(1));
        assert_eq!(got[2].0, got[1].0.wrapping_add(1));
        assert_eq!(got[1].1.wrapping_sub(got[0].1), 3000);
        assert_eq!(got[2].1.wrapping_sub(got[1].1), 3000);
        assert_eq!(hub.counters.frames.load(Ordering::Relaxed), 3);
        // Padding-only packets are dropped.
        assert!(!hub.push(rtp::Packet::default()));
        assert!(rx.try_recv().is_err());
    }
}
