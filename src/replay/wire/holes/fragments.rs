//! A TCP segment the peer sent in IPv4 fragments covers its whole length of the peer's stream, though its first
//! fragment's TCP header frames only the bytes that fragment carries: the hole bookkeeping learns the segment's
//! full extent once both its first fragment (sequence number, TCP header length) and its last (the datagram's
//! end) have been read, in either order, so a fragmented segment is never taken for a hole.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::replay::diff::FlowId;

/// Fragmented datagrams followed at once, at most (the oldest is forgotten past this: a capture of fragments
/// that never complete cannot grow the table).
const MAX_SETS: usize = 64;

/// One IPv4 fragment's place in its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::replay::wire) struct Fragment {
    pub key: (Ipv4Addr, Ipv4Addr, u16),
    /// Byte offset of this fragment's payload in the datagram's.
    pub offset: usize,
    pub more: bool,
    pub payload_len: usize,
}

impl Fragment {
    /// The fragment an Ethernet frame carries, if it is an IPv4 fragment of a TCP datagram.
    pub fn of(frame: &[u8]) -> Option<Fragment> {
        let ip = frame.get(14..)?;
        if frame.get(12..14)? != [0x08, 0x00] || ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 6 {
            return None;
        }
        let header = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let flags = u16::from_be_bytes([ip[6], ip[7]]);
        let (more, offset) = (flags & 0x2000 != 0, usize::from(flags & 0x1fff) * 8);
        if (!more && offset == 0) || total < header {
            return None;
        }
        let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
        Some(Fragment {
            key: (addr(12), addr(16), u16::from_be_bytes([ip[4], ip[5]])),
            offset,
            more,
            payload_len: total - header,
        })
    }
}

#[derive(Debug, Default)]
struct Set {
    /// From the first fragment: the flow, the segment's offset in the peer's stream, its TCP header length.
    start: Option<(FlowId, u32, usize)>,
    /// From the last fragment: the datagram's payload length (TCP header and data).
    end: Option<usize>,
}

/// The fragmented TCP datagrams of the peers, until each one's extent is known.
#[derive(Debug, Default)]
pub(in crate::replay::wire) struct FragmentedSegments {
    sets: BTreeMap<(Ipv4Addr, Ipv4Addr, u16), Set>,
    order: Vec<(Ipv4Addr, Ipv4Addr, u16)>,
}

impl FragmentedSegments {
    /// Learn from one fragment (`start` for the first: its flow, stream offset and TCP header length). Returns
    /// the whole segment's (flow, stream offset, payload length) once both ends are known.
    pub fn add(
        &mut self,
        f: Fragment,
        start: Option<(FlowId, u32, usize)>,
    ) -> Option<(FlowId, u32, u32)> {
        if !self.sets.contains_key(&f.key) {
            if self.order.len() >= MAX_SETS {
                let oldest = self.order.remove(0);
                self.sets.remove(&oldest);
            }
            self.order.push(f.key);
        }
        let set = self.sets.entry(f.key).or_default();
        if f.offset == 0 {
            set.start = start.or(set.start);
        }
        if !f.more {
            set.end = Some(f.offset + f.payload_len);
        }
        let ((flow, offset, tcp_header), end) = (set.start?, set.end?);
        self.sets.remove(&f.key);
        self.order.retain(|k| *k != f.key);
        let len = u32::try_from(end.saturating_sub(tcp_header)).ok()?;
        Some((flow, offset, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn frag(offset: usize, more: bool, len: usize) -> Fragment {
        Fragment {
            key: (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 7),
            offset,
            more,
            payload_len: len,
        }
    }

    fn flow() -> FlowId {
        let a: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        (a, b)
    }

    #[test]
    fn the_segment_is_known_once_its_first_and_last_fragments_are_read_in_either_order() {
        let mut s = FragmentedSegments::default();
        assert_eq!(s.add(frag(0, true, 32), Some((flow(), 100, 32))), None);
        assert_eq!(s.add(frag(32, true, 32), None), None);
        assert_eq!(s.add(frag(64, false, 49), None), Some((flow(), 100, 81)));
        // The last fragment first.
        assert_eq!(s.add(frag(64, false, 49), None), None);
        assert_eq!(
            s.add(frag(0, true, 32), Some((flow(), 7, 32))),
            Some((flow(), 7, 81))
        );
    }

    #[test]
    fn fragments_that_never_complete_do_not_grow_the_table() {
        let mut s = FragmentedSegments::default();
        for id in 0..1000u16 {
            let mut f = frag(0, true, 32);
            f.key.2 = id;
            s.add(f, Some((flow(), 0, 32)));
        }
        assert_eq!(s.sets.len(), MAX_SETS);
    }
}
