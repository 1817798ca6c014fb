//! The pipeline: a stage machine over explicit queues (wire slot → rx frame buffer → stack → socket buffers →
//! connections → apps, and back through the tx queue). `step()` performs the next single action and reports
//! the hops it recorded; `run_until` repeats it. Time comes from the `Clock` it is handed; it owns no threads,
//! so with a virtual clock a run is a pure function of its inputs.
//!
//! The pieces of a step are `impl Pipeline` blocks in the child modules: `rx` (wire → frame buffer → stack →
//! socket), `tx` (stack → tx queue → wire), `connections` (TCP connections and their apps), `udp` (UDP flows)
//! and `record` (numbering packets, their hops and outcomes).

mod connections;
mod record;
mod rx;
mod tx;
mod udp;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

use smoltcp::iface::SocketHandle;

use super::apps::{AppKind, AppSource};
use super::clock::{Clock, Nanos};
use super::config::PipelineConfig;
use super::connection::{CONN_BUFFER, TcpConn};
use super::frame_buffer::FrameBuffer;
use super::ids::{ConnId, PacketId};
use super::packet_table::PacketTable;
use super::stack::Stack;
use super::stage::{OutcomeKind, Stage};
use super::trace::{ConnEventKind, ConnectionRecord, PacketRecord, Stats, Trigger};
use super::udp::UdpService;
use super::wire::Wire;

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
    stack: Stack,
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
    udp: UdpService,
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
    app_source: Option<Box<dyn AppSource>>,
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
        let now = self.clock.now();
        self.end_reassembly(now);
        let ids = self.packets.ids();
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
        // At `--max-speed` the wire waits for room in the frame buffer; UDP gets the same courtesy: while a
        // datagram waits in a port's socket, it moves on toward its app before the stack takes another frame,
        // so a burst the recording did not lose is not lost here (a TCP sender is held by the window instead).
        // Only an app that stops reading lets the socket fill and drop.
        if self.wire.waits_for_room()
            && self.udp.has_waiting(&self.stack)
            && let Some(action) = self.udp_service(now)
        {
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

    /// Count trace events that could not be kept (a live run's bounded queues overflowing past their records).
    pub fn add_events_lost(&mut self, n: u64) {
        self.stats.events_lost += n;
    }
}
