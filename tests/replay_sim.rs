//! Replay of a capture of a simulated run's own wire: a fresh stack with a different seed (so different ISNs)
//! plays the server, the replay wire rebases the client's acks onto it, and the recorded app answers with
//! the recorded bytes. Deterministic and independent of any capture file.

use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;

use pktpath::export::ExportPlan;
use pktpath::pipeline::trace::ConnProto;
mod common;

use pktpath::replay::capture::CapturedFrame;
use pktpath::replay::{ReplaySpec, Source};
use pktpath::session;
use pktpath::sim::SimSpec;

/// Every frame of a sim run's wire, both directions, as a capture would hold them, from a real epoch time.
fn capture_of_sim(
    spec: &SimSpec,
) -> (Vec<CapturedFrame>, Vec<pktpath::pipeline::ConnectionRecord>) {
    common::capture_of_sim(spec, 1_700_000_000_000_000_000)
}

fn spec_for(frames: Vec<CapturedFrame>, seed: u64) -> ReplaySpec {
    ReplaySpec {
        source: Source::Frames {
            name: "sim-wire".into(),
            frames: Rc::new(frames),
        },
        as_ip: None,
        apps: Vec::new(),
        speed: Some(1.0),
        frame_buffer: 256,
        seed,
        hop_cost_ns: 1000,
        tail_ns: 10_000_000_000,
        keep_checksums: false,
        max_gap_ns: pktpath::replay::gaps::DEFAULT_MAX_GAP_NS,
    }
}

#[test]
fn a_replayed_echo_run_reproduces_both_byte_streams_on_a_stack_with_other_isns() {
    let sim_spec = SimSpec {
        clients: 3,
        bytes: 20_000,
        udp: 0,
        ..SimSpec::default()
    };
    let (frames, recorded_conns) = capture_of_sim(&sim_spec);
    let n = frames.len() as u64;
    let result =
        session::run_replay(&spec_for(frames, 99), &ExportPlan::default()).expect("replay runs");

    assert_eq!(result.identity.ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(result.frames_read, n);
    let outcomes: u64 = result.stats.outcomes.values().sum();
    assert_eq!(outcomes, result.packets, "one outcome per packet");
    // Every recorded connection was played: the app read what the client sent and wrote what the server did.
    let tcp: Vec<_> = result
        .connections
        .iter()
        .filter(|c| c.proto == ConnProto::Tcp)
        .collect();
    assert_eq!(tcp.len(), 3, "{:#?}", result.connections);
    for rec in recorded_conns.iter().filter(|c| c.proto == ConnProto::Tcp) {
        let played = tcp
            .iter()
            .find(|c| c.remote == rec.remote)
            .unwrap_or_else(|| panic!("no replayed connection for {}", rec.remote));
        assert_eq!(played.app, "recorded");
        assert_eq!(
            played.app_read, rec.app_read,
            "client bytes for {}",
            rec.remote
        );
        assert_eq!(
            played.app_written, rec.app_written,
            "server bytes for {}",
            rec.remote
        );
    }
    assert_eq!(result.diffs.len(), 3);
    for d in &result.diffs {
        assert_eq!(d.first_divergence, None, "{d}");
        assert_eq!(d.sent_bytes, 20_000);
    }
}

#[test]
fn two_replays_with_the_same_seed_are_identical() {
    let sim_spec = SimSpec {
        clients: 2,
        bytes: 5000,
        udp: 0,
        ..SimSpec::default()
    };
    let (frames, _) = capture_of_sim(&sim_spec);
    let dir = tempfile::tempdir().unwrap();
    let export = |name: &str| {
        let path = dir.path().join(name);
        let spec = spec_for(frames.clone(), 5);
        session::run_replay(
            &spec,
            &ExportPlan::timeline(path.clone(), pktpath::export::Format::Json),
        )
        .unwrap();
        std::fs::read(path).unwrap()
    };
    assert_eq!(export("a.json"), export("b.json"));
}

#[test]
fn replayed_udp_flows_answer_with_the_recorded_datagrams() {
    let sim_spec = SimSpec {
        clients: 0,
        udp: 5,
        ..SimSpec::default()
    };
    let (frames, recorded_conns) = capture_of_sim(&sim_spec);
    let result =
        session::run_replay(&spec_for(frames, 3), &ExportPlan::default()).expect("replay runs");
    let recorded: Vec<_> = recorded_conns
        .iter()
        .filter(|c| c.proto == ConnProto::Udp)
        .collect();
    assert!(!recorded.is_empty(), "the sim run had UDP flows");
    for rec in recorded {
        let played = result
            .connections
            .iter()
            .find(|c| c.proto == ConnProto::Udp && c.remote == rec.remote)
            .unwrap_or_else(|| panic!("no replayed UDP flow for {}", rec.remote));
        assert_eq!(played.app, "recorded");
        assert_eq!(
            played.app_read, rec.app_read,
            "datagrams read from {}",
            rec.remote
        );
        assert!(rec.app_written.bytes > 0);
        assert_eq!(
            played.app_written, rec.app_written,
            "datagrams answered to {}",
            rec.remote
        );
    }
}

#[test]
fn as_the_client_the_recorded_app_connects_and_plays_the_client_turns() {
    let sim_spec = SimSpec {
        clients: 2,
        bytes: 6000,
        udp: 0,
        ..SimSpec::default()
    };
    let (frames, recorded_conns) = capture_of_sim(&sim_spec);
    let mut spec = spec_for(frames, 11);
    let client_ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    spec.as_ip = Some(client_ip);
    let result = session::run_replay(&spec, &ExportPlan::default()).expect("replay runs");
    assert_eq!(result.identity.ip, client_ip);
    let tcp: Vec<_> = result
        .connections
        .iter()
        .filter(|c| c.proto == ConnProto::Tcp)
        .collect();
    assert_eq!(tcp.len(), 2, "{:#?}", result.connections);
    for rec in recorded_conns.iter().filter(|c| c.proto == ConnProto::Tcp) {
        // The recorded server's view of the flow, seen from the client's side.
        let played = tcp
            .iter()
            .find(|c| c.local == rec.remote)
            .unwrap_or_else(|| panic!("no replayed client connection from {}", rec.remote));
        assert_eq!(played.app, "recorded");
        assert_eq!(played.remote, rec.local);
        assert_eq!(
            played.app_written, rec.app_read,
            "client bytes sent from {}",
            rec.remote
        );
        assert_eq!(
            played.app_read, rec.app_written,
            "server bytes received by {}",
            rec.remote
        );
    }
    for d in &result.diffs {
        assert_eq!(d.first_divergence, None, "{d}");
    }
}
