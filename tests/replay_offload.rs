//! Checksum offload: frames recorded on the host that sent them carry the partial checksums its NIC was to
//! complete (tests/data/record-offload.sh records one in a network namespace). The replay completes them,
//! says so per packet and in the summary, and plays the flow byte for byte; `--keep-checksums` injects them
//! as recorded; a checksum damaged by a flipped bit is still dropped `bad_checksum`.

mod common;

use std::path::{Path, PathBuf};

use common::follow::{digest, tcp_stream};
use common::tshark_available;
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    common::test_data(name)
}

fn replay(file: &Path, extra: &[&str]) -> (String, Value) {
    let mut all = vec!["--max-speed"];
    all.extend_from_slice(extra);
    common::replay_json(file, &all)
}

/// The rx packets of the capture's client (10.77.0.1), in capture order.
fn client_frames(doc: &Value) -> Vec<&Value> {
    let mut v: Vec<&Value> = doc["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["dir"] == "rx"
                && p["capture_frame"].is_u64()
                && p["summary"].as_str().unwrap().starts_with("10.77.0.1:")
        })
        .collect();
    v.sort_by_key(|p| p["capture_frame"].as_u64());
    v
}

fn notes(p: &Value) -> String {
    p["stack_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The client's seven frames were captured with Linux's partial checksums (the folded pseudo-header sum:
/// 0x14a3 for these addresses plus the TCP length). Each is completed and noted; the flow plays byte for
/// byte in both directions, as tshark follows it.
#[test]
fn offloaded_checksums_are_completed_and_the_flow_plays_byte_exact() {
    if !tshark_available() {
        return;
    }
    let file = data("offload-http.pcap");
    let (summary, doc) = replay(&file, &[]);
    assert!(
        summary.contains(
            "\nchecksums: 7 offloaded checksums fixed (--keep-checksums to inject as recorded)\n"
        ),
        "{summary}"
    );
    assert!(summary.contains("dropped 0,"), "{summary}");
    let frames = client_frames(&doc);
    let recorded: Vec<(u64, u16)> = frames
        .iter()
        .map(|p| {
            let n = notes(p);
            let at = n.find("TCP checksum 0x").expect("a checksum note") + 15;
            (
                p["capture_frame"].as_u64().unwrap(),
                u16::from_str_radix(&n[at..at + 4], 16).unwrap(),
            )
        })
        .collect();
    // TCP lengths 40, 32, 1480, 617, 32, 32, 32 over 0x14a3.
    assert_eq!(
        recorded,
        [
            (1, 0x14cb),
            (3, 0x14c3),
            (4, 0x1a6b),
            (5, 0x170c),
            (9, 0x14c3),
            (11, 0x14c3),
            (13, 0x14c3)
        ]
    );
    for p in &frames {
        let n = notes(p);
        assert!(
            n.contains("looked offloaded (the partial pseudo-header sum the sending host's NIC completes): fixed to 0x"),
            "{n}"
        );
        assert_ne!(p["outcome"]["kind"], "dropped", "{p}");
    }
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{summary}");
    let followed = tcp_stream(&file, 0).expect("stream 0");
    assert_eq!(followed.from0.len(), 2033);
    assert_eq!(conns[0]["app_read"], digest(&followed.from0));
    assert_eq!(conns[0]["app_written"], digest(&followed.from1));
}

/// `--keep-checksums`: the partial checksums go in as recorded and smoltcp drops every one of them.
#[test]
fn keep_checksums_injects_them_as_recorded_and_the_stack_drops_them() {
    let (summary, doc) = replay(&data("offload-http.pcap"), &["--keep-checksums"]);
    assert!(
        summary.contains(
            "\nchecksums: 7 offloaded checksums injected as recorded (--keep-checksums)\n"
        ),
        "{summary}"
    );
    let frames = client_frames(&doc);
    assert_eq!(frames.len(), 7);
    for p in frames {
        assert_eq!(p["outcome"]["kind"], "dropped", "{p}");
        assert_eq!(p["outcome"]["stage"], "stack", "{p}");
        assert_eq!(p["outcome"]["code"], "bad_checksum", "{p}");
        assert_eq!(p["outcome"]["reason"], "bad TCP checksum", "{p}");
        assert!(
            notes(p).contains("looked offloaded (the partial pseudo-header sum the sending host's NIC completes): injected as recorded (--keep-checksums)"),
            "{p}"
        );
    }
    assert!(doc["connections"].as_array().unwrap().is_empty());
}

/// The same recording with every checksum completed, then one bit of frame 4's TCP checksum flipped: that is
/// damage, not offload. Frame 4 is dropped `bad_checksum` without a word about offload, and nothing is
/// "fixed"; the emulated peer sends the segment again (intact, as the real sender would have) and the app
/// still reads every byte.
#[test]
fn a_checksum_with_one_bit_flipped_is_still_dropped() {
    if !tshark_available() {
        return;
    }
    let file = data("offload-damaged.pcap");
    let (summary, doc) = replay(&file, &[]);
    assert!(!summary.contains("checksums:"), "{summary}");
    let frames = client_frames(&doc);
    for p in &frames {
        assert!(!notes(p).contains("offloaded"), "{p}");
        let damaged = p["capture_frame"] == 4;
        assert_eq!(p["outcome"]["kind"] == "dropped", damaged, "{p}");
        if damaged {
            assert_eq!(p["outcome"]["stage"], "stack", "{p}");
            assert_eq!(p["outcome"]["code"], "bad_checksum", "{p}");
            assert_eq!(p["outcome"]["reason"], "bad TCP checksum", "{p}");
        }
    }
    assert!(summary.contains("dropped 1,"), "{summary}");
    let followed = tcp_stream(&file, 0).expect("stream 0");
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns[0]["app_read"], digest(&followed.from0));
    assert_eq!(conns[0]["app_written"], digest(&followed.from1));
}
