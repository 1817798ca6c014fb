//! Recorded vs actual: per flow, the first place where what smoltcp sent differs from what the recorded stack
//! sent — the control flags in order (SYN-ACK, FIN, RST), the payload byte stream, the window it opened with.
//! Segment boundaries and pure ACKs are expected to differ between two TCP stacks and are not compared; each
//! side's stream is reassembled by sequence number, so retransmissions and reordering are not differences.
//! Comparison is streaming: bytes both sides have sent are compared and forgotten, so memory follows how far
//! one side runs ahead of the other, not the flow's length.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;

use serde::Serialize;

use super::segment::Tcp;

/// A flow between the stack and a peer: (the stack's address, the peer's address).
pub type FlowId = (SocketAddr, SocketAddr);

/// How many bytes one side may run ahead of the other before the excess is counted but no longer compared.
/// (The replay reads at most a few thousand frames ahead of the stack, so this is not reached in practice.)
const MAX_AHEAD: usize = 8 << 20;
/// Out-of-order pieces a side may hold while waiting for a gap to fill.
const MAX_PIECES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowDiff {
    pub stack: String,
    pub peer: String,
    /// None when the flow matched on every point compared.
    pub first_divergence: Option<String>,
    pub recorded_bytes: u64,
    pub sent_bytes: u64,
}

impl fmt::Display for FlowDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ⇄ {}: ", self.stack, self.peer)?;
        match &self.first_divergence {
            None => write!(f, "same as recorded ({} payload bytes)", self.sent_bytes),
            Some(d) => f.write_str(d),
        }
    }
}

/// Which side a segment comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Recorded,
    Live,
}

/// One side's stream: its control flags, its opening window, and its payload reassembled in order.
#[derive(Debug, Default, Clone)]
struct Stream {
    flags: Vec<&'static str>,
    first_window: Option<u16>,
    /// Sequence number of stream offset 0 (the ISN + 1, or the first sequence number seen).
    base: Option<u32>,
    /// The contiguous stream length received so far.
    next: u64,
    /// Pieces beyond a gap, by stream offset.
    pieces: BTreeMap<u64, Vec<u8>>,
    /// Contiguous bytes not yet compared with the other side.
    pending: VecDeque<u8>,
    /// Bytes beyond `MAX_AHEAD` that were counted but not kept.
    overflow: u64,
}

impl Stream {
    fn segment(&mut self, t: &Tcp, data: &[u8]) {
        let word = match (t.syn, t.ack_flag, t.fin, t.rst) {
            (true, true, _, _) => Some("SYN-ACK"),
            (true, false, _, _) => Some("SYN"),
            (_, _, _, true) => Some("RST"),
            (_, _, true, _) => Some("FIN"),
            _ => None,
        };
        // A retransmitted SYN or FIN is the same control segment again.
        if let Some(w) = word
            && !self.flags.contains(&w)
        {
            self.flags.push(w);
        }
        if t.syn {
            self.first_window.get_or_insert(t.window);
            self.base = Some(t.seq.wrapping_add(1));
            return;
        }
        if data.is_empty() {
            return;
        }
        let base = *self.base.get_or_insert(t.seq);
        let offset = u64::from(t.seq.wrapping_sub(base));
        // Far behind (an old retransmission across a wrap) or absurdly far ahead: not part of this stream.
        if offset > u64::from(u32::MAX / 2) {
            return;
        }
        let end = offset + data.len() as u64;
        if end <= self.next {
            return;
        }
        if offset > self.next {
            if self.pieces.len() < MAX_PIECES {
                self.pieces.insert(offset, data.to_vec());
            }
            return;
        }
        self.take(&data[(self.next - offset) as usize..]);
        while let Some((&at, _)) = self.pieces.first_key_value() {
            if at > self.next {
                break;
            }
            let (at, piece) = self.pieces.pop_first().expect("just seen");
            let end = at + piece.len() as u64;
            if end > self.next {
                self.take(&piece[(self.next - at) as usize..]);
            }
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        self.next += bytes.len() as u64;
        let room = MAX_AHEAD.saturating_sub(self.pending.len());
        let keep = bytes.len().min(room);
        self.pending.extend(&bytes[..keep]);
        self.overflow += (bytes.len() - keep) as u64;
    }
}

/// One flow's two sides and how far they agree.
#[derive(Debug, Default, Clone)]
pub struct FlowCompare {
    recorded: Stream,
    live: Stream,
    compared: u64,
    payload_divergence: Option<String>,
}

impl FlowCompare {
    pub fn segment(&mut self, side: Side, t: &Tcp, data: &[u8]) {
        match side {
            Side::Recorded => self.recorded.segment(t, data),
            Side::Live => self.live.segment(t, data),
        }
        self.compare();
    }

    /// Compare what both sides have; forget what was compared.
    fn compare(&mut self) {
        // Once a side dropped bytes it could not keep, the two streams no longer line up: stop comparing.
        if self.payload_divergence.is_some() || self.recorded.overflow > 0 || self.live.overflow > 0
        {
            self.recorded.pending.clear();
            self.live.pending.clear();
            return;
        }
        // Compare the contiguous runs both queues hold at their fronts, a run at a time.
        loop {
            let (r, l) = (
                self.recorded.pending.as_slices().0,
                self.live.pending.as_slices().0,
            );
            let n = r.len().min(l.len());
            if n == 0 {
                return;
            }
            if let Some(at) = r[..n].iter().zip(&l[..n]).position(|(a, b)| a != b) {
                self.payload_divergence = Some(format!(
                    "payload byte {}: recorded 0x{:02x}, smoltcp sent 0x{:02x}",
                    self.compared + at as u64,
                    r[at],
                    l[at]
                ));
                self.recorded.pending.clear();
                self.live.pending.clear();
                return;
            }
            self.recorded.pending.drain(..n);
            self.live.pending.drain(..n);
            self.compared += n as u64;
        }
    }

