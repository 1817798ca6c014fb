//! One flow's peer stream as the capture holds it, for the holes: the stretches read (in capture order), the
//! ranges a recorded ACK proves missing and owed as filler, how filler is cut into segments, and the filler
//! frame itself. Pure bookkeeping, bounded: no ACK proves more than `MAX_HOLE` past what was read.

use std::collections::BTreeMap;

use smoltcp::wire::Ipv4Packet;

use crate::replay::script::MAX_HOLE;
use crate::replay::segment::{Layers, Tcp};

/// Stretches of the peer's stream read beyond a gap that are kept at most (a window's worth in practice).
const MAX_BEYOND: usize = 1024;
/// A filler segment's size when the peer was seen sending no data segment yet (the IPv4 default MSS).
const DEFAULT_SEGMENT: u32 = 536;

/// One flow's peer stream as the capture holds it, in offsets past the peer's ISN + 1 (flows are taken to
/// stay under 4 GiB, as `retransmit::Unacked` does), and the filler still to inject.
#[derive(Debug, Default, Clone)]
pub(in crate::replay::wire) struct PeerHoles {
    /// Everything before this was read from the capture (or proven and owed as filler).
    contiguous: u32,
    /// Stretches read beyond a gap, start → end.
    beyond: BTreeMap<u32, u32>,
    /// Filler proven and not yet injected, start → end.
    pub(in crate::replay::wire) owed: BTreeMap<u32, u32>,
    /// Where the last proven range ended: filler starting there continues the same hole.
    last_end: Option<u32>,
    /// The largest data segment the peer was seen to send.
    segment: u32,
    /// The peer's stream the stack has been given so far (captured segments and filler), its furthest end.
    injected_end: u32,
    /// The recorded headers of the last peer segment injected: the pattern of a filler segment.
    pub(in crate::replay::wire) pattern: Option<(Vec<u8>, Layers)>,
}

impl PeerHoles {
    /// A peer segment read from the capture: `[offset, offset + len)` of its stream (FIN included).
    pub(in crate::replay::wire) fn captured(&mut self, offset: u32, len: u32, payload: u32) {
        self.segment = self.segment.max(payload);
        let end = offset.saturating_add(len);
        if len == 0 || end <= self.contiguous {
            return;
        }
        if offset <= self.contiguous {
            self.contiguous = end;
            self.merge();
        } else if offset - self.contiguous <= MAX_HOLE as u32 && self.beyond.len() < MAX_BEYOND {
            // Further ahead than any window is a damaged sequence number: not a stretch, and no hole.
            let e = self.beyond.entry(offset).or_insert(end);
            *e = (*e).max(end);
        }
    }

    fn merge(&mut self) {
        while let Some((&s, &e)) = self.beyond.first_key_value() {
            if s > self.contiguous {
                break;
            }
            self.beyond.pop_first();
            self.contiguous = self.contiguous.max(e);
        }
    }

    /// The recorded stack acknowledged the peer's stream up to `upto`: the ranges below it the capture does
    /// not hold are proven, owed as filler, and returned, with whether the first continues the last hole.
    pub(in crate::replay::wire) fn acked(
        &mut self,
        upto: u32,
        budget: u64,
    ) -> (Vec<(u32, u32)>, bool) {
        if upto <= self.contiguous || upto - self.contiguous > MAX_HOLE as u32 {
            return (Vec::new(), false);
        }
        let mut at = self.contiguous;
        let mut gaps = Vec::new();
        let mut passed = 0;
        for (&s, &e) in &self.beyond {
            if s >= upto {
                break;
            }
            if s > at {
                gaps.push((at, s));
            }
            at = at.max(e);
            passed += 1;
        }
        // One unheld position past everything read is the peer's FIN the capture missed (its ack covers it),
        // not a byte of data.
        let fin = at.checked_add(1) == Some(upto) && passed == self.beyond.len();
        if at < upto && !fin {
            gaps.push((at, upto));
        }
        // Past the filler budget the ACK proves nothing: the gap stays, and the stack's stream stops there.
        if self.filler_cost(&gaps) > budget {
            return (Vec::new(), false);
        }
        for _ in 0..passed {
            self.beyond.pop_first();
        }
        self.contiguous = at.max(upto);
        self.merge();
        let continues = gaps.first().is_some_and(|g| Some(g.0) == self.last_end);
        for &(s, e) in &gaps {
            self.owed.insert(s, e);
            self.last_end = Some(e);
        }
        (gaps, continues)
    }

