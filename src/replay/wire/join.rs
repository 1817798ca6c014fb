//! Joining a TCP flow the capture holds from mid-connection (its handshake was before the capture began): at
//! the flow's first captured segment the emulated peer opens the connection with a synthetic SYN whose ISN
//! makes that segment's numbers follow on, and completes it with a synthetic ACK once the stack's SYN-ACK
//! comes. The recorded stack's ISN is taken as one before its first captured byte, so its app's script starts
//! there (offset 0) and the acks are rebased as after a captured handshake.

use std::net::IpAddr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, Ipv4Packet, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, TcpTimestampRepr,
};

use crate::pipeline::clock::Nanos;
use crate::pipeline::dissect::ETHERNET_HEADER;
use crate::pipeline::wire::{Arrival, Fate};

use crate::pipeline::stack::TCP_BUFFER;
use crate::replay::capture::CapturedFrame;
use crate::replay::diff::{FlowId, Side};
use crate::replay::segment::{Layers, Tcp};

use super::seq::Handshake;
use super::{ACK_WAIT_LIMIT_NS, ReplayWire};

/// The window scale the synthetic SYN offers. The recorded one was in the SYN the capture lacks, and the
/// windows of the peer's captured segments were scaled by it: read with a smaller shift they would shrink
/// (a Linux peer's raw field is often under 100 with shift 10), and the stack would send in tiny pieces. A
/// window read larger than recorded costs nothing — the emulated peer acknowledges as recorded whatever the
/// stack has in flight — so the largest shift RFC 7323 allows makes every recorded window at least as large
/// as it was.
pub(super) const JOIN_WINDOW_SCALE: u8 = 14;

/// The ISN a joined flow takes for one side: one before the first sequence number that side was captured
/// sending (what came before was sent before the capture began), else one before what the other side's segment
/// acknowledges (that side's next byte, as the other side saw it).
pub(super) fn isn(first_seq: Option<u32>, others_ack: Option<u32>) -> Option<u32> {
    first_seq.or(others_ack).map(|n| n.wrapping_sub(1))
}

impl ReplayWire {
    /// A segment of a flow the survey found with no handshake, read from the capture: at the flow's first one,
    /// take the ISNs it implies and make the peer's SYN; on later ones, fill in an ISN the first could not
    /// tell (it had no ACK). Returns whether the flow is a joined one.
    pub(super) fn join_read(
        &mut self,
        flow: FlowId,
        frame: &CapturedFrame,
        l: &Layers,
        t: &Tcp,
        to_stack: bool,
        due: Nanos,
    ) -> bool {
        let Some(&hint) = self.identity.joins.get(&flow) else {
            return false;
        };
        let mss = hint.mss;
        let state = self.seq.entry(flow).or_default();
        state.joined = true;
        let ack = t.ack_flag.then_some(t.ack);
        let peer_isn = isn(hint.client_first_seq, ack.filter(|_| !to_stack));
        let recorded_isn = isn(hint.server_first_seq, ack.filter(|_| to_stack));
        if state.recorded_isn.is_none()
            && let Some(rec) = recorded_isn
        {
            state.recorded_isn = Some(rec);
            // The diff compares from the join point: it takes a stand-in for the recorded SYN-ACK the capture
            // lacks (before any recorded segment of the flow), so the stack's answer to the synthetic SYN is no
            // difference and the recorded stream starts at the stack's ISN + 1. Its window is the one smoltcp
            // opens with (its receive buffer, at most 65535): nothing recorded says otherwise.
            let stand_in = Tcp {
                seq: rec,
                ack: peer_isn.map_or(0, |p| p.wrapping_add(1)),
                syn: true,
                ack_flag: true,
                fin: false,
                rst: false,
                window: TCP_BUFFER.min(usize::from(u16::MAX)) as u16,
                payload_len: 0,
                ..*t
            };
            self.report
                .borrow_mut()
                .flows
                .entry(flow)
                .or_default()
                .segment(Side::Recorded, &stand_in, &[]);
        }
        if state.peer_isn.is_some() || peer_isn.is_none() {
            return true;
        }
        state.peer_isn = peer_isn;
        let peer_isn = peer_isn.unwrap_or(0);
        let (stack, peer) = flow;
        self.scripts.borrow_mut().entry(flow).or_default();
        let peer_mac = self.macs.get(&peer.ip()).copied().unwrap_or_else(|| {
            // The peer's MAC as the frame has it (the source of its own frames, the destination of the
            // stack's).
            let at = if to_stack { 6 } else { 0 };
            frame
                .frame
                .get(at..at + 6)
                .and_then(|m| m.try_into().ok())
                .unwrap_or([0x02, 0, 0, 0, 0, 0x02])
        });
        let timestamps = timestamps(&frame.frame, l);
        let tsval = if to_stack {
            timestamps.map(|(val, _)| val)
        } else {
            timestamps.map(|(_, ecr)| ecr)
        };
        let mut join = Handshake {
            due,
            syn: None,
            peer,
            stack,
            peer_mac,
            peer_isn,
            window: if to_stack { t.window } else { u16::MAX },
            tsval,
            mss,
            first_frame: frame.index + 1,
        };
        let syn = TcpRepr {
            src_port: peer.port(),
            dst_port: stack.port(),
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(peer_isn as i32),
            ack_number: None,
            window_len: u16::MAX,
            window_scale: Some(JOIN_WINDOW_SCALE),
            max_seg_size: Some(mss),
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: tsval.map(|tsval| TcpTimestampRepr { tsval, tsecr: 0 }),
            payload: &[],
        };
        join.syn = build(&join, &syn, self.identity.mac);
        if let Some(state) = self.seq.get_mut(&flow) {
            state.handshake = Some(Box::new(join));
        }
        self.join_queue.push_back(flow);
        true
    }

