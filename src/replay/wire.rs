//! The replay's wire: plays a capture into the pipeline as the other hosts would. Frames to the stack are
//! injected at their recorded time (× speed), with their acks rebased onto the stack's own sequence numbers;
//! the stack's recorded frames are shown and kept as the script of what it should answer; ARP and neighbour
//! discovery are answered with the capture's MACs. A frame never acknowledges bytes the stack has not sent:
//! it waits, bounded, and says so.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv6Address, Ipv6Packet, Ipv6Repr,
    NdiscRepr, RawHardwareAddress,
};

use crate::pipeline::clock::Nanos;
use crate::pipeline::engine::{Arrival, Fate, Wire};
use crate::pipeline::reason::Reason;

use super::capture::CapturedFrame;
use super::role::Identity;
use super::script::Scripts;
use super::segment::{self, Layers};

/// How long an injected frame may wait for the stack to send what it acknowledges before it goes anyway.
pub const ACK_WAIT_LIMIT_NS: Nanos = 2_000_000_000;
/// Capture records read ahead of the current time, at most (memory stays bounded at any speed).
const LOOKAHEAD: usize = 4096;

/// A flow between the stack and a peer: (the stack's address, the peer's address).
pub type FlowId = (SocketAddr, SocketAddr);

/// Sequence numbers of one TCP flow, recorded and live, on the stack's side.
#[derive(Debug, Default, Clone)]
struct SeqState {
    recorded_isn: Option<u32>,
    peer_isn: Option<u32>,
    live_isn: Option<u32>,
    /// Sequence space the live stack has sent, relative to its ISN (the SYN counts one).
    live_sent: u32,
    live_tsval: Option<u32>,
}

impl SeqState {
    /// The live ack for a recorded one: the same distance past the stack's ISN.
    fn rebase(&self, ack: u32) -> u32 {
        match (self.recorded_isn, self.live_isn) {
            (Some(rec), Some(live)) => live.wrapping_add(ack.wrapping_sub(rec)),
            _ => ack,
        }
    }

    /// Recorded ack → how far past the stack's ISN it reaches, and whether the live stack got that far.
    fn acks_unsent(&self, ack: u32) -> bool {
        let Some(rec) = self.recorded_isn else {
            return false;
        };
        let needed = ack.wrapping_sub(rec);
        self.live_isn.is_none() || (needed.wrapping_sub(self.live_sent) as i32) > 0
    }
}

#[derive(Debug)]
enum Kind {
    ToStack,
    FromStack,
    /// Between other hosts: injected all the same, as a NIC would see it.
    Other,
    Refused(Reason),
}

#[derive(Debug)]
struct Pending {
    due: Nanos,
    frame: CapturedFrame,
    layers: Option<Layers>,
    kind: Kind,
    flow: Option<FlowId>,
    /// When it first could have gone but had to wait for the stack.
    held_since: Option<Nanos>,
}

/// What the replay saw the stack send, per flow, for the diff.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sent {
    pub flags: Vec<&'static str>,
    pub payload: Vec<u8>,
    pub first_window: Option<u16>,
}

/// What the wire learned over the run, shared with whoever set the replay up.
#[derive(Debug, Default, Clone)]
pub struct WireReport {
    /// Recorded and live segments of the stack, per flow, for the diff.
    pub recorded: BTreeMap<FlowId, Sent>,
    pub live: BTreeMap<FlowId, Sent>,
    /// Frames that waited for the stack, and the longest wait.
    pub waits: u64,
    pub longest_wait_ns: Nanos,
    /// Synthetic frames the replay made (ARP, neighbour discovery).
    pub synthetic: u64,
}

pub struct ReplayWire {
    source: Box<dyn Iterator<Item = CapturedFrame>>,
    exhausted: bool,
    identity: Identity,
    macs: BTreeMap<IpAddr, [u8; 6]>,
    t0: Option<u64>,
    /// None: as fast as possible; else recorded time divided by this.
    speed: Option<f64>,
    last_due: Nanos,
    pending: VecDeque<Pending>,
    synthetic: VecDeque<Arrival>,
    seq: BTreeMap<FlowId, SeqState>,
    primed: BTreeSet<IpAddr>,
    scripts: Scripts,
    report: Rc<RefCell<WireReport>>,
}

impl ReplayWire {
    pub fn new(
        source: Box<dyn Iterator<Item = CapturedFrame>>,
        identity: Identity,
        macs: BTreeMap<IpAddr, [u8; 6]>,
        speed: Option<f64>,
        scripts: Scripts,
        report: Rc<RefCell<WireReport>>,
    ) -> Self {
        ReplayWire {
            source,
            exhausted: false,
            identity,
            macs,
            t0: None,
            speed,
            last_due: 0,
            pending: VecDeque::new(),
            synthetic: VecDeque::new(),
            seq: BTreeMap::new(),
            primed: BTreeSet::new(),
            scripts,
            report,
        }
    }

