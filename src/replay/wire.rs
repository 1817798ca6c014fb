//! The replay's wire: plays a capture into the pipeline as the other hosts would. Frames to the stack are
//! injected at their recorded time (× speed), with their acks rebased onto the stack's own sequence numbers;
//! the stack's recorded frames are shown and kept as the script of what it should answer; ARP and neighbour
//! discovery are answered with the capture's MACs. A frame never acknowledges bytes the stack has not sent:
//! it waits, bounded, and says so.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::rc::Rc;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv6Address, Ipv6Packet, Ipv6Repr,
    NdiscRepr, RawHardwareAddress,
};

use crate::pipeline::clock::Nanos;
use crate::pipeline::engine::{Arrival, Fate, Wire};
use crate::pipeline::reason::Reason;

use super::capture::CapturedFrame;
use super::diff::{FlowCompare, FlowId, Side};
use super::retransmit::{self, Unacked};
use super::role::Identity;
use super::script::{Datagram, Scripts};
use super::segment::{self, Layers};

/// How long an injected frame may wait for the stack to send what it acknowledges before it goes anyway.
pub const ACK_WAIT_LIMIT_NS: Nanos = 2_000_000_000;
/// How long a frame waits for the stack to send what it acknowledges before it goes in acknowledging only
/// what was sent (the stack is held back by its window or its congestion window, which only acks open).
pub const ACK_CLAMP_AFTER_NS: Nanos = 200_000;
/// How long after the stack sends owed bytes the emulated peer acknowledges them.
pub const OWED_ACK_DELAY_NS: Nanos = 100_000;
/// Unplayed script bytes (all flows) past which reading the capture waits for the stack.
pub const SCRIPT_LIMIT: u64 = 4 << 20;
/// Reads between two sums of the scripts' unplayed bytes.
const THROTTLE_CHECK_EVERY: u32 = 64;
/// Capture records read ahead of the current time, at most (memory stays bounded at any speed).
const LOOKAHEAD: usize = 4096;

/// Sequence numbers of one TCP flow, recorded and live, on the stack's side.
#[derive(Debug, Default, Clone)]
struct SeqState {
    recorded_isn: Option<u32>,
    peer_isn: Option<u32>,
    live_isn: Option<u32>,
    /// Sequence space the live stack has put on the wire without a gap, relative to its ISN (the SYN counts
    /// one): what the emulated peer has received and may acknowledge.
    live_sent: u32,
    /// Stretches the stack put on the wire beyond a gap (a segment it sent that never reached the wire, lost
    /// to a full tx queue), start → end: received, not yet acknowledgeable.
    live_beyond: BTreeMap<u32, u32>,
    live_tsval: Option<u32>,
    /// How far (past the stack's ISN) the peer has acknowledged in frames injected so far.
    acked: u32,
    /// How far the recorded peer acknowledged in frames that had to be injected with a smaller ack: the
    /// emulated peer still owes the stack those acknowledgements, and sends them as the stack catches up.
    owed: u32,
    /// The last frame injected for this flow, trimmed to its headers: the pattern for a synthetic ACK.
    last_injected: Option<(Vec<u8>, Layers)>,
    /// Data the peer injected that the stack has not acknowledged, to send again if it needs it.
    unacked: Unacked,
    /// When the owed acknowledgement goes out, if one is scheduled.
    ack_due: Option<Nanos>,
}

/// Stretches beyond a gap the peer keeps at most (the stack's send window bounds them in practice).
const MAX_LIVE_BEYOND: usize = 1024;

impl SeqState {
    /// How far the peer owes an acknowledgement now: what it recorded acknowledging, as far as the stack sent.
    fn owed_now(&self) -> u32 {
        if (self.owed.wrapping_sub(self.live_sent) as i32) > 0 {
            self.live_sent
        } else {
            self.owed
        }
    }

    /// The stack put `[start, end)` of its sequence space on the wire: extend what the peer has received.
    fn saw_live(&mut self, start: u32, end: u32) {
        if (start.wrapping_sub(self.live_sent) as i32) > 0 {
            if self.live_beyond.len() < MAX_LIVE_BEYOND {
                let e = self.live_beyond.entry(start).or_insert(end);
                *e = seq_max(*e, end);
            }
            return;
        }
        self.live_sent = seq_max(self.live_sent, end);
        while let Some((&s, &e)) = self.live_beyond.first_key_value() {
            if (s.wrapping_sub(self.live_sent) as i32) > 0 {
                break;
            }
            self.live_beyond.pop_first();
            self.live_sent = seq_max(self.live_sent, e);
        }
    }

