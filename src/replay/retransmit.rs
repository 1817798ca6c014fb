//! The emulated peer's retransmissions. The capture holds the retransmissions its own receiver needed, not the
//! ones smoltcp needs: a segment smoltcp could not take (its reassembly buffer full of holes, a frame-buffer
//! overflow) would otherwise be lost for good and the flow would stall. So the peer keeps what it injected
//! until the stack acknowledges it and sends it again, as a TCP sender would: at once when the stack's ack
//! shows a hole (a duplicate or partial ack), else after a timeout that doubles with each try.

use std::collections::BTreeMap;

use crate::pipeline::clock::Nanos;

use super::segment::Layers;

/// A hole seen in the stack's ack is filled at once, unless the segment went in this recently (it may still be
/// queued on its way to the stack).
pub const HOLE_GAP_NS: Nanos = 5_000_000;
/// With no ack at all, the first retransmission after this long; doubled for each try after.
pub const TIMEOUT_NS: Nanos = 200_000_000;
/// Tries before the peer gives a segment up (the stack may have reset the flow).
pub const MAX_TRIES: u32 = 5;

/// One injected data segment, as read from the capture (its acks are rewritten again on each send).
#[derive(Debug, Clone)]
struct Segment {
    frame: Vec<u8>,
    layers: Layers,
    end: u32,
    last_sent: Nanos,
    tries: u32,
}

/// What the peer has injected in one flow and the stack has not acknowledged, by stream offset (distance
/// past the peer's ISN + 1; flows are taken to stay under 4 GiB).
#[derive(Debug, Default, Clone)]
pub struct Unacked {
    segments: BTreeMap<u32, Segment>,
    /// The end of the furthest segment injected.
    highest_end: u32,
    /// The furthest the stack has acknowledged.
    acked: u32,
}

impl Unacked {
    /// The peer injected a data segment at `offset`.
    pub fn sent(&mut self, offset: u32, len: u32, frame: Vec<u8>, layers: Layers, now: Nanos) {
        let end = offset.saturating_add(len);
        if len == 0 || end <= self.acked {
            return;
        }
        self.highest_end = self.highest_end.max(end);
        let seg = self.segments.entry(offset).or_insert(Segment {
            frame,
            layers,
            end,
            last_sent: now,
            tries: 0,
        });
        seg.last_sent = now;
    }

    /// The stack acknowledged everything before `upto`.
    pub fn acked(&mut self, upto: u32) {
        self.acked = self.acked.max(upto);
        while let Some(entry) = self.segments.first_entry() {
            if entry.get().end > self.acked {
                break;
            }
            entry.remove();
        }
    }

    /// The stack has gone (reset): nothing more to send it.
    pub fn clear(&mut self) {
        self.segments.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The segment to send again now because the stack's ack stops short of what was injected, if any.
    pub fn hole(&mut self, now: Nanos) -> Option<(Vec<u8>, Layers)> {
        if self.highest_end <= self.acked {
            return None;
        }
        let seg = self.covering_ack()?;
        if now.saturating_sub(seg.last_sent) < HOLE_GAP_NS || seg.tries >= MAX_TRIES {
            return None;
        }
        Some(resend(seg, now))
    }

    /// When the oldest unacknowledged segment times out, if it still has tries left.
    pub fn next_timeout(&self) -> Option<Nanos> {
        let seg = self.segments.values().next()?;
        (seg.tries < MAX_TRIES).then(|| seg.last_sent + (TIMEOUT_NS << seg.tries))
    }

    /// The oldest unacknowledged segment, if its timeout has passed.
    pub fn timed_out(&mut self, now: Nanos) -> Option<(Vec<u8>, Layers)> {
        let due = self.next_timeout()?;
        if now < due {
            return None;
        }
        let seg = self.segments.values_mut().next()?;
        Some(resend(seg, now))
    }

    /// Segments given up on: every try spent.
    pub fn exhausted(&self) -> bool {
        self.segments.values().all(|s| s.tries >= MAX_TRIES)
    }

    fn covering_ack(&mut self) -> Option<&mut Segment> {
        let acked = self.acked;
        let (_, seg) = self.segments.range_mut(..=acked).next_back()?;
        (seg.end > acked).then_some(seg)
    }
}

fn resend(seg: &mut Segment, now: Nanos) -> (Vec<u8>, Layers) {
    seg.tries += 1;
    seg.last_sent = now;
    (seg.frame.clone(), seg.layers.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn layers() -> Layers {
        Layers {
            src: IpAddr::V4(Ipv4Addr::LOCALHOST),
            dst: IpAddr::V4(Ipv4Addr::LOCALHOST),
            protocol: 6,
            l4: 34,
            end: 54,
            tcp: None,
            udp: None,
        }
    }

    #[test]
    fn a_hole_in_the_stacks_ack_is_filled_once_the_segment_is_not_fresh() {
        let mut u = Unacked::default();
        u.sent(0, 100, vec![0], layers(), 0);
        u.sent(100, 100, vec![1], layers(), 0);
        u.sent(200, 100, vec![2], layers(), 0);
        u.acked(100);
        assert!(
            u.hole(1_000).is_none(),
            "just sent: may still be on its way"
        );
        let (frame, _) = u.hole(HOLE_GAP_NS).expect("the segment at 100 again");
        assert_eq!(frame, vec![1]);
        assert!(u.hole(HOLE_GAP_NS + 1).is_none(), "not twice in a row");
        u.acked(300);
        assert!(u.is_empty());
        assert!(u.hole(10 * HOLE_GAP_NS).is_none());
    }

    #[test]
    fn unacknowledged_data_times_out_with_backoff_and_is_given_up() {
        let mut u = Unacked::default();
        u.sent(0, 10, vec![7], layers(), 1_000);
        assert_eq!(u.next_timeout(), Some(1_000 + TIMEOUT_NS));
        assert!(u.timed_out(TIMEOUT_NS).is_none());
        let mut now = 1_000 + TIMEOUT_NS;
        for tries in 1..=MAX_TRIES {
            assert!(u.timed_out(now).is_some());
            now += TIMEOUT_NS << tries;
        }
        assert!(u.exhausted());
        assert_eq!(u.next_timeout(), None);
    }
}
