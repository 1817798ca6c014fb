//! What goes to the stack next: synthetic frames first, then the capture's frames in their recorded order, a
//! flow's frames held while the next one acknowledges bytes the stack has not sent (for a bounded time, then
//! clamped to what it sent); and the arrival itself, its acks rebased and its notes said.

use std::collections::BTreeSet;

use crate::pipeline::clock::Nanos;
use crate::pipeline::wire::{Arrival, Fate};

use crate::replay::diff::FlowId;
use crate::replay::retransmit;

use super::seq::seq_max;
use super::{ACK_CLAMP_AFTER_NS, ACK_WAIT_LIMIT_NS, Kind, Pending, ReplayWire};

impl ReplayWire {
    /// The next arrival due by `now`, if any: synthetic frames first, then the capture in order, each flow
    /// held back while its next frame acknowledges bytes the stack has not sent.
    pub(super) fn next_arrival(&mut self, now: Nanos) -> Option<Arrival> {
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
        if let Some(a) = self.filler_owed_now(now) {
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
            // Filler the recorded stack acknowledged goes before the peer's segment past the hole.
            let p = &self.pending[i];
            if let (Kind::ToStack, Some(flow), Some(t)) =
                (&p.kind, p.flow, p.layers.as_ref().and_then(|l| l.tcp))
                && let Some(a) = self.filler_before(flow, Some(t.seq), now)
            {
                return Some(a);
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
    pub(super) fn flow_pending(&self, flow: FlowId) -> usize {
        self.pending_per_flow.get(&flow).copied().unwrap_or(0)
    }

    /// How long a frame of this flow may be held for the stack: once the stack has begun, a short wait is
    /// enough (if it has not sent the bytes by then it is waiting for acks itself); before its first
    /// segment it may still be connecting.
    pub(super) fn hold_limit(&self, flow: Option<FlowId>) -> Nanos {
        let started = flow
            .and_then(|f| self.seq.get(&f))
            .is_some_and(|s| s.live_isn.is_some());
        if started {
            ACK_CLAMP_AFTER_NS
        } else {
            ACK_WAIT_LIMIT_NS
        }
    }

    fn arrival(&mut self, p: Pending, note: Option<String>, now: Nanos) -> Arrival {
        let index = p.frame.index;
        let synthetic_l2 = p
            .frame
            .synthetic_l2
            .then_some("Ethernet header made up by the replay (the capture's link type has none)");
        let mut notes: Vec<String> = [note, p.note.clone(), synthetic_l2.map(String::from)]
            .into_iter()
            .flatten()
            .collect();
        if !p.frame.timestamped {
            notes.push(
                "no timestamp in the capture (Simple Packet Block): played with the previous packet"
                    .into(),
            );
        }
        if let Some(r) = &p.frame.renamed {
            notes.push(r.to_string());
        }
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
        // Before the acks are rebased: the rewrite recomputes the TCP checksum, which would hide what the
        // capture held (offloaded or damaged).
        let checked = (fate == Fate::Inject).then(|| self.check_checksums(&mut frame));
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
            if to_stack
                && !t.syn
                && let Some(offset) = state.peer_offset(t.seq)
            {
                let end = offset.wrapping_add(t.payload_len as u32);
                self.holes.entry(flow).or_default().injected(end, &frame, l);
            }
            state.rewrite_for_stack(&mut frame, l);
            state.last_injected =
                Some((frame[..t.payload_at.min(frame.len())].to_vec(), l.clone()));
        }
        if let Some(checked) = &checked {
            notes.extend(self.finish_checksums(&mut frame, checked));
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
}
