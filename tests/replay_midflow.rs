//! Captures that start mid-connection (their handshakes were before the capture began): the replay's peer opens
//! each TCP flow with a synthetic handshake and the recorded app plays on from the first captured byte, so the
//! app bytes equal tshark's reassembly of the cut capture in both directions (tests/data/make.sh cuts these
//! from the repository's recordings with editcap).

mod common;

use std::net::SocketAddr;
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

/// The cut replays with every one of its `flows` TCP streams joined: per stream, the connection's app read
/// what tshark follows from the client and wrote what it follows from the server; the stack never reset a
/// flow, each connection closed, the diff found each flow as recorded, and the summary and the synthetic
/// frames' notes say the flows were joined. Returns the export.
fn joins_as_recorded(name: &str, flows: u32, extra: &[&str]) -> Value {
    joins_with_stale(name, flows, extra, 0)
}

/// As `joins_as_recorded`, where exactly `stale` captured segments of the peer lie wholly before the join
/// point: the stack drops each as outside its receive window (and answers with an ACK), as a real one would.
fn joins_with_stale(name: &str, flows: u32, extra: &[&str], stale: usize) -> Value {
    let file = data(name);
    let (summary, doc) = replay(&file, extra);
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), flows as usize, "{name}: {summary}");
    for n in 0..flows {
        let followed = tcp_stream(&file, n).expect("a stream");
        let ends = [followed.node0, followed.node1];
        let c = conns
            .iter()
            .find(|c| {
                let local: SocketAddr = c["local"].as_str().unwrap().parse().unwrap();
                let remote: SocketAddr = c["remote"].as_str().unwrap().parse().unwrap();
                ends.contains(&local) && ends.contains(&remote)
            })
            .unwrap_or_else(|| panic!("{name}: no connection for stream {n}: {summary}"));
        // Node 0 is whoever the cut shows speaking first, the client or the server.
        let local: SocketAddr = c["local"].as_str().unwrap().parse().unwrap();
        let (from_client, from_server) = if followed.node1 == local {
            (&followed.from0, &followed.from1)
        } else {
            (&followed.from1, &followed.from0)
        };
        assert_eq!(
            c["app_read"],
            digest(from_client),
            "{name} stream {n}: the client's bytes"
        );
        assert_eq!(
            c["app_written"],
            digest(from_server),
            "{name} stream {n}: the server's bytes"
        );
        let events = c["events"].as_array().unwrap();
        assert!(
            events.iter().any(|e| e["kind"] == "closed"),
            "{name} stream {n}: {events:?}"
        );
    }
    let packets = doc["packets"].as_array().unwrap();
    for p in packets {
        let s = p["summary"].as_str().unwrap_or("");
        let flags = s
            .split_once("TCP [")
            .and_then(|(_, rest)| rest.split_once(']'))
            .map_or("", |(f, _)| f);
        assert!(
            !(p["dir"] == "tx" && flags.contains('R')),
            "{name}: the stack reset a flow: {p}"
        );
    }
    let dropped: Vec<&Value> = packets
        .iter()
        .filter(|p| p["outcome"]["kind"] == "dropped")
        .collect();
    assert_eq!(dropped.len(), stale, "{name}: {dropped:?}");
    for p in dropped {
        assert_eq!(p["outcome"]["code"], "tcp_rejected", "{name}: {p}");
        let reason = p["outcome"]["reason"].as_str().unwrap();
        assert!(reason.contains("not in receive window"), "{name}: {p}");
    }
    let notes = |what: &str| {
        packets
            .iter()
            .filter(|p| {
                p["stack_log"].as_array().is_some_and(|log| {
                    log.iter()
                        .any(|l| l.as_str().is_some_and(|l| l.contains(what)))
                })
            })
            .count()
    };
    assert_eq!(
        notes("synthetic: the peer's SYN, standing in for the handshake the capture did not hold"),
        flows as usize,
        "{name}"
    );
    assert_eq!(
        notes("synthetic: the peer's ACK completing the handshake the capture did not hold"),
        flows as usize,
        "{name}"
    );
    let noun = if flows == 1 { "flow" } else { "flows" };
    assert!(
        summary.contains(&format!(
            "\njoined: {flows} {noun} whose handshake was not captured (synthetic SYN/ACK)\n"
        )),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("diff: {flows}/{flows} flows as recorded")),
        "{summary}"
    );
    for d in doc["replay"]["diff"].as_array().unwrap() {
        assert_eq!(d["sent_bytes"], d["recorded_bytes"], "{name}: {d}");
        assert!(d["first_divergence"].is_null(), "{name}: {d}");
    }
    doc
}

