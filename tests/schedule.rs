//! The live schedule (`Schedule::StackFirst`): the stack takes the frames waiting before the connections move
//! bytes, so a connection step carries several frames' payload; every byte still comes back, and the
//! deterministic runs' alternating schedule is unchanged.

use pktpath::pipeline::engine::{Action, Schedule, Step};
use pktpath::sim::{self, SimSpec};

/// Run a sim to its end under `schedule`; returns the connection steps taken and whether every client got
/// back exactly what it sent.
fn run(schedule: Schedule) -> (u64, bool, u64) {
    let spec = SimSpec {
        clients: 3,
        bytes: 200_000,
        udp: 0,
        ..SimSpec::default()
    };
    let mut run = sim::build(&spec);
    run.pipeline.set_schedule(schedule);
    let mut connection_steps = 0;
    let mut steps = 0;
    loop {
        match run.pipeline.step() {
            Step::Progress(report) => {
                steps += 1;
                if matches!(report.action, Action::Connection(_)) {
                    connection_steps += 1;
                }
            }
            Step::Idle { next: Some(t) } if t <= spec.max_time_ns => run.pipeline.wait_until(t),
            Step::Idle { .. } => break,
        }
        run.pipeline.drain_finished().for_each(drop);
        assert!(steps < 10_000_000, "the run never ended");
    }
    let report = run.report.borrow();
    let all_back = report.clients.len() == 3
        && report
            .clients
            .iter()
            .all(|c| c.completed && c.sent == c.received && c.received.bytes == 200_000);
    (connection_steps, all_back, steps)
}

#[test]
fn stack_first_moves_every_byte_in_fewer_connection_steps() {
    let (alternate_conn, alternate_ok, _) = run(Schedule::Alternate);
    let (stack_first_conn, stack_first_ok, _) = run(Schedule::StackFirst);
    eprintln!("connection steps: alternate {alternate_conn}, stack first {stack_first_conn}");
    assert!(
        alternate_ok,
        "alternating: every client gets its bytes back"
    );
    assert!(
        stack_first_ok,
        "stack first: every client gets its bytes back"
    );
    assert!(
        stack_first_conn < alternate_conn,
        "stack first batches the connections' work: {stack_first_conn} connection steps vs {alternate_conn}"
    );
}
