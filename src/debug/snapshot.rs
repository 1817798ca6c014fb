//! `Snapshot`: an owned picture of the run that the render thread draws from, so no lock is held while drawing.
//! It is built from the pipeline's counters, the packets still in flight, and a bounded window of finished
//! records chosen by the caller (the rows to show, never the whole history).

use std::net::SocketAddr;

use super::history::Entry;
use crate::pipeline::clock::Nanos;
use crate::pipeline::connection::CONN_BUFFER;
use crate::pipeline::engine::Pipeline;
use crate::pipeline::ids::{ConnId, PacketId};
use crate::pipeline::stage::{Dir, OutcomeKind, Stage};
use crate::pipeline::trace::{ConnEventKind, ConnProto, ConnectionRecord, PacketRecord};
use crate::pipeline::udp::FLOW_BUFFER_BYTES;

/// Where the events come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Live,
    /// The built-in simulated peers (`pktpath sim`).
    Sim,
    Replay {
        file: String,
    },
}

/// One stage of one lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StageCounts {
    /// Packets whose latest hop is this stage right now.
    pub queued: u64,
    /// Packets that went on from this stage or completed there without a drop (rx: delivered, consumed; tx:
    /// sent). A packet still sitting here is not counted yet.
    pub passed: u64,
    /// Packets dropped at this stage.
    pub drops: u64,
}

/// A lane's stages, indexed by `Stage as usize` (receive order) whatever the lane's direction.
pub type Lane = [StageCounts; 6];

/// One line of the packet list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketRow {
    pub id: PacketId,
    /// Time of its first hop.
    pub t_ns: Nanos,
    pub dir: Dir,
    pub summary: String,
    /// Which stages it reached, in the lane's path order (index 0 is where a packet of `dir` starts).
    pub stages_reached: [bool; 6],
    /// The stage it is at now (in flight) or ended at (finished).
    pub stage: Option<Stage>,
    /// `None` while in flight.
    pub outcome: Option<OutcomeKind>,
    pub reason: Option<&'static str>,
}

impl PacketRow {
    pub fn of(p: &PacketRecord) -> PacketRow {
        let mut stages_reached = [false; 6];
        for h in &p.hops {
            stages_reached[h.stage.position(p.dir)] = true;
        }
        PacketRow {
            id: p.id,
            t_ns: p.hops.first().map_or(0, |h| h.t_ns),
            dir: p.dir,
            summary: p.summary(),
            stages_reached,
            stage: p.outcome.as_ref().map(|o| o.stage).or(p.last_stage()),
            outcome: p.outcome.as_ref().map(|o| o.kind),
            reason: p
                .outcome
                .as_ref()
                .and_then(|o| o.reason.as_ref().map(|r| r.code())),
        }
    }
}

impl PacketRow {
    /// The row of a packet the list remembers only by its entry.
    pub fn of_entry(e: &Entry) -> PacketRow {
        let mut stages_reached = [false; 6];
        for stage in Stage::ALL {
            if e.has_reached(stage) {
                stages_reached[stage.position(e.dir)] = true;
            }
        }
        PacketRow {
            id: e.id,
            t_ns: e.t_ns,
            dir: e.dir,
            summary: e.info.summary(),
            stages_reached,
            stage: Some(e.stage),
            outcome: Some(e.outcome),
            reason: e.reason,
        }
    }
}

/// What the connections view says of a UDP flow's state: UDP has none, and a flow lasts the whole run.
pub const UDP_STATE: &str = "OPEN";

/// One TCP connection (open or closed) or UDP flow, for the connections view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnRow {
    pub id: ConnId,
    pub proto: &'static str,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub app: String,
    /// The state now (open), or the last it reached (closed).
    pub state: String,
    /// Every state it went through, oldest first (`LISTEN`, `SYN-RECEIVED`, `ESTABLISHED`, …).
    pub history: Vec<String>,
    pub open: bool,
    /// Bytes waiting in the connection's own rx and tx buffers (0 once closed), out of `capacity` each.
    pub rx_buffered: usize,
    pub tx_buffered: usize,
    pub capacity: usize,
    /// What the app read from the connection and wrote to it.
    pub app_read: u64,
    pub app_written: u64,
}

