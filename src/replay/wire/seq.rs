//! One TCP flow's sequence numbers as the emulated peer tracks them: the recorded ISNs and the live stack's,
//! how far the stack has put its stream on the wire, how far the peer has acknowledged it and still owes,
//! and the arithmetic that turns a recorded ack (or SACK edge) into one the live stack can take; for a flow joined
//! mid-connection, the state of its synthetic handshake (`join.rs` makes and sends it).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::pipeline::clock::Nanos;

use crate::replay::retransmit::Unacked;
use crate::replay::segment::{self, Layers};

/// Sequence numbers of one TCP flow, recorded and live, on the stack's side.
#[derive(Debug, Default, Clone)]
pub(super) struct SeqState {
    pub(super) recorded_isn: Option<u32>,
    pub(super) peer_isn: Option<u32>,
    pub(super) live_isn: Option<u32>,
    /// Sequence space the live stack has put on the wire without a gap, relative to its ISN (the SYN counts
    /// one): what the emulated peer has received and may acknowledge.
    pub(super) live_sent: u32,
    /// Stretches the stack put on the wire beyond a gap (a segment it sent that never reached the wire, lost
    /// to a full tx queue), start → end: received, not yet acknowledgeable.
    live_beyond: BTreeMap<u32, u32>,
    pub(super) live_tsval: Option<u32>,
    /// How far (past the stack's ISN) the peer has acknowledged in frames injected so far.
    pub(super) acked: u32,
    /// How far the recorded peer acknowledged in frames that had to be injected with a smaller ack: the
    /// emulated peer still owes the stack those acknowledgements, and sends them as the stack catches up.
    pub(super) owed: u32,
    /// The last frame injected for this flow, trimmed to its headers: the pattern for a synthetic ACK.
    pub(super) last_injected: Option<(Vec<u8>, Layers)>,
    /// Data the peer injected that the stack has not acknowledged, to send again if it needs it.
    pub(super) unacked: Unacked,
    /// When the owed acknowledgement goes out, if one is scheduled.
    pub(super) ack_due: Option<Nanos>,
    /// Joined mid-flow (the ISNs are taken from the first captured segment): a sequence number before the
    /// stream's start is a retransmission of what preceded the join, not a byte 4 GiB ahead.
    pub(super) joined: bool,
    /// A joined flow's synthetic handshake, until its ACK has gone.
    pub(super) handshake: Option<Box<Handshake>>,
}

/// A joined flow's synthetic handshake (`join.rs`), from its first captured segment until the ACK has gone.
#[derive(Debug, Clone)]
pub(super) struct Handshake {
    /// When the SYN goes: the first captured segment's time.
    pub(super) due: Nanos,
    /// The SYN, until it has gone.
    pub(super) syn: Option<Vec<u8>>,
    pub(super) peer: SocketAddr,
    pub(super) stack: SocketAddr,
    pub(super) peer_mac: [u8; 6],
    pub(super) peer_isn: u32,
    /// The window field of the ACK (the first captured peer segment's, else the largest).
    pub(super) window: u16,
    /// The peer's timestamp, when its segments carry the option.
    pub(super) tsval: Option<u32>,
    pub(super) mss: u16,
    /// The first captured segment's frame number (from 1).
    pub(super) first_frame: u64,
}

/// Stretches beyond a gap the peer keeps at most (the stack's send window bounds them in practice).
const MAX_LIVE_BEYOND: usize = 1024;

impl SeqState {
    /// How far the peer owes an acknowledgement now: what it recorded acknowledging, as far as the stack sent.
    pub(super) fn owed_now(&self) -> u32 {
        if (self.owed.wrapping_sub(self.live_sent) as i32) > 0 {
            self.live_sent
        } else {
            self.owed
        }
    }

    /// The stack put `[start, end)` of its sequence space on the wire: extend what the peer has received.
    pub(super) fn saw_live(&mut self, start: u32, end: u32) {
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
    pub(super) fn peer_offset(&self, seq: u32) -> Option<u32> {
        self.peer_isn
            .map(|isn| seq.wrapping_sub(isn).wrapping_sub(1))
            .filter(|&offset| !(self.joined && before_start(offset)))
    }

    /// Point a peer frame's acknowledgements (ack, SACK edges, timestamp echo) at the live stack, and note
    /// how far the peer has now acknowledged.
    pub(super) fn rewrite_for_stack(&mut self, frame: &mut [u8], l: &Layers) {
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
    pub(super) fn distance(&self, ack: u32) -> Option<u32> {
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
    pub(super) fn acks_unsent(&self, ack: u32) -> bool {
        let Some(rec) = self.recorded_isn else {
            return false;
        };
        let needed = ack.wrapping_sub(rec);
        self.live_isn.is_none() || (needed.wrapping_sub(self.live_sent) as i32) > 0
    }
}

/// Does a stream offset (sequence number − ISN − 1, wrapped) lie before the stream's first byte? For a
/// joined flow, whose ISN is only inferred, half the sequence space behind its start is taken as "before".
pub(super) fn before_start(offset: u32) -> bool {
    (offset as i32) < 0
}

/// The later of two positions in sequence space.
pub(super) fn seq_max(a: u32, b: u32) -> u32 {
    if (b.wrapping_sub(a) as i32) > 0 { b } else { a }
}
