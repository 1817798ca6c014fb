//! Who the stack is in a capture: `--as IP`, else the host that receives the most SYNs, else the most frequent
//! destination; its MAC and its other addresses (the same MAC) from the capture; the MACs of the hosts it talks
//! to; and the ports it serves, so the replay listens where the recorded server did. A TCP flow whose handshake
//! the capture does not hold (it starts mid-connection) counts for the host its ports show is the server, and
//! is listed for the wire to join with a synthetic handshake.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::pipeline::dissect::Headers;

use super::capture::CapturedFrame;
use super::gaps::GapClock;
use super::segment::Layers;

/// What one pass over the capture learned.
#[derive(Debug, Default, Clone)]
pub struct Survey {
    syns_to: BTreeMap<IpAddr, u64>,
    frames_to: BTreeMap<IpAddr, u64>,
    /// Source MAC seen for each IP address.
    pub macs: BTreeMap<IpAddr, [u8; 6]>,
    /// TCP ports each host received a SYN on; UDP ports each host received datagrams on.
    tcp_ports: BTreeMap<IpAddr, BTreeSet<u16>>,
    udp_ports: BTreeMap<IpAddr, BTreeSet<u16>>,
    /// Ports each host answered a SYN from with a SYN-ACK, and with a RST: a port only ever answered with
    /// RST was closed, and the replayed stack must not listen there.
    accepted_on: BTreeMap<IpAddr, BTreeSet<u16>>,
    refused_on: BTreeMap<IpAddr, BTreeSet<u16>>,
    /// When each host was first seen as a destination (frame number), to break ties toward the host the
    /// capture's first exchange went to.
    first_as_dst: BTreeMap<IpAddr, u64>,
    /// TCP flows by their two endpoints (the lower first), the first `MAX_FLOWS` of them: enough to tell
    /// which ones started before the capture did and who served them.
    tcp_flows: BTreeMap<(SocketAddr, SocketAddr), FlowSeen>,
    /// Addresses frames were sent to at a unicast MAC: a host that never sends (it only receives) is a peer
    /// all the same, and the address plan must hold it.
    unicast_dsts: BTreeSet<IpAddr>,
    pub frames: u64,
    pub first_t_ns: Option<u64>,
    pub last_t_ns: u64,
    /// The capture's recorded time with idle gaps shortened (`--max-gap`), and its played span.
    pub gaps: GapClock,
    pub played_span_ns: u64,
}

impl Survey {
    /// A survey whose played time shortens idle gaps longer than `max_gap` ns to it.
    pub fn with_max_gap(max_gap: u64) -> Survey {
        Survey {
            gaps: GapClock::new(max_gap),
            ..Survey::default()
        }
    }

    pub fn add(&mut self, f: &CapturedFrame) {
        self.frames += 1;
        // A record without a time (an SPB) says nothing about when the capture starts or ends.
        if f.timestamped {
            self.first_t_ns.get_or_insert(f.t_ns);
            self.last_t_ns = self.last_t_ns.max(f.t_ns);
            self.played_span_ns = self.gaps.played(f.t_ns);
        }
        if f.problem.is_some() {
            return;
        }
        let Some(h) = Headers::read(&f.frame) else {
            return;
        };
        let Some(mut l) = Layers::of(&h, f.orig_len as usize) else {
            return;
        };
        // A later IPv4 fragment carries payload where a first one has the transport header: its "ports"
        // are data. (IPv6 needs no check: extension headers are not walked, so a fragment has none.)
        if later_fragment(&f.frame) {
            l.tcp = None;
            l.udp = None;
        }
        self.macs.entry(l.src).or_insert(h.src_mac);
        if h.dst_mac[0] & 1 == 0 {
            self.unicast_dsts.insert(l.dst);
        }
        *self.frames_to.entry(l.dst).or_default() += 1;
        self.first_as_dst.entry(l.dst).or_insert(self.frames);
        if let (Some(t), Some(src), Some(dst)) = (l.tcp, l.src_addr(), l.dst_addr()) {
            let key = (src.min(dst), src.max(dst));
            if self.tcp_flows.len() < MAX_FLOWS || self.tcp_flows.contains_key(&key) {
                let seen = self.tcp_flows.entry(key).or_default();
                seen.handshake |= t.syn;
                seen.something_to_play |= t.payload_len > 0 || t.fin;
                let from_first = usize::from(src != key.0);
                seen.largest[from_first] = seen.largest[from_first].max(t.payload_len);
                seen.first_seq[from_first].get_or_insert(t.seq);
            }
        }
        if let Some(t) = l.tcp {
            if t.syn && !t.ack_flag {
                *self.syns_to.entry(l.dst).or_default() += 1;
                self.tcp_ports.entry(l.dst).or_default().insert(t.dst_port);
            } else if t.syn {
                self.accepted_on
                    .entry(l.src)
                    .or_default()
                    .insert(t.src_port);
            } else if t.rst {
                self.refused_on.entry(l.src).or_default().insert(t.src_port);
            }
        }
        if let Some((_, dport)) = l.udp {
            self.udp_ports.entry(l.dst).or_default().insert(dport);
        }
    }

