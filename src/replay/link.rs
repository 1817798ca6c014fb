//! Link-layer normalisation: every captured record becomes a plain Ethernet II frame smoltcp can take.
//!
//! Invariants: conversion never fails loudly — an unconvertible record keeps its raw bytes and gets a
//! `problem`; `orig_len` moves by exactly the header delta the conversion applied to the captured bytes;
//! made-up MAC addresses are pure functions of the IP address, so one host keeps one MAC in a capture.

/// Link types (tcpdump.org/linktypes.html) this module understands.
pub const LINKTYPE_NULL: u32 = 0;
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LOOP: u32 = 108;
pub const LINKTYPE_IEEE802_11: u32 = 105;
pub const LINKTYPE_IEEE802_11_RADIOTAP: u32 = 127;
pub const LINKTYPE_PPI: u32 = 192;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
#[cfg(test)]
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q, 802.1ad (QinQ) and the pre-standard QinQ type: all carry a 4-byte tag before the inner type.
const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];

use super::loopback::{Rename, Renamer};

mod wifi;

const ETH_HEADER: usize = 14;
const SLL_HEADER: usize = 16;
const SLL2_HEADER: usize = 20;
const NULL_HEADER: usize = 4;
const BROADCAST: [u8; 6] = [0xff; 6];

/// One record after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    /// An Ethernet II frame, or the raw captured bytes when `problem` is set.
    pub frame: Vec<u8>,
    /// The on-wire length of `frame` (the record's orig_len moved by the same header delta).
    pub orig_len: u32,
    /// True when the Ethernet header (or one of its MACs) was made up.
    pub synthetic_l2: bool,
    /// VLAN ids of the stripped 802.1Q/QinQ tags, outermost first.
    pub vlan: Vec<u16>,
    /// A loopback recording's peer renamed in this packet.
    pub renamed: Option<Rename>,
    pub problem: Option<String>,
}

/// Network-layer content found under some link header, before it is wrapped in Ethernet.
struct L3<'a> {
    ethertype: u16,
    payload: &'a [u8],
    /// A real source MAC the link header carried (SLL's link-layer address).
    src_mac: Option<[u8; 6]>,
}

/// Turns one captured record of `linktype` into an Ethernet II frame, on its own (no loopback renaming
/// across records).
#[cfg(test)]
pub fn normalise(linktype: u32, data: &[u8], orig_len: u32) -> Normalised {
    normalise_renaming(linktype, data, orig_len, &mut Renamer::default())
}

/// Turns one captured record of `linktype` into an Ethernet II frame; `renamer` renames the peer of a flow
/// whose two ends share an address (a loopback recording), before the MACs are made from the addresses.
pub fn normalise_renaming(
    linktype: u32,
    data: &[u8],
    orig_len: u32,
    renamer: &mut Renamer,
) -> Normalised {
    let converted = match linktype {
        LINKTYPE_ETHERNET => from_ethernet(data),
        LINKTYPE_RAW => raw_ip(data).and_then(wrap),
        LINKTYPE_IPV4 => l3(ETHERTYPE_IPV4, data).and_then(wrap),
        LINKTYPE_IPV6 => l3(ETHERTYPE_IPV6, data).and_then(wrap),
        LINKTYPE_LINUX_SLL => sll(data).and_then(wrap),
        LINKTYPE_LINUX_SLL2 => sll2(data).and_then(wrap),
        LINKTYPE_NULL => null(data, Family::HostOrder).and_then(wrap),
        LINKTYPE_LOOP => null(data, Family::BigEndian).and_then(wrap),
        LINKTYPE_IEEE802_11 => bridged(wifi::ieee80211(data, false)),
        LINKTYPE_IEEE802_11_RADIOTAP => bridged(wifi::radiotap(data)),
        LINKTYPE_PPI => bridged(wifi::ppi(data)),
        other => Err(format!("unsupported link type {other}")),
    };
    match converted {
        Ok((mut frame, mut synthetic_l2, vlan)) => {
            let renamed = rename(&mut frame, renamer);
            synthetic_l2 |= renamed.is_some() | fill_zero_macs(&mut frame, renamed.is_some());
            let delta = frame.len() as i64 - data.len() as i64;
            let orig_len = (i64::from(orig_len) + delta).clamp(0, i64::from(u32::MAX)) as u32;
            Normalised {
                frame,
                orig_len,
                synthetic_l2,
                vlan,
                renamed,
                problem: None,
            }
        }
        Err(problem) => Normalised {
            frame: data.to_vec(),
            orig_len,
            synthetic_l2: false,
            vlan: Vec::new(),
            renamed: None,
            problem: Some(problem),
        },
    }
}