/// The client's data first: the last 27 segments of a 1 MiB upload, then the server's answer and close.
#[test]
fn a_cut_that_starts_with_the_clients_data_is_joined() {
    if !tshark_available() {
        return;
    }
    let doc = joins_as_recorded("midflow-upload.pcap", 1, &["--max-speed"]);
    assert_eq!(doc["connections"][0]["local"], "10.77.0.2:8000");
}

/// The server's data first: the last 34 KB of a 1 MiB download, with the client's acks of bytes from before
/// the cut among the captured frames (they lie before the join point and must not disturb it).
#[test]
fn a_cut_that_starts_with_the_servers_data_is_joined() {
    if !tshark_available() {
        return;
    }
    let doc = joins_as_recorded("midflow-bulk.pcap", 1, &["--max-speed"]);
    assert_eq!(doc["connections"][0]["local"], "10.77.0.2:80");
}

/// At recorded speed as well (the synthetic SYN goes at the first captured segment's time).
#[test]
fn a_cut_joins_at_recorded_speed_too() {
    if !tshark_available() {
        return;
    }
    joins_as_recorded("midflow-bulk.pcap", 1, &[]);
}

/// IPv6: the server's data first, the client closes first.
#[test]
fn an_ipv6_cut_is_joined() {
    if !tshark_available() {
        return;
    }
    let doc = joins_as_recorded("midflow-v6.pcap", 1, &["--max-speed"]);
    assert_eq!(doc["connections"][0]["local"], "[fd77::2]:8080");
}

/// Five echo flows in parallel, each cut after its handshake and first write: each is joined on its own.
#[test]
fn parallel_flows_are_each_joined() {
    if !tshark_available() {
        return;
    }
    joins_as_recorded("midflow-parallel.pcap", 5, &["--max-speed"]);
}

/// Cuts that start at a FIN, the server's and the client's: the flow is joined and closed as recorded.
#[test]
fn a_cut_that_starts_at_a_fin_is_joined_and_closed() {
    if !tshark_available() {
        return;
    }
    joins_as_recorded("midflow-server-fin.pcap", 1, &["--max-speed"]);
    joins_as_recorded("midflow-client-fin.pcap", 1, &["--max-speed"]);
}

/// `--as` the server of a cut (the survey's own choice here) plays the same.
#[test]
fn as_the_server_a_cut_is_joined() {
    if !tshark_available() {
        return;
    }
    joins_as_recorded(
        "midflow-upload.pcap",
        1,
        &["--max-speed", "--as", "10.77.0.2"],
    );
}

/// The server's segments sent again from before the join point, among the cut's frames: the script starts at
/// the join point all the same (they are not played, and nothing waits for them).
#[test]
fn the_servers_data_from_before_the_join_point_is_left_out() {
    if !tshark_available() {
        return;
    }
    joins_as_recorded("midflow-stale-server.pcap", 1, &["--max-speed"]);
}

/// The client's segment sent again from before the join point: injected as captured, refused by the stack as
/// old, and the flow goes on.
#[test]
fn the_clients_data_from_before_the_join_point_is_refused_as_old() {
    if !tshark_available() {
        return;
    }
    joins_with_stale("midflow-stale-client.pcap", 1, &["--max-speed"], 1);
}

/// The client's ack first, and the server's bytes before its first captured segment in flight at the cut
/// (never captured): the server's stream starts at its first captured byte, not at what the client had
/// acknowledged, so nothing waits for bytes no frame holds.
#[test]
fn bytes_in_flight_at_the_cut_are_not_waited_for() {
    if !tshark_available() {
        return;
    }
    let doc = joins_as_recorded("midflow-in-flight.pcap", 1, &["--max-speed"]);
    assert_eq!(doc["connections"][0]["app_written"]["bytes"], 376);
}