    /// The next synthetic handshake frame due by `now`: a joined flow's SYN (the peer's MAC made known to the
    /// stack first), or its ACK once the stack's SYN-ACK has come.
    pub(super) fn next_join(&mut self, now: Nanos) -> Option<Arrival> {
        let mut i = 0;
        while i < self.join_queue.len() {
            let flow = self.join_queue[i];
            let Some(join) = self.seq.get(&flow).and_then(|s| s.handshake.as_deref()) else {
                self.join_queue.remove(i);
                continue;
            };
            if join.due > now {
                // Joins are queued in due order.
                return None;
            }
            if join.syn.is_some() {
                let peer = join.peer.ip();
                if self.primed.insert(peer)
                    && let Some(prime) = self.prime(peer)
                {
                    return Some(prime);
                }
                let join = self.seq.get_mut(&flow)?.handshake.as_deref_mut()?;
                let syn = join.syn.take()?;
                self.report.borrow_mut().joined += 1;
                return Some(Arrival {
                    frame: syn,
                    fate: Fate::Inject,
                    capture_frame: None,
                    at: None,
                    note: Some(format!(
                        "synthetic: the peer's SYN, standing in for the handshake the capture did not hold \
                         (the flow starts mid-connection at frame {}): ISN {}, one before its first captured \
                         byte; MSS {}; window scale {JOIN_WINDOW_SCALE}, the largest, as the recorded one is \
                         unknown",
                        join.first_frame, join.peer_isn, join.mss
                    )),
                });
            }
            let state = self.seq.get(&flow);
            let Some(live) = state.and_then(|s| s.live_isn) else {
                if now.saturating_sub(join.due) > ACK_WAIT_LIMIT_NS {
                    // No SYN-ACK came (the stack refused the flow): the captured segments go on their own.
                    self.join_queue.remove(i);
                    continue;
                }
                i += 1;
                continue;
            };
            let tsecr = state.and_then(|s| s.live_tsval).unwrap_or(0);
            let ack = TcpRepr {
                src_port: join.peer.port(),
                dst_port: join.stack.port(),
                control: TcpControl::None,
                seq_number: TcpSeqNumber(join.peer_isn.wrapping_add(1) as i32),
                ack_number: Some(TcpSeqNumber(live.wrapping_add(1) as i32)),
                window_len: join.window,
                window_scale: None,
                max_seg_size: None,
                sack_permitted: false,
                sack_ranges: [None; 3],
                timestamp: join.tsval.map(|tsval| TcpTimestampRepr { tsval, tsecr }),
                payload: &[],
            };
            let frame = build(join, &ack, self.identity.mac);
            let first_frame = join.first_frame;
            self.join_queue.remove(i);
            if let Some(s) = self.seq.get_mut(&flow) {
                s.handshake = None;
                s.acked = s.acked.max(1);
            }
            let Some(frame) = frame else { continue };
            return Some(Arrival {
                frame,
                fate: Fate::Inject,
                capture_frame: None,
                at: None,
                note: Some(format!(
                    "synthetic: the peer's ACK completing the handshake the capture did not hold; the flow \
                     goes on with frame {first_frame}"
                )),
            });
        }
        None
    }