    /// The stack's address: the one asked for, else the most SYNs received, else the most frames received
    /// (ties go to the host that received the capture's first frame among them, usually the server).
    pub fn choose(&self, asked: Option<IpAddr>) -> Option<IpAddr> {
        if asked.is_some() {
            return asked;
        }
        let first = |ip: &IpAddr| self.first_as_dst.get(ip).copied().unwrap_or(u64::MAX);
        let best = |m: &BTreeMap<IpAddr, u64>| {
            m.iter()
                .filter(|(ip, _)| is_host(ip))
                .max_by(|a, b| a.1.cmp(b.1).then(first(b.0).cmp(&first(a.0))))
                .map(|(ip, _)| *ip)
        };
        // A flow joined mid-connection counts as the SYN its server received before the capture began.
        let mut syns = self.syns_to.clone();
        for (server, _) in self.joinable().keys() {
            *syns.entry(server.ip()).or_default() += 1;
        }
        best(&syns).or_else(|| best(&self.frames_to))
    }

    /// The TCP flows whose handshake the capture does not hold (no SYN either way) and that carry something
    /// to play (data or a FIN): (server, client) → what the wire needs to join them.
    fn joinable(&self) -> BTreeMap<(SocketAddr, SocketAddr), JoinHint> {
        let mut endpoints: BTreeMap<SocketAddr, u32> = BTreeMap::new();
        for (a, b) in self.tcp_flows.keys() {
            *endpoints.entry(*a).or_default() += 1;
            *endpoints.entry(*b).or_default() += 1;
        }
        let peers = |e: &SocketAddr| endpoints.get(e).copied().unwrap_or(0);
        let mut out = BTreeMap::new();
        for (&(a, b), seen) in &self.tcp_flows {
            if seen.handshake || !seen.something_to_play {
                continue;
            }
            let a_serves = self.serves(a, b, peers(&a), peers(&b));
            let (server, client, served) = if a_serves { (a, b, 0) } else { (b, a, 1) };
            // The client's MSS bounds what the server may send: at least what the recorded server did send,
            // and at least what an Ethernet MTU allows (the capture may hold only small segments so far).
            let ethernet = if server.is_ipv4() { 1460 } else { 1440 };
            let mss = seen.largest[served].clamp(ethernet, usize::from(u16::MAX)) as u16;
            let hint = JoinHint {
                mss,
                server_first_seq: seen.first_seq[served],
                client_first_seq: seen.first_seq[1 - served],
            };
            out.insert((server, client), hint);
        }
        out
    }

    /// Is `a` the server of a flow between `a` and `b` whose handshake was not captured? The end with a
    /// well-known port (below 1024), else the end known to listen (it received a SYN elsewhere in the
    /// capture), else the end that talks with more peers (a server sees many client ports), else the lower
    /// port (ephemeral ports are high), else the lower address.
    fn serves(&self, a: SocketAddr, b: SocketAddr, peers_a: u32, peers_b: u32) -> bool {
        let listens = |e: SocketAddr| {
            self.tcp_ports
                .get(&e.ip())
                .is_some_and(|p| p.contains(&e.port()))
        };
        let (wa, wb) = (a.port() < 1024, b.port() < 1024);
        if wa != wb {
            return wa;
        }
        if listens(a) != listens(b) {
            return listens(a);
        }
        if peers_a != peers_b && peers_a.max(peers_b) > 1 {
            return peers_a > peers_b;
        }
        if a.port() != b.port() {
            return a.port() < b.port();
        }
        a < b
    }