    fn first_divergence(&self) -> Option<String> {
        let (rec, live) = (&self.recorded, &self.live);
        let n = rec.flags.len().max(live.flags.len());
        for i in 0..n {
            let (r, l) = (rec.flags.get(i), live.flags.get(i));
            if r != l {
                let say = |x: Option<&&str>| x.map_or("nothing".to_string(), |s| s.to_string());
                return Some(format!(
                    "control segment {}: recorded {}, smoltcp sent {}",
                    i + 1,
                    say(r),
                    say(l)
                ));
            }
        }
        if let Some(d) = &self.payload_divergence {
            return Some(d.clone());
        }
        if rec.next != live.next {
            return Some(format!(
                "payload length: recorded {} bytes, smoltcp sent {}",
                rec.next, live.next
            ));
        }
        if rec.overflow > 0 || live.overflow > 0 {
            return Some(format!(
                "payload compared for {} bytes only: one side ran more than {} MiB ahead",
                self.compared,
                MAX_AHEAD >> 20
            ));
        }
        if let (Some(r), Some(l)) = (rec.first_window, live.first_window)
            && r != l
        {
            return Some(format!(
                "window on the SYN: recorded {r}, smoltcp opened with {l}"
            ));
        }
        None
    }

    pub fn result(&self, stack: String, peer: String) -> FlowDiff {
        FlowDiff {
            stack,
            peer,
            first_divergence: self.first_divergence(),
            recorded_bytes: self.recorded.next,
            sent_bytes: self.live.next,
        }
    }
}

/// Every flow either side sent on, in flow order.
pub fn diff(flows: &BTreeMap<FlowId, FlowCompare>) -> Vec<FlowDiff> {
    flows
        .iter()
        .map(|(flow, compare)| compare.result(flow.0.to_string(), flow.1.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u32, syn: bool, fin: bool, window: u16) -> Tcp {
        Tcp {
            src_port: 80,
            dst_port: 40000,
            seq,
            ack: 1,
            syn,
            ack_flag: true,
            fin,
            rst: false,
            window,
            payload_at: 0,
            payload_len: 0,
        }
    }

    fn flow(
        side: Side,
        f: &mut FlowCompare,
        isn: u32,
        parts: &[(u32, &[u8])],
        fin: bool,
        win: u16,
    ) {
        f.segment(side, &seg(isn, true, false, win), b"");
        for (off, data) in parts {
            f.segment(side, &seg(isn + 1 + off, false, false, win), data);
        }
        if fin {
            let len: usize = parts.iter().map(|p| p.1.len()).sum();
            f.segment(side, &seg(isn + 1 + len as u32, false, true, win), b"");
        }
    }

    fn divergence(
        rec: &[(u32, &[u8])],
        rec_fin: bool,
        live: &[(u32, &[u8])],
        live_fin: bool,
        win: u16,
    ) -> Option<String> {
        let mut f = FlowCompare::default();
        flow(Side::Recorded, &mut f, 1000, rec, rec_fin, 65160);
        flow(Side::Live, &mut f, 777, live, live_fin, win);
        f.first_divergence()
    }

    #[test]
    fn names_the_first_difference() {
        let hello: &[(u32, &[u8])] = &[(0, b"hel"), (3, b"lo")];
        assert_eq!(divergence(hello, true, &[(0, b"hello")], true, 65160), None);
        assert_eq!(
            divergence(hello, true, &[(0, b"hello")], false, 65160).unwrap(),
            "control segment 2: recorded FIN, smoltcp sent nothing"
        );
        assert_eq!(
            divergence(hello, true, &[(0, b"help")], true, 65160).unwrap(),
            "payload byte 3: recorded 0x6c, smoltcp sent 0x70"
        );
        assert_eq!(
            divergence(hello, true, &[(0, b"hell")], true, 65160).unwrap(),
            "payload length: recorded 5 bytes, smoltcp sent 4"
        );
        assert_eq!(
            divergence(hello, true, &[(0, b"hello")], true, 64240).unwrap(),
            "window on the SYN: recorded 65160, smoltcp opened with 64240"
        );
    }

    #[test]
    fn retransmissions_and_reordering_are_not_differences() {
        // Recorded: "lo" arrives first, "hel" twice, "lo" again.
        let rec: &[(u32, &[u8])] = &[(3, b"lo"), (0, b"hel"), (0, b"hel"), (3, b"lo")];
        assert_eq!(divergence(rec, true, &[(0, b"hello")], true, 65160), None);
        let mut f = FlowCompare::default();
        flow(Side::Recorded, &mut f, 5, rec, true, 1);
        flow(Side::Live, &mut f, 9, &[(0, b"hello")], true, 1);
        let d = f.result("a".into(), "b".into());
        assert_eq!((d.recorded_bytes, d.sent_bytes), (5, 5));
    }

    #[test]
    fn compared_bytes_are_forgotten() {
        let mut f = FlowCompare::default();
        f.segment(Side::Recorded, &seg(0, true, false, 1), b"");
        f.segment(Side::Live, &seg(50, true, false, 1), b"");
        let chunk = vec![7u8; 64 * 1024];
        for i in 0..64u32 {
            f.segment(Side::Recorded, &seg(1 + i * 65536, false, false, 1), &chunk);
            f.segment(Side::Live, &seg(51 + i * 65536, false, false, 1), &chunk);
            assert!(f.recorded.pending.is_empty() && f.live.pending.is_empty());
        }
        assert_eq!(f.compared, 64 * 65536);
        assert_eq!(f.first_divergence(), None);
    }
}