    /// Where a peer sequence number lies in the peer's stream (0 = its first data byte).
    fn peer_offset(&self, seq: u32) -> Option<u32> {
        self.peer_isn
            .map(|isn| seq.wrapping_sub(isn).wrapping_sub(1))
    }

    /// Point a peer frame's acknowledgements (ack, SACK edges, timestamp echo) at the live stack, and note
    /// how far the peer has now acknowledged.
    fn rewrite_for_stack(&mut self, frame: &mut [u8], l: &Layers) {
        let Some(t) = l.tcp else { return };
        let ack = self.ack_field(t.ack);
        segment::rewrite_acks(
            frame,
            l,
            |a| if a == t.ack { ack } else { self.clamp(a) },
            self.live_tsval,
        );
        if t.ack_flag
            && let Some(d) = self.distance(t.ack)
        {
            let sent = if (d.wrapping_sub(self.live_sent) as i32) > 0 {
                self.live_sent
            } else {
                d
            };
            self.acked = seq_max(self.acked, sent);
        }
    }

    /// The live ack for a recorded one: the same distance past the stack's ISN.
    fn rebase(&self, ack: u32) -> u32 {
        match (self.recorded_isn, self.live_isn) {
            (Some(rec), Some(live)) => live.wrapping_add(ack.wrapping_sub(rec)),
            _ => ack,
        }
    }

    /// How far past the recorded ISN a recorded ack reaches.
    fn distance(&self, ack: u32) -> Option<u32> {
        self.recorded_isn.map(|rec| ack.wrapping_sub(rec))
    }

    /// A recorded ack (or SACK edge) as the live stack can take it: rebased, and never past what it sent.
    fn clamp(&self, ack: u32) -> u32 {
        match (self.distance(ack), self.live_isn) {
            (Some(d), Some(live)) if (d.wrapping_sub(self.live_sent) as i32) > 0 => {
                live.wrapping_add(self.live_sent)
            }
            _ => self.rebase(ack),
        }
    }

    /// The ack field of an injected frame: clamped, and never behind what the peer already acknowledged
    /// (an ack the replay sent early would otherwise make the recorded one look stale, and smoltcp refuses
    /// a segment whose ack is older than its oldest unacknowledged byte).
    fn ack_field(&self, ack: u32) -> u32 {
        let clamped = self.clamp(ack);
        match self.live_isn {
            Some(live) => seq_max(clamped, live.wrapping_add(self.acked)),
            None => clamped,
        }
    }

    /// Recorded ack → how far past the stack's ISN it reaches, and whether the live stack got that far.
    fn acks_unsent(&self, ack: u32) -> bool {
        let Some(rec) = self.recorded_isn else {
            return false;
        };
        let needed = ack.wrapping_sub(rec);
        self.live_isn.is_none() || (needed.wrapping_sub(self.live_sent) as i32) > 0
    }
}

#[derive(Debug)]
enum Kind {
    ToStack,
    FromStack,
    /// The stack's recorded SYN opening a connection: its app connects at this point of the replay.
    Connect,
    /// Between other hosts: injected all the same, as a NIC would see it.
    Other,
    Refused(Reason),
}

#[derive(Debug)]
struct Pending {
    due: Nanos,
    frame: CapturedFrame,
    layers: Option<Layers>,
    kind: Kind,
    flow: Option<FlowId>,
    /// When it first could have gone but had to wait for the stack.
    held_since: Option<Nanos>,
}

/// What the wire learned over the run, shared with whoever set the replay up.
#[derive(Debug, Default, Clone)]
pub struct WireReport {
    /// Recorded and live segments of the stack, per flow, compared as they come.
    pub flows: BTreeMap<FlowId, FlowCompare>,
    /// Frames that waited for the stack, and the longest wait.
    pub waits: u64,
    pub longest_wait_ns: Nanos,
    /// Synthetic frames the replay made (ARP, neighbour discovery, acks the capture's peer owed).
    pub synthetic: u64,
    /// Frames injected acknowledging less than recorded, because the stack had not sent that much yet.
    pub clamped: u64,
    /// Data segments the emulated peer sent again because the stack had not taken them.
    pub retransmitted: u64,
}

