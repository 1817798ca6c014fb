//! The pipeline: a stage machine over explicit queues (wire slot → rx frame buffer → stack → socket buffers →
//! connections → apps, and back through the tx queue). `step()` performs the next single action and reports
//! the hops it recorded; `run_until` repeats it. Time comes from the `Clock` it is handed; it owns no threads,
//! so with a virtual clock a run is a pure function of its inputs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use super::apps::{App, AppKind, AppSource};
use super::capture::LogLine;
use super::clock::{Clock, Nanos};
use super::connection::{CONN_BUFFER, Progress, RxSpan, TcpConn};
use super::device::Emitted;
use super::dissect::{self, FlowKey, Proto, Transport};
use super::frame_buffer::FrameBuffer;
use super::packet_table::PacketTable;
use super::reason::Reason;
use super::stack::{Stack, StackConfig};
use super::stage::{Dir, OutcomeKind, Stage};
use super::trace::{
    ConnEventKind, ConnId, ConnectionRecord, Hop, Outcome, PacketId, PacketRecord, Role,
    StateChange, Stats, Trigger,
};
use super::udp::UdpService;
use super::verdict::{self, Reply, SocketEffect, Verdict};

/// The far side of the wire: a simulated peer, a capture being replayed, or a TAP device.
/// What becomes of a frame that arrived at the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Into the frame buffer and on to the stack.
    Inject,
    /// Shown at the wire and finished there, not injected: a replayed capture's own record of what the stack
    /// sent (kept to diff against what it sends now). `flow` is its connection's (stack, peer) addresses when
    /// the wire knows them: the recorded frame marks when that connection's app wrote, so the app is woken.
    Recorded {
        flow: Option<(SocketAddr, SocketAddr)>,
    },
    /// Could not be injected, for this reason (a truncated or unreadable record).
    Refused(Reason),
    /// The far side's own guarded frame buffer (a live tap thread's, shared with the stack thread) was full
    /// when the frame arrived: shown at the wire and the frame buffer, and dropped there as `frame_buffer_full`.
    Overflowed { capacity: usize },
    /// A replayed capture's record of the stack opening a connection: finished at the wire like `Recorded`,
    /// and the app behind the stack connects now, from the recorded port, as the recorded client did.
    Connect { local_port: u16, remote: SocketAddr },
}

/// A frame arriving at the wire, with what the wire knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub frame: Vec<u8>,
    pub fate: Fate,
    /// Shown among the packet's log lines, e.g. "synthetic: ARP request made by the replay".
    pub note: Option<String>,
    /// The frame's number in the capture it was replayed from (1-based, as Wireshark counts); None for
    /// frames the far side made itself.
    pub capture_frame: Option<u64>,
    /// When the far side really read the frame (a live tap thread's timestamp, on the pipeline's clock): its
    /// `wire` and `frame_buffer` hops carry this time, so the time to `stack` is real queueing. None: the
    /// frame arrives when the pipeline takes it (sim, replay).
    pub at: Option<Nanos>,
}

impl Arrival {
    pub fn inject(frame: Vec<u8>) -> Self {
        Arrival {
            frame,
            fate: Fate::Inject,
            note: None,
            capture_frame: None,
            at: None,
        }
    }
}

pub trait Wire {
    /// Let the far side run everything due at or before `now`.
    fn advance(&mut self, now: Nanos);
    /// The next frame that has arrived by `now`.
    fn receive(&mut self, now: Nanos) -> Option<Vec<u8>>;
    /// The next arrival by `now`, with its fate and notes; by default every received frame is injected.
    fn arrive(&mut self, now: Nanos) -> Option<Arrival> {
        self.receive(now).map(Arrival::inject)
    }
    /// A frame the pipeline put on the wire at `now`.
    fn transmit(&mut self, now: Nanos, frame: &[u8]);
    /// When the far side next has something to do.
    fn next_event(&self) -> Option<Nanos>;
    /// Nothing more will come unless the pipeline sends something.
    fn is_done(&self) -> bool;
    /// Does the far side wait for room in the frame buffer rather than overflow it? (A replay at full speed
    /// has no recorded pace to keep: it goes as fast as the stack takes frames. A TAP or a paced replay
    /// does not wait, and overflow is a drop.)
    fn waits_for_room(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub stack: StackConfig,
    /// Capacity of the rx frame buffer and of the tx queue, in frames.
    pub frame_buffer: usize,
    pub tcp_apps: BTreeMap<u16, AppKind>,
    pub udp_apps: BTreeMap<u16, AppKind>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            stack: StackConfig::default(),
            frame_buffer: 256,
            tcp_apps: BTreeMap::new(),
            udp_apps: BTreeMap::new(),
        }
    }
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A frame arrived from the wire.
    WireIn,
    /// The arrived frame went into the rx frame buffer (or was refused).
    FrameBufferIn,
    /// A tx frame left the tx queue for the wire.
    WireOut,
    /// smoltcp processed one rx frame.
    StackRx,
    /// smoltcp ran its due timers.
    Timers,
    /// smoltcp sent what app activity made possible.
    AppEgress,
    /// A connection moved bytes between socket, its buffers and its app.
    Connection(ConnId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub t_ns: Nanos,
    pub action: Action,
    /// Hops recorded, in order.
    pub hops: Vec<(PacketId, Stage)>,
    /// Packets that reached their outcome in this step.
    pub finished: Vec<PacketId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Progress(StepReport),
    /// Nothing can happen before `next` (None: nothing will happen at all).
    Idle {
        next: Option<Nanos>,
        /// `next` without the poll of apps waiting on the outside world: the next frame or stack timer. A
        /// live run that sleeps on those apps' descriptors instead waits until this.
        timer: Option<Nanos>,
    },
}

