//! End-to-end runs of `pktpath sim` through the real binary: the export's contract, the bytes each side saw,
//! determinism, many clients, and usage errors.

mod common;

use common::*;

#[test]
fn default_run_exports_a_complete_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, doc) = sim_json(dir.path(), "t.json", &[]);
    assert_eq!(doc["format"], "pktpath-timeline");
    assert_eq!(doc["version"], 1);
    let ps = packets(&doc);
    assert!(
        ps.len() > 100,
        "expected a real exchange, got {} packets",
        ps.len()
    );
    let mut ids = std::collections::BTreeSet::new();
    for p in ps {
        check_packet(p);
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id {}",
            p["id"]
        );
    }
    // Every TCP data frame from the peer reached the app.
    let rx_data: Vec<_> = ps
        .iter()
        .filter(|p| p["dir"] == "rx" && tcp_len(p).unwrap_or(0) > 0)
        .collect();
    assert!(
        rx_data.len() >= 90,
        "2 × 64 KiB should take ~90 segments, got {}",
        rx_data.len()
    );
    for p in &rx_data {
        assert_eq!(p["outcome"]["kind"], "delivered", "{p}");
        assert_eq!(p["outcome"]["stage"], "app");
        assert_eq!(
            hop_stages(p),
            [
                "wire",
                "frame_buffer",
                "stack",
                "socket_buffer",
                "conn_buffer",
                "app"
            ]
        );
    }
    // Every echo reply travelled the whole tx path and was sent.
    let tx_data: Vec<_> = ps
        .iter()
        .filter(|p| p["dir"] == "tx" && tcp_len(p).unwrap_or(0) > 0)
        .collect();
    assert!(tx_data.len() >= 90);
    for p in &tx_data {
        assert_eq!(
            hop_stages(p),
            [
                "app",
                "conn_buffer",
                "socket_buffer",
                "stack",
                "frame_buffer",
                "wire"
            ],
            "{p}"
        );
        assert_eq!(p["outcome"]["kind"], "sent");
        assert!(
            !p["payload_of"].as_array().unwrap().is_empty(),
            "echo reply without its source packets: {p}"
        );
    }
    // The stack's own frames start at the stack.
    let syn_ack = ps
        .iter()
        .find(|p| p["summary"].as_str().unwrap().contains("[S.]"))
        .unwrap();
    assert_eq!(hop_stages(syn_ack), ["stack", "frame_buffer", "wire"]);
    assert_eq!(syn_ack["trigger"]["kind"], "frame");
    // Bytes: the app read exactly what each peer client sent, and got it back.
    for c in doc["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["proto"] == "tcp")
    {
        assert_eq!(c["app_read"]["bytes"], 65536, "{c}");
        assert_eq!(
            c["app_read"], c["app_written"],
            "echo wrote back what it read: {c}"
        );
        let kinds: Vec<&str> = c["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        for k in [
            "listen",
            "accept",
            "established",
            "app_wait",
            "app_wake",
            "peer_eof",
            "close",
            "closed",
        ] {
            assert!(
                kinds.contains(&k),
                "connection lacks a {k} event: {kinds:?}"
            );
        }
    }
    assert!(
        summary.contains("2/2 connections completed, 0 reset; app read exactly what the peer sent on 2/2; peer got back what it sent on 2/2"),
        "{summary}"
    );
    assert!(
        summary.contains("udp: 4 datagrams sent, 4 replies (4 match a sent datagram)"),
        "{summary}"
    );
    let stats = &doc["stats"];
    assert_eq!(
        stats["frames_in"].as_u64().unwrap() + stats["frames_out"].as_u64().unwrap(),
        ps.len() as u64
    );
    assert_eq!(stats["outcomes"]["dropped"], 0);
    assert_eq!(stats["events_lost"], 0);
}

