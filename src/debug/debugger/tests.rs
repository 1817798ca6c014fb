use super::*;
use crate::pipeline::stage::{OutcomeKind, Stage};
use crate::sim::{self, SimSpec};

fn spec(clients: usize, bytes: usize, frame_buffer: usize) -> SimSpec {
    SimSpec {
        clients,
        bytes,
        udp: 0,
        frame_buffer,
        ..SimSpec::default()
    }
}

fn debugger(s: SimSpec) -> Debugger {
    Debugger::new(Box::new(move || sim::build(&s).pipeline))
}

/// The next move that did something (the run starts by waiting for the peer's first frame).
fn next_step(d: &mut Debugger) -> StepReport {
    loop {
        match d.step() {
            Moved::Stepped(r) => return r,
            Moved::Waited { .. } => {}
            Moved::Ended | Moved::Pending => panic!("the run ended"),
        }
    }
}

fn run_to_end(d: &mut Debugger) {
    while d.step() != Moved::Ended {}
}

#[test]
fn stepping_to_the_end_gives_the_same_run_as_running_it() {
    let s = spec(1, 3000, 256);
    let mut plain = sim::build(&s).pipeline;
    while !plain.run_until(s.max_time_ns, 4096) {}
    let plain_packets: Vec<PacketRecord> = plain.drain_finished().collect();

    let mut d = debugger(s);
    run_to_end(&mut d);
    assert_eq!(d.pipeline().stats(), plain.stats());
    let stepped: Vec<&PacketRecord> = d.finished().collect();
    assert_eq!(stepped.len(), plain_packets.len());
    for (a, b) in stepped.iter().zip(&plain_packets) {
        assert_eq!(*a, b);
    }
}

#[test]
fn a_step_is_one_engine_action_with_its_hops() {
    let mut d = debugger(spec(1, 1000, 256));
    assert!(
        matches!(d.step(), Moved::Waited { until } if until > 0),
        "the peer's first frame comes later"
    );
    let first = next_step(&mut d);
    assert_eq!(first.hops.len(), 1, "{first:?}");
    assert_eq!(first.hops[0].1, Stage::Wire);
    let second = next_step(&mut d);
    assert_eq!(second.hops, vec![(first.hops[0].0, Stage::FrameBuffer)]);
    assert_eq!(d.moves(), 3);
}

#[test]
fn next_finishes_the_selected_packets_path() {
    let mut d = debugger(spec(1, 1000, 256));
    let first = next_step(&mut d);
    let id = first.hops[0].0;
    assert!(d.packet(id).unwrap().outcome.is_none());
    d.next(id, 10_000);
    let p = d.packet(id).expect("kept");
    assert!(p.outcome.is_some(), "{p:?}");
}

#[test]
fn continue_stops_at_the_first_drop_and_says_why() {
    // Four clients at once into a two-frame buffer: the buffer overflows.
    let mut d = debugger(spec(4, 20_000, 2));
    d.breakpoints.push(Breakpoint::AnyDrop);
    let hit = d.cont(1_000_000).expect("a drop");
    assert_eq!(hit.breakpoint, 0);
    let id = hit.packet.unwrap();
    let p = d.packet(id).unwrap();
    let o = p.outcome.as_ref().unwrap();
    assert_eq!(o.kind, OutcomeKind::Dropped);
    assert_eq!(
        hit.why,
        format!(
            "any drop: #{id} dropped at {} ({})",
            o.stage.name(),
            o.reason.as_ref().unwrap()
        )
    );
}

