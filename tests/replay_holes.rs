//! Holes: captures missing segments (tests/data/make.sh deletes them from the repository's recordings with
//! editcap). Where the recorded receiver's ACKs prove the bytes were sent, the replay supplies them as zeros
//! — the emulated peer as filler segments, the recorded app in its stream — and the app's bytes equal
//! tshark's `follow,tcp,raw` stream with each "[N bytes missing in capture file]" marker it prints for a gap
//! read as N zeros at that offset. The filler's position and length are held against the markers too.

mod common;

use std::path::{Path, PathBuf};

use common::follow::{digest, markers_as_zeros, tcp_stream};
use common::tshark_available;
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    common::test_data(name)
}

fn recording(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
}

fn replay(file: &Path) -> (String, Value) {
    replay_at(file, "--max-speed")
}

/// A replay at `speed` (`--max-speed`, or `--speed=N`).
fn replay_at(file: &Path, speed: &str) -> (String, Value) {
    replay_with(file, &[speed])
}

fn replay_with(file: &Path, args: &[&str]) -> (String, Value) {
    common::replay_json(file, args)
}

/// The stream ranges of the filler segments the emulated peer injected (their notes say "not captured").
fn peer_filler(doc: &Value) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = doc["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["stack_log"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|n| n.as_str().unwrap().contains("not captured"))
            })
        })
        .map(|p| {
            assert_eq!(p["outcome"]["kind"], "delivered", "{p}");
            let s = &p["stream"];
            (s[0].as_u64().unwrap(), s[1].as_u64().unwrap())
        })
        .collect();
    ranges.sort();
    ranges
}

/// Consecutive ranges as one.
fn merged(ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &(s, e) in ranges {
        match out.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => out.push((s, e)),
        }
    }
    out
}

/// What one replay of a holed capture must show.
struct Expect {
    /// `--max-speed` or `--speed=N`.
    speed: &'static str,
    /// The client's gaps as tshark reports them, and the server's.
    client_gaps: Vec<(u64, u64)>,
    server_gaps: Vec<(u64, u64)>,
    summary: &'static str,
}

/// Replays `name`: the app read the client's stream and wrote the server's, each equal to tshark's with
/// its gaps as zeros; the peer's filler segments cover exactly the client's gaps, each at most one MSS;
/// and each stream equals the unholed recording's bytes at the same offsets with the gaps zeroed.
fn plays_with_filler(name: &str, original: &str, expect: Expect) -> Value {
    let file = data(name);
    let (summary, doc) = replay_at(&file, expect.speed);
    assert!(summary.contains(expect.summary), "{name}: {summary}");
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{name}: {summary}");
    let c = &conns[0];
    let followed = tcp_stream(&file, 0).expect("stream 0");
    let (from_client, client_gaps) = markers_as_zeros(&followed.from0);
    let (from_server, server_gaps) = markers_as_zeros(&followed.from1);
    assert_eq!(
        client_gaps, expect.client_gaps,
        "{name}: tshark's client gaps"
    );
    assert_eq!(
        server_gaps, expect.server_gaps,
        "{name}: tshark's server gaps"
    );
    assert_eq!(c["app_read"], digest(&from_client), "{name}: {summary}");
    assert_eq!(c["app_written"], digest(&from_server), "{name}: {summary}");
    let filler = peer_filler(&doc);
    assert_eq!(merged(&filler), client_gaps, "{name}: the peer's filler");
    assert!(filler.iter().all(|(s, e)| e - s <= 1448), "{filler:?}");
    // Strict about the captured bytes too: the recording, before the segments were deleted, holds the same
    // bytes at the same offsets.
    let whole = tcp_stream(&recording(original), 0).expect("stream 0");
    for (got, full, gaps) in [
        (&from_client, &whole.from0, &client_gaps),
        (&from_server, &whole.from1, &server_gaps),
    ] {
        let mut want = full[..got.len().min(full.len())].to_vec();
        for &(s, e) in gaps.iter() {
            assert!(full[s as usize..e as usize].iter().any(|&b| b != 0));
            want[s as usize..e as usize].fill(0);
        }
        assert_eq!(got, &want, "{name}");
    }
    doc
}