    /// The gaps before stretches read that no ACK proved, once the capture is read: (count, bytes).
    pub(in crate::replay::wire) fn unproven(&self) -> (u64, u64) {
        let mut at = self.contiguous;
        let (mut holes, mut bytes) = (0, 0);
        for (&s, &e) in &self.beyond {
            if s > at {
                holes += 1;
                bytes += u64::from(s - at);
            }
            at = at.max(e);
        }
        (holes, bytes)
    }

    /// The next filler segment to inject, if one is owed and due: when the stack has already been given bytes
    /// past it, when the peer's next frame (at `next`) lies past its start, or when nothing of the flow is
    /// left to come (`next` None and `last`). Taken off what is owed.
    pub(in crate::replay::wire) fn next_filler(
        &mut self,
        next: Option<u32>,
        last: bool,
    ) -> Option<(u32, u32)> {
        let (&start, &end) = self.owed.first_key_value()?;
        let due = start < self.injected_end || next.is_some_and(|n| n >= start) || last;
        if !due {
            return None;
        }
        // Never smaller than the IPv4 default MSS every stack takes: a peer seen sending tiny segments (a
        // damaged capture) would otherwise be filled by as many frames.
        let size = self.segment.max(DEFAULT_SEGMENT);
        let cut = end.min(start.saturating_add(size));
        self.owed.pop_first();
        if cut < end {
            self.owed.insert(cut, end);
        }
        self.injected_end = self.injected_end.max(cut);
        Some((start, cut))
    }

    /// What filling `gaps` costs of the replay's filler budget: its bytes, each filler segment counted as
    /// at least `DEFAULT_SEGMENT` bytes (a peer seen sending tiny segments would be filled by as many frames).
    pub(in crate::replay::wire) fn filler_cost(&self, gaps: &[(u32, u32)]) -> u64 {
        let size = u64::from(self.segment.max(DEFAULT_SEGMENT));
        gaps.iter()
            .map(|&(s, e)| {
                let len = u64::from(e - s);
                len.max(len.div_ceil(size) * u64::from(DEFAULT_SEGMENT))
            })
            .sum()
    }

    pub(in crate::replay::wire) fn owes(&self) -> bool {
        !self.owed.is_empty()
    }

    /// Is the first filler owed due with no frame behind it: bytes past it already went, or (`last`) nothing
    /// more of the flow is to come?
    pub(in crate::replay::wire) fn ready(&self, last: bool) -> bool {
        self.owed
            .first_key_value()
            .is_some_and(|(&s, _)| (self.pattern.is_some() && s < self.injected_end) || last)
    }

    /// A peer segment went to the stack: `[offset, end)`, its recorded headers the pattern for filler.
    pub(in crate::replay::wire) fn injected(&mut self, end: u32, pattern: &[u8], l: &Layers) {
        // A damaged sequence number far ahead says nothing of what the stack was given.
        if end.saturating_sub(self.injected_end) <= MAX_HOLE as u32 {
            self.injected_end = self.injected_end.max(end);
        }
        if let Some(t) = l.tcp
            && t.ack_flag
            && pattern.len() >= t.payload_at
        {
            self.pattern = Some((pattern[..t.payload_at].to_vec(), l.clone()));
        }
    }
}