/// The loopback rename of an Ethernet frame's IP packet, if it is one.
fn rename(frame: &mut [u8], renamer: &mut Renamer) -> Option<Rename> {
    if frame.len() <= ETH_HEADER {
        return None;
    }
    let ethertype = be16(frame, 12);
    renamer.apply(ethertype, &mut frame[ETH_HEADER..])
}

/// Replaces all-zero MACs (no NIC's: Linux's `lo` records both as zero, a cooked capture of it the source)
/// of an IP frame by the ones made from its addresses, as are both once a rename changed an address (the two
/// ends of a loopback recording shared one MAC). Returns whether a MAC was made up.
fn fill_zero_macs(frame: &mut [u8], all: bool) -> bool {
    if frame.len() <= ETH_HEADER {
        return false;
    }
    let Some((src, dst)) = ip_addresses(be16(frame, 12), &frame[ETH_HEADER..]) else {
        return false;
    };
    let (src, dst) = (unicast_mac(src), destination_mac(dst));
    let mut made = false;
    if all || frame[..6] == [0; 6] {
        made |= frame[..6] != dst;
        frame[..6].copy_from_slice(&dst);
    }
    if all || frame[6..12] == [0; 6] {
        made |= frame[6..12] != src;
        frame[6..12].copy_from_slice(&src);
    }
    made
}

type Converted = Result<(Vec<u8>, bool, Vec<u16>), String>;

fn from_ethernet(data: &[u8]) -> Converted {
    if data.len() < ETH_HEADER {
        return Err(format!(
            "{} bytes is shorter than an Ethernet header",
            data.len()
        ));
    }
    let ethertype = be16(data, 12);
    let (ethertype, payload, vlan) = strip_vlan(ethertype, &data[ETH_HEADER..]);
    let mut frame = Vec::with_capacity(ETH_HEADER + payload.len());
    frame.extend_from_slice(&data[..12]);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    Ok((frame, false, vlan))
}

/// An 802.11 data frame bridged to Ethernet: its MACs are the 802.11 header's, the header itself is made up.
fn bridged(frame: wifi::Bridged) -> Converted {
    let (frame, _, vlan) = from_ethernet(&frame?)?;
    Ok((frame, true, vlan))
}

/// Removes 802.1Q/QinQ tags; a tag cut short by the snap length is left in place (there is no inner type).
fn strip_vlan(mut ethertype: u16, mut payload: &[u8]) -> (u16, &[u8], Vec<u16>) {
    let mut vlan = Vec::new();
    while VLAN_TPIDS.contains(&ethertype) && payload.len() >= 4 {
        vlan.push(be16(payload, 0) & 0x0fff);
        ethertype = be16(payload, 2);
        payload = &payload[4..];
    }
    (ethertype, payload, vlan)
}

fn l3(ethertype: u16, payload: &[u8]) -> Result<L3<'_>, String> {
    Ok(L3 {
        ethertype,
        payload,
        src_mac: None,
    })
}

/// LINKTYPE_RAW: the IP version nibble decides.
fn raw_ip(data: &[u8]) -> Result<L3<'_>, String> {
    match data.first().map(|b| b >> 4) {
        Some(4) => l3(ETHERTYPE_IPV4, data),
        Some(6) => l3(ETHERTYPE_IPV6, data),
        Some(v) => Err(format!("raw IP packet with IP version {v}")),
        None => Err("empty raw IP packet".into()),
    }
}

/// Linux cooked capture v1: packet type, ARPHRD, address length, 8 address bytes, protocol.
fn sll(data: &[u8]) -> Result<L3<'_>, String> {
    if data.len() < SLL_HEADER {
        return Err(format!(
            "{} bytes is shorter than a Linux cooked (SLL) header",
            data.len()
        ));
    }
    let addr_len = usize::from(be16(data, 4));
    cooked(be16(data, 14), &data[6..14], addr_len, &data[SLL_HEADER..])
}

/// Linux cooked capture v2: protocol, reserved, ifindex, ARPHRD, packet type, address length, 8 address bytes.
fn sll2(data: &[u8]) -> Result<L3<'_>, String> {
    if data.len() < SLL2_HEADER {
        return Err(format!(
            "{} bytes is shorter than a Linux cooked (SLL2) header",
            data.len()
        ));
    }
    let addr_len = usize::from(data[11]);
    cooked(be16(data, 0), &data[12..20], addr_len, &data[SLL2_HEADER..])
}

