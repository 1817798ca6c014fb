//! Loopback recordings (both ends at the same address): the peer is renamed to a documentation address and
//! the flow plays, its app bytes equal to tshark's reassembly of the capture (tests/data/make.sh makes the
//! captures from the repository's recordings; `loopback-real.pcap` was recorded on `lo` in a namespace).

mod common;

use std::path::{Path, PathBuf};

use common::follow::{digest, tcp_stream};
use common::tshark_available;
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    common::test_data(name)
}

fn replay(file: &Path) -> (String, Value) {
    common::replay_json(file, &["--max-speed"])
}

/// The capture's one TCP connection plays with the peer renamed: the stack at `stack`, the peer at `peer`
/// on the recorded client port, the app's bytes tshark's in both directions, nothing dropped, every renamed
/// packet saying so, and the summary naming the rename.
fn plays_renamed(name: &str, stack: &str, peer: &str, original: &str) {
    let bare = original.trim_matches(|c| c == '[' || c == ']');
    let file = data(name);
    let (summary, doc) = replay(&file);
    let followed = tcp_stream(&file, 0).expect("stream 0");
    assert_eq!(
        followed.node0.ip(),
        followed.node1.ip(),
        "{name}: a loopback capture"
    );
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{name}: {summary}");
    let c = &conns[0];
    assert_eq!(
        c["local"],
        format!("{stack}:{}", followed.node1.port()),
        "{name}"
    );
    let remote = c["remote"].as_str().unwrap();
    assert!(
        remote.ends_with(&format!(":{}", followed.node0.port())) && remote.contains(peer),
        "{name}: {remote}"
    );
    assert!(!followed.from0.is_empty() && !followed.from1.is_empty());
    assert_eq!(c["app_read"], digest(&followed.from0), "{name}: request");
    assert_eq!(
        c["app_written"],
        digest(&followed.from1),
        "{name}: response"
    );
    assert!(summary.contains("drops: none"), "{name}: {summary}");
    assert!(
        summary.contains("replay: 1 recorded flow played;"),
        "{summary}"
    );
    let note = format!("peer {original}:{} renamed {peer}", followed.node0.port());
    let from_capture: Vec<&Value> = doc["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["capture_frame"].is_u64())
        .collect();
    assert!(!from_capture.is_empty());
    for p in from_capture {
        let log = p["stack_log"].to_string();
        assert!(
            log.contains(&note) && log.contains("a loopback recording"),
            "{name}: {p}"
        );
    }
    assert!(
        summary.contains(&format!(
            "loopback recording: 1 flow between {bare} and itself"
        )),
        "{name}: {summary}"
    );
}

#[test]
fn an_ipv4_loopback_recording_under_linktype_null_plays_with_the_peer_renamed() {
    if !tshark_available() {
        return;
    }
    plays_renamed("loopback-null.pcap", "127.0.0.1", "192.0.2.2", "127.0.0.1");
}

#[test]
fn an_ipv4_loopback_recording_with_zero_macs_plays_with_the_peer_renamed() {
    if !tshark_available() {
        return;
    }
    plays_renamed("loopback-ether.pcap", "127.0.0.1", "192.0.2.2", "127.0.0.1");
}

#[test]
fn an_ipv6_loopback_recording_plays_in_the_documentation_prefix() {
    if !tshark_available() {
        return;
    }
    for name in ["loopback-v6-null.pcap", "loopback-v6-ether.pcap"] {
        plays_renamed(name, "[2001:db8::1]", "2001:db8::2", "[::1]");
    }
}

/// curl fetching a file from `python3 -m http.server` on 127.0.0.1, recorded with `tcpdump -i lo` in a
/// network namespace of its own (Linux: zero MACs, and the TCP checksums the kernel never filled in).
#[test]
fn a_real_loopback_recording_plays_with_the_peer_renamed() {
    if !tshark_available() {
        return;
    }
    // As recorded, every TCP checksum is the kernel's partial sum (lo never fills them in): tshark calls
    // each bad. The rename recomputes them, so none is dropped `bad_checksum`.
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(data("loopback-real.pcap"))
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "tcp.checksum.status",
        ])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        !status.is_empty() && status.lines().all(|l| l == "0"),
        "{status}"
    );
    plays_renamed("loopback-real.pcap", "127.0.0.1", "192.0.2.2", "127.0.0.1");
}

/// A UDP loopback recording: the datagrams' first sender is no SYN, so the higher port is the peer; the
/// echo server's app reads and writes every datagram.
#[test]
fn a_udp_loopback_recording_plays_with_the_peer_renamed() {
    let (summary, doc) = replay(&data("loopback-udp.pcap"));
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{summary}");
    assert_eq!(conns[0]["local"], "127.0.0.1:7");
    assert!(
        conns[0]["remote"]
            .as_str()
            .unwrap()
            .starts_with("192.0.2.2:")
    );
    assert_eq!(conns[0]["app_read"], conns[0]["app_written"], "an echo");
    assert!(conns[0]["app_read"]["bytes"].as_u64().unwrap() > 0);
    assert!(summary.contains("drops: none"), "{summary}");
    assert!(
        summary.contains(
            "loopback recording: 1 flow between 127.0.0.1 and itself: the peer renamed 192.0.2.2"
        ),
        "{summary}"
    );
}