    fn due_of(&mut self, t_ns: u64) -> Nanos {
        let t0 = *self.t0.get_or_insert(t_ns);
        let due = match self.speed {
            None => 0,
            Some(speed) => (t_ns.saturating_sub(t0) as f64 / speed) as Nanos,
        };
        // A capture out of time order is played in file order.
        self.last_due = self.last_due.max(due);
        self.last_due
    }

    /// Read the capture until a frame lies beyond `now` (or the lookahead is full).
    fn fill(&mut self, now: Nanos) {
        while !self.exhausted
            && self.pending.len() < LOOKAHEAD
            && self.pending.back().is_none_or(|p| p.due <= now)
        {
            match self.source.next() {
                Some(frame) => self.read(frame),
                None => {
                    self.exhausted = true;
                    for script in self.scripts.borrow_mut().values_mut() {
                        script.complete = true;
                    }
                }
            }
        }
    }

    /// Classify one record, learn from it, and queue it.
    fn read(&mut self, frame: CapturedFrame) {
        let due = self.due_of(frame.t_ns);
        let layers = if frame.problem.is_none() {
            segment::parse(&frame.frame, frame.orig_len as usize)
        } else {
            None
        };
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
        } else if is_arp_from(&frame.frame, self.identity.mac) {
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
        if let (Some(l), Some(flow)) = (&layers, flow)
            && let Some(t) = l.tcp
        {
            let state = self.seq.entry(flow).or_default();
            match kind {
                Kind::FromStack => {
                    if t.syn {
                        state.recorded_isn = Some(t.seq);
                    }
                    self.learn_recorded(flow, &frame, l);
                }
                Kind::ToStack if t.syn && !t.ack_flag => {
                    state.peer_isn = Some(t.seq);
                    self.scripts.borrow_mut().entry(flow).or_default();
                }
                _ => {}
            }
        }
        self.pending.push_back(Pending {
            due,
            frame,
            layers,
            kind,
            flow,
            held_since: None,
        });
    }

    /// A recorded segment of the stack: what its app wrote, for the script, and for the diff.
    fn learn_recorded(&mut self, flow: FlowId, frame: &CapturedFrame, l: &Layers) {
        let Some(t) = l.tcp else { return };
        let state = &self.seq[&flow];
        let (Some(isn), Some(peer_isn)) = (state.recorded_isn, state.peer_isn) else {
            return;
        };
        let data = segment::payload(&frame.frame, &t);
        let offset = u64::from(t.seq.wrapping_sub(isn).wrapping_sub(1));
        let after = u64::from(t.ack.wrapping_sub(peer_isn).wrapping_sub(1));
        let after = if t.ack_flag { after } else { 0 };
        let mut scripts = self.scripts.borrow_mut();
        let script = scripts.entry(flow).or_default();
        if !t.syn {
            script.add(offset, data, t.payload_len, after);
        }
        if t.fin {
            script.fin = Some((offset + t.payload_len as u64, after));
        }
        if t.rst {
            script.reset = true;
        }
        drop(scripts);
        let mut report = self.report.borrow_mut();
        record_segment(report.recorded.entry(flow).or_default(), &t, data, !t.syn);
    }

    /// Make the stack know a peer's MAC before its first frame: the ARP request (or neighbour solicitation)
    /// a real host would have sent first.
    fn prime(&mut self, peer: IpAddr) -> Option<Arrival> {
        let mac = *self.macs.get(&peer)?;
        let frame = match peer {
            IpAddr::V4(p) => {
                let IpAddr::V4(ours) = self.identity.ipv4.map(IpAddr::V4)? else {
                    return None;
                };
                arp_request(mac, p.octets(), ours.octets())
            }
            IpAddr::V6(p) => neighbor_solicit(mac, p, self.identity.ipv6?)?,
        };
        Some(Arrival {
            frame,
            fate: Fate::Inject,
            note: Some(format!(
                "synthetic: made by the replay so the stack learns {peer}'s MAC from the capture"
            )),
        })
    }

