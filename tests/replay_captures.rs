//! Golden replays of the real captures in captures/, through the real binary: every frame gets one outcome,
//! the HTTP exchanges complete (handshake, request, response, both FINs) with the app reading exactly the
//! client's bytes and the wire carrying exactly the recorded server's, and each run's timeline matches its
//! snapshot. Byte streams are reassembled here from the capture itself, independently of the replay.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::*;
use pktpath::replay::capture::CaptureReader;
use pktpath::replay::segment;
use serde_json::Value;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(name)
}

const ALL: [&str; 12] = [
    "demo.pcapng",
    "http-get.pcap",
    "http-post.pcapng",
    "parallel.pcap",
    "refused.pcap",
    "udp-echo.pcap",
    "ipv6-tcp.pcapng",
    "bulk.pcap",
    "lossy.pcap",
    "truncated.pcap",
    "upload.pcap",
    "iperf3.pcap",
];

/// `pktpath replay FILE --headless --export …json` plus `args`; the summary and the document.
fn replay(name: &str, args: &[&str]) -> (String, Value) {
    replay_json(&capture(name), args)
}

/// A TCP direction: (sender, receiver).
type Direction = (SocketAddr, SocketAddr);

/// Each direction's TCP payload in the capture, reassembled by sequence number (retransmissions once),
/// keyed by (sender, receiver).
fn streams(name: &str) -> BTreeMap<Direction, Vec<u8>> {
    let mut pieces: BTreeMap<Direction, (u32, BTreeMap<u32, Vec<u8>>)> = BTreeMap::new();
    for f in CaptureReader::open(&capture(name)).unwrap() {
        let Some(l) = segment::parse(&f.frame, f.orig_len as usize) else {
            continue;
        };
        let (Some(t), Some(src), Some(dst)) = (l.tcp, l.src_addr(), l.dst_addr()) else {
            continue;
        };
        let entry = pieces.entry((src, dst)).or_insert((t.seq, BTreeMap::new()));
        if t.syn {
            entry.0 = t.seq.wrapping_add(1);
            continue;
        }
        let data = segment::payload(&f.frame, &t);
        if !data.is_empty() {
            entry.1.insert(t.seq.wrapping_sub(entry.0), data.to_vec());
        }
    }
    pieces
        .into_iter()
        .map(|(k, (_, parts))| {
            let mut s = Vec::new();
            for (off, data) in parts {
                let off = off as usize;
                if off + data.len() > s.len() {
                    let skip = s.len().saturating_sub(off);
                    s.extend_from_slice(&data[skip.min(data.len())..]);
                }
            }
            (k, s)
        })
        .collect()
}

/// Every flow's diff: smoltcp sent the recorded payload, with the recorded control segments; only the window
/// on the SYN may differ (smoltcp opens with 65535, Linux with less).
fn assert_sent_as_recorded(doc: &Value, what: &str) {
    for d in doc["replay"]["diff"].as_array().unwrap() {
        assert_eq!(d["sent_bytes"], d["recorded_bytes"], "{what}: {d}");
        let first = d["first_divergence"].as_str().unwrap_or("");
        assert!(
            first.is_empty() || first.starts_with("window on the SYN"),
            "{what}: {first}"
        );
    }
}

fn digest(bytes: &[u8]) -> Value {
    serde_json::json!({"bytes": bytes.len(), "crc32": format!("{:08x}", crc32fast::hash(bytes))})
}

#[test]
fn every_capture_replays_and_every_frame_has_one_outcome() {
    for name in ALL {
        let (summary, doc) = replay(name, &["--max-speed"]);
        let frames = doc["replay"]["capture_frames"].as_u64().unwrap();
        assert!(frames > 0, "{name}");
        assert!(
            doc["replay"]["reading_stopped"].is_null(),
            "{name}: {summary}"
        );
        let mut seen = vec![0u32; frames as usize + 1];
        for p in packets(&doc) {
            check_packet(p);
            if let Some(n) = p["capture_frame"].as_u64() {
                seen[n as usize] += 1;
            }
        }
        for (n, count) in seen.iter().enumerate().skip(1) {
            assert_eq!(*count, 1, "{name}: capture frame {n} appears {count} times");
        }
        let in_flight = &doc["stats"]["outcomes"]["in_flight"];
        assert_eq!(in_flight, 0, "{name}: packets left in flight\n{summary}");
    }
}

