//! Loopback recordings: a packet whose source and destination are the same address (127.0.0.1 ⇄ 127.0.0.1,
//! ::1 ⇄ ::1, or a host talking to its own address, which Linux records on `lo`) cannot be played as is —
//! the stack would own both ends, and every frame would look like its own recorded response. The endpoint
//! that opened the flow (the SYN's sender) is the peer; it is renamed to a fixed documentation address
//! (`PEER_V4`, `PEER_V6`) in every one of its packets, and the stack keeps the recorded address.
//!
//! Why the stack keeps 127.x.y.z but not ::1: smoltcp 0.14 treats 127/8 as ordinary unicast on any
//! interface (its IPv4 checks refuse only broadcast, multicast and unspecified sources), so 127.0.0.1 plays
//! as any address does. For ::1 it never joins the solicited-node group (`has_solicited_node` leaves
//! `LOCALHOST` out), so the neighbour solicitation the replay primes the stack with is dropped, and a plan
//! holding ::1 and a peer has no sensible prefix (`::1` and `2001:db8::2` share 2 bits): an IPv6 loopback
//! recording's stack end becomes `STACK_V6`, in the same /64 as the peer.
//!
//! The decision is made per flow at its first packet, in reading order, so the survey and the replay (each
//! reading the capture afresh) rename the same packets. Checksums are recomputed (IPv4 header, TCP/UDP with
//! the new pseudo-header, ICMPv6) whenever the whole packet was captured.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address a loopback recording's IPv4 peer is given (RFC 5737 TEST-NET-1).
pub const PEER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The address a loopback recording's IPv6 peer is given (RFC 3849 documentation prefix).
pub const PEER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// The address the stack's end of an IPv6 loopback recording (::1) is given, beside `PEER_V6`.
pub const STACK_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// One packet's rename: the peer's recorded address (and port), and what it became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rename {
    pub original: IpAddr,
    pub port: Option<u16>,
    pub to: IpAddr,
    /// What the stack's end became, when it was renamed too (::1).
    pub stack_to: Option<IpAddr>,
}

impl fmt::Display for Rename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer = match (self.original, self.port) {
            (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
            (a, Some(p)) => format!("{a}:{p}"),
            (a, None) => a.to_string(),
        };
        write!(f, "peer {peer} renamed {}", self.to)?;
        if let Some(s) = self.stack_to {
            write!(f, ", the stack's end {s}")?;
        }
        f.write_str(" (a loopback recording: both ends had the same address)")
    }
}

/// Which end of a flow between one address and itself is the peer (the one renamed).
#[derive(Debug, Default)]
pub struct Renamer {
    /// (protocol, address, lower port, higher port) → the peer's port.
    peers: HashMap<(u8, IpAddr, u16, u16), u16>,
}

/// Where a packet's fields are, once its IP header is read.
struct Ip {
    v6: bool,
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    /// Offset of the transport header, and the transport length the header claims.
    l4: usize,
    l4_len: usize,
    /// The packet carries the whole transport segment (not a fragment, not cut by the snap length).
    whole: bool,
}

