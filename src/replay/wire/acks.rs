//! The emulated peer's answers to what the stack sends: learning the stack's sequence numbers, acknowledging
//! what the capture's peer acknowledged before the stack had sent it (shortly, one ack for a burst), and
//! sending again the data the stack did not take.

use crate::pipeline::clock::Nanos;
use crate::pipeline::dissect::Headers;
use crate::pipeline::wire::{Arrival, Fate};

use crate::replay::diff::{FlowId, Side};
use crate::replay::segment::{self, Layers};

use super::seq::SeqState;
use super::{OWED_ACK_DELAY_NS, ReplayWire};

impl ReplayWire {
    /// What the stack sent: learn its sequence numbers, answer its ARP and neighbour solicitations.
    pub(super) fn observe(&mut self, frame: &[u8], now: Nanos) {
        let Some(h) = Headers::read(frame) else {
            return;
        };
        if let Some(reply) = self
            .answer_arp(frame, &h)
            .or_else(|| self.answer_ns(frame, &h))
        {
            self.synthetic.push_back(reply);
            return;
        }
        let Some(l) = Layers::of(&h, frame.len()) else {
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

    /// Send each owed acknowledgement whose time has come, covering everything owed by now.
    pub(super) fn send_owed_acks(&mut self, now: Nanos) {
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
    pub(super) fn retransmit_timed_out(&mut self, now: Nanos) {
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