/// The HTTP exchanges: every played connection completes and carries exactly the capture's bytes.
#[test]
fn http_exchanges_complete_with_the_recorded_bytes() {
    for name in [
        "demo.pcapng",
        "http-get.pcap",
        "http-post.pcapng",
        "ipv6-tcp.pcapng",
        "bulk.pcap",
        "lossy.pcap",
        "upload.pcap",
    ] {
        for speed in [&["--speed", "1"][..], &["--max-speed"][..]] {
            let (summary, doc) = replay(name, speed);
            let streams = streams(name);
            let conns = doc["connections"].as_array().unwrap();
            assert!(!conns.is_empty(), "{name}");
            for c in conns {
                let local: SocketAddr = c["local"].as_str().unwrap().parse().unwrap();
                let remote: SocketAddr = c["remote"].as_str().unwrap().parse().unwrap();
                let what = format!("{name} {speed:?} {local}⇄{remote}");
                assert_eq!(c["app"], "recorded", "{what}");
                let request = streams.get(&(remote, local)).expect("client stream");
                let response = streams.get(&(local, remote)).expect("server stream");
                assert!(!request.is_empty() && !response.is_empty(), "{what}");
                assert_eq!(c["app_read"], digest(request), "{what}: the request");
                assert_eq!(c["app_written"], digest(response), "{what}: the response");
                let states: Vec<&str> = c["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| e["kind"] == "state")
                    .map(|e| e["detail"].as_str().unwrap())
                    .collect();
                assert!(
                    states.iter().any(|s| s.contains("→ ESTABLISHED")),
                    "{what}: no handshake {states:?}"
                );
                // Both FINs: the stack's acknowledged (LAST-ACK → CLOSED, or FIN-WAIT → TIME-WAIT).
                assert!(
                    states
                        .iter()
                        .any(|s| s.contains("→ CLOSED") || s.contains("→ TIME-WAIT")),
                    "{what}: not closed {states:?}\n{summary}"
                );
            }
            // What smoltcp put on the wire carries the recorded server's bytes, flags in the recorded order.
            assert_sent_as_recorded(&doc, &format!("{name} {speed:?}"));
        }
    }
}

#[test]
fn parallel_connections_each_echo_their_own_bytes() {
    let (_, doc) = replay("parallel.pcap", &[]);
    let streams = streams("parallel.pcap");
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 5);
    for c in conns {
        let local: SocketAddr = c["local"].as_str().unwrap().parse().unwrap();
        let remote: SocketAddr = c["remote"].as_str().unwrap().parse().unwrap();
        let sent = &streams[&(remote, local)];
        assert_eq!(c["app_read"], digest(sent));
        assert_eq!(c["app_written"], digest(sent), "an echo");
    }
}

#[test]
fn a_refused_connection_is_refused_again() {
    let (_, doc) = replay("refused.pcap", &[]);
    let ps = packets(&doc);
    let syn = ps
        .iter()
        .find(|p| p["dir"] == "rx" && p["summary"].as_str().unwrap().contains("[S]"))
        .unwrap();
    assert_eq!(syn["outcome"]["kind"], "dropped");
    assert_eq!(syn["outcome"]["code"], "no_listener");
    assert!(
        ps.iter()
            .any(|p| p["dir"] == "tx" && p["summary"].as_str().unwrap().contains("[R.]"))
    );
    let diff = &doc["replay"]["diff"][0];
    assert!(diff["first_divergence"].is_null(), "{diff}");
    assert!(doc["connections"].as_array().unwrap().is_empty());
}

#[test]
fn udp_datagrams_are_answered_with_the_recorded_replies() {
    let (_, doc) = replay("udp-echo.pcap", &[]);
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1);
    let c = &conns[0];
    assert_eq!(c["proto"], "udp");
    assert_eq!(c["app"], "recorded");
    assert_eq!(c["app_read"], c["app_written"], "the server echoed");
    let replies = packets(&doc)
        .iter()
        .filter(|p| p["dir"] == "tx" && p["summary"].as_str().unwrap().contains("UDP"))
        .count();
    assert_eq!(replies, 6);
}

#[test]
fn truncated_frames_are_shown_and_not_injected() {
    let (summary, doc) = replay("truncated.pcap", &[]);
    let truncated: Vec<_> = packets(&doc)
        .iter()
        .filter(|p| p["outcome"]["code"] == "truncated")
        .collect();
    assert!(!truncated.is_empty(), "{summary}");
    for p in truncated {
        assert_eq!(p["outcome"]["stage"], "wire");
        assert_eq!(p["hops"].as_array().unwrap().len(), 1, "{p}");
    }
}

