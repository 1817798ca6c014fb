//! Holes in the capture: segments the capturing tool missed. Read in capture order, a recorded ACK that
//! acknowledges bytes no segment read before it holds proves those bytes were sent and not captured. The
//! peer's missing bytes become filler segments (zeros, at most the largest segment the peer was seen to
//! send) that the emulated peer injects before the segment past the hole, each said "not captured"; the
//! server's missing bytes become zero filler in its script (`FlowScript::prove_sent`), written by the
//! recorded app. Only what an ACK proves is filled, never past it, and an ACK more than `MAX_HOLE` past
//! what the capture holds (damage) proves nothing; nor does one whose filler would overdraw the replay's
//! filler budget (`FILLER_PER_FRAME` per frame read, shared by both ways), so the stack's work and output
//! stay linear in the capture.

pub(super) mod fragments;
pub(super) mod peer;

use crate::pipeline::clock::Nanos;
use crate::pipeline::wire::{Arrival, Fate};

use crate::replay::diff::{FlowId, Side};
use crate::replay::retransmit;
use crate::replay::segment::{Layers, Tcp};

use super::ReplayWire;
use peer::{PeerHoles, filler_frame};

impl ReplayWire {
    /// A peer segment read from the capture.
    pub(super) fn hole_peer_segment(&mut self, flow: FlowId, t: &Tcp) {
        let Some(offset) = self.seq.get(&flow).and_then(|s| s.peer_offset(t.seq)) else {
            return;
        };
        if t.syn {
            return;
        }
        let len = t.payload_len as u32 + u32::from(t.fin);
        self.holes
            .entry(flow)
            .or_default()
            .captured(offset, len, t.payload_len as u32);
    }

    /// An IPv4 fragment from a peer: once its TCP segment's whole extent is known, that much of the peer's
    /// stream was captured (its first fragment alone frames only the bytes it carries).
    pub(super) fn hole_peer_fragment(&mut self, frame: &[u8], flow: Option<FlowId>, l: &Layers) {
        let Some(f) = fragments::Fragment::of(frame) else {
            return;
        };
        let start = match (flow, l.tcp) {
            (Some(flow), Some(t)) if f.offset == 0 => self
                .seq
                .get(&flow)
                .and_then(|s| s.peer_offset(t.seq))
                .map(|offset| (flow, offset, t.payload_at.saturating_sub(l.l4))),
            _ => None,
        };
        if let Some((flow, offset, len)) = self.fragmented.add(f, start) {
            self.holes
                .entry(flow)
                .or_default()
                .captured(offset, len, len);
        }
    }

    /// A recorded frame of the stack acknowledging the peer's stream: the bytes it proves missing are owed.
    pub(super) fn hole_stack_ack(&mut self, flow: FlowId, t: &Tcp) {
        if !t.ack_flag || t.rst {
            return;
        }
        let Some(upto) = self.seq.get(&flow).and_then(|s| s.peer_offset(t.ack)) else {
            return;
        };
        let holes = self.holes.entry(flow).or_default();
        let (gaps, continues) = holes.acked(upto, self.filler_budget);
        self.filler_budget -= holes.filler_cost(&gaps);
        if !gaps.is_empty() {
            self.filler_flows.insert(flow);
        }
        let mut report = self.report.borrow_mut();
        report.holes += gaps.len().saturating_sub(usize::from(continues)) as u64;
        report.filler_peer += gaps.iter().map(|(s, e)| u64::from(e - s)).sum::<u64>();
    }

    /// A peer frame acknowledging the stack's stream: what it proves the stack sent becomes filler for the app.
    pub(super) fn hole_peer_ack(&mut self, flow: FlowId, t: &Tcp) {
        if !t.ack_flag || t.rst || t.syn {
            return;
        }
        let Some(isn) = self.seq.get(&flow).and_then(|s| s.recorded_isn) else {
            return;
        };
        let upto = u64::from(t.ack.wrapping_sub(isn).wrapping_sub(1));
        let mut scripts = self.scripts.borrow_mut();
        let Some(script) = scripts.get_mut(&flow) else {
            return;
        };
        let (gaps, continues) = script.prove_sent(upto, self.filler_budget);
        drop(scripts);
        let filled: u64 = gaps.iter().map(|(s, e)| e - s).sum();
        self.filler_budget -= filled;
        let mut report = self.report.borrow_mut();
        report.holes += gaps.len().saturating_sub(usize::from(continues)) as u64;
        report.filler_app += filled;
        // The diff's recorded stream has the filler too: the app writes it, and smoltcp sends it as recorded.
        let compare = report.flows.entry(flow).or_default();
        for (start, end) in gaps {
            let filler = Tcp {
                seq: isn.wrapping_add(1).wrapping_add(start as u32),
                syn: false,
                fin: false,
                rst: false,
                payload_len: (end - start) as usize,
                ..*t
            };
            compare.segment(Side::Recorded, &filler, &vec![0; (end - start) as usize]);
        }
    }