    /// When a synthetic handshake frame is next due, if one is waiting (an ACK is due at once).
    pub(super) fn next_join_event(&self) -> Option<Nanos> {
        self.join_queue
            .iter()
            .filter_map(|f| {
                let state = self.seq.get(f)?;
                let join = state.handshake.as_deref()?;
                (join.syn.is_some() || state.live_isn.is_some()).then_some(join.due)
            })
            .min()
    }

    /// Is a synthetic handshake frame still to go?
    pub(super) fn joins_waiting(&self) -> bool {
        self.next_join_event().is_some()
    }
}

/// An Ethernet frame from the join's peer to the stack carrying `tcp`.
fn build(join: &Handshake, tcp: &TcpRepr, stack_mac: [u8; 6]) -> Option<Vec<u8>> {
    let tcp_len = tcp.buffer_len();
    let ip_header = match join.peer.ip() {
        IpAddr::V4(_) => 20,
        IpAddr::V6(_) => 40,
    };
    let mut frame = vec![0u8; ETHERNET_HEADER + ip_header + tcp_len];
    frame[..6].copy_from_slice(&stack_mac);
    frame[6..12].copy_from_slice(&join.peer_mac);
    let ip = &mut frame[ETHERNET_HEADER..];
    match (join.peer.ip(), join.stack.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let ip = &mut frame[ETHERNET_HEADER..];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = 6;
            ip[12..16].copy_from_slice(&src.octets());
            ip[16..20].copy_from_slice(&dst.octets());
            Ipv4Packet::new_unchecked(&mut frame[ETHERNET_HEADER..ETHERNET_HEADER + 20])
                .fill_checksum();
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
            ip[6] = 6;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&src.octets());
            ip[24..40].copy_from_slice(&dst.octets());
            frame[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        }
        _ => return None,
    }
    let (src, dst) = (
        IpAddress::from(join.peer.ip()),
        IpAddress::from(join.stack.ip()),
    );
    let at = ETHERNET_HEADER + ip_header;
    tcp.emit(
        &mut TcpPacket::new_unchecked(&mut frame[at..]),
        &src,
        &dst,
        &ChecksumCapabilities::default(),
    );
    Some(frame)
}

/// A TCP frame's timestamp option (TSval, TSecr), if it has one.
fn timestamps(frame: &[u8], l: &Layers) -> Option<(u32, u32)> {
    let tcp = l.tcp?;
    let mut i = l.l4 + 20;
    let end = tcp.payload_at.min(frame.len());
    while i < end {
        match frame[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = usize::from(*frame.get(i + 1)?);
                if len < 2 || i + len > end {
                    return None;
                }
                if kind == 8 && len == 10 {
                    let word = |at: usize| frame.get(at..at + 4)?.try_into().ok();
                    return Some((
                        u32::from_be_bytes(word(i + 2)?),
                        u32::from_be_bytes(word(i + 6)?),
                    ));
                }
                i += len;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::seq::before_start;
    use super::*;

    #[test]
    fn isns_are_one_before_the_first_captured_numbers_across_the_wrap() {
        // A side captured sending: one before its first sequence number, whatever the other side acknowledged.
        assert_eq!(isn(Some(1000), Some(900)), Some(999));
        assert_eq!(isn(Some(0), None), Some(u32::MAX));
        assert_eq!(isn(Some(u32::MAX), None), Some(u32::MAX - 1));
        // A side never captured sending: one before what the other side acknowledged.
        assert_eq!(isn(None, Some(0)), Some(u32::MAX));
        assert_eq!(isn(None, Some(1)), Some(0));
        assert_eq!(isn(None, None), None);
    }

    #[test]
    fn the_first_byte_after_a_wrapped_isn_is_offset_zero() {
        // ISN u32::MAX: the first byte is seq 0, offset 0; seq u32::MAX itself lies before the stream.
        let isn = isn(Some(0), None).unwrap();
        assert_eq!(0u32.wrapping_sub(isn).wrapping_sub(1), 0);
        assert!(before_start(u32::MAX.wrapping_sub(isn).wrapping_sub(1)));
        assert!(!before_start(u32::MAX.wrapping_sub(isn)));
    }
}