pub struct ReplayWire {
    source: Box<dyn Iterator<Item = CapturedFrame>>,
    exhausted: bool,
    identity: Identity,
    macs: BTreeMap<IpAddr, [u8; 6]>,
    t0: Option<u64>,
    /// None: as fast as possible; else recorded time divided by this.
    speed: Option<f64>,
    last_due: Nanos,
    pending: VecDeque<Pending>,
    /// How many frames of each flow are in `pending`. At max speed the lookahead is always full, and with
    /// one flow held the scans in `next_arrival` and `next_event` would walk all of it, every call: these
    /// counts let them stop once nothing but held flows' frames is left (the replay benchmark's hot spot).
    pending_per_flow: HashMap<FlowId, usize>,
    synthetic: VecDeque<Arrival>,
    seq: BTreeMap<FlowId, SeqState>,
    /// Flows with data the stack has not acknowledged, and the earliest time one may need sending again.
    retx_flows: BTreeSet<FlowId>,
    retx_due: Nanos,
    /// Flows with an owed acknowledgement scheduled.
    ack_flows: BTreeSet<FlowId>,
    /// Reading paused for the stack to play what the scripts hold (see `throttled`).
    throttle: bool,
    reads_since_check: u32,
    /// When the stack last put new sequence space of any flow on the wire.
    last_progress: Nanos,
    primed: BTreeSet<IpAddr>,
    scripts: Scripts,
    report: Rc<RefCell<WireReport>>,
}

impl ReplayWire {
    pub fn new(
        source: Box<dyn Iterator<Item = CapturedFrame>>,
        identity: Identity,
        macs: BTreeMap<IpAddr, [u8; 6]>,
        speed: Option<f64>,
        scripts: Scripts,
        report: Rc<RefCell<WireReport>>,
    ) -> Self {
        ReplayWire {
            source,
            exhausted: false,
            identity,
            macs,
            t0: None,
            speed,
            last_due: 0,
            pending: VecDeque::new(),
            pending_per_flow: HashMap::new(),
            synthetic: VecDeque::new(),
            seq: BTreeMap::new(),
            retx_flows: BTreeSet::new(),
            ack_flows: BTreeSet::new(),
            throttle: false,
            reads_since_check: 0,
            last_progress: 0,
            retx_due: Nanos::MAX,
            primed: BTreeSet::new(),
            scripts,
            report,
        }
    }

    fn due_of(&mut self, t_ns: u64) -> Nanos {
        let t0 = *self.t0.get_or_insert(t_ns);
        let due = match self.speed {
            None => 0,
            Some(speed) => (t_ns.saturating_sub(t0) as f64 / speed) as Nanos,
        };
        // A capture out of time order is played in file order.
        self.last_due = self.last_due.max(due);
        self.last_due
    }

    /// Read the capture until a frame lies beyond `now` (or the lookahead is full).
    fn fill(&mut self, now: Nanos) {
        while !self.exhausted
            && self.pending.len() < LOOKAHEAD
            && self.pending.back().is_none_or(|p| p.due <= now)
            && !self.throttled(now)
        {
            match self.source.next() {
                Some(frame) => self.read(frame),
                None => {
                    self.exhausted = true;
                    for script in self.scripts.borrow_mut().values_mut() {
                        script.complete = true;
                    }
                }
            }
        }
    }

    /// Is reading paused because the scripts hold `SCRIPT_LIMIT` bytes the apps have not played, while the
    /// stack is still making progress? (At `--max-speed` the capture would otherwise be read ever further
    /// ahead of the live stack, and memory would grow with the capture. A stack that stopped for
    /// `ACK_WAIT_LIMIT_NS` is not waited for.) Counted every `THROTTLE_CHECK_EVERY` reads.
    fn throttled(&mut self, now: Nanos) -> bool {
        if self.reads_since_check < THROTTLE_CHECK_EVERY && !self.throttle {
            return false;
        }
        self.reads_since_check = 0;
        let held: u64 = self.scripts.borrow().values().map(|s| s.held).sum();
        self.throttle =
            held > SCRIPT_LIMIT && now.saturating_sub(self.last_progress) < ACK_WAIT_LIMIT_NS;
        self.throttle
    }

