//! The stack's address plan derived from the capture: every peer reachable as recorded, whatever the
//! addresses (tests/data/make.sh makes these captures from the repository's recordings).

mod common;

use std::net::SocketAddr;
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

/// The capture replays: its one connection's app read what tshark says the client sent and wrote what the
/// server sent, the diff says the flow played as recorded, and nothing was dropped for want of a route or
/// a socket. Returns the export's `stack` object.
fn plays_as_recorded(name: &str) -> Value {
    let file = data(name);
    let (summary, doc) = replay(&file);
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{name}: {summary}");
    let c = &conns[0];
    let followed = tcp_stream(&file, 0).expect("stream 0");
    let local: SocketAddr = c["local"].as_str().unwrap().parse().unwrap();
    let remote: SocketAddr = c["remote"].as_str().unwrap().parse().unwrap();
    assert_eq!((remote, local), (followed.node0, followed.node1), "{name}");
    assert!(!followed.from0.is_empty() && !followed.from1.is_empty());
    assert_eq!(
        c["app_read"],
        digest(&followed.from0),
        "{name}: the request"
    );
    assert_eq!(
        c["app_written"],
        digest(&followed.from1),
        "{name}: the response"
    );
    let diff = doc["replay"]["diff"].as_array().unwrap();
    assert_eq!(diff.len(), 1, "{name}");
    assert_eq!(diff[0]["sent_bytes"], diff[0]["recorded_bytes"], "{name}");
    let first = diff[0]["first_divergence"].as_str().unwrap_or("");
    assert!(
        first.is_empty() || first.starts_with("window on the SYN"),
        "{name}: {first}"
    );
    // As the original recording plays: the flow played, the peer never had to retransmit (it was answered
    // every time), and the one divergence is smoltcp's window on the SYN.
    assert!(
        summary.contains("replay: 1 recorded flow played;"),
        "{summary}"
    );
    assert!(
        summary.contains(" 0 retransmissions by the peer"),
        "{summary}"
    );
    for p in doc["packets"].as_array().unwrap() {
        let o = &p["outcome"];
        let reason = o["reason"].as_str().unwrap_or("");
        assert!(
            !(o["kind"] == "dropped"
                && (["no_listener", "port_unreachable", "not_for_us"]
                    .contains(&o["code"].as_str().unwrap_or(""))
                    || reason.contains("route")
                    || reason.contains("same network")
                    || reason.contains("unicast"))),
            "{name}: {p}"
        );
    }
    doc["stack"].clone()
}

/// 145.254.160.237 and 65.208.228.223 differ in the top bit: only /0 holds both (its one broadcast address,
/// 255.255.255.255, is no host's).
#[test]
fn a_peer_in_the_other_half_of_the_ipv4_space_is_on_link() {
    if !tshark_available() {
        return;
    }
    let stack = plays_as_recorded("other-half.pcap");
    assert_eq!(stack["ipv4"], "145.254.160.237/0");
}

/// 10.0.0.1 and 10.0.0.3 share a /30 whose broadcast address is the client's: the plan widens to /29.
#[test]
fn a_peer_on_the_longest_prefix_broadcast_address_gets_a_wider_prefix() {
    if !tshark_available() {
        return;
    }
    let stack = plays_as_recorded("broadcast-clash.pcap");
    assert_eq!(stack["ipv4"], "10.0.0.1/29");
}

/// 2001:db8:1::2 and 2001:db8:2::1 are in different /64s (and /48s): the prefix is their common /46.
#[test]
fn a_peer_in_another_ipv6_slash_64_is_on_link() {
    if !tshark_available() {
        return;
    }
    let stack = plays_as_recorded("other-64.pcap");
    assert_eq!(stack["ipv6"], "2001:db8:1::2/46");
}