impl ConnRow {
    /// `state` is `None` for a closed connection (it ends in its history's last state).
    pub fn of(r: &ConnectionRecord, state: Option<String>, rx: usize, tx: usize) -> ConnRow {
        let history = state_history(r);
        let open = state.is_some();
        let state = state
            .or_else(|| history.last().cloned())
            .unwrap_or_else(|| "CLOSED".into());
        ConnRow {
            id: r.id,
            proto: r.proto.name(),
            local: r.local,
            remote: r.remote,
            app: r.app.clone(),
            state,
            history,
            open,
            rx_buffered: rx,
            tx_buffered: tx,
            capacity: match r.proto {
                ConnProto::Tcp => CONN_BUFFER,
                ConnProto::Udp => FLOW_BUFFER_BYTES,
            },
            app_read: r.app_read.bytes,
            app_written: r.app_written.bytes,
        }
    }
}

/// The states in a record's `state` events (`LISTEN → SYN-RECEIVED (packet 3)`): the first one's `from`,
/// then each `to`.
fn state_history(r: &ConnectionRecord) -> Vec<String> {
    let mut history: Vec<String> = Vec::new();
    for e in r.events.iter().filter(|e| e.kind == ConnEventKind::State) {
        let Some((from, to)) = e.detail.split_once(" → ") else {
            continue;
        };
        let to = to.split(" (").next().unwrap_or(to);
        if history.is_empty() {
            history.push(from.to_string());
        }
        history.push(to.to_string());
    }
    history
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub now_ns: Nanos,
    pub mode: Mode,
    pub paused: bool,
    /// Replay speed factor; `None` when as fast as possible (or live).
    pub speed: Option<f64>,
    pub frames_in: u64,
    pub frames_out: u64,
    pub dropped: u64,
    pub events_lost: u64,
    pub frame_buffer_capacity: usize,
    pub rx: Lane,
    pub tx: Lane,
    /// Finished rows from the caller's window and (up to `MAX_IN_FLIGHT_ROWS`) the packets in flight, by id.
    pub rows: Vec<PacketRow>,
    /// How many packets the whole list holds (the rows are a window of it) and the rank of the first row.
    pub listed: usize,
    pub first_listed: usize,
    pub selected: Option<PacketId>,
    /// The TCP connections (those that ended, then the open ones) and the UDP flows, by id.
    pub connections: Vec<ConnRow>,
}

/// The one drop reason that only the tx lane has; every other code is counted on the rx lane (see
/// `Snapshot::of`).
const TX_ONLY_DROP: &str = "tx_queue_full";

/// At most this many in-flight packets become rows (the oldest: a stuck packet is the interesting one). Both
/// frame buffers full at their default size fit; the counters still count every packet in flight.
pub const MAX_IN_FLIGHT_ROWS: usize = 1024;

impl Snapshot {
    /// Build from the pipeline's run-wide counters, its packets in flight and `finished_window` (the finished
    /// records the caller wants listed). Counts are exact for the whole run, not just the window: `passed`
    /// comes from the hop transitions `Stats` records for every finished packet.
    pub fn of(pipeline: &Pipeline, finished_window: &[PacketRecord]) -> Snapshot {
        let mut snapshot = Snapshot::counters(pipeline);
        let mut rows: Vec<PacketRow> = finished_window.iter().map(PacketRow::of).collect();
        rows.extend(
            pipeline
                .in_flight()
                .take(MAX_IN_FLIGHT_ROWS)
                .map(PacketRow::of),
        );
        rows.sort_by_key(|r| r.id);
        rows.dedup_by_key(|r| r.id);
        snapshot.listed = rows.len();
        snapshot.rows = rows;
        snapshot
    }