/// One hole each way: the client's second data segment (1448 bytes) and the server's response head (139).
#[test]
fn a_hole_in_each_direction_is_filled_by_the_peer_and_by_the_app() {
    if !tshark_available() {
        return;
    }
    let doc = plays_with_filler(
        "hole-each-way.pcapng",
        "http-post.pcapng",
        Expect {
            speed: "--max-speed",
            client_gaps: vec![(1448, 2896)],
            server_gaps: vec![(0, 139)],
            summary: "not captured: 2 holes, 1587 bytes supplied as filler (1448 by the peer, 139 by \
                      the app); 0 bytes unproven",
        },
    );
    // The filler went in before the segment past the hole: the stack never held data out of order.
    let rx: Vec<(u64, u64)> = doc["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["dir"] == "rx" && p["stream"].is_array())
        .map(|p| {
            (
                p["stream"][0].as_u64().unwrap(),
                p["stream"][1].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(rx.windows(2).all(|w| w[0].1 == w[1].0), "{rx:?}");
    // The diff holds smoltcp's stream against the recorded one with its filler: they agree.
    let diff = &doc["replay"]["diff"][0];
    assert_eq!(diff["sent_bytes"], diff["recorded_bytes"], "{diff}");
    let first = diff["first_divergence"].as_str().unwrap_or("");
    assert!(first.starts_with("window on the SYN"), "{first}");
    // The export counts the repair as the summary does.
    let repairs = &doc["replay"]["repairs"];
    assert_eq!(
        (
            &repairs["holes"],
            &repairs["filler_bytes_peer"],
            &repairs["filler_bytes_app"],
            &repairs["unproven_bytes"],
            &repairs["joined_flows"]
        ),
        (&2.into(), &1448.into(), &139.into(), &0.into(), &0.into()),
        "{repairs}"
    );
}

/// The client's segment and the server's ack of it are both lost: the next ack proves the hole.
#[test]
fn a_hole_whose_ack_was_lost_too_is_proven_by_a_later_ack() {
    if !tshark_available() {
        return;
    }
    plays_with_filler(
        "hole-ack-lost.pcapng",
        "http-post.pcapng",
        Expect {
            speed: "--max-speed",
            client_gaps: vec![(1448, 2896)],
            server_gaps: vec![],
            summary: "not captured: 1 hole, 1448 bytes supplied as filler (1448 by the peer, 0 by the \
                      app); 0 bytes unproven",
        },
    );
}

/// Three consecutive client segments lost: one hole, filled in the peer's segment size.
#[test]
fn consecutive_lost_segments_are_one_hole_filled_segment_by_segment() {
    if !tshark_available() {
        return;
    }
    let doc = plays_with_filler(
        "hole-three-segments.pcap",
        "upload.pcap",
        Expect {
            speed: "--max-speed",
            client_gaps: vec![(1584, 5928)],
            server_gaps: vec![],
            summary: "not captured: 1 hole, 4344 bytes supplied as filler (4344 by the peer, 0 by the \
                      app); 0 bytes unproven",
        },
    );
    assert_eq!(
        peer_filler(&doc),
        vec![(1584, 3032), (3032, 4480), (4480, 5928)]
    );
}

/// A server segment lost in the bulk download: the client's ack proves it, the app writes 1448 zeros there.
#[test]
fn a_lost_server_segment_is_written_as_zeros_by_the_app() {
    if !tshark_available() {
        return;
    }
    plays_with_filler(
        "hole-server.pcap",
        "bulk.pcap",
        Expect {
            speed: "--max-speed",
            client_gaps: vec![],
            server_gaps: vec![(1639, 3087)],
            summary: "not captured: 1 hole, 1448 bytes supplied as filler (0 by the peer, 1448 by the \
                      app); 0 bytes unproven",
        },
    );
}

/// A server segment whose acks the capture also lacks (it ends before them): nothing proves it was sent, so
/// the app writes the stream up to the hole and no further (the two segments past it are held, not written),
/// and the summary says so.
#[test]
fn a_hole_no_ack_proves_is_not_filled_and_is_reported() {
    if !tshark_available() {
        return;
    }
    let file = data("hole-unproven.pcap");
    let (summary, doc) = replay(&file);
    assert!(
        summary.contains(
            "not captured: 1 hole, 0 bytes supplied as filler (0 by the peer, 0 by the app); 1448 \
             bytes unproven"
        ),
        "{summary}"
    );
    let c = &doc["connections"][0];
    let followed = tcp_stream(&file, 0).expect("stream 0");
    // tshark stops at the hole too (it prints no marker for a gap nothing after it closes): both have the
    // server's first 11775 bytes, the recording's own.
    let (from_server, gaps) = markers_as_zeros(&followed.from1);
    assert!(gaps.is_empty());
    assert_eq!(from_server.len(), 11775);
    let whole = tcp_stream(&recording("bulk.pcap"), 0).expect("stream 0");
    assert_eq!(from_server, whole.from1[..11775]);
    assert_eq!(c["app_read"], digest(&followed.from0));
    assert_eq!(c["app_written"], digest(&from_server), "{summary}");
    assert!(peer_filler(&doc).is_empty());
}

/// The repository's own recordings have no holes: no filler, no summary line.
#[test]
fn a_capture_without_holes_says_nothing_of_them() {
    let (summary, _) = replay(&recording("http-post.pcapng"));
    assert!(!summary.contains("not captured"), "{summary}");
}

/// The proving ack comes two client segments after the hole: at recorded speed the wire has read only just
/// past the clock, so the segment past the hole goes in first and waits out of order in the stack; the
/// filler goes in as soon as the proof is read, and the stream is whole.
#[test]
fn a_hole_proven_late_is_filled_when_the_proof_is_read() {
    if !tshark_available() {
        return;
    }
    for speed in ["--speed=1", "--max-speed"] {
        let doc = plays_with_filler(
            "hole-late-proof.pcap",
            "upload.pcap",
            Expect {
                speed,
                client_gaps: vec![(1584, 3032)],
                server_gaps: vec![],
                summary: "not captured: 1 hole, 1448 bytes supplied as filler (1448 by the peer, 0 by \
                          the app); 0 bytes unproven",
            },
        );
        let rx: Vec<u64> = doc["packets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["dir"] == "rx" && p["stream"].is_array())
            .map(|p| p["stream"][0].as_u64().unwrap())
            .collect();
        let at = rx.iter().position(|&s| s == 1584).unwrap();
        if speed == "--max-speed" {
            assert_eq!(
                rx[at - 1],
                136,
                "read ahead: the filler goes first ({rx:?})"
            );
        } else {
            assert!(
                rx[..at].contains(&3032),
                "the segment past it went first ({rx:?})"
            );
        }
    }
}

/// Played as the client (`--as`): the roles swap, the server's lost segment is now the peer's to fill and the
/// client's the app's, and the bytes are the same.
#[test]
fn as_the_client_the_same_holes_are_filled_the_other_way() {
    if !tshark_available() {
        return;
    }
    for (name, summary) in [
        (
            "hole-each-way.pcapng",
            "not captured: 2 holes, 1587 bytes supplied as filler (139 by the peer, 1448 by the app)",
        ),
        (
            "hole-server.pcap",
            "not captured: 1 hole, 1448 bytes supplied as filler (1448 by the peer, 0 by the app)",
        ),
    ] {
        let file = data(name);
        let (out, doc) = replay_with(&file, &["--max-speed", "--as", "10.77.0.1"]);
        assert!(out.contains(summary), "{name}: {out}");
        let followed = tcp_stream(&file, 0).expect("stream 0");
        let (from_client, _) = markers_as_zeros(&followed.from0);
        let (from_server, server_gaps) = markers_as_zeros(&followed.from1);
        let c = &doc["connections"][0];
        assert_eq!(c["app_written"], digest(&from_client), "{name}: {out}");
        assert_eq!(c["app_read"], digest(&from_server), "{name}: {out}");
        assert_eq!(merged(&peer_filler(&doc)), server_gaps, "{name}");
    }
}
