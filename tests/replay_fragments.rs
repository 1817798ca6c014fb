//! IP fragments replayed: each fragment is its own traced packet; those that wait for the rest of their
//! datagram end `consumed` at `stack` once it completes, the fragment that completes it carries the datagram
//! on to the app (`delivered`), and a datagram that never completes leaves its fragments dropped for that.
//! frag-udp4.pcap and frag-udp6.pcap are real recordings (tests/data/record-offload.sh); make.sh derives the
//! others.

mod common;

use std::path::{Path, PathBuf};

use common::follow::{digest, tcp_stream};
use common::tshark_available;
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    common::test_data(name)
}

fn replay(file: &Path, extra: &[&str]) -> (String, Value) {
    common::replay_json(file, extra)
}

/// The packet of capture record `n`.
fn record(doc: &Value, n: u64) -> &Value {
    doc["packets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["dir"] == "rx" && p["capture_frame"] == n)
        .unwrap_or_else(|| panic!("record {n}"))
}

fn stages(p: &Value) -> Vec<&str> {
    p["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["stage"].as_str().unwrap())
        .collect()
}

/// The 3000 bytes the recording's client sent in one datagram (record-offload.sh's `client_udp`).
fn datagram() -> Vec<u8> {
    (0..3000u32).map(|i| ((i * 13 + 5) % 256) as u8).collect()
}

/// A 3000-byte UDP datagram in three fragments, then the server's answer: the recorded app reads the whole
/// datagram, byte for byte, and answers as recorded.
fn plays_the_fragmented_datagram(name: &str, id: &str, ends: [usize; 3], held_by: &str) {
    let (summary, doc) = replay(&data(name), &["--max-speed"]);
    assert!(summary.contains("dropped 0,"), "{summary}");
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{summary}");
    assert_eq!(conns[0]["proto"], "udp");
    assert_eq!(conns[0]["app_read"], digest(&datagram()), "{name}");
    assert_eq!(conns[0]["app_written"], digest(b"ok 3000"), "{name}");
    let last = record(&doc, 3);
    let carrier = last["id"].as_u64().unwrap();
    let label = format!("datagram id {id}");
    let starts = [0, ends[0] + 1, ends[1] + 1];
    for n in 1..=2u64 {
        let p = record(&doc, n);
        let i = n as usize - 1;
        assert_eq!(stages(p), ["wire", "frame_buffer", "stack"], "{p}");
        assert_eq!(p["outcome"]["kind"], "consumed", "{p}");
        assert_eq!(p["outcome"]["stage"], "stack", "{p}");
        assert!(
            p["outcome"]["reason"]
                .as_str()
                .unwrap()
                .starts_with(&format!("fragment {n} of {label} from ")),
            "{p}"
        );
        assert!(
            p["outcome"]["reason"].as_str().unwrap().ends_with(&format!(
                "(UDP): reassembled; the datagram went on with packet {carrier}"
            )),
            "{p}"
        );
        let log = p["stack_log"].to_string();
        assert!(
            log.contains(&format!(
                "held for reassembly: fragment {n} of {label} from "
            )) && log.contains(&format!("bytes {}–{}; {held_by}", starts[i], ends[i])),
            "{log}"
        );
    }
    assert_eq!(last["outcome"]["kind"], "delivered", "{last}");
    assert_eq!(
        stages(last),
        [
            "wire",
            "frame_buffer",
            "stack",
            "socket_buffer",
            "conn_buffer",
            "app"
        ],
        "{last}"
    );
    let log = last["stack_log"].to_string();
    let ids = [
        record(&doc, 1)["id"].as_u64().unwrap(),
        record(&doc, 2)["id"].as_u64().unwrap(),
    ];
    assert!(
        log.contains(&format!(
            "fragment 3 of {label} from "
        )) && log.contains(&format!(
            "bytes {}–3007, completed it: the 3008-byte datagram (packets {}, {}, {carrier}) goes on with this packet",
            ends[1] + 1,
            ids[0],
            ids[1]
        )),
        "{log}"
    );
}

#[test]
fn an_ipv4_datagram_in_three_fragments_reaches_the_app_whole() {
    plays_the_fragmented_datagram(
        "frag-udp4.pcap",
        "0x1bbc",
        [1479, 2959, 3007],
        "smoltcp holds it",
    );
}

#[test]
fn an_ipv6_datagram_in_three_fragments_reaches_the_app_whole() {
    plays_the_fragmented_datagram(
        "frag-udp6.pcap",
        "0xc3ed8f2e",
        [1447, 2895, 3007],
        "pktpath holds it (smoltcp 0.14 does not reassemble IPv6 over Ethernet)",
    );
}

/// The middle fragment lost: the other two wait at `stack`, and the run ends with their datagram
/// incomplete; the app reads nothing.
#[test]
fn a_datagram_missing_a_fragment_ends_incomplete() {
    let (summary, doc) = replay(&data("frag-udp4-lost.pcap"), &["--max-speed"]);
    assert!(
        summary.contains("  stack          reassembly_incomplete  2\n"),
        "{summary}"
    );
    let reason = "reassembly incomplete: the run ended before datagram id 0x1bbc from 10.77.0.1 to 10.77.0.2 \
                  (UDP) completed (2 fragments held, bytes 0–1479, 2960–3007 of its 3008)";
    for n in [1, 2] {
        let p = record(&doc, n);
        assert_eq!(p["outcome"]["kind"], "dropped", "{p}");
        assert_eq!(p["outcome"]["stage"], "stack", "{p}");
        assert_eq!(p["outcome"]["code"], "reassembly_incomplete", "{p}");
        assert_eq!(p["outcome"]["reason"], reason, "{p}");
    }
    for c in doc["connections"].as_array().unwrap() {
        assert_eq!(c["app_read"]["bytes"], 0, "{c}");
    }
}

/// The same, with the next frame 61 s later (played at the recorded pace, on the virtual clock, the gap kept
/// whole: `--max-gap` would otherwise shorten it to 10 s): the datagram's 60 s ran out first, so its
/// fragments are dropped as timed out.
#[test]
fn a_datagram_missing_a_fragment_times_out_after_60_s() {
    let (summary, doc) = replay(&data("frag-udp4-timeout.pcap"), &["--max-gap", "120"]);
    assert!(
        summary.contains("  stack          reassembly_timeout     2\n"),
        "{summary}"
    );
    let reason = "reassembly timed out: datagram id 0x1bbc from 10.77.0.1 to 10.77.0.2 (UDP) did not complete \
                  within 60 s of its first fragment (2 fragments held, bytes 0–1479, 2960–3007 of its 3008)";
    for n in [1, 2] {
        let p = record(&doc, n);
        assert_eq!(p["outcome"]["code"], "reassembly_timeout", "{p}");
        assert_eq!(p["outcome"]["stage"], "stack", "{p}");
        assert_eq!(p["outcome"]["reason"], reason, "{p}");
    }
}

/// The HTTP GET of http-get.pcap sent as four IPv4 fragments (a 32-byte TCP header, then 81 bytes of
/// request): smoltcp reassembles the segment, the connection plays byte for byte in both directions as
/// tshark follows it. The first fragment (record 6) carries the TCP header, so the wire holds it until the
/// stack has sent what it acknowledges; the three after it go in first and wait for it.
#[test]
fn a_tcp_segment_in_four_ipv4_fragments_plays_byte_exact() {
    if !tshark_available() {
        return;
    }
    let file = data("frag-tcp4.pcap");
    let (summary, doc) = replay(&file, &["--max-speed"]);
    assert!(summary.contains("dropped 0,"), "{summary}");
    let followed = tcp_stream(&file, 0).expect("stream 0");
    assert_eq!(followed.from0.len(), 81);
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{summary}");
    assert_eq!(conns[0]["app_read"], digest(&followed.from0));
    assert_eq!(conns[0]["app_written"], digest(&followed.from1));
    let first = record(&doc, 6);
    assert_eq!(first["outcome"]["kind"], "delivered", "{first}");
    let carrier = first["id"].as_u64().unwrap();
    for (n, k) in [(7, 1), (8, 2), (9, 3)] {
        let p = record(&doc, n);
        assert_eq!(p["outcome"]["kind"], "consumed", "{p}");
        assert_eq!(
            p["outcome"]["reason"],
            format!(
                "fragment {k} of datagram id 0x9ae6 from 10.77.0.1 to 10.77.0.2 (TCP): reassembled; the datagram \
                 went on with packet {carrier}"
            ),
            "{p}"
        );
    }
    assert!(
        first["stack_log"]
            .to_string()
            .contains("fragment 4 of datagram id 0x9ae6 from 10.77.0.1 to 10.77.0.2 (TCP), bytes 0–31, completed it: the 113-byte datagram"),
        "{first}"
    );
}