    /// The next arrival due by `now`, if any: synthetic frames first, then the capture in order, each flow
    /// held back while its next frame acknowledges bytes the stack has not sent.
    fn next_arrival(&mut self, now: Nanos) -> Option<Arrival> {
        if let Some(a) = self.synthetic.pop_front() {
            self.report.borrow_mut().synthetic += 1;
            return Some(a);
        }
        let mut blocked: BTreeSet<FlowId> = BTreeSet::new();
        for i in 0..self.pending.len() {
            let p = &self.pending[i];
            if p.due > now {
                break;
            }
            if p.flow.is_some_and(|f| blocked.contains(&f)) {
                continue;
            }
            let mut note = None;
            if let (Kind::ToStack, Some(flow), Some(l)) = (&p.kind, p.flow, &p.layers)
                && let Some(t) = l.tcp
                && t.ack_flag
                && self.seq.get(&flow).is_some_and(|s| s.acks_unsent(t.ack))
            {
                let since = p.held_since.unwrap_or(now.max(p.due));
                if now - since < ACK_WAIT_LIMIT_NS {
                    self.pending[i].held_since = Some(since);
                    blocked.insert(flow);
                    continue;
                }
                note = Some(format!(
                    "waited {} µs for the stack to send what this frame acknowledges; it never did",
                    (now - since) / 1000
                ));
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
            let p = self.pending.remove(i).expect("index in range");
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
            return Some(self.arrival(p, note));
        }
        None
    }

    fn arrival(&mut self, p: Pending, note: Option<String>) -> Arrival {
        let synthetic_l2 = p
            .frame
            .synthetic_l2
            .then_some("Ethernet header made up by the replay (the capture's link type has none)");
        let mut notes: Vec<String> = [note, synthetic_l2.map(String::from)]
            .into_iter()
            .flatten()
            .collect();
        if !p.frame.vlan.is_empty() {
            notes.push(format!("802.1Q tags {:?} removed", p.frame.vlan));
        }
        let fate = match p.kind {
            Kind::Refused(reason) => Fate::Refused(reason),
            Kind::FromStack => Fate::Recorded,
            Kind::ToStack | Kind::Other => Fate::Inject,
        };
        let mut frame = p.frame.frame;
        if fate == Fate::Inject
            && let (Some(flow), Some(l)) = (p.flow, &p.layers)
            && l.tcp.is_some()
            && let Some(state) = self.seq.get(&flow)
        {
            segment::rewrite_acks(&mut frame, l, |a| state.rebase(a), state.live_tsval);
        }
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        Arrival { frame, fate, note }
    }

    /// What the stack sent: learn its sequence numbers, answer its ARP and neighbour solicitations.
    fn observe(&mut self, frame: &[u8]) {
        if let Some(reply) = self.answer_arp(frame).or_else(|| self.answer_ns(frame)) {
            self.synthetic.push_back(reply);
            return;
        }
        let Some(l) = segment::parse(frame, frame.len()) else {
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
            let end = t.seq.wrapping_sub(isn).wrapping_add(t.seq_len());
            if (end.wrapping_sub(state.live_sent) as i32) > 0 {
                state.live_sent = end;
            }
        }
        if let Some(ts) = segment::tsval(frame, &l) {
            state.live_tsval = Some(ts);
        }
        let data = segment::payload(frame, &t);
        let mut report = self.report.borrow_mut();
        record_segment(report.live.entry(flow).or_default(), &t, data, !t.syn);
    }

    fn answer_arp(&self, frame: &[u8]) -> Option<Arrival> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != EthernetProtocol::Arp {
            return None;
        }
        let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?;
        let ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } = arp
        else {
            return None;
        };
        let peer = IpAddr::V4(target_protocol_addr);
        let mac = *self.macs.get(&peer)?;
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(mac),
            source_protocol_addr: target_protocol_addr,
            target_hardware_addr: source_hardware_addr,
            target_protocol_addr: source_protocol_addr,
        };
        let mut buf = vec![0u8; 14 + reply.buffer_len()];
        let mut out = EthernetFrame::new_unchecked(&mut buf);
        EthernetRepr {
            src_addr: EthernetAddress(mac),
            dst_addr: source_hardware_addr,
            ethertype: EthernetProtocol::Arp,
        }
        .emit(&mut out);
        reply.emit(&mut ArpPacket::new_unchecked(out.payload_mut()));
        Some(Arrival {
            frame: buf,
            fate: Fate::Inject,
            note: Some(format!(
                "synthetic: the replay answers the stack's ARP request with {peer}'s MAC from the capture"
            )),
        })
    }

    fn answer_ns(&self, frame: &[u8]) -> Option<Arrival> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != EthernetProtocol::Ipv6 {
            return None;
        }
        let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
        if ip.next_header() != IpProtocol::Icmpv6 {
            return None;
        }
        let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
        let repr = Icmpv6Repr::parse(
            &ip.src_addr(),
            &ip.dst_addr(),
            &icmp,
            &ChecksumCapabilities::default(),
        )
        .ok()?;
        let Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, .. }) = repr else {
            return None;
        };
        let peer = IpAddr::V6(target_addr);
        let mac = *self.macs.get(&peer)?;
        let advert = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
            flags: smoltcp::wire::NdiscNeighborFlags::SOLICITED
                | smoltcp::wire::NdiscNeighborFlags::OVERRIDE,
            target_addr,
            lladdr: Some(RawHardwareAddress::from(EthernetAddress(mac))),
        });
        let frame = ipv6_icmp(mac, eth.src_addr().0, target_addr, ip.src_addr(), &advert);
        Some(Arrival {
            frame,
            fate: Fate::Inject,
            note: Some(format!(
                "synthetic: the replay answers the stack's neighbour solicitation with {peer}'s MAC from the capture"
            )),
        })
    }
}

