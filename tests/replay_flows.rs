//! No capture plays 0 bytes unexplained: every TCP/UDP flow with payload in a capture of the repository
//! (captures/ and tests/data/) either gave the stack's apps bytes or is named, with its reason, in the summary
//! and in the export's `replay.flows_not_played`. tshark lists the flows, independently of the replay.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use common::{pktpath, read_json, stderr, stdout, tshark_available};

/// A flow as tshark sees it: protocol and its two ends, sorted.
type Flow = (String, SocketAddr, SocketAddr);

/// Every TCP/UDP flow of `file` with its payload bytes (both directions), as tshark reads them.
fn flows(file: &Path) -> BTreeMap<Flow, u64> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e", "ip.src", "-e", "ipv6.src", "-e", "ip.dst", "-e", "ipv6.dst",
        ])
        .args(["-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.len"])
        .args(["-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.length"])
        .output()
        .expect("tshark runs");
    assert!(out.status.success(), "tshark on {}", file.display());
    let mut all = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        // The innermost value where a field repeats (ICMP errors quote a packet).
        let field = |i: usize| f.get(i).and_then(|v| v.split(',').next()).unwrap_or("");
        let ip = |v4: usize| {
            let a = if field(v4).is_empty() {
                field(v4 + 1)
            } else {
                field(v4)
            };
            a.parse::<std::net::IpAddr>().ok()
        };
        let (Some(src), Some(dst)) = (ip(0), ip(2)) else {
            continue;
        };
        let (proto, sp, dp, len) = if !field(4).is_empty() {
            (
                "tcp",
                field(4),
                field(5),
                field(6).parse::<u64>().unwrap_or(0),
            )
        } else if !field(7).is_empty() {
            let len = field(9).parse::<u64>().unwrap_or(8).saturating_sub(8);
            ("udp", field(7), field(8), len)
        } else {
            continue;
        };
        let (Ok(sp), Ok(dp)) = (sp.parse::<u16>(), dp.parse::<u16>()) else {
            continue;
        };
        let (a, b) = (SocketAddr::new(src, sp), SocketAddr::new(dst, dp));
        *all.entry((proto.to_string(), a.min(b), a.max(b)))
            .or_default() += len;
    }
    all
}

/// Does the replay's pair of ends `x`, `y` stand for the capture's flow? The ports must agree, and the
/// addresses too unless the capture's two ends had one address (a loopback recording: its peer is renamed).
fn same_flow(flow: &Flow, x: SocketAddr, y: SocketAddr) -> bool {
    let (_, a, b) = flow;
    let ports = |p: SocketAddr, q: SocketAddr| (p.port().min(q.port()), p.port().max(q.port()));
    if ports(*a, *b) != ports(x, y) {
        return false;
    }
    a.ip() == b.ip() || (x.min(y), x.max(y)) == (*a, *b)
}