#[test]
fn two_replays_with_the_same_seed_write_identical_exports() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["json", "jsonl", "chrome"] {
        let run = |n: &str| {
            let path = dir.path().join(format!("{n}.{format}"));
            let pcap = dir.path().join(format!("{n}.pcapng"));
            let out = pktpath(&[
                "replay",
                capture("lossy.pcap").to_str().unwrap(),
                "--headless",
                "--seed",
                "7",
                "--export",
                path.to_str().unwrap(),
                "--format",
                format,
                "--pcap-out",
                pcap.to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{}", stderr(&out));
            (std::fs::read(path).unwrap(), std::fs::read(pcap).unwrap())
        };
        let (a, b) = (run("a"), run("b"));
        assert!(a.0 == b.0, "{format} exports differ");
        assert!(a.1 == b.1, "pcapng exports differ");
    }
}

/// One line per packet: what a reader of the timeline sees, for the golden snapshots.
fn timeline_text(doc: &Value) -> String {
    let mut s = String::new();
    for p in packets(doc) {
        let o = &p["outcome"];
        let frame = p["capture_frame"]
            .as_u64()
            .map_or("  -".to_string(), |n| format!("{n:3}"));
        let reason = o["code"]
            .as_str()
            .map_or(String::new(), |c| format!(" ({c})"));
        let hops: Vec<String> = p["hops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| format!("{}@{}", h["stage"].as_str().unwrap(), h["t_ns"]))
            .collect();
        s.push_str(&format!(
            "#{} f{frame} {} {} → {} {}{reason} [{}]\n",
            p["id"],
            p["dir"].as_str().unwrap(),
            p["summary"].as_str().unwrap(),
            o["kind"].as_str().unwrap(),
            o["stage"].as_str().unwrap(),
            hops.join(" ")
        ));
    }
    for d in doc["replay"]["diff"].as_array().unwrap() {
        s.push_str(&format!("diff {d}\n"));
    }
    s
}

#[test]
fn golden_timelines_of_the_small_captures() {
    for name in [
        "demo.pcapng",
        "http-get.pcap",
        "http-post.pcapng",
        "parallel.pcap",
        "refused.pcap",
        "udp-echo.pcap",
        "ipv6-tcp.pcapng",
        "truncated.pcap",
    ] {
        let (_, doc) = replay(name, &["--seed", "1"]);
        insta::assert_snapshot!(format!("timeline-{name}"), timeline_text(&doc));
    }
}

#[test]
fn golden_summaries_of_the_large_captures() {
    for name in ["bulk.pcap", "lossy.pcap"] {
        let (summary, _) = replay(name, &["--seed", "1"]);
        // The first line names the file by its path, which depends on the checkout; the wall time varies
        // from run to run (tests/headless_io.rs checks its line).
        let body: Vec<&str> = summary
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with("export:"))
            .filter(|l| !l.starts_with("wall time "))
            .collect();
        assert_eq!(
            summary
                .lines()
                .filter(|l| l.starts_with("wall time "))
                .count(),
            1,
            "{summary}"
        );
        insta::assert_snapshot!(format!("summary-{name}"), body.join("\n"));
    }
}

#[test]
fn with_no_arguments_pktpath_replays_its_built_in_demo() {
    let out = pktpath(&[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        text.starts_with("replay demo (built in: captures/demo.pcapng) (pcapng, 14 records)"),
        "{text}"
    );
    assert!(text.contains("1 recorded flow played"), "{text}");
    assert!(text.contains("in_flight 0"), "{text}");
    // The same bytes as the file in captures/: the demo is that capture.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    let file = capture("demo.pcapng");
    for (args, path) in [
        (vec!["replay", "--demo"], &a),
        (vec!["replay", file.to_str().unwrap()], &b),
    ] {
        let mut all = args.clone();
        all.extend(["--headless", "--export", path.to_str().unwrap()]);
        assert!(pktpath(&all).status.success());
    }
    let (mut da, mut db) = (read_json(&a), read_json(&b));
    da["source"]["file"] = Value::Null;
    db["source"]["file"] = Value::Null;
    assert_eq!(da, db);
}

/// `--as` the client: the recorded app connects from the recorded port and sends the client's bytes; the
/// emulated server answers with the recorded server's.
#[test]
fn as_the_client_the_stack_connects_and_receives_the_recorded_response() {
    for (name, client) in [
        ("http-get.pcap", "10.77.0.1"),
        ("http-post.pcapng", "10.77.0.1"),
        ("ipv6-tcp.pcapng", "fd77::1"),
        ("bulk.pcap", "10.77.0.1"),
        ("lossy.pcap", "10.77.0.1"),
    ] {
        let (summary, doc) = replay(name, &["--as", client]);
        let streams = streams(name);
        let conns = doc["connections"].as_array().unwrap();
        assert!(!conns.is_empty(), "{name}: {summary}");
        for c in conns {
            let local: SocketAddr = c["local"].as_str().unwrap().parse().unwrap();
            let remote: SocketAddr = c["remote"].as_str().unwrap().parse().unwrap();
            assert_eq!(local.ip().to_string(), client, "{name}");
            assert_eq!(c["role"], "connected", "{name}");
            assert_eq!(
                c["app_written"],
                digest(&streams[&(local, remote)]),
                "{name}"
            );
            assert_eq!(c["app_read"], digest(&streams[&(remote, local)]), "{name}");
        }
        assert_sent_as_recorded(&doc, name);
    }
}

/// iperf3's server resets its data connection once the test is over: the replayed app does the same, at the
/// same point of its turns, and smoltcp's RST matches the recorded one.
#[test]
fn a_recorded_reset_is_replayed_as_a_reset() {
    let (summary, doc) = replay("iperf3.pcap", &[]);
    let streams = streams("iperf3.pcap");
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(
        conns.len(),
        2,
        "the control and the data connection: {summary}"
    );
    for c in conns {
        let local: SocketAddr = c["local"].as_str().unwrap().parse().unwrap();
        let remote: SocketAddr = c["remote"].as_str().unwrap().parse().unwrap();
        assert_eq!(c["app_read"], digest(&streams[&(remote, local)]));
    }
    let data = conns
        .iter()
        .find(|c| {
            c["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "reset")
        })
        .expect("the data connection was given up by its app");
    let port = data["remote"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let resets: Vec<&Value> = packets(&doc)
        .iter()
        .filter(|p| {
            let s = p["summary"].as_str().unwrap();
            p["dir"] == "tx" && s.contains("[R.]") && s.contains(&format!(":{port} "))
        })
        .collect();
    assert_eq!(resets.len(), 1, "{summary}");
    assert_sent_as_recorded(&doc, "iperf3.pcap");
}

/// A Simple Packet Block records no time: it is played with the previous packet (or at the start), never at
/// time 0 of the epoch, and its note says so. Before the fix a leading SPB started the clock at 1970 and
/// the next packet waited decades.
#[test]
fn simple_packet_blocks_take_the_previous_packets_time() {
    use pktpath::replay::testgen::{self, MAC_A, MAC_B, NgBlock, NgInterface};
    let udp = |port: u16| {
        let datagram = testgen::udp(40000, port, b"hi");
        let ip = testgen::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, &datagram);
        testgen::ethernet(MAC_B, MAC_A, 0x0800, &ip)
    };
    const T: u64 = 1_700_000_000_000_000_000;
    let spb = |port: u16| NgBlock::Simple {
        data: udp(port),
        orig_len: udp(port).len() as u32,
    };
    let file = testgen::pcapng(&[
        NgBlock::Section { big_endian: false },
        NgBlock::Interface(NgInterface {
            linktype: 1,
            snaplen: 0,
            tsresol: Some(9),
            tsoffset: None,
        }),
        spb(1001),
        NgBlock::epb(0, T, udp(1002)),
        NgBlock::epb(0, T + 3_000_000, udp(1003)),
        spb(1004),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spb.pcapng");
    std::fs::write(&path, file).unwrap();
    let export = dir.path().join("spb.json");
    let out = pktpath(&[
        "replay",
        path.to_str().unwrap(),
        "--headless",
        "--export",
        export.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = read_json(&export);
    let wire: Vec<(u64, Option<&str>)> = packets(&doc)
        .iter()
        .filter(|p| p["dir"] == "rx")
        .filter(|p| p["summary"].as_str().unwrap().contains(" UDP "))
        .map(|p| {
            let note = p["stack_log"][0]
                .as_str()
                .filter(|l| l.starts_with("pktpath: "));
            (p["hops"][0]["t_ns"].as_u64().unwrap(), note)
        })
        .collect();
    let spb_note = Some(
        "pktpath: no timestamp in the capture (Simple Packet Block): played with the previous packet; \
         destination MAC set to the stack's",
    );
    let mac_note = Some("pktpath: destination MAC set to the stack's");
    assert_eq!(wire.len(), 4, "{wire:?}");
    assert_eq!(
        wire.iter().map(|w| w.0).collect::<Vec<_>>(),
        [2_000, 4_000, 3_000_000, 3_002_000],
        "the SPBs arrive with the packet before them (the first at the start, after the ARP)"
    );
    assert_eq!(
        wire.iter().map(|w| w.1).collect::<Vec<_>>(),
        [spb_note, mac_note, mac_note, spb_note]
    );
}
