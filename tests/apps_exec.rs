//! `exec:CMD` through the whole pipeline: the simulated peer's bytes cross wire → stack → connection → a real
//! child process and come back byte for byte; and the CLI's handling of `exec:`/`forward:` specs.

mod common;

use common::*;
use pktpath::export::ExportPlan;
use pktpath::pipeline::trace::ConnEventKind;
use pktpath::session::run_sim;
use pktpath::sim::SimSpec;

#[test]
fn sim_clients_get_their_bytes_back_through_exec_cat() {
    let spec = SimSpec {
        clients: 2,
        bytes: 300_000,
        udp: 0,
        apps: vec!["7=exec:cat".parse().unwrap()],
        ..SimSpec::default()
    };
    let r = run_sim(&spec, &ExportPlan::default()).unwrap();
    assert_eq!(r.report.clients.len(), 2);
    for c in &r.report.clients {
        assert!(c.completed && !c.reset, "{c:?}");
        assert_eq!(c.sent.bytes, 300_000, "{c:?}");
        assert_eq!(c.received, c.sent, "{c:?}");
    }
    let tcp: Vec<_> = r
        .connections
        .iter()
        .filter(|c| c.proto == pktpath::pipeline::trace::ConnProto::Tcp)
        .collect();
    assert_eq!(tcp.len(), 2);
    for c in tcp {
        assert_eq!(c.app, "exec:cat");
        assert_eq!(
            c.app_read, c.app_written,
            "app read and wrote the same stream"
        );
    }
}

#[test]
fn sim_peer_is_reset_when_the_command_fails() {
    let spec = SimSpec {
        clients: 1,
        bytes: 1000,
        udp: 0,
        apps: vec!["7=exec:exit 1".parse().unwrap()],
        ..SimSpec::default()
    };
    let r = run_sim(&spec, &ExportPlan::default()).unwrap();
    let c = &r.report.clients[0];
    assert_eq!(c.received.bytes, 0, "{c:?}");
    assert_eq!(c.state, "CLOSED", "{c:?}");
    // The client had already sent its FIN, so it cannot tell a reset from a close; the connection's record can.
    let conn = &r.connections[0];
    let reset = conn.events.iter().find(|e| e.kind == ConnEventKind::Reset);
    assert_eq!(
        reset.map(|e| e.detail.as_str()),
        Some("app gave the connection up: stack will reset it (command exited with status 1)"),
        "{:?}",
        conn.events
    );
    assert!(
        !conn.events.iter().any(|e| e.kind == ConnEventKind::Close),
        "no FIN from the stack: {:?}",
        conn.events
    );
}

#[test]
fn cli_runs_exec_apps_headless() {
    let out = pktpath(&[
        "sim",
        "--headless",
        "--clients",
        "1",
        "--bytes",
        "5000",
        "--app",
        "7=exec:cat",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    assert!(s.contains("apps 7=exec:cat"), "{s}");
    assert!(s.contains("1/1 connections completed, 0 reset"), "{s}");
}

#[test]
fn cli_names_a_bad_forward_target() {
    let out = pktpath(&["sim", "--app", "forward:localhost"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "invalid forward target 'localhost': the port is missing; use forward:HOST:PORT"
        ),
        "{}",
        stderr(&out)
    );
    let out = pktpath(&["sim", "--app", "exec:"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("exec: needs a command, as in exec:cat"),
        "{}",
        stderr(&out)
    );
}