    /// Everything the replay needs to know about the stack it plays.
    pub fn identity(&self, ip: IpAddr) -> Identity {
        let mac = self.macs.get(&ip).copied();
        // The same host's address in the other family: the address whose frames came from the same MAC.
        let sibling = |want_v4: bool| {
            self.macs
                .iter()
                .find(|(a, m)| Some(**m) == mac && a.is_ipv4() == want_v4 && is_host(a))
                .map(|(a, _)| *a)
        };
        let (ipv4, ipv6) = match ip {
            IpAddr::V4(v4) => (Some(v4), sibling(false).and_then(as_v6)),
            IpAddr::V6(v6) => (sibling(true).and_then(as_v4), Some(v6)),
        };
        let mut tcp_ports = BTreeSet::new();
        let mut udp_ports = BTreeSet::new();
        for a in [ipv4.map(IpAddr::V4), ipv6.map(IpAddr::V6)]
            .into_iter()
            .flatten()
        {
            let accepted = self.accepted_on.get(&a);
            let refused = self.refused_on.get(&a);
            tcp_ports.extend(self.tcp_ports.get(&a).into_iter().flatten().filter(|p| {
                accepted.is_some_and(|s| s.contains(p)) || !refused.is_some_and(|s| s.contains(p))
            }));
            udp_ports.extend(self.udp_ports.get(&a).into_iter().flatten());
        }
        let joins: BTreeMap<(SocketAddr, SocketAddr), JoinHint> = self
            .joinable()
            .into_iter()
            .filter(|((server, _), _)| {
                [ipv4.map(IpAddr::V4), ipv6.map(IpAddr::V6)].contains(&Some(server.ip()))
            })
            .collect();
        // The stack listens where it served a joined flow, as where it received a SYN.
        tcp_ports.extend(joins.keys().map(|(server, _)| server.port()));
        // The plan's input: every host seen sending, and every host seen receiving at a unicast MAC.
        let peers = || self.macs.keys().chain(&self.unicast_dsts).copied();
        let peers_v4: Vec<Ipv4Addr> = peers().filter_map(as_v4).collect();
        let peers_v6: Vec<Ipv6Addr> = peers().filter_map(as_v6).collect();
        Identity {
            ip,
            // A stack seen only as a destination keeps a made-up, locally administered MAC.
            mac: mac.unwrap_or([0x02, 0, 0, 0, 0, 0x01]),
            mac_seen: mac.is_some(),
            ipv4,
            ipv6,
            prefix_v4: ipv4.map_or(24, |a| common_prefix_v4(a, &peers_v4)),
            prefix_v6: ipv6.map_or(64, |a| common_prefix_v6(a, &peers_v6)),
            tcp_ports,
            udp_ports,
            joins,
        }
    }
}

/// TCP flows the survey keeps track of, at most (a capture of a scan could hold millions).
const MAX_FLOWS: usize = 1 << 16;

/// What the survey saw of one TCP flow.
#[derive(Debug, Default, Clone)]
struct FlowSeen {
    /// A SYN (or SYN-ACK) either way: the handshake is in the capture.
    handshake: bool,
    /// A segment with data or a FIN.
    something_to_play: bool,
    /// The largest payload from the lower endpoint, and from the higher.
    largest: [usize; 2],
    /// The sequence number of the first segment from the lower endpoint, and from the higher.
    first_seq: [Option<u32>; 2],
}

/// What the wire needs to join a flow whose handshake was not captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinHint {
    /// The MSS the client's synthetic SYN offers.
    pub mss: u16,
    /// The sequence numbers of the first segments the server and the client were captured sending: their
    /// ISNs are taken as one before (the bytes before were sent before the capture began).
    pub server_first_seq: Option<u32>,
    pub client_first_seq: Option<u32>,
}