    /// Everything but the rows: the run's counters, lanes and connections.
    pub fn counters(pipeline: &Pipeline) -> Snapshot {
        let stats = pipeline.stats();
        // Indexed by `Dir as usize`: rx, tx.
        let mut lanes = [Lane::default(); 2];
        // Every finished packet records its hop transitions, and a drop always follows a hop to the drop stage.
        // An rx packet that reached a stage and was not dropped there either went on or ended there well
        // (delivered at the app, consumed by the stack), so rx `passed` is reached minus dropped. tx packets
        // start at different stages (the app, or the stack for a bare ACK), so there it counts leaving.
        for (&(dir, from, to), h) in &stats.hop_latency {
            match dir {
                Dir::Rx => {
                    lanes[Dir::Rx as usize][to as usize].passed += h.count();
                    if from == Stage::Wire {
                        lanes[Dir::Rx as usize][Stage::Wire as usize].passed += h.count();
                    }
                }
                Dir::Tx => lanes[Dir::Tx as usize][from as usize].passed += h.count(),
            }
        }
        // Reaching the wire is how a tx packet completes.
        lanes[Dir::Tx as usize][Stage::Wire as usize].passed +=
            stats.outcomes.get("sent").copied().unwrap_or(0);
        // Stats keys drops by stage and reason, not direction; only the tx queue's overflow is a tx drop,
        // and `connection_closed`, which can strand either way, is shown on the rx lane.
        for (&(stage, code), &n) in &stats.drops {
            let dir = if code == TX_ONLY_DROP {
                Dir::Tx
            } else {
                Dir::Rx
            };
            lanes[dir as usize][stage as usize].drops += n;
        }
        for c in &mut lanes[Dir::Rx as usize][Stage::FrameBuffer as usize..] {
            c.passed = c.passed.saturating_sub(c.drops);
        }
        for p in pipeline.in_flight() {
            if let Some(last) = p.last_stage() {
                lanes[p.dir as usize][last as usize].queued += 1;
            }
            for pair in p.hops.windows(2) {
                lanes[p.dir as usize][pair[0].stage as usize].passed += 1;
            }
        }
        let levels: std::collections::BTreeMap<ConnId, (usize, usize)> = pipeline
            .conn_buffer_levels()
            .map(|(id, rx, tx)| (id, (rx, tx)))
            .collect();
        let mut connections: Vec<ConnRow> = pipeline
            .closed_connections()
            .iter()
            .map(|r| ConnRow::of(r, None, 0, 0))
            .chain(pipeline.open_connections().map(|(r, state)| {
                let (rx, tx) = levels.get(&r.id).copied().unwrap_or_default();
                ConnRow::of(r, Some(state), rx, tx)
            }))
            .chain(
                pipeline
                    .udp_flows()
                    .map(|(r, rx, tx)| ConnRow::of(r, Some(UDP_STATE.into()), rx, tx)),
            )
            .collect();
        connections.sort_by_key(|c| c.id);
        Snapshot {
            now_ns: pipeline.now(),
            frames_in: stats.frames_in,
            frames_out: stats.frames_out,
            dropped: stats.dropped(),
            events_lost: stats.events_lost,
            frame_buffer_capacity: pipeline.frame_buffer_capacity(),
            rx: lanes[Dir::Rx as usize],
            tx: lanes[Dir::Tx as usize],
            connections,
            ..Snapshot::default()
        }
    }

    pub fn lane(&self, dir: Dir) -> &Lane {
        match dir {
            Dir::Rx => &self.rx,
            Dir::Tx => &self.tx,
        }
    }

    pub fn counts(&self, dir: Dir, stage: Stage) -> StageCounts {
        self.lane(dir)[stage as usize]
    }

    /// What the pipeline cannot know: where its events come from, whether the UI paused it, and how fast it runs.
    pub fn with_mode(mut self, mode: Mode, paused: bool, speed: Option<f64>) -> Snapshot {
        self.mode = mode;
        self.paused = paused;
        self.speed = speed;
        self
    }

    /// Select a packet by id (kept even if it is not among the rows; then nothing is highlighted).
    pub fn select(mut self, id: Option<PacketId>) -> Snapshot {
        self.selected = id;
        self
    }

    pub fn selected_row(&self) -> Option<(usize, &PacketRow)> {
        let id = self.selected?;
        let i = self.rows.binary_search_by_key(&id, |r| r.id).ok()?;
        Some((i, &self.rows[i]))
    }

