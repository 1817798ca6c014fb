//! Segments the capturing host merged: with GRO/LRO on, a receiver's capture holds TCP segments of up to 64 KiB
//! that never crossed the wire as one. Injected whole, such a segment is larger than the stack's receive window
//! often enough that smoltcp refuses it, and the flow limps on retransmissions. So the emulated peer sends it as
//! the wire carried it: MTU-sized segments, each its own traced packet, each noting the capture frame it is
//! part of.

use crate::replay::segment::{Layers, Tcp};

use smoltcp::wire::{IpAddress, Ipv4Packet, TcpPacket};

use super::{Kind, Pending, ReplayWire};

/// The largest IP packet a segment the peer injects may be: Ethernet's MTU.
pub const WIRE_MTU: usize = 1500;

const ETH: usize = 14;
const IPV6_HEADER: usize = 40;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;

/// The MTU-sized pieces of a TCP data segment whose IP packet is larger than `WIRE_MTU`, each with its layers;
/// None when the segment fits, is not plain data (SYN, RST), is cut short in the capture, or has IPv6
/// extension headers (whose fragmentable part a split would have to rebuild).
pub(super) fn split(frame: &[u8], l: &Layers) -> Option<Vec<(Vec<u8>, Layers)>> {
    let t = l.tcp?;
    let end = l.end;
    if t.syn || t.rst || t.payload_len == 0 || frame.len() < end || end < ETH {
        return None;
    }
    if end - ETH <= WIRE_MTU || t.payload_at + t.payload_len != end {
        return None;
    }
    let v4 = l.src.is_ipv4();
    if !v4 && l.l4 != ETH + IPV6_HEADER {
        return None;
    }
    let headers = t.payload_at - ETH;
    let room = WIRE_MTU.checked_sub(headers).filter(|&r| r >= 8)?;
    let payload = &frame[t.payload_at..end];
    let count = payload.len().div_ceil(room);
    let mut pieces = Vec::with_capacity(count);
    for (k, chunk) in payload.chunks(room).enumerate() {
        let last = k + 1 == count;
        let seq = t.seq.wrapping_add((k * room) as u32);
        let mut piece = Vec::with_capacity(t.payload_at + chunk.len());
        piece.extend_from_slice(&frame[..t.payload_at]);
        piece.extend_from_slice(chunk);
        let l4 = l.l4;
        piece[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        if !last {
            // FIN and PSH belong to the segment's end only.
            piece[l4 + 13] &= !(TCP_FIN | TCP_PSH);
        }
        let ip_len = piece.len() - ETH;
        if v4 {
            piece[ETH + 2..ETH + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
            Ipv4Packet::new_unchecked(&mut piece[ETH..]).fill_checksum();
        } else {
            let payload_len = (ip_len - IPV6_HEADER) as u16;
            piece[ETH + 4..ETH + 6].copy_from_slice(&payload_len.to_be_bytes());
        }
        let (src, dst): (IpAddress, IpAddress) = (l.src.into(), l.dst.into());
        TcpPacket::new_unchecked(&mut piece[l4..]).fill_checksum(&src, &dst);
        let layers = Layers {
            end: piece.len(),
            tcp: Some(Tcp {
                seq,
                fin: t.fin && last,
                payload_len: chunk.len(),
                ..t
            }),
            ..l.clone()
        };
        pieces.push((piece, layers));
    }
    Some(pieces)
}

impl ReplayWire {
    /// Queue a frame read from the capture: a merged segment to the stack goes as the pieces the wire carried.
    pub(super) fn queue(&mut self, p: Pending) {
        let pieces = match (&p.kind, &p.layers) {
            (Kind::ToStack, Some(l)) if !p.frame.truncated => split(&p.frame.frame, l),
            _ => None,
        };
        let Some(pieces) = pieces else {
            if let Some(f) = p.flow {
                *self.pending_per_flow.entry(f).or_default() += 1;
            }
            self.pending.push_back(p);
            return;
        };
        let n = pieces.len();
        let bytes = p
            .layers
            .as_ref()
            .and_then(|l| l.tcp)
            .map_or(0, |t| t.payload_len);
        {
            let mut report = self.report.borrow_mut();
            report.merged += 1;
            report.merged_pieces += n as u64;
        }
        if let Some(f) = p.flow {
            *self.pending_per_flow.entry(f).or_default() += n;
        }
        for (k, (frame, layers)) in pieces.into_iter().enumerate() {
            let note = format!(
                "capture frame {} holds {bytes} bytes of TCP payload in one segment, more than a {WIRE_MTU}-byte \
                 MTU carries (merged by the capturing host's GRO/LRO): sent as the wire carried it, in {n} \
                 segments; this is {} of {n}",
                p.frame.index + 1,
                k + 1
            );
            let orig_len = frame.len() as u32;
            self.pending.push_back(Pending {
                due: p.due,
                frame: crate::replay::capture::CapturedFrame {
                    frame,
                    orig_len,
                    ..p.frame.clone()
                },
                layers: Some(layers),
                kind: Kind::ToStack,
                flow: p.flow,
                held_since: None,
                note: Some(note),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::dissect::Headers;
    use crate::replay::testgen::{self, MAC_A, MAC_B};

    fn segment(payload_len: usize, seq: u32, flags: u8) -> (Vec<u8>, Layers) {
        let payload: Vec<u8> = (0..payload_len).map(|i| (i % 251) as u8).collect();
        let tcp = testgen::tcp(40000, 80, seq, 7, flags, &payload);
        let ip = testgen::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, &tcp);
        let frame = testgen::ethernet(MAC_A, MAC_B, 0x0800, &ip);
        let h = Headers::read(&frame).unwrap();
        let l = Layers::of(&h, frame.len()).unwrap();
        (frame, l)
    }

    #[test]
    fn a_merged_segment_becomes_mtu_sized_pieces_with_the_same_bytes() {
        // ACK|PSH|FIN over 4000 bytes, seq near the wrap.
        let (frame, l) = segment(4000, u32::MAX - 100, 0x19);
        let pieces = split(&frame, &l).expect("larger than the MTU");
        assert_eq!(pieces.len(), 3, "1460 + 1460 + 1080");
        let mut joined = Vec::new();
        for (k, (piece, pl)) in pieces.iter().enumerate() {
            assert!(piece.len() - ETH <= WIRE_MTU);
            // Each piece reads back as a valid segment (checksums included) with the layers given.
            let h = Headers::read(piece).unwrap();
            let back = Layers::of(&h, piece.len()).unwrap();
            assert_eq!(&back, pl);
            let ip = Ipv4Packet::new_checked(&piece[ETH..]).unwrap();
            assert!(ip.verify_checksum());
            let tcp = TcpPacket::new_checked(&piece[pl.l4..]).unwrap();
            assert!(tcp.verify_checksum(&l.src.into(), &l.dst.into()));
            let t = pl.tcp.unwrap();
            assert_eq!(t.seq, (u32::MAX - 100).wrapping_add(1460 * k as u32));
            assert_eq!(t.fin, k == 2);
            assert_eq!(tcp.psh(), k == 2);
            joined.extend_from_slice(&piece[t.payload_at..]);
        }
        assert_eq!(joined, frame[l.tcp.unwrap().payload_at..]);
    }

    #[test]
    fn a_segment_that_fits_or_is_cut_short_is_left_whole() {
        let (frame, l) = segment(1460, 1, 0x18);
        assert!(split(&frame, &l).is_none(), "exactly the MTU");
        let (frame, l) = segment(3000, 1, 0x18);
        assert!(
            split(&frame[..2000], &l).is_none(),
            "the capture cut it short"
        );
        let (frame, l) = segment(3000, 1, 0x02);
        assert!(split(&frame, &l).is_none(), "a SYN");
    }
}