fn record_segment(sent: &mut Sent, t: &segment::Tcp, data: &[u8], carries_data: bool) {
    let word = match (t.syn, t.ack_flag, t.fin, t.rst) {
        (true, true, _, _) => Some("SYN-ACK"),
        (true, false, _, _) => Some("SYN"),
        (_, _, _, true) => Some("RST"),
        (_, _, true, _) => Some("FIN"),
        _ => None,
    };
    if let Some(w) = word {
        sent.flags.push(w);
    }
    if t.syn && sent.first_window.is_none() {
        sent.first_window = Some(t.window);
    }
    if carries_data {
        sent.payload.extend_from_slice(data);
    }
}

fn is_arp_from(frame: &[u8], mac: [u8; 6]) -> bool {
    frame.len() >= 14 && frame[12..14] == [0x08, 0x06] && frame[6..12] == mac
}

fn arp_request(peer_mac: [u8; 6], peer: [u8; 4], stack: [u8; 4]) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(peer_mac),
        source_protocol_addr: peer.into(),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: stack.into(),
    };
    let mut buf = vec![0u8; 14 + repr.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut buf);
    EthernetRepr {
        src_addr: EthernetAddress(peer_mac),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut eth);
    repr.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    buf
}

fn neighbor_solicit(peer_mac: [u8; 6], peer: Ipv6Address, stack: Ipv6Address) -> Option<Vec<u8>> {
    let solicit = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
        target_addr: stack,
        lladdr: Some(RawHardwareAddress::from(EthernetAddress(peer_mac))),
    });
    // The solicited-node multicast group of the stack's address: ff02::1:ff00:0/104 plus its last 24 bits.
    let s = stack.octets();
    let group = Ipv6Address::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, s[13], s[14], s[15],
    ]);
    let o = group.octets();
    let dst_mac = [0x33, 0x33, o[12], o[13], o[14], o[15]];
    Some(ipv6_icmp(peer_mac, dst_mac, peer, group, &solicit))
}

fn ipv6_icmp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Address,
    dst: Ipv6Address,
    icmp: &Icmpv6Repr,
) -> Vec<u8> {
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: 255,
    };
    let mut buf = vec![0u8; 14 + ip.buffer_len() + icmp.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut buf);
    EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: EthernetProtocol::Ipv6,
    }
    .emit(&mut eth);
    let mut packet = Ipv6Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut packet);
    let mut out = Icmpv6Packet::new_unchecked(packet.payload_mut());
    icmp.emit(&src, &dst, &mut out, &ChecksumCapabilities::default());
    buf
}

impl Wire for ReplayWire {
    fn advance(&mut self, now: Nanos) {
        self.fill(now);
    }

    fn receive(&mut self, now: Nanos) -> Option<Vec<u8>> {
        self.arrive(now).map(|a| a.frame)
    }

    fn arrive(&mut self, now: Nanos) -> Option<Arrival> {
        self.fill(now);
        self.next_arrival(now)
    }

    fn transmit(&mut self, _now: Nanos, frame: &[u8]) {
        self.observe(frame);
    }

    fn next_event(&self) -> Option<Nanos> {
        if !self.synthetic.is_empty() {
            return Some(0);
        }
        // Only the head of each flow can go next: frames queued behind a held one wait with it, and counting
        // their (past) due times would wake the engine again and again at the same instant.
        let mut heads: BTreeSet<FlowId> = BTreeSet::new();
        self.pending
            .iter()
            .filter(|p| p.flow.is_none_or(|f| heads.insert(f)))
            .map(|p| match p.held_since {
                Some(since) => since + ACK_WAIT_LIMIT_NS,
                None => p.due,
            })
            .min()
    }

    fn is_done(&self) -> bool {
        self.exhausted && self.pending.is_empty() && self.synthetic.is_empty()
    }
}
