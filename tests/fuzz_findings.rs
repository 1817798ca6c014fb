//! Inputs the fuzz targets (fuzz/) found, each kept as a regression test: the replay must finish, within
//! issue 15's bound of 20 packets per capture frame plus a constant, and say what it did with the damage.
//! These run the debug binary, so an overflow or a debug assertion upstream would fail them as a panic.

mod common;

use std::path::Path;

use serde_json::Value;

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(name)
        .display()
        .to_string()
}

/// Replay `name` at full speed: its summary and export, after checking it exited 0 within the bound.
fn replay(name: &str, frames: u64) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("t.json");
    let out = common::pktpath(&[
        "replay",
        &data(name),
        "--headless",
        "--max-speed",
        "--export",
        export.to_str().unwrap(),
    ]);
    let summary = common::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let doc = common::read_json(&export);
    let packets = common::packets(&doc).len() as u64;
    assert!(
        packets <= 20 * frames + 50,
        "{packets} packets for {frames} frames\n{summary}"
    );
    (summary, doc)
}

#[test]
fn an_ack_megabytes_ahead_in_a_short_capture_fills_nothing_past_the_budget() {
    // 11 records (802.11 and Ethernet); the peer's ACK proves 14 MB of the server's stream missing: once
    // 10,445 packets, the app writing every byte of it as zeros.
    let (summary, doc) = replay("app-filler-far-ahead.pcap", 11);
    assert!(
        summary.contains(
            "not captured: 1 hole, 0 bytes supplied as filler (0 by the peer, 0 by the app); 14818560 bytes \
             unproven"
        ),
        "{summary}"
    );
    assert_eq!(doc["replay"]["repairs"]["filler_bytes_app"], 0);
}

#[test]
fn a_hole_of_tiny_peer_segments_costs_the_budget_per_segment() {
    // 5 records; the stack's recorded ACK proves 28 KB of the peer's stream missing, and the peer was seen
    // sending 86-byte segments: once 332 filler segments from the peer.
    let (summary, doc) = replay("peer-filler-tiny-segments.pcap", 5);
    assert!(
        summary.contains(
            "not captured: 1 hole, 0 bytes supplied as filler (0 by the peer, 0 by the app); 28416 bytes \
             unproven"
        ),
        "{summary}"
    );
    assert_eq!(doc["replay"]["repairs"]["filler_bytes_peer"], 0);
}

#[test]
fn a_pcapng_block_shorter_than_its_header_stops_reading_with_one_line_not_an_overflow() {
    // A Process Information Block whose length is 8: pcap-parser 0.17 subtracts 12 from it (a panic in a
    // debug build, `attempt to subtract with overflow`), so the reader checks every block length first.
    let out = common::pktpath(&["replay", &data("pib-short-block.pcapng"), "--headless"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert_eq!(common::stderr(&out), "");
    let first = common::stdout(&out).lines().next().unwrap().to_string();
    assert!(
        first.contains(
            "(pcapng, 0 records; reading stopped early: block 3 at byte 48: damaged block: block length 8 is \
             outside 12..=16777216)"
        ),
        "{first}"
    );
}

#[test]
fn a_recorded_segment_claiming_46_kb_it_does_not_hold_is_played_within_the_budget() {
    // 3 records; the recorded server's segment says (IPv6 payload length) 46,848 bytes, the capture holds a
    // few: once 129 segments of zeros from the app. Now 3 frames earn 12 KiB of zeros; the rest is a gap.
    let (summary, _) = replay("cut-segment-claims-46k.pcap", 3);
    assert!(
        summary.contains("virtual time 7.200 s, 39 packets traced"),
        "{summary}"
    );
    assert!(
        summary.contains(
            "not captured: 1 hole, 0 bytes supplied as filler (0 by the peer, 0 by the app); 38656 bytes \
             unproven"
        ),
        "{summary}"
    );
}

#[test]
fn a_capture_that_tripped_smoltcps_window_assertion_replays_cleanly() {
    // 32 records the whole_replay target made: with 64 KiB socket buffers a peer segment after the SYN-ACK
    // landed past the receive buffer and smoltcp's `debug_assert!(len_written == payload_len)` fired
    // (tests/smoltcp_window_edge.rs has the mechanism). With 65535-byte buffers it replays to its end.
    let (summary, _) = replay("window-edge-after-syn-ack.pcap", 32);
    assert!(
        summary.contains("virtual time 6.200 s, 59 packets traced"),
        "{summary}"
    );
}

#[test]
fn filler_for_a_peer_seen_sending_tiny_segments_is_cut_in_default_mss_segments() {
    // 9 records the whole_replay target made; the peer was seen sending 4-byte segments and the stack's
    // recorded ACK proves 849 bytes missing: once 213 four-byte filler segments, each answered with an RST
    // (442 packets). Filler is never cut smaller than 536 bytes: 2 segments.
    let (summary, doc) = replay("filler-cut-to-tiny-segments.pcap", 9);
    assert!(
        summary.contains("virtual time 30.0 µs, 16 packets traced"),
        "{summary}"
    );
    assert!(
        summary.contains(
            "not captured: 1 hole, 849 bytes supplied as filler (849 by the peer, 0 by the app)"
        ),
        "{summary}"
    );
    assert_eq!(doc["replay"]["repairs"]["filler_bytes_peer"], 849);
}