#[test]
fn udp_echo_datagrams_are_delivered_and_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (_, doc) = sim_json(dir.path(), "u.json", &["--clients", "0", "--udp", "5"]);
    let ps = packets(&doc);
    let rx: Vec<_> = ps
        .iter()
        .filter(|p| p["dir"] == "rx" && p["summary"].as_str().unwrap().contains(" UDP "))
        .collect();
    let tx: Vec<_> = ps
        .iter()
        .filter(|p| p["dir"] == "tx" && p["summary"].as_str().unwrap().contains(" UDP "))
        .collect();
    assert_eq!(rx.len(), 5);
    assert_eq!(tx.len(), 5);
    for (r, t) in rx.iter().zip(&tx) {
        assert_eq!(r["outcome"]["kind"], "delivered");
        assert_eq!(t["outcome"]["kind"], "sent");
        assert_eq!(
            hop_stages(t),
            [
                "app",
                "conn_buffer",
                "socket_buffer",
                "stack",
                "frame_buffer",
                "wire"
            ]
        );
        assert_eq!(
            t["payload_of"],
            serde_json::json!([r["id"]]),
            "reply {t} should carry datagram {}",
            r["id"]
        );
    }
}

#[test]
fn same_arguments_give_byte_identical_exports() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["json", "jsonl"] {
        let mut outputs = Vec::new();
        for i in 0..2 {
            let path = dir.path().join(format!("run{i}.{format}"));
            let out = pktpath(&[
                "sim",
                "--headless",
                "--clients",
                "3",
                "--seed",
                "7",
                "--export",
                path.to_str().unwrap(),
                "--format",
                format,
            ]);
            assert!(out.status.success(), "{}", stderr(&out));
            outputs.push(std::fs::read(&path).unwrap());
        }
        assert!(outputs[0].len() > 10_000);
        assert!(
            outputs[0] == outputs[1],
            "{format} exports differ between identical runs"
        );
    }
    // A different seed changes the stacks' sequence numbers, so the export differs.
    let a = dir.path().join("seed1.json");
    let out = pktpath(&[
        "sim",
        "--headless",
        "--clients",
        "3",
        "--seed",
        "8",
        "--export",
        a.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_ne!(
        std::fs::read(&a).unwrap(),
        std::fs::read(dir.path().join("run0.json")).unwrap()
    );
}

#[test]
fn jsonl_has_header_packets_connections_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let out = pktpath(&[
        "sim",
        "--headless",
        "--clients",
        "1",
        "--export",
        path.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&path).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["type"], "header");
    assert_eq!(records[0]["data"]["format"], "pktpath-timeline");
    assert_eq!(records.last().unwrap()["type"], "stats");
    let packets: Vec<_> = records.iter().filter(|r| r["type"] == "packet").collect();
    assert!(packets.len() > 50);
    for p in &packets {
        check_packet(&p["data"]);
    }
    assert!(records.iter().any(|r| r["type"] == "connection"));
    assert_eq!(
        records.last().unwrap()["data"]["packets"],
        packets.len() as u64
    );
}