impl Renamer {
    /// Renames the peer of `packet` (an IP packet of `ethertype`, in place) if both its ends have the same
    /// address; returns what was renamed.
    pub fn apply(&mut self, ethertype: u16, packet: &mut [u8]) -> Option<Rename> {
        let ip = read_ip(ethertype, packet)?;
        if ip.src != ip.dst || ip.src.is_unspecified() || ip.src.is_multicast() {
            return None;
        }
        let t = packet.get(ip.l4..).unwrap_or(&[]);
        let port = |at: usize| t.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        // Is the packet's source the peer? (None: this packet cannot say.)
        let (src_is_peer, ports) = match ip.protocol {
            TCP | UDP => {
                let (sp, dp) = (port(0)?, port(2)?);
                if sp == dp {
                    return None; // the same endpoint at both ends: no direction to tell
                }
                let key = (ip.protocol, ip.src, sp.min(dp), sp.max(dp));
                let flags = t.get(13).copied().unwrap_or(0);
                let peer = *self.peers.entry(key).or_insert_with(|| {
                    match (ip.protocol == TCP, flags & 0x02 != 0, flags & 0x10 != 0) {
                        (true, true, false) => sp, // the SYN's sender opened the flow
                        (true, true, true) => dp,  // the SYN-ACK goes to it
                        // No handshake here: the ephemeral (higher) port is the client's.
                        _ => sp.max(dp),
                    }
                });
                (sp == peer, Some((sp, dp)))
            }
            ICMP | ICMPV6 => match (t.first()?, ip.v6) {
                (8, false) | (128, true) => (true, None),
                (0, false) | (129, true) => (false, None),
                _ => return None,
            },
            _ => return None,
        };
        let to = if ip.v6 {
            IpAddr::V6(PEER_V6)
        } else {
            IpAddr::V4(PEER_V4)
        };
        let (at, port) = match (src_is_peer, ports) {
            (true, p) => (if ip.v6 { 8 } else { 12 }, p.map(|p| p.0)),
            (false, p) => (if ip.v6 { 24 } else { 16 }, p.map(|p| p.1)),
        };
        let bytes = match to {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        packet[at..at + bytes.len()].copy_from_slice(&bytes);
        let stack_to = (ip.v6 && ip.src.is_loopback()).then(|| {
            let other = if src_is_peer { 24 } else { 8 };
            packet[other..other + 16].copy_from_slice(&STACK_V6.octets());
            IpAddr::V6(STACK_V6)
        });
        fix_checksums(packet, &ip);
        Some(Rename {
            original: ip.src,
            port,
            to,
            stack_to,
        })
    }
}

fn read_ip(ethertype: u16, p: &[u8]) -> Option<Ip> {
    match ethertype {
        ETHERTYPE_IPV4 if p.len() >= 20 && p[0] >> 4 == 4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
            let frag = u16::from_be_bytes([p[6], p[7]]);
            let src: [u8; 4] = p[12..16].try_into().ok()?;
            let dst: [u8; 4] = p[16..20].try_into().ok()?;
            // A fragment's transport header is in the first fragment only, and its checksum covers them all.
            let unfragmented = frag & 0x3fff == 0;
            // A later fragment has no ports to tell the peer by (loopback's MTU makes them rare).
            if ihl < 20 || total < ihl || frag & 0x1fff != 0 {
                return None;
            }
            Some(Ip {
                v6: false,
                src: IpAddr::from(src),
                dst: IpAddr::from(dst),
                protocol: p[9],
                l4: ihl,
                l4_len: total - ihl,
                whole: unfragmented && p.len() >= total,
            })
        }
        ETHERTYPE_IPV6 if p.len() >= 40 && p[0] >> 4 == 6 => {
            let plen = usize::from(u16::from_be_bytes([p[4], p[5]]));
            let src: [u8; 16] = p[8..24].try_into().ok()?;
            let dst: [u8; 16] = p[24..40].try_into().ok()?;
            Some(Ip {
                v6: true,
                src: IpAddr::from(src),
                dst: IpAddr::from(dst),
                // Extension headers are not walked: a packet with one keeps its transport checksum.
                protocol: p[6],
                l4: 40,
                l4_len: plen,
                whole: p.len() >= 40 + plen,
            })
        }
        _ => None,
    }
}

/// The IPv4 header checksum, and the transport checksum under the new pseudo-header.
fn fix_checksums(p: &mut [u8], ip: &Ip) {
    if !ip.v6 {
        p[10..12].fill(0);
        let sum = !fold(sum(&p[..ip.l4]));
        p[10..12].copy_from_slice(&sum.to_be_bytes());
    }
    let at = match ip.protocol {
        TCP => 16,
        UDP => 6,
        ICMPV6 => 2,
        _ => return,
    };
    if !ip.whole || ip.l4_len < at + 2 {
        return;
    }
    let seg = ip.l4..ip.l4 + ip.l4_len;
    // A UDP checksum of 0 over IPv4 means "none": it stays none.
    if ip.protocol == UDP && !ip.v6 && p[seg.start + 6..seg.start + 8] == [0, 0] {
        return;
    }
    p[seg.start + at..seg.start + at + 2].fill(0);
    let addrs = if ip.v6 { &p[8..40] } else { &p[12..20] };
    let pseudo = sum(addrs) + u32::from(ip.protocol) + ip.l4_len as u32;
    let mut c = !fold(pseudo + sum(&p[seg.clone()]));
    if ip.protocol == UDP && c == 0 {
        c = 0xffff;
    }
    p[seg.start + at..seg.start + at + 2].copy_from_slice(&c.to_be_bytes());
}

fn sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .fold(0u32, |a, w| fold(a + w).into())
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[cfg(test)]
mod tests;