/// When an idle path can next act: `Step::Idle`'s two times.
struct Wakeup {
    next: Option<Nanos>,
    timer: Option<Nanos>,
}

/// While an app waits on the outside world, the path wakes up at least this often (virtual time)…
pub const EXTERNAL_POLL_NS: Nanos = 1_000_000;
/// …and `wait_until` (so `run_until` and the TUI's debugger too) lets this much real time pass before each such
/// wake-up.
pub const EXTERNAL_POLL_REAL: std::time::Duration = std::time::Duration::from_micros(200);

pub struct Pipeline {
    clock: Box<dyn Clock>,
    wire: Box<dyn Wire>,
    pub(super) stack: Stack,
    rx_queue: FrameBuffer<PacketId>,
    tx_queue: FrameBuffer<PacketId>,
    /// The frame that just arrived, with the time it entered the far side's frame buffer if the wire knows it.
    wire_slot: Option<(PacketId, Option<Nanos>)>,
    packets: PacketTable,
    finished: VecDeque<PacketRecord>,
    next_packet: PacketId,
    next_conn: ConnId,
    conns: BTreeMap<ConnId, TcpConn>,
    conn_by_handle: BTreeMap<SocketHandle, ConnId>,
    conn_by_flow: BTreeMap<(SocketAddr, SocketAddr), ConnId>,
    listener_since: BTreeMap<SocketHandle, Nanos>,
    /// Sockets left in TIME-WAIT after their connection ended; removed once closed.
    lingering: Vec<SocketHandle>,
    closed: Vec<ConnectionRecord>,
    tcp_apps: BTreeMap<u16, AppKind>,
    pub(super) udp: UdpService,
    stats: Stats,
    egress_pending: BTreeSet<ConnId>,
    /// Connections that may be able to move bytes: touched by a stack window, or still progressing. A
    /// connection leaves the set after a round in which nothing moved; only the stack can change that.
    ready: BTreeSet<ConnId>,
    service_cursor: ConnId,
    worker_cursor: usize,
    next_local_port: u16,
    report: Option<StepReport>,
    /// One read buffer for every connection's AF_UNIX reads, so no round allocates or zeroes one.
    scratch: Vec<u8>,
    /// Makes the apps that must know their connection (replay's `recorded`).
    pub(super) app_source: Option<Box<dyn AppSource>>,
}

impl Pipeline {
    pub fn new(config: PipelineConfig, clock: Box<dyn Clock>, wire: Box<dyn Wire>) -> Self {
        super::capture::begin();
        let mut stack = Stack::new(&config.stack);
        let mut listener_since = BTreeMap::new();
        for &port in config.tcp_apps.keys() {
            for h in stack.listen_tcp(port) {
                listener_since.insert(h, clock.now());
            }
        }
        let udp = UdpService::new(&mut stack, &config.udp_apps);
        Pipeline {
            rx_queue: FrameBuffer::new(config.frame_buffer),
            tx_queue: FrameBuffer::new(config.frame_buffer),
            clock,
            wire,
            stack,
            wire_slot: None,
            packets: PacketTable::default(),
            finished: VecDeque::new(),
            next_packet: 1,
            next_conn: 1,
            conns: BTreeMap::new(),
            conn_by_handle: BTreeMap::new(),
            conn_by_flow: BTreeMap::new(),
            listener_since,
            lingering: Vec::new(),
            closed: Vec::new(),
            tcp_apps: config.tcp_apps,
            udp,
            stats: Stats::default(),
            egress_pending: BTreeSet::new(),
            ready: BTreeSet::new(),
            service_cursor: 0,
            worker_cursor: 0,
            next_local_port: 49152,
            report: None,
            scratch: vec![0; CONN_BUFFER],
            app_source: None,
        }
    }

    /// Where apps of kind `recorded` come from.
    pub fn set_app_source(&mut self, source: Box<dyn AppSource>) {
        self.app_source = Some(source);
    }

    pub fn now(&self) -> Nanos {
        self.clock.now()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn wire(&self) -> &dyn Wire {
        &*self.wire
    }

    /// Packets that reached their outcome since the last call, in the order they did.
    pub fn drain_finished(&mut self) -> impl Iterator<Item = PacketRecord> + '_ {
        self.finished.drain(..)
    }

    /// A packet still on its way.
    pub fn packet(&self, id: PacketId) -> Option<&PacketRecord> {
        self.packets.get(&id)
    }

    /// A packet that finished and has not been drained yet (the newest are searched first).
    pub fn finished_packet(&self, id: PacketId) -> Option<&PacketRecord> {
        self.finished.iter().rev().find(|p| p.id == id)
    }