#[test]
fn twenty_clients_to_one_port_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, doc) = sim_json(
        dir.path(),
        "20.json",
        &["--clients", "20", "--bytes", "20000", "--udp", "0"],
    );
    assert!(
        summary.contains("peer: 20/20 connections completed, 0 reset; app read exactly what the peer sent on 20/20; peer got back what it sent on 20/20"),
        "{summary}"
    );
    let conns = doc["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 20);
    for c in conns {
        assert!(
            !c["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "reset"),
            "{c}"
        );
        assert_eq!(c["app_read"]["bytes"], 20000);
    }
    // No SYN was answered with a reset for lack of a listener.
    assert!(
        !packets(&doc)
            .iter()
            .any(|p| p["outcome"]["code"] == "no_listener")
    );
}

#[test]
fn outbound_traces_the_connect_path() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, doc) = sim_json(
        dir.path(),
        "o.json",
        &[
            "--outbound",
            "--clients",
            "2",
            "--bytes",
            "10000",
            "--udp",
            "0",
        ],
    );
    assert!(summary.contains("app read exactly what the peer sent on 2/2; peer received exactly what the app wrote on 2/2"), "{summary}");
    let ps = packets(&doc);
    // The app's connect makes the stack resolve the peer first: the ARP request is the app's doing, and the SYN
    // leaves in the window of the ARP reply that released it.
    let arp = ps
        .iter()
        .find(|p| {
            p["dir"] == "tx"
                && p["summary"]
                    .as_str()
                    .unwrap()
                    .starts_with("ARP who-has 10.0.0.2")
        })
        .expect("ARP request");
    assert_eq!(arp["trigger"]["kind"], "app", "{arp}");
    assert_eq!(arp["trigger"]["conn"], 1);
    let reply = ps
        .iter()
        .find(|p| {
            p["dir"] == "rx"
                && p["summary"]
                    .as_str()
                    .unwrap()
                    .starts_with("ARP 10.0.0.2 is-at")
        })
        .expect("ARP reply");
    let syn = ps
        .iter()
        .find(|p| p["dir"] == "tx" && p["summary"].as_str().unwrap().contains("TCP [S]"))
        .expect("our SYN");
    assert_eq!(syn["trigger"]["kind"], "frame", "{syn}");
    assert_eq!(syn["trigger"]["packet"], reply["id"]);
    assert!(reply["caused"].as_array().unwrap().contains(&syn["id"]));
    assert_eq!(hop_stages(syn), ["stack", "frame_buffer", "wire"]);
    let syn_ack = ps
        .iter()
        .find(|p| p["dir"] == "rx" && p["summary"].as_str().unwrap().contains("[S.]"))
        .expect("peer SYN-ACK");
    assert_eq!(syn_ack["outcome"]["kind"], "consumed");
    assert!(
        syn_ack["state_changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["from"] == "SYN-SENT" && s["to"] == "ESTABLISHED")
    );
    let c = &doc["connections"][0];
    assert_eq!(c["role"], "connected");
    let kinds: Vec<&str> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "connect");
    assert!(kinds.contains(&"established"));
    assert!(
        c["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "state"
                && e["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("SYN-SENT → ESTABLISHED")),
        "{c}"
    );
}

#[test]
fn http_app_serves_its_page() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, doc) = sim_json(
        dir.path(),
        "h.json",
        &[
            "--app",
            "80=http",
            "--port",
            "80",
            "--clients",
            "3",
            "--udp",
            "0",
        ],
    );
    assert!(
        summary.contains(
            "3/3 connections completed, 0 reset; app read exactly what the peer sent on 3/3"
        ),
        "{summary}"
    );
    for c in doc["connections"].as_array().unwrap() {
        assert_eq!(c["app"], "http");
        let page = pktpath::pipeline::apps::HTTP_BODY.len() as u64;
        assert!(c["app_written"]["bytes"].as_u64().unwrap() > page, "{c}");
    }
}

#[test]
fn bad_arguments_give_one_line_and_exit_2() {
    for (args, needle) in [
        (vec!["sim", "--clients", "abc"], "'abc'"),
        (vec!["sim", "--frame-buffer", "0"], "'0'"),
        (vec!["sim", "--app", "7=ftp"], "ftp"),
        (vec!["sim", "--app", "70000=echo"], "70000"),
        (vec!["sim", "--port", "0"], "'0'"),
        (vec!["sim", "--format", "xml", "--export", "x"], "'xml'"),
        (vec!["sim", "--format", "json"], "--export"),
        (vec!["sim", "--bogus"], "--bogus"),
        (vec!["frobnicate"], "frobnicate"),
    ] {
        let out = pktpath(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?} gave more than one line: {err}"
        );
        assert!(
            err.contains(needle),
            "{args:?}: error does not name {needle}: {err}"
        );
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn unwritable_export_is_a_runtime_error() {
    let out = pktpath(&["sim", "--headless", "--export", "/nonexistent-dir/t.json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent-dir/t.json"), "{err}");
}

#[test]
fn oversized_payload_is_a_usage_error() {
    let out = pktpath(&["sim", "--clients", "1000", "--bytes", "1073741824"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("--clients 1000 × --bytes 1073741824"), "{err}");
}

/// Without `--headless`, `sim` and `replay` open the TUI, which needs a terminal: with stdout piped they say so in
/// one line and exit 2, and write nothing to stdout.
#[test]
fn without_a_terminal_the_tui_commands_say_so_and_exit_2() {
    let capture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/demo.pcapng");
    for args in [
        vec!["sim"],
        vec!["sim", "--clients", "1"],
        vec!["replay", "--demo"],
        vec!["replay", capture.to_str().unwrap()],
    ] {
        let out = pktpath(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            "pktpath: stdout is not a terminal; add --headless to print a summary instead\n",
            "{args:?}"
        );
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
}