#[test]
fn every_flow_with_payload_plays_or_is_named_with_its_reason() {
    if !tshark_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut named = 0;
    let mut played = 0;
    for file in common::repository_captures() {
        let export = dir.path().join("t.json");
        let args = [
            "replay",
            file.to_str().unwrap(),
            "--headless",
            "--max-speed",
            "--export",
            export.to_str().unwrap(),
        ];
        let out = pktpath(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let (summary, doc) = (stdout(&out), read_json(&export));
        let name = file.display();
        let unplayed = doc["replay"]["flows_not_played"].as_array().unwrap();
        let summary_lines: Vec<&str> = summary
            .lines()
            .filter(|l| l.starts_with("not played: "))
            .collect();
        let counted_rest = summary_lines.iter().any(|l| l.contains(" more flow"));
        for (flow, bytes) in flows(&file) {
            if bytes == 0 {
                continue;
            }
            let gave_bytes = doc["connections"].as_array().unwrap().iter().any(|c| {
                let end = |k: &str| c[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
                let total = c["app_read"]["bytes"].as_u64().unwrap()
                    + c["app_written"]["bytes"].as_u64().unwrap();
                c["proto"] == flow.0.as_str()
                    && same_flow(&flow, end("local"), end("remote"))
                    && total > 0
            });
            if gave_bytes {
                played += 1;
                continue;
            }
            let entry = unplayed.iter().find(|n| {
                let text = n["flow"].as_str().unwrap();
                let (x, y) = text.split_once(" ⇄ ").unwrap();
                n["proto"] == flow.0.as_str()
                    && same_flow(&flow, x.parse().unwrap(), y.parse().unwrap())
            });
            let Some(entry) = entry else {
                panic!(
                    "{name}: {flow:?} ({bytes} bytes) played nothing and is not named:\n{summary}"
                );
            };
            assert!(
                entry["reason"].is_string() && entry["detail"].is_string(),
                "{entry}"
            );
            assert!(entry["payload_bytes"].as_u64().unwrap() > 0, "{entry}");
            let line = format!(
                "not played: {} {} — {}",
                flow.0,
                entry["flow"].as_str().unwrap(),
                entry["detail"].as_str().unwrap()
            );
            assert!(
                summary_lines.contains(&line.as_str()) || counted_rest,
                "{name}: the summary does not name {line:?}:\n{summary}"
            );
            named += 1;
        }
    }
    // The repository's own captures play; the ones made to not play are named.
    assert!(played >= 15, "{played} flows played");
    assert!(named >= 3, "{named} flows named");
}

/// The reasons as the export writes them, for the captures made to show them. (A flow with no SYN is named
/// only while nothing joins it: once a join plays it, its app's bytes are the test's.)
#[test]
fn the_captures_made_to_not_play_say_why() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let cases = [
        (
            "no-syn.pcap",
            "no_syn",
            "tcp 10.77.0.2:80 ⇄ 10.77.0.1:49406",
        ),
        (
            "other-hosts.pcap",
            "not_the_stacks_host",
            "tcp 10.0.0.5:80 ⇄ 10.0.0.9:49406",
        ),
    ];
    for (file, code, flow) in cases {
        let path = data.join(file);
        let (summary, doc) = common::replay_json(&path, &["--max-speed"]);
        let all = doc["replay"]["flows_not_played"].as_array().unwrap();
        let joined = doc["connections"].as_array().unwrap().iter().any(|c| {
            c["app_read"]["bytes"].as_u64().unwrap() + c["app_written"]["bytes"].as_u64().unwrap()
                > 0
        });
        if code == "no_syn" && joined && all.is_empty() {
            continue;
        }
        assert_eq!(all.len(), 1, "{file}: {all:?}");
        assert_eq!(all[0]["reason"], code, "{file}");
        assert_eq!(
            format!(
                "{} {}",
                all[0]["proto"].as_str().unwrap(),
                all[0]["flow"].as_str().unwrap()
            ),
            flow
        );
        assert!(
            summary.contains(&format!("not played: {flow} — ")),
            "{}",
            summary
        );
    }
}

/// Eleven flows between other hosts: nine lines, and the rest counted by reason; the export lists them all.
#[test]
fn many_flows_that_did_not_play_are_counted_past_nine_lines() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/many-others.pcap");
    let (summary, doc) = common::replay_json(&path, &["--max-speed"]);
    let lines: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("not played: "))
        .collect();
    assert_eq!(lines.len(), 10, "{summary}");
    assert_eq!(
        lines[0],
        "not played: tcp 10.77.0.2:80 ⇄ 10.77.0.1:49406 — not the stack's host (between two other \
         hosts; --as 10.77.0.2 plays it)"
    );
    assert_eq!(
        lines[9],
        "not played: 2 more flows (2 not_the_stacks_host), each in the export's \
         replay.flows_not_played"
    );
    let all = doc["replay"]["flows_not_played"].as_array().unwrap();
    assert_eq!(all.len(), 11);
    assert!(all.iter().all(|n| n["reason"] == "not_the_stacks_host"));
    // The five flows of the host the stack plays gave their apps bytes.
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 5);
    assert!(
        conns
            .iter()
            .all(|c| c["app_read"]["bytes"].as_u64().unwrap() > 0)
    );
}