    /// Classify one record, learn from it, and queue it.
    fn read(&mut self, frame: CapturedFrame) {
        self.reads_since_check += 1;
        let due = self.due_of(frame.t_ns);
        let layers = if frame.problem.is_none() {
            segment::parse(&frame.frame, frame.orig_len as usize)
        } else {
            None
        };
        let (kind, flow) = if let Some(problem) = &frame.problem {
            let reason = Reason::NotInjectable {
                detail: problem.clone(),
            };
            (Kind::Refused(reason), None)
        } else if let Some(l) = &layers {
            if self.identity.owns(l.src) {
                let flow = l.src_addr().zip(l.dst_addr());
                (Kind::FromStack, flow)
            } else if self.identity.owns(l.dst) {
                let flow = l.dst_addr().zip(l.src_addr());
                (Kind::ToStack, flow)
            } else {
                (Kind::Other, None)
            }
        } else if is_arp_from(&frame.frame, self.identity.mac) {
            (Kind::FromStack, None)
        } else {
            (Kind::ToStack, None)
        };
        let kind = match kind {
            Kind::ToStack | Kind::Other if frame.truncated => Kind::Refused(Reason::Truncated {
                captured: frame.frame.len(),
                on_wire: frame.orig_len,
            }),
            k => k,
        };
        let mut kind = kind;
        if let (Some(l), Some(flow)) = (&layers, flow)
            && let Some(t) = l.tcp
        {
            let state = self.seq.entry(flow).or_default();
            match kind {
                Kind::FromStack => {
                    if t.syn && !t.ack_flag && state.recorded_isn.is_none() {
                        // The recorded stack was this flow's client: the replayed one connects here.
                        kind = Kind::Connect;
                        self.scripts.borrow_mut().entry(flow).or_default();
                    }
                    if t.syn {
                        state.recorded_isn = Some(t.seq);
                    }
                    self.learn_recorded(flow, &frame, l);
                }
                Kind::ToStack if t.syn => {
                    state.peer_isn = Some(t.seq);
                    self.scripts.borrow_mut().entry(flow).or_default();
                }
                _ => {}
            }
        } else if let (Some(l), Some(flow), Some(_)) =
            (&layers, flow, layers.as_ref().and_then(|l| l.udp))
        {
            self.learn_datagram(flow, &kind, &frame, l);
        }
        if let Some(f) = flow {
            *self.pending_per_flow.entry(f).or_default() += 1;
        }
        self.pending.push_back(Pending {
            due,
            frame,
            layers,
            kind,
            flow,
            held_since: None,
        });
    }

    /// A UDP datagram: the client's are counted, the stack's kept to be played back in their turn.
    fn learn_datagram(&mut self, flow: FlowId, kind: &Kind, frame: &CapturedFrame, l: &Layers) {
        let mut scripts = self.scripts.borrow_mut();
        match kind {
            Kind::ToStack => scripts.entry(flow).or_default().peer_datagrams += 1,
            Kind::FromStack => {
                let script = scripts.entry(flow).or_default();
                let data = segment::udp_payload(&frame.frame, l).to_vec();
                script.datagrams.push(Datagram {
                    after_peer_datagrams: script.peer_datagrams,
                    data,
                });
            }
            _ => {}
        }
    }

    /// A recorded segment of the stack: what its app wrote, for the script, and for the diff.
    fn learn_recorded(&mut self, flow: FlowId, frame: &CapturedFrame, l: &Layers) {
        let Some(t) = l.tcp else { return };
        let data = segment::payload(&frame.frame, &t);
        let mut report = self.report.borrow_mut();
        report
            .flows
            .entry(flow)
            .or_default()
            .segment(Side::Recorded, &t, data);
        drop(report);
        let state = &self.seq[&flow];
        let (Some(isn), Some(peer_isn)) = (state.recorded_isn, state.peer_isn) else {
            return;
        };
        let offset = u64::from(t.seq.wrapping_sub(isn).wrapping_sub(1));
        let after = u64::from(t.ack.wrapping_sub(peer_isn).wrapping_sub(1));
        let after = if t.ack_flag { after } else { 0 };
        let mut scripts = self.scripts.borrow_mut();
        let script = scripts.entry(flow).or_default();
        if !t.syn {
            script.add(offset, data, t.payload_len, after);
        }
        if t.fin {
            script.fin = Some((offset + t.payload_len as u64, after));
        }
        if t.rst {
            script.reset.get_or_insert((offset, after));
        }
    }

    /// Make the stack know a peer's MAC before its first frame: the ARP request (or neighbour solicitation)
    /// a real host would have sent first.
    fn prime(&mut self, peer: IpAddr) -> Option<Arrival> {
        let mac = *self.macs.get(&peer)?;
        let frame = match peer {
            IpAddr::V4(p) => {
                let IpAddr::V4(ours) = self.identity.ipv4.map(IpAddr::V4)? else {
                    return None;
                };
                arp_request(mac, p.octets(), ours.octets())
            }
            IpAddr::V6(p) => neighbor_solicit(mac, p, self.identity.ipv6?)?,
        };
        Some(Arrival {
            frame,
            fate: Fate::Inject,
            capture_frame: None,
            at: None,
            note: Some(format!(
                "synthetic: made by the replay so the stack learns {peer}'s MAC from the capture"
            )),
        })
    }