    /// The packets still on their way, by id (read-only; the TUI's snapshot counts queue depths from them).
    pub fn in_flight(&self) -> impl Iterator<Item = &PacketRecord> + '_ {
        self.packets.iter()
    }

    /// Capacity of the rx frame buffer and of the tx queue (they are the same size).
    pub fn frame_buffer_capacity(&self) -> usize {
        self.rx_queue.capacity()
    }

    pub fn frame_buffer_depth(&self) -> (usize, usize) {
        (self.rx_queue.len(), self.tx_queue.len())
    }

    /// Bytes waiting in each open TCP connection's own buffers: (connection, rx, tx), by connection id.
    pub fn conn_buffer_levels(&self) -> impl Iterator<Item = (ConnId, usize, usize)> + '_ {
        self.conns
            .iter()
            .map(|(&id, c)| (id, c.rx_buffered(), c.tx_buffered()))
    }

    /// The open TCP connections' records with their current state (`ESTABLISHED`, …), by connection id
    /// (read-only; the TUI's connections view draws them).
    pub fn open_connections(&self) -> impl Iterator<Item = (&ConnectionRecord, String)> + '_ {
        self.conns
            .values()
            .map(|c| (&c.record, c.state.to_string()))
    }

    /// The UDP flows (they stay open for the whole run), with the bytes in their own rx and tx buffers.
    pub fn udp_flows(&self) -> impl Iterator<Item = (&ConnectionRecord, usize, usize)> + '_ {
        self.udp.flow_levels()
    }

    /// The TCP connections that ended during the run so far, in the order they did.
    pub fn closed_connections(&self) -> &[ConnectionRecord] {
        &self.closed
    }

    /// The earliest wire time of a packet still on its way (an rx frame that has arrived but not finished).
    /// Every packet drained later either has this wire time or later, or reaches the wire at `now()` or later.
    pub fn earliest_wire_in_flight(&self) -> Option<Nanos> {
        self.packets
            .iter()
            .filter_map(|p| p.hops.first().filter(|h| h.stage == Stage::Wire))
            .map(|h| h.t_ns)
            .min()
    }

    /// Nothing queued anywhere on the path and no connection still open.
    pub fn is_quiet(&self) -> bool {
        self.wire_slot.is_none()
            && self.rx_queue.is_empty()
            && self.tx_queue.is_empty()
            && self.egress_pending.is_empty()
            && self.conns.is_empty()
            && self.udp.is_quiet(&self.stack)
    }

    /// Let virtual time pass to `t` with nothing happening (after `step` said the path is idle until then).
    /// When nothing is due before `t` but the poll of an app waiting on the outside world (a child process, a
    /// real service), that world first gets `EXTERNAL_POLL_REAL` of real time to answer.
    pub fn wait_until(&mut self, t: Nanos) {
        if t >= self.clock.now() + EXTERNAL_POLL_NS && self.waits_on_external() {
            std::thread::sleep(EXTERNAL_POLL_REAL);
        }
        self.clock.wait_until(t);
    }

    /// Perform the next single action, and report what it did hop by hop.
    pub fn step(&mut self) -> Step {
        self.report = Some(StepReport {
            t_ns: self.clock.now(),
            action: Action::WireIn,
            hops: Vec::new(),
            finished: Vec::new(),
        });
        match self.advance() {
            Ok(action) => {
                let mut report = self.report.take().expect("report set above");
                report.action = action;
                Step::Progress(report)
            }
            Err(wakeup) => {
                self.report = None;
                Step::Idle {
                    next: wakeup.next,
                    timer: wakeup.timer,
                }
            }
        }
    }

    /// Perform the next single action; the step report is filled in only when `step` asked for one. Err says
    /// nothing could act now, with when something next can.
    fn advance(&mut self) -> Result<Action, Wakeup> {
        let now = self.clock.now();
        self.wire.advance(now);
        match self.act(now) {
            Some(action) => {
                self.clock.charge_hop();
                Ok(action)
            }
            None => Err(self.next_wakeup(now)),
        }
    }

    /// Step until `deadline`, until the far side is done and the path is quiet, or for at most `max_steps`
    /// steps. Returns true when the run is over (done, or nothing can happen before the deadline).
    pub fn run_until(&mut self, deadline: Nanos, max_steps: u64) -> bool {
        self.run_until_with(deadline, max_steps, |_, _| {})
    }

    /// `run_until`, calling `after_step` after every step that acted, with the time the step happened at (its
    /// hops carry that time). Exporters sample buffer occupancy this way.
    pub fn run_until_with(
        &mut self,
        deadline: Nanos,
        max_steps: u64,
        mut after_step: impl FnMut(&Pipeline, Nanos),
    ) -> bool {
        for _ in 0..max_steps {
            if self.wire.is_done() && self.is_quiet() {
                return true;
            }
            let at = self.clock.now();
            match self.advance() {
                Ok(_) => {
                    after_step(self, at);
                    if self.clock.now() > deadline {
                        return true;
                    }
                }
                _ if self.wire.is_done() && self.is_quiet() => return true,
                Err(Wakeup { next: Some(t), .. }) if t <= deadline => self.wait_until(t),
                Err(_) => return true,
            }
        }
        false
    }

    /// End the run: every packet still on its way gets `in_flight`; open connections are recorded as they are.
    pub fn finish(&mut self) -> Vec<ConnectionRecord> {
        let ids = self.packets.ids();
        let now = self.clock.now();
        for id in ids {
            let stage = self.packets[&id].last_stage().unwrap_or(Stage::Wire);
            self.conclude(
                id,
                OutcomeKind::InFlight,
                stage,
                None,
                Some("the run ended first".into()),
            );
        }
        let mut records = std::mem::take(&mut self.closed);
        for conn in self.conns.values_mut() {
            conn.event(
                now,
                ConnEventKind::State,
                format!("still {} when the run ended", conn.state),
            );
            records.push(conn.record.clone());
        }
        records.extend(self.udp.records());
        records.sort_by_key(|r| r.id);
        super::capture::end();
        records
    }

    /// Some connection's app waits on something outside the pipeline (`exec:`, `forward:`): work can arrive
    /// without any frame or timer, so the path is never idle for long. Runs without such apps never see this.
    pub fn waits_on_external(&self) -> bool {
        self.conns.values().any(|c| c.app_wants_service())
    }

    /// The descriptors (with their `poll(2)` events) whose readiness brings the apps waiting on the outside
    /// world work, so a live run with nothing else to do can sleep on them; None when some app's next work
    /// cannot be told by a descriptor, and it must be polled.
    pub fn external_wake_fds(&self) -> Option<Vec<(std::os::fd::RawFd, i16)>> {
        let mut fds = Vec::new();
        self.conns
            .values()
            .filter(|c| c.app_wants_service())
            .all(|c| c.app_wake_fds(&mut fds))
            .then_some(fds)
    }

    fn next_wakeup(&mut self, now: Nanos) -> Wakeup {
        let timer = [self.wire.next_event(), self.stack.next_timer(now)]
            .into_iter()
            .flatten()
            .map(|t| t.max(now))
            .min();
        let external = self.waits_on_external().then(|| now + EXTERNAL_POLL_NS);
        Wakeup {
            next: timer.into_iter().chain(external).min(),
            timer,
        }
    }

    /// One action. The tap reader and writer go first whenever they have a frame: they are cheap I/O threads
    /// and in a live run they outpace the stack, which is why a burst can overflow the frame buffer. The stack
    /// and the connections (with their apps) take turns, as two threads running side by side would, so neither
    /// starves the other. Within the stack, app egress and due timers go before the next rx frame, so each
    /// frame's window holds only what that frame caused.
    fn act(&mut self, now: Nanos) -> Option<Action> {
        if let Some(action) = self.tap_reader(now).or_else(|| self.tap_writer(now)) {
            return Some(action);
        }
        for turn in 0..2 {
            let stack_first = (self.worker_cursor + turn).is_multiple_of(2);
            let action = if stack_first {
                self.stack_work(now)
            } else {
                self.udp_service(now)
                    .or_else(|| self.service_connections(now))
            };
            if action.is_some() {
                self.worker_cursor = usize::from(stack_first);
                return action;
            }
        }
        None
    }

    fn tap_reader(&mut self, now: Nanos) -> Option<Action> {
        if let Some((id, at)) = self.wire_slot.take() {
            self.enqueue_rx(id, at.unwrap_or(now));
            return Some(Action::FrameBufferIn);
        }
        if self.wire.waits_for_room() && self.rx_queue.len() >= self.rx_queue.capacity() {
            return None;
        }
        let arrival = self.wire.arrive(now)?;
        self.stats.frames_in += 1;
        // A recorded frame of the stack marks when its app wrote: wake that flow's app (a replayed one plays
        // its next turn once the capture has reached it).
        if let Fate::Recorded { flow: Some(flow) } = &arrival.fate
            && let Some(&cid) = self.conn_by_flow.get(flow)
        {
            self.ready.insert(cid);
        }
        let id = self.new_packet(Dir::Rx, arrival.frame, Trigger::Wire);
        self.hop(id, Stage::Wire, arrival.at.unwrap_or(now));
        if let Some(p) = self.packets.get_mut(&id) {
            p.capture_frame = arrival.capture_frame;
            if let Some(note) = arrival.note {
                p.stack_log.push(LogLine::note(note));
            }
        }
        match arrival.fate {
            Fate::Inject => self.wire_slot = Some((id, arrival.at)),
            Fate::Overflowed { capacity } => {
                self.hop(id, Stage::FrameBuffer, arrival.at.unwrap_or(now));
                self.drop_packet(id, Stage::FrameBuffer, Reason::FrameBufferFull { capacity });
            }
            Fate::Recorded { .. } => {
                let note = "recorded response of the stack: kept for the diff, not injected";
                self.conclude(
                    id,
                    OutcomeKind::Consumed,
                    Stage::Wire,
                    None,
                    Some(note.into()),
                );
            }
            Fate::Refused(reason) => self.drop_packet(id, Stage::Wire, reason),
            Fate::Connect { local_port, remote } => {
                let note = "recorded SYN of the stack: not injected; its app connects now instead";
                self.conclude(
                    id,
                    OutcomeKind::Consumed,
                    Stage::Wire,
                    None,
                    Some(note.into()),
                );
                if self.connect_recorded(local_port, remote).is_none()
                    && let Some(p) = self.packets.get_mut(&id)
                {
                    p.stack_log.push(LogLine::note(format!(
                        "no app could connect from port {local_port} to {remote}"
                    )));
                }
            }
        }
        Some(Action::WireIn)
    }

    fn tap_writer(&mut self, now: Nanos) -> Option<Action> {
        let id = self.tx_queue.pop()?;
        self.hop(id, Stage::Wire, now);
        self.stats.frames_out += 1;
        if let Some(p) = self.packets.get(&id) {
            self.wire.transmit(now, &p.frame);
        }
        self.conclude(id, OutcomeKind::Sent, Stage::Wire, None, None);
        Some(Action::WireOut)
    }

    fn stack_work(&mut self, now: Nanos) -> Option<Action> {
        if !self.egress_pending.is_empty() {
            self.app_egress(now);
            return Some(Action::AppEgress);
        }
        if self.stack.next_timer(now).is_some_and(|t| t <= now) {
            let window = self.stack.timers(now);
            let (emitted, _logs) = window.all_emitted();
            self.emit(emitted, Trigger::Timer, now);
            let all: Vec<ConnId> = self.conns.keys().copied().collect();
            for id in all {
                self.refresh_state(id, now, None);
                self.ready.insert(id);
            }
            self.sweep(now);
            return Some(Action::Timers);
        }
        let id = self.rx_queue.pop()?;
        self.stack_rx(id, now);
        Some(Action::StackRx)
    }

    fn new_packet(&mut self, dir: Dir, frame: Vec<u8>, trigger: Trigger) -> PacketId {
        let id = self.next_packet;
        self.next_packet += 1;
        let mut record = PacketRecord::new(id, dir, Vec::new(), trigger);
        // An rx frame of a known connection belongs to its flow from the wire on, so a drop before the stack
        // (a full frame buffer) is still found under its connection. (A tx frame's flow is set by `emit`.)
        if dir == Dir::Rx {
            record.flow = dissect::dissect(&frame)
                .flow_key()
                .and_then(|k| self.conn_by_flow.get(&(k.dst, k.src)).copied());
        }
        record.frame = frame;
        self.packets.insert(id, record);
        id
    }

    pub(super) fn hop(&mut self, id: PacketId, stage: Stage, t_ns: Nanos) {
        if let Some(p) = self.packets.get_mut(&id) {
            let t_ns = p.hops.last().map_or(t_ns, |h| h.t_ns.max(t_ns));
            p.hops.push(Hop { stage, t_ns });
            if let Some(r) = &mut self.report {
                r.hops.push((id, stage));
            }
        }
    }

    /// Give a packet its one outcome and hand it to the finished queue.
    pub(super) fn conclude(
        &mut self,
        id: PacketId,
        kind: OutcomeKind,
        stage: Stage,
        reason: Option<Reason>,
        note: Option<String>,
    ) {
        let Some(mut p) = self.packets.remove(&id) else {
            return;
        };
        p.outcome = Some(Outcome {
            kind,
            stage,
            reason,
            note,
        });
        self.stats.record_outcome(&p);
        if let Some(r) = &mut self.report {
            r.finished.push(id);
        }
        self.finished.push_back(p);
    }

    pub(super) fn drop_packet(&mut self, id: PacketId, stage: Stage, reason: Reason) {
        self.conclude(id, OutcomeKind::Dropped, stage, Some(reason), None);
    }

    pub(super) fn packets_mut(&mut self, id: PacketId) -> Option<&mut PacketRecord> {
        self.packets.get_mut(&id)
    }

    pub(super) fn alloc_conn_id(&mut self) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        id
    }

    /// End of a live run: take every frame the far side has already read but the pipeline has not (at most
    /// `max`), recording its `wire` and `frame_buffer` hops, so `finish` gives it `in_flight` at the frame
    /// buffer instead of it vanishing. Overflow records are dropped as usual. Returns how many were taken.
    pub fn admit_waiting(&mut self, max: usize) -> u64 {
        let now = self.clock.now();
        let mut n = 0;
        while n < max as u64 {
            let Some(arrival) = self.wire.arrive(now) else {
                break;
            };
            n += 1;
            self.stats.frames_in += 1;
            let at = arrival.at.unwrap_or(now);
            let id = self.new_packet(Dir::Rx, arrival.frame, Trigger::Wire);
            self.hop(id, Stage::Wire, at);
            self.hop(id, Stage::FrameBuffer, at);
            if let Fate::Overflowed { capacity } = arrival.fate {
                self.drop_packet(id, Stage::FrameBuffer, Reason::FrameBufferFull { capacity });
            }
        }
        n
    }

    /// Let every open connection's app run again: an app fed from outside the core (a process, a socket) may
    /// have data the core has no way to know of. A live run calls this while connections are open.
    pub fn wake_connections(&mut self) {
        self.ready.extend(self.conns.keys().copied());
    }

    /// Count trace events that could not be kept (a live run's bounded queues overflowing past their records).
    pub fn add_events_lost(&mut self, n: u64) {
        self.stats.events_lost += n;
    }

    pub(super) fn mark_egress(&mut self, cid: ConnId) {
        self.egress_pending.insert(cid);
    }

    fn enqueue_rx(&mut self, id: PacketId, now: Nanos) {
        match self.rx_queue.push(id) {
            Ok(()) => self.hop(id, Stage::FrameBuffer, now),
            Err(id) => {
                let capacity = self.rx_queue.capacity();
                self.hop(id, Stage::FrameBuffer, now);
                self.drop_packet(id, Stage::FrameBuffer, Reason::FrameBufferFull { capacity });
            }
        }
    }

    /// Turn frames smoltcp emitted into tx packets: stack hop, then the tx queue.
    fn emit(&mut self, emitted: Vec<Emitted>, trigger: Trigger, now: Nanos) -> Vec<PacketId> {
        let mut ids = Vec::with_capacity(emitted.len());
        for e in emitted {
            let info = dissect::dissect(&e.frame);
            let id = self.new_packet(Dir::Tx, e.frame, trigger);
            let mut earlier: Vec<Hop> = Vec::new();
            let mut flow = None;
            let mut payload_of = Vec::new();
            let mut stream = None;
            match (info.flow_key(), &info.transport) {
                (
                    Some(key),
                    Transport::Tcp {
                        seq,
                        flags,
                        payload_len,
                        ..
                    },
                ) => {
                    if let Some(&cid) = self.conn_by_flow.get(&(key.src, key.dst)) {
                        flow = Some(cid);
                        let conn = self
                            .conns
                            .get_mut(&cid)
                            .expect("flow map points at live conns");
                        if flags.syn {
                            conn.iss = Some(*seq);
                        }
                        if *payload_len > 0
                            && let Some(iss) = conn.iss
                        {
                            let start = seq.wrapping_sub(iss.wrapping_add(1)) as u64;
                            let end = start + *payload_len as u64;
                            stream = Some((start, end));
                            let last = end - 1;
                            for (stage, marks) in [
                                (Stage::App, &conn.tx_app_marks),
                                (Stage::ConnBuffer, &conn.tx_conn_marks),
                                (Stage::SocketBuffer, &conn.tx_sock_marks),
                            ] {
                                if let Some(t) = marks.time_of(last) {
                                    earlier.push(Hop { stage, t_ns: t });
                                }
                            }
                            payload_of = conn.sources_of(start, end);
                        }
                    }
                }
                (Some(key), Transport::Udp { .. }) if key.proto == Proto::Udp => {
                    if let Some((cid, hops, sources)) = self.udp.tx_origin(e.meta_id) {
                        flow = Some(cid);
                        earlier = hops;
                        payload_of = sources;
                    }
                }
                _ => {}
            }
            if let Some(p) = self.packets.get_mut(&id) {
                p.flow = flow;
                p.payload_of = payload_of;
                p.stream = stream;
                p.hops = earlier.clone();
            }
            if let Some(r) = &mut self.report {
                r.hops.extend(earlier.iter().map(|h| (id, h.stage)));
            }
            self.hop(id, Stage::Stack, now);
            match self.tx_queue.push(id) {
                Ok(()) => self.hop(id, Stage::FrameBuffer, now),
                Err(id) => {
                    let capacity = self.tx_queue.capacity();
                    self.hop(id, Stage::FrameBuffer, now);
                    self.drop_packet(id, Stage::FrameBuffer, Reason::TxQueueFull { capacity });
                }
            }
            ids.push(id);
        }
        ids
    }

    fn app_egress(&mut self, now: Nanos) {
        let pending = std::mem::take(&mut self.egress_pending);
        let window = self.stack.egress(now);
        let (emitted, _logs) = window.all_emitted();
        // Everything sent here is the apps' doing: each frame goes to its own connection when its flow names
        // one of them; frames with no flow (the ARP a connect needs) go to the first.
        let first = pending.iter().next().copied().unwrap_or_default();
        let ids = self.emit(emitted, Trigger::App(first), now);
        for id in ids {
            let p = self
                .packets
                .get_mut(&id)
                .or_else(|| self.finished.iter_mut().rev().find(|p| p.id == id));
            if let Some(p) = p
                && let Some(c) = p.flow.filter(|c| pending.contains(c))
            {
                p.trigger = Trigger::App(c);
            }
        }
        for cid in pending {
            self.refresh_state(cid, now, None);
            self.ready.insert(cid);
        }
        self.sweep(now);
    }

    /// The TCP socket (connection or listener) that smoltcp will hand this frame to, if any.
    fn tcp_target(&self, key: &FlowKey, syn_only: bool) -> Option<SocketHandle> {
        if let Some(cid) = self.conn_by_flow.get(&(key.dst, key.src)) {
            return self.conns.get(cid).map(|c| c.handle);
        }
        if syn_only && self.stack.is_listening_port(key.dst.port()) {
            return self.stack.first_listener(key.dst.port());
        }
        None
    }

    fn stack_rx(&mut self, id: PacketId, now: Nanos) {
        let frame = self.packets[&id].frame.clone();
        let info = dissect::dissect(&frame);
        self.hop(id, Stage::Stack, now);

        let tcp_key = info.flow_key().filter(|k| k.proto == Proto::Tcp);
        let syn_only = matches!(&info.transport, Transport::Tcp { flags, .. } if flags.syn && !flags.ack && !flags.rst);
        let target = tcp_key.as_ref().and_then(|k| self.tcp_target(k, syn_only));
        let before = target.map(|h| {
            let s = self.stack.sockets.get::<tcp::Socket>(h);
            (s.state(), s.recv_queue())
        });

        let window = self.stack.ingress(now, frame, id as u32);
        // Listeners a SYN took become connections (before their SYN-ACK is traced, so it maps to them).
        self.accept_new(now, id);
        let immediate = self.emit(window.immediate, Trigger::Frame(id), now);
        let egress = self.emit(window.egress, Trigger::Frame(id), now);
        let logs = window.logs;

        let mut effect = SocketEffect::default();
        let mut target_conn = None;
        if let (Some(h), Some((state_before, queue_before))) = (target, before) {
            let s = self.stack.sockets.get::<tcp::Socket>(h);
            effect.touched = state_before != tcp::State::Closed;
            if s.state() != state_before {
                effect.state_change = Some(format!("{state_before} → {}", s.state()));
            }
            target_conn = self.conn_by_handle.get(&h).copied();
            let accepted = logs
                .iter()
                .filter(|l| l.target.ends_with("socket::tcp"))
                .find_map(|l| verdict::parse_receiving(&l.message));
            if let (Some((offset, n)), Some(cid)) = (accepted, target_conn) {
                let conn = &self.conns[&cid];
                let readable_end = conn.rx_taken + queue_before as u64;
                effect.tcp_accepted = Some((readable_end + offset, n));
            }
        }
        effect.udp_queued = logs
            .iter()
            .any(|l| l.target.ends_with("socket::udp") && l.message.contains(": receiving "))
            && !logs
                .iter()
                .any(|l| l.message.contains("buffer full, dropped incoming packet"));

        let replies: Vec<Reply> = immediate
            .iter()
            .filter_map(|rid| {
                self.packets
                    .get(rid)
                    .or_else(|| self.finished.iter().rev().find(|p| p.id == *rid))
                    .map(|p| Reply {
                        id: *rid,
                        info: dissect::dissect(&p.frame),
                    })
            })
            .collect();
        let verdict = verdict::classify(&info, self.stack.mac, &logs, &replies, &effect);

        if let Some(p) = self.packets.get_mut(&id) {
            p.caused = immediate.iter().chain(&egress).copied().collect();
            p.stack_log = logs;
            p.flow = target_conn.or(p.flow);
        }
        if let Some(cid) = target_conn {
            self.refresh_state(cid, now, Some(id));
            self.ready.insert(cid);
        }

        match verdict {
            Verdict::Consumed { note } => {
                self.conclude(id, OutcomeKind::Consumed, Stage::Stack, None, Some(note));
            }
            Verdict::Dropped(reason) => self.drop_packet(id, Stage::Stack, reason),
            Verdict::DroppedAtSocket(reason) => {
                self.hop(id, Stage::SocketBuffer, now);
                self.drop_packet(id, Stage::SocketBuffer, reason);
            }
            Verdict::ToSocket { note } => {
                self.hop(id, Stage::SocketBuffer, now);
                if let Some(p) = self.packets.get_mut(&id)
                    && let Some(note) = note
                {
                    p.stack_log.push(LogLine::note(note));
                }
                // TCP payload waits for the connection to copy it out; a UDP datagram's packet id travels in
                // smoltcp's packet-meta id, so it needs no bookkeeping here.
                if let (Some((start, n)), Some(cid)) = (effect.tcp_accepted, target_conn) {
                    let end = start + n;
                    if let Some(p) = self.packets.get_mut(&id) {
                        p.stream = Some((start, end));
                    }
                    if let Some(conn) = self.conns.get_mut(&cid) {
                        conn.at_socket.push(RxSpan { packet: id, end });
                    }
                }
            }
        }
        self.sweep(now);
    }

    fn accept_new(&mut self, now: Nanos, by_packet: PacketId) {
        let (taken, created) = self.stack.take_accepted();
        for h in created {
            self.listener_since.insert(h, now);
        }
        for (port, handle) in taken {
            let since = self.listener_since.remove(&handle).unwrap_or(0);
            let s = self.stack.sockets.get::<tcp::Socket>(handle);
            let (Some(local), Some(remote)) = (s.local_endpoint(), s.remote_endpoint()) else {
                continue;
            };
            let (local, remote) = (endpoint_addr(local), endpoint_addr(remote));
            let kind = self
                .tcp_apps
                .get(&port)
                .cloned()
                .unwrap_or(AppKind::Discard);
            let app = kind.instantiate().or_else(|| {
                let source = self.app_source.as_mut()?;
                source.accepted(local, remote)
            });
            let Some(app) = app else {
                // Nothing to play for this connection (a recorded app with no recorded flow): refuse it.
                self.stack.sockets.get_mut::<tcp::Socket>(handle).abort();
                continue;
            };
            let cid = self.next_conn;
            self.next_conn += 1;
            let Ok(mut conn) = TcpConn::new(
                cid,
                handle,
                local,
                remote,
                Role::Accepted,
                &kind.to_string(),
                app,
                tcp::State::Listen,
            ) else {
                // No file descriptors left for the AF_UNIX pair: refuse the connection visibly.
                self.stack.sockets.get_mut::<tcp::Socket>(handle).abort();
                continue;
            };
            conn.event(
                since,
                ConnEventKind::Listen,
                format!("listening on port {port}"),
            );
            conn.event(
                now,
                ConnEventKind::Accept,
                format!(
                    "SYN from {remote} (packet {by_packet}) taken by a listener; app {}",
                    kind
                ),
            );
            self.conn_by_handle.insert(handle, cid);
            self.conn_by_flow.insert((local, remote), cid);
            self.conns.insert(cid, conn);
            self.ready.insert(cid);
            if let Some(p) = self.packets.get_mut(&by_packet) {
                p.flow = Some(cid);
            }
        }
    }

    /// Open a connection from an app behind the stack to `remote` (the connect path).
    pub fn connect(
        &mut self,
        remote: SocketAddr,
        app_name: &str,
        app: Box<dyn App>,
    ) -> Option<ConnId> {
        let local_port = self.next_local_port;
        self.next_local_port = self.next_local_port.checked_add(1).unwrap_or(49152);
        let mut app = Some(app);
        self.connect_from(local_port, remote, app_name, &mut |_| app.take())
    }

    /// A replayed client: connect from the recorded port with the app the app source has for that flow.
    fn connect_recorded(&mut self, local_port: u16, remote: SocketAddr) -> Option<ConnId> {
        let mut source = self.app_source.take()?;
        let name = AppKind::Recorded.name();
        let cid = self.connect_from(local_port, remote, name, &mut |local| {
            source.connecting(local, remote)
        });
        self.app_source = Some(source);
        cid
    }

    /// Connect from `local_port` to `remote`, with the app `make_app` gives for the connection's addresses.
    fn connect_from(
        &mut self,
        local_port: u16,
        remote: SocketAddr,
        app_name: &str,
        make_app: &mut dyn FnMut(SocketAddr) -> Option<Box<dyn App>>,
    ) -> Option<ConnId> {
        let now = self.clock.now();
        let mut socket = self.stack.tcp_socket();
        let remote_ep = smoltcp::wire::IpEndpoint::new(remote.ip().into(), remote.port());
        socket
            .connect(self.stack.iface.context(), remote_ep, local_port)
            .ok()?;
        let local_ip = socket.local_endpoint().map(|e| endpoint_addr(e).ip());
        let local = SocketAddr::new(local_ip.unwrap_or(self.stack.ipv4().into()), local_port);
        let app = make_app(local)?;
        let handle = self.stack.sockets.add(socket);
        let cid = self.next_conn;
        self.next_conn += 1;
        let mut conn = TcpConn::new(
            cid,
            handle,
            local,
            remote,
            Role::Connected,
            app_name,
            app,
            tcp::State::SynSent,
        )
        .ok()?;
        conn.event(
            now,
            ConnEventKind::Connect,
            format!("app connects to {remote} from port {local_port}"),
        );
        self.conn_by_handle.insert(handle, cid);
        self.conn_by_flow.insert((local, remote), cid);
        self.conns.insert(cid, conn);
        self.egress_pending.insert(cid);
        self.ready.insert(cid);
        Some(cid)
    }

    /// Compare a connection's socket state with what we last saw; record the change.
    fn refresh_state(&mut self, cid: ConnId, now: Nanos, by_packet: Option<PacketId>) {
        let Some(conn) = self.conns.get_mut(&cid) else {
            return;
        };
        let state = self.stack.sockets.get::<tcp::Socket>(conn.handle).state();
        if state == conn.state {
            return;
        }
        let from = conn.state;
        conn.state = state;
        let by = by_packet.map_or(String::new(), |p| format!(" (packet {p})"));
        conn.event(now, ConnEventKind::State, format!("{from} → {state}{by}"));
        if state == tcp::State::Established {
            conn.event(
                now,
                ConnEventKind::Established,
                format!("{} ⇄ {}", conn.record.local, conn.record.remote),
            );
        }
        let reset = matches!(state, tcp::State::Closed | tcp::State::Listen)
            && !matches!(
                from,
                tcp::State::LastAck | tcp::State::TimeWait | tcp::State::Closing
            );
        if reset {
            conn.event(
                now,
                ConnEventKind::Reset,
                format!("connection ended abruptly in {from}"),
            );
        }
        if let Some(pid) = by_packet
            && let Some(p) = self.packets.get_mut(&pid)
        {
            p.state_changes.push(StateChange {
                conn: cid,
                from: from.to_string(),
                to: state.to_string(),
            });
        }
    }

    /// End connections whose socket has closed, and release sockets that finished TIME-WAIT.
    fn sweep(&mut self, now: Nanos) {
        let ended: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(id, c)| match c.state {
                // A connection reset by its app still has its RST to send: it goes with the egress.
                tcp::State::Closed | tcp::State::Listen => !self.egress_pending.contains(id),
                tcp::State::TimeWait => c.finished_in_time_wait(),
                _ => false,
            })
            .map(|(&id, _)| id)
            .collect();
        for cid in ended {
            let Some(mut conn) = self.conns.remove(&cid) else {
                continue;
            };
            let detail = if conn.state == tcp::State::TimeWait {
                "closed (socket lingers in TIME-WAIT)".to_string()
            } else {
                "closed".to_string()
            };
            conn.event(now, ConnEventKind::Closed, detail);
            let why = if conn
                .record
                .events
                .iter()
                .any(|e| e.kind == ConnEventKind::Reset)
            {
                "the connection was reset"
            } else {
                "the connection closed"
            };
            for pid in conn.stranded() {
                self.drop_packet(
                    pid,
                    self.packets
                        .get(&pid)
                        .and_then(|p| p.last_stage())
                        .unwrap_or(Stage::Stack),
                    Reason::ConnectionClosed { detail: why.into() },
                );
            }
            self.conn_by_handle.remove(&conn.handle);
            self.conn_by_flow
                .remove(&(conn.record.local, conn.record.remote));
            self.egress_pending.remove(&cid);
            self.ready.remove(&cid);
            if conn.state == tcp::State::TimeWait {
                self.lingering.push(conn.handle);
            } else {
                self.stack.sockets.remove(conn.handle);
            }
            self.closed.push(conn.record);
        }
        let sockets = &mut self.stack.sockets;
        self.lingering.retain(|&h| {
            let closed = sockets.get::<tcp::Socket>(h).state() == tcp::State::Closed;
            if closed {
                sockets.remove(h);
            }
            !closed
        });
    }

    fn service_connections(&mut self, now: Nanos) -> Option<Action> {
        let order: Vec<ConnId> = self
            .ready
            .range(self.service_cursor + 1..)
            .chain(self.ready.range(..=self.service_cursor))
            .copied()
            .collect();
        for cid in order {
            let mut p = Progress::default();
            let Some(conn) = self.conns.get_mut(&cid) else {
                self.ready.remove(&cid);
                continue;
            };
            {
                let socket = self.stack.sockets.get_mut::<tcp::Socket>(conn.handle);
                conn.pump_rx(socket, now, &mut p);
                if !p.moved {
                    conn.run_app(now, &mut p);
                }
                if !p.moved {
                    conn.pump_tx(socket, now, &mut p, &mut self.scratch);
                }
                let acked = conn.tx_sock_sent - socket.send_queue() as u64;
                conn.prune_acked(acked);
            }
            if !p.moved {
                // An app waiting on a process or a real socket stays ready: its work arrives from outside.
                if !conn.app_wants_service() {
                    self.ready.remove(&cid);
                    // Its app just finished with its outside end: a connection in TIME-WAIT can end now.
                    if conn.state == tcp::State::TimeWait {
                        self.sweep(now);
                        if !self.conns.contains_key(&cid) {
                            return Some(Action::Connection(cid));
                        }
                    }
                }
                continue;
            }
            self.service_cursor = cid;
            for pid in p.to_conn {
                self.hop(pid, Stage::ConnBuffer, now);
            }
            for pid in p.to_app {
                self.hop(pid, Stage::App, now);
                self.conclude(pid, OutcomeKind::Delivered, Stage::App, None, None);
            }
            if p.egress_needed {
                self.egress_pending.insert(cid);
            }
            self.refresh_state(cid, now, None);
            self.sweep(now);
            return Some(Action::Connection(cid));
        }
        None
    }
}

pub(super) fn endpoint_addr(e: smoltcp::wire::IpEndpoint) -> SocketAddr {
    SocketAddr::new(e.addr.into(), e.port)
}