fn as_v4(a: IpAddr) -> Option<Ipv4Addr> {
    match a {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(_) => None,
    }
}

fn as_v6(a: IpAddr) -> Option<Ipv6Addr> {
    match a {
        IpAddr::V6(v) => Some(v),
        IpAddr::V4(_) => None,
    }
}

/// An address a stack can own (not broadcast, multicast or unspecified).
pub(crate) fn is_host(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => !(v.is_broadcast() || v.is_multicast() || v.is_unspecified()),
        IpAddr::V6(v) => !(v.is_multicast() || v.is_unspecified()),
    }
}

/// The longest prefix, at most /30, that puts every peer on the stack's link (smoltcp sends only to
/// neighbours or via a route, and a replay has no router to offer: `Interface::route` sends directly to
/// what an own CIDR contains) without making the stack or a peer the subnet's broadcast address (smoltcp
/// drops a frame from it as non-unicast and never answers it). Peers that differ in the top bit need /0,
/// whose only broadcast is 255.255.255.255, never a host; the network address is nothing special to smoltcp.
fn common_prefix_v4(stack: Ipv4Addr, peers: &[Ipv4Addr]) -> u8 {
    let s = u32::from(stack);
    let hosts: Vec<u32> = peers
        .iter()
        .filter(|p| is_host(&IpAddr::V4(**p)))
        .map(|p| u32::from(*p))
        .chain([s])
        .collect();
    let mut prefix = hosts
        .iter()
        .map(|p| (s ^ p).leading_zeros())
        .fold(30, u32::min);
    // /0's broadcast is all ones, which `is_host` already keeps out, so the loop ends there at the latest.
    while prefix > 0 && hosts.iter().any(|h| *h == broadcast_v4(s, prefix)) {
        prefix -= 1;
    }
    prefix as u8
}

/// The subnet broadcast address of `addr`/`prefix` (prefix ≤ 30, as smoltcp's `Ipv4Cidr::broadcast`).
fn broadcast_v4(addr: u32, prefix: u32) -> u32 {
    addr | u32::MAX.checked_shr(prefix).unwrap_or(0)
}

/// The longest prefix, at most /64, that holds every global peer (a peer in another /64 is off-link under
/// /64 and smoltcp has no route to it). Link-local peers are left out: they are on-link whatever the prefix
/// of a global address, and counting them would widen the plan of every capture with a router's ND in it.
fn common_prefix_v6(stack: Ipv6Addr, peers: &[Ipv6Addr]) -> u8 {
    let s = u128::from(stack);
    let link_local = |a: &Ipv6Addr| a.segments()[0] & 0xffc0 == 0xfe80;
    peers
        .iter()
        .filter(|p| is_host(&IpAddr::V6(**p)) && !link_local(p) && !link_local(&stack))
        .map(|p| (s ^ u128::from(*p)).leading_zeros())
        .fold(64, u32::min) as u8
}

/// An IPv4 packet whose fragment offset is not 0 (the Ethernet frame's IP header, bytes 6–7 low 13 bits).
fn later_fragment(frame: &[u8]) -> bool {
    let ipv4 =
        frame.get(12..14) == Some(&[0x08, 0x00]) && frame.get(14).is_some_and(|v| v >> 4 == 4);
    ipv4 && frame
        .get(20..22)
        .is_some_and(|b| u16::from_be_bytes([b[0], b[1]]) & 0x1fff != 0)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub ip: IpAddr,
    pub mac: [u8; 6],
    pub mac_seen: bool,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub prefix_v4: u8,
    pub prefix_v6: u8,
    pub tcp_ports: BTreeSet<u16>,
    pub udp_ports: BTreeSet<u16>,
    /// The stack's TCP flows whose handshake the capture does not hold, (the stack's end, the peer's) → what
    /// the wire needs to join them mid-flow.
    pub joins: BTreeMap<(SocketAddr, SocketAddr), JoinHint>,
}

impl Identity {
    pub fn owns(&self, a: IpAddr) -> bool {
        match a {
            IpAddr::V4(v) => self.ipv4 == Some(v),
            IpAddr::V6(v) => self.ipv6 == Some(v),
        }
    }
}

#[cfg(test)]
mod tests;