fn cooked<'a>(
    protocol: u16,
    addr: &[u8],
    addr_len: usize,
    payload: &'a [u8],
) -> Result<L3<'a>, String> {
    // Protocol values up to 1500 are Linux's pseudo-protocols (802.2 LLC, 802.3, CAN…), not Ethertypes.
    if protocol <= 1500 {
        return Err(format!(
            "Linux cooked capture with non-Ethernet protocol {protocol:#06x}"
        ));
    }
    // The address field is the sender's link-layer address, for outgoing packets too.
    let src_mac = (addr_len == 6).then(|| mac(&addr[..6]));
    Ok(L3 {
        ethertype: protocol,
        payload,
        src_mac,
    })
}

/// How the 4-byte address family of a loopback header is stored.
#[derive(Clone, Copy)]
enum Family {
    /// DLT_NULL: the capturing host's byte order, which the file does not record.
    HostOrder,
    /// DLT_LOOP (OpenBSD): always network order.
    BigEndian,
}

fn null(data: &[u8], order: Family) -> Result<L3<'_>, String> {
    let Some(head) = data.get(..NULL_HEADER) else {
        return Err(format!(
            "{} bytes is shorter than a loopback header",
            data.len()
        ));
    };
    let bytes = [head[0], head[1], head[2], head[3]];
    let family = match order {
        Family::BigEndian => u32::from_be_bytes(bytes),
        // Families are small numbers, so a value with high bits set was written in the other byte order.
        Family::HostOrder => {
            let le = u32::from_le_bytes(bytes);
            if le > 0xffff { le.swap_bytes() } else { le }
        }
    };
    let payload = &data[NULL_HEADER..];
    match family {
        2 => l3(ETHERTYPE_IPV4, payload),
        // AF_INET6 differs between BSDs: 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS).
        24 | 28 | 30 => l3(ETHERTYPE_IPV6, payload),
        other => Err(format!("unsupported loopback address family {other}")),
    }
}

/// Wraps a network-layer packet in an Ethernet header whose MACs are derived from its IP addresses.
fn wrap(l3: L3<'_>) -> Converted {
    let (ethertype, payload, vlan) = strip_vlan(l3.ethertype, l3.payload);
    let (src, dst) = match ip_addresses(ethertype, payload) {
        Some((src, dst)) => (
            l3.src_mac.unwrap_or_else(|| unicast_mac(src)),
            destination_mac(dst),
        ),
        None if is_ip(ethertype) => {
            return Err(format!(
                "IP packet of {} bytes is too short to hold its addresses",
                payload.len()
            ));
        }
        // Non-IP (ARP and the like): no address to derive from, so the frame goes to everyone.
        None => (l3.src_mac.unwrap_or(synthetic_base()), BROADCAST),
    };
    let mut frame = Vec::with_capacity(ETH_HEADER + payload.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    Ok((frame, true, vlan))
}

fn is_ip(ethertype: u16) -> bool {
    ethertype == ETHERTYPE_IPV4 || ethertype == ETHERTYPE_IPV6
}

/// Source and destination address bytes (4 or 16 each) of an IP packet, if it is long enough to hold them.
fn ip_addresses(ethertype: u16, p: &[u8]) -> Option<(&[u8], &[u8])> {
    match ethertype {
        ETHERTYPE_IPV4 => Some((p.get(12..16)?, p.get(16..20)?)),
        ETHERTYPE_IPV6 => Some((p.get(8..24)?, p.get(24..40)?)),
        _ => None,
    }
}

/// The MAC a host with this IP address gets: 02:00:a:b:c:d for IPv4 (locally administered, unicast);
/// 06:… plus 5 bytes of a hash for IPv6, so the two families can never collide.
pub fn unicast_mac(ip: &[u8]) -> [u8; 6] {
    if let [a, b, c, d] = ip {
        return [0x02, 0x00, *a, *b, *c, *d];
    }
    let h = fnv1a(ip).to_be_bytes();
    [0x06, h[0], h[1], h[2], h[3], h[4]]
}

/// Destination MAC for an IP destination: the standard multicast/broadcast mappings (so smoltcp accepts
/// group traffic), otherwise the unicast MAC of that address.
pub fn destination_mac(ip: &[u8]) -> [u8; 6] {
    match ip {
        [255, 255, 255, 255] => BROADCAST,
        [a, b, c, d] if (224..=239).contains(a) => [0x01, 0x00, 0x5e, b & 0x7f, *c, *d],
        [0xff, .., w, x, y, z] if ip.len() == 16 => [0x33, 0x33, *w, *x, *y, *z],
        _ => unicast_mac(ip),
    }
}

fn synthetic_base() -> [u8; 6] {
    [0x02, 0, 0, 0, 0, 0]
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn mac(b: &[u8]) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[..6]);
    m
}

/// Big-endian u16 at `at`; callers have checked the length.
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[cfg(test)]
mod tests;