    /// The next arrival due by `now`, if any: synthetic frames first, then the capture in order, each flow
    /// held back while its next frame acknowledges bytes the stack has not sent.
    fn next_arrival(&mut self, now: Nanos) -> Option<Arrival> {
        if now >= self.retx_due {
            self.retransmit_timed_out(now);
        }
        if !self.ack_flows.is_empty() {
            self.send_owed_acks(now);
        }
        if let Some(a) = self.synthetic.pop_front() {
            self.report.borrow_mut().synthetic += 1;
            return Some(a);
        }
        let mut blocked: BTreeSet<FlowId> = BTreeSet::new();
        // Frames from here on that are not behind a held flow: once none is left, nothing more can go.
        let mut free = self.pending.len();
        for i in 0..self.pending.len() {
            if free == 0 {
                break;
            }
            let p = &self.pending[i];
            if p.due > now {
                break;
            }
            if p.flow.is_some_and(|f| blocked.contains(&f)) {
                continue;
            }
            free -= 1;
            let mut note = None;
            let mut clamp = false;
            if let (Kind::ToStack, Some(flow), Some(l)) = (&p.kind, p.flow, &p.layers)
                && let Some(t) = l.tcp
                && t.ack_flag
                && let Some(state) = self.seq.get(&flow)
                && state.acks_unsent(t.ack)
            {
                let since = p.held_since.unwrap_or(now.max(p.due));
                let limit = self.hold_limit(Some(flow));
                if now - since < limit {
                    self.pending[i].held_since = Some(since);
                    blocked.insert(flow);
                    // This is the flow's first frame in the queue: the rest of its frames are all behind it.
                    free -= self.flow_pending(flow) - 1;
                    continue;
                }
                if state.live_isn.is_some() {
                    clamp = true;
                    let wanted = state.distance(t.ack).unwrap_or(0);
                    note = Some(format!(
                        "acknowledges {} bytes the stack has sent, not the {} recorded (waited {} µs); the \
                         rest is acknowledged as the stack sends it",
                        state.live_sent.saturating_sub(1),
                        wanted.saturating_sub(1),
                        (now - since) / 1000
                    ));
                } else {
                    note = Some(format!(
                        "waited {} µs for the stack to send what this frame acknowledges; it never did",
                        (now - since) / 1000
                    ));
                }
            }
            if let (Kind::ToStack, Some(l)) = (&p.kind, &p.layers)
                && !self.primed.contains(&l.src)
            {
                let peer = l.src;
                self.primed.insert(peer);
                if let Some(a) = self.prime(peer) {
                    self.report.borrow_mut().synthetic += 1;
                    return Some(a);
                }
            }
            let p = self.pending.remove(i).expect("index in range");
            if let Some(f) = p.flow
                && let Some(n) = self.pending_per_flow.get_mut(&f)
            {
                *n -= 1;
                if *n == 0 {
                    self.pending_per_flow.remove(&f);
                }
            }
            if clamp
                && let (Some(flow), Some(t)) = (p.flow, p.layers.as_ref().and_then(|l| l.tcp))
                && let Some(state) = self.seq.get_mut(&flow)
                && let Some(d) = state.distance(t.ack)
            {
                state.owed = seq_max(state.owed, d);
                self.report.borrow_mut().clamped += 1;
            }
            if note.is_none()
                && let Some(since) = p.held_since
            {
                let waited = now - since;
                let mut report = self.report.borrow_mut();
                report.waits += 1;
                report.longest_wait_ns = report.longest_wait_ns.max(waited);
                note = Some(format!(
                    "waited {} µs for the stack to send the bytes this frame acknowledges",
                    waited / 1000
                ));
            }
            return Some(self.arrival(p, note, now));
        }
        None
    }

    /// How many of `flow`'s frames are queued.
    fn flow_pending(&self, flow: FlowId) -> usize {
        self.pending_per_flow.get(&flow).copied().unwrap_or(0)
    }

    /// How long a frame of this flow may be held for the stack: once the stack has begun, a short wait is
    /// enough (if it has not sent the bytes by then it is waiting for acks itself); before its first
    /// segment it may still be connecting.
    fn hold_limit(&self, flow: Option<FlowId>) -> Nanos {
        let started = flow
            .and_then(|f| self.seq.get(&f))
            .is_some_and(|s| s.live_isn.is_some());
        if started {
            ACK_CLAMP_AFTER_NS
        } else {
            ACK_WAIT_LIMIT_NS
        }
    }

