//! Every TCP stream of the played host, in every capture the repository holds, replays byte-exact against
//! tshark's own reassembly (`follow,tcp,raw`, its "bytes missing" markers read as the zero filler the replay
//! supplies), or the summary names its flow among those that did not play. At least 95% must be exact.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::follow::{digest, markers_as_zeros, tcp_stream};
use common::{replay_json, repository_captures, tshark_available};
use serde_json::Value;

fn addr(v: &Value) -> SocketAddr {
    v.as_str().unwrap().parse().unwrap()
}

/// The stack's own addresses, from the export's `stack` object.
fn stack_ips(doc: &Value) -> Vec<IpAddr> {
    ["ipv4", "ipv6"]
        .iter()
        .filter_map(|k| doc["stack"][k].as_str())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .collect()
}

#[test]
fn the_played_hosts_tcp_streams_replay_byte_exact() {
    if !tshark_available() {
        return;
    }
    let (mut streams, mut exact) = (0, 0);
    let mut misses = Vec::new();
    for file in repository_captures() {
        let (summary, doc) = replay_json(&file, &["--max-speed"]);
        let mine = stack_ips(&doc);
        let conns = doc["connections"].as_array().unwrap();
        let mut n = 0;
        while let Some(f) = tcp_stream(&file, n) {
            n += 1;
            let (from0, _) = markers_as_zeros(&f.from0);
            let (from1, _) = markers_as_zeros(&f.from1);
            if from0.is_empty() && from1.is_empty() {
                continue;
            }
            let loopback = f.node0.ip().is_loopback() && f.node1.ip().is_loopback();
            // Who the stack is: the node at its address (a loopback recording's stack is its server, the
            // node whose port the connection's local port is).
            let port_is_local = |node: SocketAddr| {
                conns
                    .iter()
                    .any(|c| c["proto"] == "tcp" && addr(&c["local"]).port() == node.port())
            };
            let (stack, peer, peer_bytes, stack_bytes) =
                if mine.contains(&f.node1.ip()) || (loopback && port_is_local(f.node1)) {
                    (f.node1, f.node0, from0, from1)
                } else if mine.contains(&f.node0.ip()) || loopback {
                    (f.node0, f.node1, from1, from0)
                } else {
                    continue;
                };
            streams += 1;
            let matches = conns.iter().any(|c| {
                c["proto"] == "tcp"
                    && addr(&c["local"]).port() == stack.port()
                    && addr(&c["remote"]).port() == peer.port()
                    && c["app_read"] == digest(&peer_bytes)
                    && c["app_written"] == digest(&stack_bytes)
            });
            if matches {
                exact += 1;
            } else {
                let named = summary.contains("not played")
                    && summary.contains(&format!(":{}", peer.port()));
                assert!(
                    named,
                    "{}: stream {} ({peer} → {stack}) neither plays byte-exact nor is named:\n{summary}",
                    file.display(),
                    n - 1
                );
                misses.push(format!("{} stream {}", file.display(), n - 1));
            }
        }
    }
    assert!(streams >= 40, "{streams} streams");
    assert!(
        exact * 100 >= streams * 95,
        "{exact}/{streams} byte-exact; not: {misses:?}"
    );
    // The one the repository means not to play: truncated.pcap's snap length cut its payload.
    assert_eq!(misses.len(), 1, "{misses:?}");
    assert!(
        misses[0].ends_with("captures/truncated.pcap stream 0"),
        "{misses:?}"
    );
}