    /// The capture is read: count the gaps no ACK proved, both ways.
    pub(super) fn holes_unproven(&mut self) {
        let peer = self.holes.values().map(PeerHoles::unproven);
        let app = self
            .scripts
            .borrow()
            .values()
            .map(|s| s.unproven())
            .collect::<Vec<_>>();
        let mut report = self.report.borrow_mut();
        for (holes, bytes) in peer.chain(app) {
            report.holes += holes;
            report.unproven += bytes;
        }
    }

    /// A peer frame (`seq` its sequence number, None when the flow has no frame waiting) is next for the
    /// stack in `flow`: the filler segment owed before it, if one is due.
    pub(super) fn filler_before(
        &mut self,
        flow: FlowId,
        seq: Option<u32>,
        now: Nanos,
    ) -> Option<Arrival> {
        if !self.filler_flows.contains(&flow) {
            return None;
        }
        let arrival = self.filler_piece(flow, seq, now);
        if !self.holes.get(&flow).is_some_and(PeerHoles::owes) {
            self.filler_flows.remove(&flow);
        }
        arrival
    }

    fn filler_piece(&mut self, flow: FlowId, seq: Option<u32>, now: Nanos) -> Option<Arrival> {
        let last = seq.is_none() && self.exhausted && self.flow_pending(flow) == 0;
        let holes = self.holes.get_mut(&flow)?;
        if !holes.owes() {
            return None;
        }
        let state = self.seq.get_mut(&flow)?;
        let next = seq.and_then(|s| state.peer_offset(s));
        let Some((pattern, pl)) = holes.pattern.clone() else {
            // No segment of the peer went in to make filler from: there is nothing to fill before.
            if last {
                holes.owed.clear();
            }
            return None;
        };
        let (start, end) = holes.next_filler(next, last)?;
        let peer_isn = state.peer_isn?;
        let seq = peer_isn.wrapping_add(1).wrapping_add(start);
        let (mut frame, l) = filler_frame(&pattern, &pl, seq, (end - start) as usize)?;
        state
            .unacked
            .sent(start, end - start, frame.clone(), l.clone(), now);
        self.retx_flows.insert(flow);
        self.retx_due = self.retx_due.min(now + retransmit::TIMEOUT_NS);
        state.rewrite_for_stack(&mut frame, &l);
        Some(Arrival {
            frame,
            fate: Fate::Inject,
            capture_frame: None,
            at: None,
            note: Some(format!(
                "synthetic: bytes {start}..{end} of the peer's stream not captured: filler the recorded \
                 stack acknowledged (zeros)"
            )),
        })
    }

    /// A filler segment owed where nothing is waiting behind it: the stack has been given bytes past it, or
    /// the flow has nothing more to come.
    pub(super) fn filler_owed_now(&mut self, now: Nanos) -> Option<Arrival> {
        if self.filler_flows.is_empty() {
            return None;
        }
        let flows: Vec<FlowId> = self.filler_flows.iter().copied().collect();
        flows
            .into_iter()
            .find_map(|flow| self.filler_before(flow, None, now))
    }

    /// Is a filler segment still owed in some flow?
    pub(super) fn fillers_owed(&self) -> bool {
        !self.filler_flows.is_empty()
    }

    /// Is a filler segment due now that no frame of its flow waits behind?
    pub(super) fn filler_ready(&self) -> bool {
        self.filler_flows.iter().any(|f| {
            self.holes
                .get(f)
                .is_some_and(|h| h.ready(self.exhausted && self.flow_pending(*f) == 0))
        })
    }
}