    /// Send each owed acknowledgement whose time has come, covering everything owed by now.
    fn send_owed_acks(&mut self, now: Nanos) {
        let due: Vec<FlowId> = self
            .ack_flows
            .iter()
            .filter(|f| {
                self.seq
                    .get(f)
                    .is_none_or(|s| s.ack_due.is_none_or(|t| t <= now))
            })
            .copied()
            .collect();
        for flow in due {
            self.ack_flows.remove(&flow);
            let Some(state) = self.seq.get_mut(&flow) else {
                continue;
            };
            state.ack_due = None;
            let upto = state.owed_now();
            if (upto.wrapping_sub(state.acked) as i32) <= 0 {
                continue;
            }
            let (Some(live), Some((pattern, pl))) = (state.live_isn, &state.last_injected) else {
                continue;
            };
            let Some(ack) =
                segment::pure_ack(pattern, pl, live.wrapping_add(upto), state.live_tsval)
            else {
                continue;
            };
            state.acked = upto;
            self.synthetic.push_back(Arrival {
                frame: ack,
                fate: Fate::Inject,
                capture_frame: None,
                at: None,
                note: Some(format!(
                    "synthetic: the peer's acknowledgement of the stack's first {} bytes, which the capture \
                     acknowledged before the stack had sent them",
                    upto.saturating_sub(1)
                )),
            });
        }
    }

    /// Send again what timed out unacknowledged, and work out when to look next.
    fn retransmit_timed_out(&mut self, now: Nanos) {
        let mut next = Nanos::MAX;
        let mut idle = Vec::new();
        for flow in &self.retx_flows {
            let Some(state) = self.seq.get_mut(flow) else {
                idle.push(*flow);
                continue;
            };
            if let Some((again, pl)) = state.unacked.timed_out(now) {
                let arrival = retransmission(state, again, &pl, "no ack came for it");
                self.synthetic.push_back(arrival);
                self.report.borrow_mut().retransmitted += 1;
            }
            match state.unacked.next_timeout() {
                Some(t) => next = next.min(t),
                None => idle.push(*flow),
            }
        }
        for flow in idle {
            self.retx_flows.remove(&flow);
        }
        self.retx_due = next;
    }

    fn arrival(&mut self, p: Pending, note: Option<String>, now: Nanos) -> Arrival {
        let index = p.frame.index;
        let synthetic_l2 = p
            .frame
            .synthetic_l2
            .then_some("Ethernet header made up by the replay (the capture's link type has none)");
        let mut notes: Vec<String> = [note, synthetic_l2.map(String::from)]
            .into_iter()
            .flatten()
            .collect();
        if !p.frame.vlan.is_empty() {
            notes.push(format!("802.1Q tags {:?} removed", p.frame.vlan));
        }
        let to_stack = matches!(p.kind, Kind::ToStack);
        let fate = match p.kind {
            Kind::Refused(reason) => Fate::Refused(reason),
            Kind::FromStack => Fate::Recorded { flow: p.flow },
            Kind::Connect => match p.flow {
                Some((stack, peer)) => Fate::Connect {
                    local_port: stack.port(),
                    remote: peer,
                },
                None => Fate::Recorded { flow: None },
            },
            Kind::ToStack | Kind::Other => Fate::Inject,
        };
        let mut frame = p.frame.frame;
        // A frame to the stack goes to the stack's MAC, whatever the capture held there (cooked captures
        // record no destination MAC, and raw-IP ones none at all).
        if to_stack && frame.len() >= 6 && frame[0] & 1 == 0 && frame[..6] != self.identity.mac {
            frame[..6].copy_from_slice(&self.identity.mac);
            notes.push("destination MAC set to the stack's".into());
        }
        if fate == Fate::Inject
            && let (Some(flow), Some(l)) = (p.flow, &p.layers)
            && let Some(t) = l.tcp
            && let Some(state) = self.seq.get_mut(&flow)
        {
            // Data and FIN take sequence space the stack must acknowledge; either may need sending again.
            let len = t.payload_len as u32 + u32::from(t.fin);
            if to_stack
                && len > 0
                && !t.syn
                && !p.frame.truncated
                && let Some(offset) = state.peer_offset(t.seq)
            {
                state
                    .unacked
                    .sent(offset, len, frame.clone(), l.clone(), now);
                self.retx_flows.insert(flow);
                self.retx_due = self.retx_due.min(now + retransmit::TIMEOUT_NS);
            }
            state.rewrite_for_stack(&mut frame, l);
            state.last_injected =
                Some((frame[..t.payload_at.min(frame.len())].to_vec(), l.clone()));
        }
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        Arrival {
            frame,
            fate,
            note,
            capture_frame: Some(index + 1),
            at: None,
        }
    }