#[test]
fn stage_filter_and_state_breakpoints_stop_where_they_should() {
    let mut d = debugger(spec(1, 3000, 256));
    d.breakpoints.push(Breakpoint::Stage(Stage::App));
    let hit = d.cont(1_000_000).expect("data reaches the app");
    let id = hit.packet.unwrap();
    assert_eq!(hit.why, format!("stage app: #{id} reached app"));
    assert!(
        d.packet(id)
            .unwrap()
            .hops
            .iter()
            .any(|h| h.stage == Stage::App)
    );

    let mut d = debugger(spec(1, 3000, 256));
    d.breakpoints
        .push(Breakpoint::Filter(Filter::parse("tx and syn").unwrap()));
    let hit = d.cont(1_000_000).expect("the SYN-ACK");
    let p = d.packet(hit.packet.unwrap()).unwrap();
    assert!(
        crate::pipeline::dissect::dissect(&p.frame)
            .summary()
            .contains("[S.]")
    );

    let mut d = debugger(spec(1, 3000, 256));
    d.breakpoints.push(Breakpoint::TcpStateChange);
    let hit = d.cont(1_000_000).expect("LISTEN → SYN-RECEIVED");
    assert!(
        hit.why
            .starts_with("TCP state change: connection 1: LISTEN → SYN-RECEIVED"),
        "{}",
        hit.why
    );
    let again = d.cont(1_000_000).expect("SYN-RECEIVED → ESTABLISHED");
    assert!(
        again.why.contains("SYN-RECEIVED → ESTABLISHED"),
        "{}",
        again.why
    );
}

#[test]
fn a_buffer_breakpoint_names_the_connection_and_its_levels() {
    let mut d = debugger(spec(1, 200_000, 256));
    d.breakpoints.push(Breakpoint::BufferAbove(1000));
    let hit = d.cont(1_000_000).expect("the echo backs up");
    assert!(hit.packet.is_none());
    assert!(
        hit.why
            .starts_with("buffer above 1000 bytes: connection 1 holds "),
        "{}",
        hit.why
    );
}

#[test]
fn step_back_returns_to_exactly_the_step_before() {
    let mut d = debugger(spec(2, 5000, 256));
    for _ in 0..40 {
        d.step();
    }
    let (moves, now, stats) = (d.moves(), d.pipeline().now(), d.pipeline().stats().clone());
    let kept: Vec<PacketRecord> = d.finished().cloned().collect();
    d.step();
    assert_ne!(d.moves(), moves);
    d.step_back();
    assert_eq!(d.moves(), moves);
    assert_eq!(d.pipeline().now(), now);
    assert_eq!(d.pipeline().stats(), &stats);
    assert_eq!(d.finished().cloned().collect::<Vec<_>>(), kept);
}

#[test]
fn a_replay_of_the_demo_capture_steps_and_steps_back() {
    use crate::replay::{ReplaySpec, Source, prepare};
    let spec = ReplaySpec::of(Source::demo());
    let build_spec = spec.clone();
    let mut d = Debugger::new(Box::new(move || {
        prepare(&build_spec).expect("the demo replays").0
    }));
    d.breakpoints.push(Breakpoint::Stage(Stage::App));
    let hit = d.cont(100_000).expect("the GET reaches the app");
    let request = d.packet(hit.packet.unwrap()).unwrap().clone();
    assert_eq!(
        request.capture_frame,
        Some(6),
        "the request is the capture's frame 6"
    );
    let at = d.moves();
    d.step();
    d.step_back();
    assert_eq!(d.moves(), at);
    assert_eq!(
        d.packet(request.id),
        Some(&request),
        "the same packet, the same way"
    );
    run_to_end(&mut d);
    let headless = crate::session::run_replay(&spec, &Default::default()).unwrap();
    assert_eq!(d.pipeline().stats(), &headless.stats);
}

#[test]
fn rewinding_many_moves_at_once_is_the_same_as_stepping_back_each() {
    let mut d = debugger(spec(2, 5000, 256));
    for _ in 0..30 {
        d.step();
    }
    let (now, stats) = (d.pipeline().now(), d.pipeline().stats().clone());
    let kept: Vec<PacketRecord> = d.finished().cloned().collect();
    for _ in 0..25 {
        d.step();
    }
    d.rewind_to(30);
    assert_eq!(d.moves(), 30);
    assert_eq!(d.pipeline().now(), now);
    assert_eq!(d.pipeline().stats(), &stats);
    assert_eq!(d.finished().cloned().collect::<Vec<_>>(), kept);
    d.rewind_to(1_000);
    assert_eq!(d.moves(), 30, "rewinding never goes forward");
}
