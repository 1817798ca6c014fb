//! Reading the capture: records are read ahead of the clock (bounded, and paused while the scripts hold more
//! than the stack has played), each classified by who sent it, learnt from (sequence numbers, the recorded
//! stack's bytes for the script and the diff) and queued for its recorded time.

use crate::pipeline::clock::Nanos;
use crate::pipeline::dissect::Headers;
use crate::pipeline::reason::Reason;

use crate::replay::capture::CapturedFrame;
use crate::replay::diff::{FlowId, Side};
use crate::replay::script::{Datagram, FILLER_PER_FRAME};
use crate::replay::segment::{self, Layers};

use super::neighbours::is_arp_from;
use super::seq::before_start;
use super::{
    ACK_WAIT_LIMIT_NS, Kind, LOOKAHEAD, Pending, ReplayWire, SCRIPT_LIMIT, THROTTLE_CHECK_EVERY,
};

impl ReplayWire {
    fn due_of(&mut self, t_ns: u64) -> Nanos {
        let before = self.gaps.shortened;
        let played = self.gaps.played(t_ns);
        if self.gaps.shortened != before {
            let mut report = self.report.borrow_mut();
            report.gaps_shortened = self.gaps.shortened;
            report.longest_gap_ns = self.gaps.longest;
            report.gap_time_removed_ns = self.gaps.removed();
        }
        let due = match self.speed {
            None => 0,
            Some(speed) => (played as f64 / speed) as Nanos,
        };
        // A capture out of time order is played in file order.
        self.last_due = self.last_due.max(due);
        self.last_due
    }

    /// Read the capture until a frame lies beyond `now` (or the lookahead is full).
    pub(super) fn fill(&mut self, now: Nanos) {
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
                    self.holes_unproven();
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
        self.filler_budget = self.filler_budget.saturating_add(FILLER_PER_FRAME);
        // A record with no time of its own (an SPB) neither starts the clock nor moves it: it is played with
        // the previous packet, or at the start.
        let due = if frame.timestamped {
            self.due_of(frame.t_ns)
        } else {
            self.last_due
        };
        let headers = if frame.problem.is_none() {
            Headers::read(&frame.frame)
        } else {
            None
        };
        let layers = headers
            .as_ref()
            .and_then(|h| Layers::of(h, frame.orig_len as usize));
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
        } else if headers
            .as_ref()
            .is_some_and(|h| is_arp_from(h, self.identity.mac))
        {
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
        if let (Kind::ToStack, Some(l)) = (&kind, &layers) {
            self.hole_peer_fragment(&frame.frame, flow, l);
        }
        if let (Some(l), Some(flow)) = (&layers, flow)
            && let Some(t) = l.tcp
        {
            // A flow the capture holds from mid-connection is opened here, at its first segment either way.
            if matches!(kind, Kind::ToStack | Kind::FromStack) && !t.syn {
                let to_stack = matches!(kind, Kind::ToStack);
                self.join_read(flow, &frame, l, &t, to_stack, due);
            }
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
            // Holes: a peer segment (truncated ones too: captured, only cut) and the ACKs of either side.
            if self.identity.owns(l.dst) {
                self.hole_peer_segment(flow, &t);
                self.hole_peer_ack(flow, &t);
            } else if matches!(kind, Kind::FromStack | Kind::Connect) {
                self.hole_stack_ack(flow, &t);
            }
        } else if let (Some(l), Some(flow), Some(_)) =
            (&layers, flow, layers.as_ref().and_then(|l| l.udp))
        {
            self.learn_datagram(flow, &kind, &frame, l);
        }
        self.queue(Pending {
            due,
            frame,
            layers,
            kind,
            flow,
            held_since: None,
            note: None,
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
        let offset = t.seq.wrapping_sub(isn).wrapping_sub(1);
        let after = t.ack.wrapping_sub(peer_isn).wrapping_sub(1);
        let after = if !t.ack_flag || (state.joined && before_start(after)) {
            0
        } else {
            u64::from(after)
        };
        // A joined flow's segment that starts before the join point (a retransmission of bytes sent before
        // the capture began) keeps only its bytes from the stream's start on.
        let (offset, data, on_wire) = if state.joined && before_start(offset) {
            let skip = offset.wrapping_neg() as usize;
            let kept = data.get(skip..).unwrap_or_default();
            (0, kept, t.payload_len.saturating_sub(skip))
        } else {
            (u64::from(offset), data, t.payload_len)
        };
        // Bytes the segment's lengths claim and the capture cut (a snaplen) are played as zeros: filler, as
        // a hole's is, paid from the same budget. Past it the segment is as long as what was captured.
        let captured = data.len().min(on_wire);
        let cut = ((on_wire - captured) as u64).min(self.filler_budget);
        self.filler_budget -= cut;
        let played = captured + cut as usize;
        let mut scripts = self.scripts.borrow_mut();
        let script = scripts.entry(flow).or_default();
        if !t.syn {
            script.add(offset, data, played, after);
        }
        if t.fin {
            script.fin = Some((offset + on_wire as u64, after));
        }
        if t.rst {
            script.reset.get_or_insert((offset, after));
        }
    }
}
