//! A replay's work is bounded by its input: one damaged field (a timestamp decades ahead, a sequence number
//! 2^30 ahead) or a real capture whose last frame came a year later must not make it run away. Each copy of
//! captures/http-get.pcap below differs from it in one field; each must finish promptly with at most 20
//! packets per record (plus a constant).

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const RECORD_HEADER: usize = 16;

/// captures/http-get.pcap's bytes and where each record starts.
fn http_get() -> (Vec<u8>, Vec<usize>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/http-get.pcap");
    let bytes = std::fs::read(path).unwrap();
    let mut starts = Vec::new();
    let mut at = 24;
    while at + RECORD_HEADER <= bytes.len() {
        starts.push(at);
        let incl = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += RECORD_HEADER + incl;
    }
    (bytes, starts)
}

/// Replay `capture` at the recorded pace under a 120 s guard: its summary and export.
fn bounded_replay(capture: &[u8], records: usize) -> (String, Value) {
    bounded_replay_with(capture, records, &[])
}

/// `bounded_replay` with more arguments.
fn bounded_replay_with(capture: &[u8], records: usize, extra: &[&str]) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("damaged.pcap");
    std::fs::write(&file, capture).unwrap();
    let export = dir.path().join("t.json");
    let out = Command::new("timeout")
        .arg("120")
        .arg(env!("CARGO_BIN_EXE_pktpath"))
        .args(["replay", file.to_str().unwrap(), "--headless", "--export"])
        .arg(&export)
        .args(extra)
        .output()
        .expect("run pktpath under timeout");
    assert_eq!(
        out.status.code(),
        Some(0),
        "the replay ran away or failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = common::read_json(&export);
    let packets = doc["packets"].as_array().unwrap().len();
    assert!(
        packets <= 20 * records + 50,
        "{packets} packets for {records} records"
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), doc)
}

#[test]
fn a_timestamp_decades_ahead_is_a_gap_shortened_to_max_gap() {
    let (mut bytes, starts) = http_get();
    // Bit 31 of record 9's seconds: 68 years ahead of the rest.
    bytes[starts[8] + 3] ^= 0x80;
    let (summary, _) = bounded_replay(&bytes, starts.len());
    assert!(
        summary.contains(
            "gaps: 1 idle gap longer than --max-gap 10.000 s shortened to it (longest 2147483648.000 s), \
             2147483638.000 s of recorded time skipped"
        ),
        "{summary}"
    );
}

#[test]
fn a_last_frame_a_year_later_costs_the_gap_and_no_more() {
    let (mut bytes, starts) = http_get();
    let last = *starts.last().unwrap();
    let secs = u32::from_le_bytes(bytes[last..last + 4].try_into().unwrap()) + 365 * 86_400;
    bytes[last..last + 4].copy_from_slice(&secs.to_le_bytes());
    let (summary, doc) = bounded_replay(&bytes, starts.len());
    assert!(
        summary.contains("gaps: 1 idle gap longer than --max-gap"),
        "{summary}"
    );
    // The flow still plays whole: the gap was before its last ACK only.
    assert_eq!(doc["connections"][0]["app_written"]["bytes"], 3000 + 188);
    assert_eq!(doc["replay"]["repairs"]["gaps_shortened"], 1);
}

#[test]
fn a_sequence_number_two_to_the_thirty_ahead_fills_nothing_far_ahead() {
    for (record, what) in [
        (9, "the server's first data segment"),
        (5, "the client's request"),
    ] {
        let (mut bytes, starts) = http_get();
        // The TCP sequence number's top byte: Ethernet 14 + IPv4 20 + 4.
        bytes[starts[record] + RECORD_HEADER + 38] ^= 0x40;
        let (summary, doc) = bounded_replay(&bytes, starts.len());
        let c = &doc["connections"][0];
        let total =
            c["app_read"]["bytes"].as_u64().unwrap() + c["app_written"]["bytes"].as_u64().unwrap();
        assert!(total <= 81 + 3188, "{what}: {total} app bytes\n{summary}");
    }
}

/// `n` SYNs to port 80 from `n` different sources, 1 ms apart, never answered: a flood; then, when `late`
/// is given, one more SYN that many seconds after the first.
fn syn_flood(n: u32, late: Option<u32>) -> Vec<u8> {
    use pktpath::replay::testgen::{self, Endian, MAC_A, MAC_B, PcapRecord};
    let records: Vec<PcapRecord> = (0..n + u32::from(late.is_some()))
        .map(|i| {
            let (secs, micros) = match late {
                Some(late) if i == n => (late, 0),
                _ => (i / 1000, (i % 1000) * 1000),
            };
            let src = [10, 9, (i >> 8) as u8, i as u8];
            let syn = testgen::tcp(40000, 80, 1000 + i, 0, 0x02, b"");
            let ip = testgen::ipv4(src, [10, 9, 255, 254], 6, &syn);
            PcapRecord::new(secs, micros, testgen::ethernet(MAC_A, MAC_B, 0x0800, &ip))
        })
        .collect();
    testgen::pcap(Endian::Little, false, 1, 65535, &records)
}

/// A SYN flood holds at most the backlog of half-open connections: past 128 the oldest is aborted (its
/// connection record says why), so the stack's connections stay bounded whatever the number of SYNs.
#[test]
fn a_syn_flood_holds_no_more_than_the_backlog_of_half_open_connections() {
    let n = 1000;
    let (summary, doc) = bounded_replay(&syn_flood(n, None), n as usize);
    let evicted = n as usize - 128;
    assert!(
        summary.contains(&format!(
            "half-open: {evicted} connections aborted in SYN-RECEIVED past the backlog of 128 (the oldest first)"
        )),
        "{summary}"
    );
    let conns = doc["connections"].as_array().unwrap();
    let aborted = conns
        .iter()
        .filter(|c| {
            c["events"].as_array().unwrap().iter().any(|e| {
                e["detail"].as_str().unwrap_or("").starts_with(
                    "aborted in SYN-RECEIVED: more than 128 half-open connections, and this the oldest",
                )
            })
        })
        .count();
    assert_eq!(aborted, evicted);
}

/// A half-open connection whose handshake never completes is aborted 60 s after its SYN (the late SYN, 70 s
/// on, keeps the run going past that; `--max-gap 100` keeps the gap whole).
#[test]
fn a_half_open_connection_is_aborted_60_s_after_its_syn() {
    let (summary, doc) = bounded_replay_with(&syn_flood(10, Some(70)), 11, &["--max-gap", "100"]);
    assert!(
        summary.contains(
            "half-open: 10 connections aborted in SYN-RECEIVED, the handshake not completed within 60 s"
        ),
        "{summary}"
    );
    let expired: Vec<u64> = doc["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| {
            let events = c["events"].as_array().unwrap();
            let accept = events.iter().find(|e| e["kind"] == "accept")?["t_ns"].as_u64()?;
            let abort = events.iter().find(|e| {
                e["detail"].as_str().unwrap_or("")
                    == "aborted in SYN-RECEIVED: the handshake did not complete within 60 s of the SYN"
            })?;
            Some(abort["t_ns"].as_u64()? - accept)
        })
        .collect();
    assert_eq!(expired.len(), 10, "{expired:?}");
    // Aborted at the first timer at or after 60 s, not long after.
    assert!(
        expired
            .iter()
            .all(|&d| (60_000_000_000..75_000_000_000).contains(&d)),
        "{expired:?}"
    );
}