    /// What the stack sent: learn its sequence numbers, answer its ARP and neighbour solicitations.
    fn observe(&mut self, frame: &[u8], now: Nanos) {
        if let Some(reply) = self.answer_arp(frame).or_else(|| self.answer_ns(frame)) {
            self.synthetic.push_back(reply);
            return;
        }
        let Some(l) = segment::parse(frame, frame.len()) else {
            return;
        };
        let (Some(t), Some(flow)) = (l.tcp, l.src_addr().zip(l.dst_addr())) else {
            return;
        };
        let state = self.seq.entry(flow).or_default();
        if t.syn {
            state.live_isn = Some(t.seq);
        }
        if let Some(isn) = state.live_isn {
            let start = t.seq.wrapping_sub(isn);
            let before = state.live_sent;
            state.saw_live(start, start.wrapping_add(t.seq_len()));
            if state.live_sent != before {
                self.last_progress = now;
            }
        }
        if let Some(ts) = segment::tsval(frame, &l) {
            state.live_tsval = Some(ts);
        }
        if t.rst {
            state.unacked.clear();
        } else if t.ack_flag
            && let Some(upto) = state.peer_offset(t.ack)
        {
            state.unacked.acked(upto);
            if let Some((again, pl)) = state.unacked.hole(now) {
                let arrival = retransmission(state, again, &pl, "the stack's ack stops at a hole");
                self.synthetic.push_back(arrival);
                self.report.borrow_mut().retransmitted += 1;
            }
        }
        // The peer owes acks for bytes it recorded acknowledging before the stack had sent them: now that the
        // stack has sent more of them, acknowledge them, shortly and in one ack for a whole burst (as a
        // delayed-ACK receiver does; an ack per segment at once would flood the frame buffer).
        if (state.owed_now().wrapping_sub(state.acked) as i32) > 0 && state.ack_due.is_none() {
            state.ack_due = Some(now + OWED_ACK_DELAY_NS);
            self.ack_flows.insert(flow);
        }
        let data = segment::payload(frame, &t);
        let mut report = self.report.borrow_mut();
        report
            .flows
            .entry(flow)
            .or_default()
            .segment(Side::Live, &t, data);
    }

    fn answer_arp(&self, frame: &[u8]) -> Option<Arrival> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != EthernetProtocol::Arp {
            return None;
        }
        let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?;
        let ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } = arp
        else {
            return None;
        };
        let peer = IpAddr::V4(target_protocol_addr);
        let mac = *self.macs.get(&peer)?;
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(mac),
            source_protocol_addr: target_protocol_addr,
            target_hardware_addr: source_hardware_addr,
            target_protocol_addr: source_protocol_addr,
        };
        let mut buf = vec![0u8; 14 + reply.buffer_len()];
        let mut out = EthernetFrame::new_unchecked(&mut buf);
        EthernetRepr {
            src_addr: EthernetAddress(mac),
            dst_addr: source_hardware_addr,
            ethertype: EthernetProtocol::Arp,
        }
        .emit(&mut out);
        reply.emit(&mut ArpPacket::new_unchecked(out.payload_mut()));
        Some(Arrival {
            frame: buf,
            fate: Fate::Inject,
            capture_frame: None,
            at: None,
            note: Some(format!(
                "synthetic: the replay answers the stack's ARP request with {peer}'s MAC from the capture"
            )),
        })
    }

    fn answer_ns(&self, frame: &[u8]) -> Option<Arrival> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != EthernetProtocol::Ipv6 {
            return None;
        }
        let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
        if ip.next_header() != IpProtocol::Icmpv6 {
            return None;
        }
        let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
        let repr = Icmpv6Repr::parse(
            &ip.src_addr(),
            &ip.dst_addr(),
            &icmp,
            &ChecksumCapabilities::default(),
        )
        .ok()?;
        let Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, .. }) = repr else {
            return None;
        };
        let peer = IpAddr::V6(target_addr);
        let mac = *self.macs.get(&peer)?;
        let advert = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
            flags: smoltcp::wire::NdiscNeighborFlags::SOLICITED
                | smoltcp::wire::NdiscNeighborFlags::OVERRIDE,
            target_addr,
            lladdr: Some(RawHardwareAddress::from(EthernetAddress(mac))),
        });
        let frame = ipv6_icmp(mac, eth.src_addr().0, target_addr, ip.src_addr(), &advert);
        Some(Arrival {
            frame,
            fate: Fate::Inject,
            capture_frame: None,
            at: None,
            note: Some(format!(
                "synthetic: the replay answers the stack's neighbour solicitation with {peer}'s MAC from the capture"
            )),
        })
    }
}

/// A data segment the peer sends again, its acks pointed at the stack as they stand now.
fn retransmission(state: &mut SeqState, mut frame: Vec<u8>, l: &Layers, why: &str) -> Arrival {
    state.rewrite_for_stack(&mut frame, l);
    Arrival {
        frame,
        fate: Fate::Inject,
        capture_frame: None,
        at: None,
        note: Some(format!(
            "synthetic: the emulated peer sends this segment of the capture again ({why}); the capture's \
             own receiver did not need it"
        )),
    }
}