/// A data segment of `len` zeros at sequence number `seq`, from the peer of `pattern` (a recorded frame's
/// bytes up to its payload, its acks still the recorded ones): ACK only, lengths and the IPv4 checksum
/// made; the TCP checksum is left to the ack rewrite that follows.
pub(in crate::replay::wire) fn filler_frame(
    pattern: &[u8],
    l: &Layers,
    seq: u32,
    len: usize,
) -> Option<(Vec<u8>, Layers)> {
    let t = l.tcp?;
    let l4 = l.l4;
    if pattern.len() < t.payload_at || t.payload_at < l4 + 20 || !t.ack_flag {
        return None;
    }
    let mut frame = pattern[..t.payload_at].to_vec();
    frame.resize(t.payload_at + len, 0);
    frame[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
    frame[l4 + 13] = 0x10;
    let ip_len = u16::try_from(frame.len() - 14).ok()?;
    if l.src.is_ipv4() {
        frame[16..18].copy_from_slice(&ip_len.to_be_bytes());
        Ipv4Packet::new_unchecked(&mut frame[14..]).fill_checksum();
    } else {
        frame[18..20].copy_from_slice(&ip_len.checked_sub(40)?.to_be_bytes());
    }
    let layers = Layers {
        end: frame.len(),
        tcp: Some(Tcp {
            seq,
            syn: false,
            fin: false,
            rst: false,
            payload_len: len,
            ..t
        }),
        ..l.clone()
    };
    Some((frame, layers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn an_ack_past_a_gap_proves_exactly_the_bytes_no_segment_held() {
        let mut h = PeerHoles::default();
        h.captured(0, 100, 100);
        h.captured(200, 100, 100);
        h.captured(400, 100, 100);
        assert_eq!(h.unproven(), (2, 200));
        // The stack acked up to 250: 100..200 was received and not captured; 300..400 not yet proven.
        assert_eq!(h.acked(250, u64::MAX), (vec![(100, 200)], false));
        assert_eq!(h.unproven(), (1, 100));
        // An old ack proves nothing more; one past everything proves the rest, continuing no hole.
        assert_eq!(h.acked(250, u64::MAX), (vec![], false));
        assert_eq!(
            h.acked(550, u64::MAX),
            (vec![(300, 400), (500, 550)], false)
        );
        assert_eq!(h.unproven(), (0, 0));
        // The next ack continues the hole that ended at 550.
        assert_eq!(h.acked(600, u64::MAX), (vec![(550, 600)], true));
    }

    #[test]
    fn an_ack_one_past_everything_is_a_missed_fin_not_a_byte() {
        let mut h = PeerHoles::default();
        h.captured(0, 100, 100);
        assert_eq!(h.acked(101, u64::MAX), (vec![], false));
        assert_eq!(h.unproven(), (0, 0));
        // Two past, or one past with more read beyond, is data.
        let mut h = PeerHoles::default();
        h.captured(0, 100, 100);
        assert_eq!(h.acked(102, u64::MAX), (vec![(100, 102)], false));
        let mut h = PeerHoles::default();
        h.captured(0, 100, 100);
        h.captured(101, 10, 10);
        assert_eq!(h.acked(111, u64::MAX), (vec![(100, 101)], false));
    }

    #[test]
    fn a_far_ahead_sequence_number_or_ack_fills_nothing() {
        let mut h = PeerHoles::default();
        h.captured(0, 100, 100);
        // A bit-flipped sequence number 2^31 ahead is no stretch: no hole, nothing unproven.
        h.captured(100 + (1 << 31), 100, 100);
        assert_eq!(h.unproven(), (0, 0));
        // A bit-flipped ack 2^31 ahead (or just past the cap) proves nothing: no 2 GB of filler.
        assert_eq!(h.acked(100 + (1 << 31), u64::MAX), (vec![], false));
        assert_eq!(
            h.acked(100 + MAX_HOLE as u32 + 1, u64::MAX),
            (vec![], false)
        );
        assert!(!h.owes());
        // Up to the cap is a window's worth: proven.
        assert_eq!(h.acked(100 + 1000, u64::MAX), (vec![(100, 1100)], false));
    }

    #[test]
    fn filler_past_the_budget_proves_nothing_and_tiny_segments_cost_a_full_one_each() {
        let mut h = PeerHoles::default();
        h.captured(0, 10, 10);
        h.captured(2000, 10, 10);
        // The peer was seen sending 10-byte segments, yet filler is cut at least 536 bytes long: the
        // 1990-byte gap is 4 segments, and costs 4 × 536 of the budget.
        assert_eq!(h.filler_cost(&[(10, 2000)]), 4 * 536);
        assert_eq!(h.acked(2010, 4 * 536 - 1), (vec![], false));
        assert!(!h.owes(), "nothing is owed");
        assert_eq!(h.unproven(), (1, 1990), "the gap stays");
        assert_eq!(h.acked(2010, 4 * 536), (vec![(10, 2000)], false));
        assert!(h.owes());
        h.injected(2000, &[0; 64], &layers());
        let cuts: Vec<_> = std::iter::from_fn(|| h.next_filler(None, true)).collect();
        assert_eq!(cuts, [(10, 546), (546, 1082), (1082, 1618), (1618, 2000)]);
        // Full-size segments cost their bytes.
        let mut big = PeerHoles::default();
        big.captured(0, 1448, 1448);
        assert_eq!(big.filler_cost(&[(1448, 4344)]), 2896);
    }

    #[test]
    fn filler_is_cut_to_the_peers_segments_and_waits_for_the_segment_past_it() {
        let mut h = PeerHoles::default();
        h.captured(0, 1448, 1448);
        h.captured(4344, 1448, 1448);
        h.injected(1448, &[0; 66], &layers());
        assert_eq!(h.acked(4344, u64::MAX), (vec![(1448, 4344)], false));
        assert_eq!(
            h.next_filler(Some(1000), false),
            None,
            "the frame next is before it"
        );
        assert_eq!(h.next_filler(Some(4344), false), Some((1448, 2896)));
        assert_eq!(h.next_filler(None, false), None, "nothing past it went yet");
        assert_eq!(h.next_filler(Some(4344), false), Some((2896, 4344)));
        assert!(!h.owes());
        // Proven after the segment past it went (the proof read late): due at once.
        h.injected(5792, &[0; 66], &layers());
        assert_eq!(h.acked(7240, u64::MAX), (vec![(5792, 7240)], false));
        assert!(!h.ready(false));
        assert_eq!(h.next_filler(None, false), None, "5792 is not past 5792");
        h.injected(7240 + 100, &[0; 66], &layers());
        assert!(h.ready(false));
        assert_eq!(h.next_filler(None, false), Some((5792, 7240)));
        assert_eq!(h.next_filler(None, true), None);
    }

    #[test]
    fn sequence_numbers_wrap_at_u32_max() {
        let mut w = crate::replay::wire::seq::SeqState::default();
        w.peer_isn = Some(u32::MAX - 10);
        // The peer's first byte is at ISN + 1; 100 bytes later the sequence number has wrapped.
        assert_eq!(w.peer_offset(u32::MAX - 9), Some(0));
        assert_eq!(w.peer_offset(90), Some(100));
        let mut h = PeerHoles::default();
        h.captured(0, 50, 50);
        h.captured(100, 50, 50);
        assert_eq!(
            h.acked(w.peer_offset(140).unwrap(), u64::MAX),
            (vec![(50, 100)], false)
        );
    }

    #[test]
    fn a_filler_frame_is_the_pattern_with_zeros_at_its_sequence_number() {
        let l = layers();
        let mut pattern = vec![0u8; 66];
        pattern[14] = 0x45;
        pattern[46] = 0x80; // data offset 8 words (32 bytes: 12 of options)
        let (frame, fl) = filler_frame(&pattern, &l, 0xfffffff0, 100).unwrap();
        assert_eq!(frame.len(), 166);
        assert_eq!(&frame[16..18], &152u16.to_be_bytes());
        assert_eq!(&frame[38..42], &0xfffffff0u32.to_be_bytes());
        assert_eq!(frame[47], 0x10, "ACK only");
        assert!(frame[66..].iter().all(|&b| b == 0));
        assert_eq!(fl.tcp.unwrap().payload_len, 100);
        assert_eq!(fl.end, 166);
        assert!(
            Ipv4Packet::new_checked(&frame[14..])
                .unwrap()
                .verify_checksum()
        );
    }

    fn layers() -> Layers {
        Layers {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            protocol: 6,
            l4: 34,
            end: 66,
            tcp: Some(Tcp {
                src_port: 1,
                dst_port: 2,
                seq: 0,
                ack: 0,
                syn: false,
                ack_flag: true,
                fin: false,
                rst: false,
                window: 0,
                payload_at: 66,
                payload_len: 0,
            }),
            udp: None,
        }
    }
}