    /// The lane and stage the selected packet is at now (or ended at).
    pub fn selected_stage(&self) -> Option<(Dir, Stage)> {
        let (_, row) = self.selected_row()?;
        Some((row.dir, row.stage?))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sim::{self, SimSpec};

    fn small_spec() -> SimSpec {
        SimSpec {
            clients: 1,
            bytes: 1000,
            udp: 1,
            ..SimSpec::default()
        }
    }

    /// Step until packet `id` is in flight with `stage` as its latest hop.
    pub(crate) fn step_until_at(pipeline: &mut Pipeline, id: PacketId, stage: Stage) {
        for _ in 0..10_000 {
            if pipeline.packet(id).and_then(|p| p.last_stage()) == Some(stage) {
                return;
            }
            if let crate::pipeline::engine::Step::Idle { next: Some(t), .. } = pipeline.step() {
                // Nothing to do before `t`: run to it (the virtual clock jumps).
                pipeline.run_until(t, 1);
            }
        }
        panic!("packet {id} never sat at {stage}");
    }

    fn counts(queued: u64, passed: u64, drops: u64) -> StageCounts {
        StageCounts {
            queued,
            passed,
            drops,
        }
    }

    #[test]
    fn mid_run_snapshot_counts_the_packets_in_flight_where_they_are() {
        let mut run = sim::build(&small_spec());
        // Packet 5 carries the client's 1000 bytes; stop while it sits in the socket buffer.
        step_until_at(&mut run.pipeline, 5, Stage::SocketBuffer);
        let done: Vec<_> = run.pipeline.drain_finished().collect();
        let s = Snapshot::of(&run.pipeline, &done).select(Some(5));
        assert_eq!(
            (s.now_ns, s.frames_in, s.frames_out, s.dropped),
            (259_000, 3, 2, 0)
        );
        assert_eq!(s.frame_buffer_capacity, 256);
        let ids: Vec<_> = s.rows.iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            [1, 2, 3, 4, 5, 6],
            "finished window then in flight, by id"
        );
        assert_eq!(s.counts(Dir::Rx, Stage::Wire), counts(0, 3, 0));
        // Packets 1 and 3 (ARP, SYN) ended in the stack; 5 went on.
        assert_eq!(s.counts(Dir::Rx, Stage::Stack), counts(0, 3, 0));
        assert_eq!(s.counts(Dir::Rx, Stage::SocketBuffer), counts(1, 0, 0));
        // Packet 6 (the ACK for it) waits in the tx queue.
        assert_eq!(s.counts(Dir::Tx, Stage::FrameBuffer), counts(1, 2, 0));
        assert_eq!(s.counts(Dir::Tx, Stage::Stack), counts(0, 3, 0));
        assert_eq!(s.selected_stage(), Some((Dir::Rx, Stage::SocketBuffer)));
        let row = s.selected_row().unwrap().1;
        assert_eq!(row.stages_reached, [true, true, true, true, false, false]);
        assert_eq!(row.outcome, None);
        assert_eq!(
            s.rows[5].stages_reached,
            [false, false, false, true, true, false]
        );
    }

    #[test]
    fn finished_run_counts_every_packet_once() {
        let spec = small_spec();
        let mut run = sim::build(&spec);
        let mut finished = Vec::new();
        while !run.pipeline.run_until(spec.max_time_ns, 4096) {
            finished.extend(run.pipeline.drain_finished());
        }
        finished.extend(run.pipeline.drain_finished());
        // Only the last three rows in the window: the counts still cover the whole run.
        let s = Snapshot::of(&run.pipeline, &finished[finished.len() - 3..]);
        assert_eq!(
            (s.frames_in, s.frames_out, s.dropped, s.events_lost),
            (6, 6, 0, 0)
        );
        assert_eq!(
            s.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            [10, 11, 12]
        );
        let rx: Vec<_> = s.rx.iter().map(|c| (c.queued, c.passed)).collect();
        // Four of the six rx frames (ARP, SYN, two ACKs) end in the stack; two reach the app.
        assert_eq!(rx, [(0, 6), (0, 6), (0, 6), (0, 2), (0, 2), (0, 2)]);
        let tx: Vec<_> = s.tx.iter().map(|c| (c.queued, c.passed)).collect();
        assert_eq!(tx, [(0, 6), (0, 6), (0, 6), (0, 2), (0, 2), (0, 2)]);
        let udp = &s.rows[1];
        assert_eq!(udp.summary, "10.0.0.2:5000 > 10.0.0.1:7 UDP len=716");
        assert_eq!(
            (udp.dir, udp.outcome, udp.stage),
            (Dir::Rx, Some(OutcomeKind::Delivered), Some(Stage::App))
        );
        assert_eq!(
            s.select(Some(99)).selected_stage(),
            None,
            "not among the rows"
        );
    }

    #[test]
    fn drops_land_on_their_stage_and_lane() {
        // A one-slot frame buffer overflows when three clients connect at once.
        let spec = SimSpec {
            frame_buffer: 1,
            clients: 3,
            ..small_spec()
        };
        let mut run = sim::build(&spec);
        while !run.pipeline.run_until(spec.max_time_ns, 4096) {
            run.pipeline.drain_finished().for_each(drop);
        }
        let s = Snapshot::of(&run.pipeline, &[]);
        assert_eq!((s.frames_in, s.frames_out, s.dropped), (17, 14, 3));
        assert_eq!(s.counts(Dir::Rx, Stage::Wire), counts(0, 17, 0));
        assert_eq!(s.counts(Dir::Rx, Stage::FrameBuffer), counts(0, 14, 3));
        assert_eq!(s.counts(Dir::Rx, Stage::Stack), counts(0, 14, 0));
        assert!(s.tx.iter().all(|c| c.drops == 0));
        assert!(s.rows.is_empty());
    }
}