/// The later of two positions in sequence space.
fn seq_max(a: u32, b: u32) -> u32 {
    if (b.wrapping_sub(a) as i32) > 0 { b } else { a }
}

fn is_arp_from(frame: &[u8], mac: [u8; 6]) -> bool {
    frame.len() >= 14 && frame[12..14] == [0x08, 0x06] && frame[6..12] == mac
}

fn arp_request(peer_mac: [u8; 6], peer: [u8; 4], stack: [u8; 4]) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(peer_mac),
        source_protocol_addr: peer.into(),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: stack.into(),
    };
    let mut buf = vec![0u8; 14 + repr.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut buf);
    EthernetRepr {
        src_addr: EthernetAddress(peer_mac),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut eth);
    repr.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    buf
}

fn neighbor_solicit(peer_mac: [u8; 6], peer: Ipv6Address, stack: Ipv6Address) -> Option<Vec<u8>> {
    let solicit = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: stack,
        lladdr: Some(RawHardwareAddress::from(EthernetAddress(peer_mac))),
    });
    // The solicited-node multicast group of the stack's address: ff02::1:ff00:0/104 plus its last 24 bits.
    let s = stack.octets();
    let group = Ipv6Address::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, s[13], s[14], s[15],
    ]);
    let o = group.octets();
    let dst_mac = [0x33, 0x33, o[12], o[13], o[14], o[15]];
    Some(ipv6_icmp(peer_mac, dst_mac, peer, group, &solicit))
}

fn ipv6_icmp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Address,
    dst: Ipv6Address,
    icmp: &Icmpv6Repr,
) -> Vec<u8> {
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: 255,
    };
    let mut buf = vec![0u8; 14 + ip.buffer_len() + icmp.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut buf);
    EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: EthernetProtocol::Ipv6,
    }
    .emit(&mut eth);
    let mut packet = Ipv6Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut packet);
    let mut out = Icmpv6Packet::new_unchecked(packet.payload_mut());
    icmp.emit(&src, &dst, &mut out, &ChecksumCapabilities::default());
    buf
}

impl Wire for ReplayWire {
    fn advance(&mut self, now: Nanos) {
        self.fill(now);
    }

    fn receive(&mut self, now: Nanos) -> Option<Vec<u8>> {
        self.arrive(now).map(|a| a.frame)
    }

    fn arrive(&mut self, now: Nanos) -> Option<Arrival> {
        self.fill(now);
        self.next_arrival(now)
    }

    fn transmit(&mut self, now: Nanos, frame: &[u8]) {
        self.observe(frame, now);
    }

    fn next_event(&self) -> Option<Nanos> {
        if !self.synthetic.is_empty() {
            return Some(0);
        }
        let retx = (!self.retx_flows.is_empty()).then_some(self.retx_due);
        let acks = self
            .ack_flows
            .iter()
            .filter_map(|f| self.seq.get(f).and_then(|s| s.ack_due))
            .min();
        // Only the head of each flow can go next: frames queued behind a held one wait with it, and counting
        // their (past) due times would wake the engine again and again at the same instant.
        // Frames are queued in due order and a frame's time here is never before its due time, so the scan
        // stops at the first frame due no earlier than the best time so far, or once every frame left is
        // behind a head already counted.
        let mut heads: BTreeSet<FlowId> = BTreeSet::new();
        let mut left = self.pending.len();
        let mut best: Option<Nanos> = None;
        for p in &self.pending {
            if left == 0 || best.is_some_and(|b| p.due >= b) {
                break;
            }
            if let Some(f) = p.flow {
                if !heads.insert(f) {
                    continue;
                }
                left -= self.flow_pending(f);
            } else {
                left -= 1;
            }
            let t = match p.held_since {
                Some(since) => since + self.hold_limit(p.flow),
                None => p.due,
            };
            best = Some(best.map_or(t, |b| b.min(t)));
        }
        // While reading waits for the stack, the wire has something to do when the stack stops making progress.
        let unthrottle = self
            .throttle
            .then_some(self.last_progress + ACK_WAIT_LIMIT_NS);
        best.into_iter()
            .chain(retx)
            .chain(acks)
            .chain(unthrottle)
            .min()
    }

    fn waits_for_room(&self) -> bool {
        self.speed.is_none()
    }

    fn is_done(&self) -> bool {
        self.exhausted
            && self.pending.is_empty()
            && self.synthetic.is_empty()
            && self.ack_flows.is_empty()
            && self.retx_flows.iter().all(|f| {
                self.seq
                    .get(f)
                    .is_none_or(|s| s.unacked.is_empty() || s.unacked.exhausted())
            })
    }
}
