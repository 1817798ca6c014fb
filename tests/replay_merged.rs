//! Segments the capturing host merged (GRO/LRO): the emulated peer sends them as the wire carried them, in
//! MTU-sized segments, and the app still reads exactly the stream tshark follows (tests/data/make.sh makes
//! the capture from captures/upload.pcap with tests/data/gro.py).

mod common;

use std::path::Path;

use common::follow::{digest, tcp_stream};
use common::tshark_available;

#[test]
fn a_merged_segment_is_sent_in_wire_sized_pieces_and_the_stream_stays_exact() {
    if !tshark_available() {
        return;
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/merged-upload.pcap");
    let (summary, doc) = common::replay_json(&file, &["--max-speed"]);
    assert!(
        summary.contains(
            "merged segments: 3 larger than the MTU (merged by the capturing host's GRO/LRO), sent as 93 \
             wire-sized segments"
        ),
        "{summary}"
    );
    let repairs = &doc["replay"]["repairs"];
    assert_eq!(
        (&repairs["merged_segments"], &repairs["merged_pieces"]),
        (&3.into(), &93.into()),
        "{repairs}"
    );
    let followed = tcp_stream(&file, 0).expect("stream 0");
    let c = &doc["connections"][0];
    assert_eq!(c["app_read"], digest(&followed.from0), "the upload");
    assert_eq!(c["app_written"], digest(&followed.from1), "the answer");
    let packets = doc["packets"].as_array().unwrap();
    assert!(packets.iter().all(|p| p["outcome"]["kind"] != "dropped"));
    // Capture frame 6 held 62400 payload bytes: 43 pieces of 1448 (the timestamps option leaves 1448 of
    // the 1500) and one of 136, each its own packet, all from frame 6, all delivered.
    let pieces: Vec<_> = packets
        .iter()
        .filter(|p| p["capture_frame"] == 6 && p["dir"] == "rx")
        .collect();
    assert_eq!(pieces.len(), 44);
    for (k, p) in pieces.iter().enumerate() {
        assert_eq!(p["outcome"]["kind"], "delivered", "{p}");
        let note = p["stack_log"].to_string();
        assert!(
            note.contains(&format!(
                "capture frame 6 holds 62400 bytes of TCP payload in one segment, more than a 1500-byte MTU \
                 carries (merged by the capturing host's GRO/LRO): sent as the wire carried it, in 44 \
                 segments; this is {} of 44",
                k + 1
            )),
            "{note}"
        );
        let len = p["len"].as_u64().unwrap();
        assert_eq!(len, if k < 43 { 1514 } else { 14 + 52 + 136 }, "{p}");
    }
}
