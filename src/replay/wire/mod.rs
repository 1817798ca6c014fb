//! The replay's wire: plays a capture into the pipeline as the other hosts would. Frames to the stack are
//! injected at their recorded time (× speed), with their acks rebased onto the stack's own sequence numbers;
//! the stack's recorded frames are shown and kept as the script of what it should answer; ARP and neighbour
//! discovery are answered with the capture's MACs. A frame never acknowledges bytes the stack has not sent:
//! it waits, bounded, and says so.
//!
//! Its parts: `read` takes records from the capture and learns from them; `arrival` decides what goes to the
//! stack next and how long a frame waits; `acks` watches what the stack sends and answers as the capture's
//! peer (owed acks, retransmissions); `neighbours` answers and primes ARP and neighbour discovery; `seq` is
//! one flow's sequence arithmetic, recorded and live; `holes` fills what the capture missed and the recorded
//! ACKs prove was sent; `join` opens, with a synthetic handshake, a flow the capture holds from
//! mid-connection; `merged` splits segments the capturing host merged; `checksum` completes offloaded ones.

mod acks;
mod arrival;
mod checksum;
mod holes;
mod join;
mod merged;
mod neighbours;
mod read;
mod seq;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::rc::Rc;

use crate::pipeline::clock::Nanos;
use crate::pipeline::reason::Reason;
use crate::pipeline::wire::{Arrival, Wire};

use super::capture::CapturedFrame;
use super::diff::{FlowCompare, FlowId};
use super::flows::Tally;
use super::gaps::GapClock;
use super::role::Identity;
use super::script::Scripts;
use super::segment::Layers;

use seq::SeqState;

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
    /// What the wire says of this frame beyond what the capture record itself shows.
    note: Option<String>,
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
    /// Segments larger than the MTU (merged by the capturing host), and the wire-sized segments sent for them.
    pub merged: u64,
    pub merged_pieces: u64,
    /// Offloaded checksums (partial or zero, as the sending host's NIC was to fill) completed before
    /// injection, and those injected as recorded (`--keep-checksums`).
    pub checksums_fixed: u64,
    pub checksums_kept: u64,
    /// Holes in the capture (segments it missed, a run of consecutive ones counted once), both ways.
    pub holes: u64,
    /// Bytes of the holes the recorded ACKs prove were sent, supplied as zeros: by the emulated peer, and
    /// by the recorded app.
    pub filler_peer: u64,
    pub filler_app: u64,
    /// Bytes of holes no recorded ACK covers: not filled (the stream stops there).
    pub unproven: u64,
    /// Flows whose handshake the capture did not hold, opened by the peer with a synthetic SYN and ACK.
    pub joined: u64,
    /// Idle gaps longer than `--max-gap` shortened to it: how many, the longest as recorded, and the recorded
    /// time skipped.
    pub gaps_shortened: u64,
    pub longest_gap_ns: u64,
    pub gap_time_removed_ns: u64,
    /// The `--max-gap` the gaps were shortened to.
    pub max_gap_ns: u64,
    /// Every flow of the capture as the survey read it (frames, payload bytes each way, handshake, loopback
    /// rename), and the records no link type could be made Ethernet: what the end of the run holds the
    /// apps' bytes against, to say which flows did not play and why (`flows::not_played`).
    pub seen: Tally,
}

pub struct ReplayWire {
    source: Box<dyn Iterator<Item = CapturedFrame>>,
    exhausted: bool,
    identity: Identity,
    macs: BTreeMap<IpAddr, [u8; 6]>,
    /// Recorded time to played time, idle gaps shortened (`--max-gap`).
    gaps: GapClock,
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
    /// Per flow: the peer's stream as captured, and the filler it owes the stack.
    holes: BTreeMap<FlowId, holes::peer::PeerHoles>,
    /// Peers' TCP segments sent in IPv4 fragments, until each one's extent is known.
    fragmented: holes::fragments::FragmentedSegments,
    /// Flows whose peer owes filler (so the hot path looks at these only).
    filler_flows: BTreeSet<FlowId>,
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
    /// Flows joined mid-connection whose synthetic handshake is not over, in due order.
    join_queue: VecDeque<FlowId>,
    scripts: Scripts,
    report: Rc<RefCell<WireReport>>,
    /// Inject offloaded checksums as recorded (`--keep-checksums`) instead of completing them.
    keep_checksums: bool,
    /// Filler bytes the peer and the recorded app may still supply: `FILLER_PER_FRAME` per frame read, less
    /// what was (`PeerHoles::filler_cost` for the peer's).
    filler_budget: u64,
}

impl ReplayWire {
    pub fn new(
        source: Box<dyn Iterator<Item = CapturedFrame>>,
        identity: Identity,
        macs: BTreeMap<IpAddr, [u8; 6]>,
        speed: Option<f64>,
        scripts: Scripts,
        report: Rc<RefCell<WireReport>>,
        max_gap: Nanos,
    ) -> Self {
        ReplayWire {
            source,
            exhausted: false,
            identity,
            macs,
            gaps: GapClock::new(max_gap),
            speed,
            last_due: 0,
            pending: VecDeque::new(),
            pending_per_flow: HashMap::new(),
            synthetic: VecDeque::new(),
            seq: BTreeMap::new(),
            holes: BTreeMap::new(),
            fragmented: Default::default(),
            filler_flows: BTreeSet::new(),
            retx_flows: BTreeSet::new(),
            ack_flows: BTreeSet::new(),
            throttle: false,
            reads_since_check: 0,
            last_progress: 0,
            retx_due: Nanos::MAX,
            primed: BTreeSet::new(),
            join_queue: VecDeque::new(),
            scripts,
            report,
            keep_checksums: false,
            filler_budget: 0,
        }
    }
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
        if !self.join_queue.is_empty()
            && let Some(a) = self.next_join(now)
        {
            self.report.borrow_mut().synthetic += 1;
            return Some(a);
        }
        self.next_arrival(now)
    }

    fn transmit(&mut self, now: Nanos, frame: &[u8]) {
        self.observe(frame, now);
    }

    fn next_event(&self) -> Option<Nanos> {
        if !self.synthetic.is_empty() || self.filler_ready() {
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
        let joins = self.next_join_event();
        best.into_iter()
            .chain(joins)
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
            && !self.fillers_owed()
            && !self.joins_waiting()
            && self.ack_flows.is_empty()
            && self.retx_flows.iter().all(|f| {
                self.seq
                    .get(f)
                    .is_none_or(|s| s.unacked.is_empty() || s.unacked.exhausted())
            })
    }
}
