//! What the dissector learns from one frame (`FrameInfo`: its Ethernet, network and transport layers, and the
//! first layer that failed to parse), and the reading of it: the headers as `headers` read them, held to
//! smoltcp's checks, so that what parses here is what the stack takes apart.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetAddress, EthernetProtocol, Icmpv4Packet, Icmpv6Packet, IpAddress,
    IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

use super::headers::{ETHERNET_HEADER, Headers, IpHeader, L4Header, TcpFlags};

/// Everything the dissector could learn about one Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    pub len: usize,
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub ethertype: u16,
    pub net: Net,
    pub transport: Transport,
    /// First layer that failed to parse, e.g. "truncated IPv4 header".
    pub malformed: Option<String>,
    /// What the record is when it is no Ethernet frame at all (a replayed record the capture's link type
    /// could not be made Ethernet from, e.g. an 802.11 beacon): nothing else is read from it.
    pub foreign: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Net {
    None,
    Ipv4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        ttl: u8,
        header_checksum_ok: bool,
        fragment: bool,
    },
    Ipv6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: u8,
        hop_limit: u8,
    },
    Arp {
        operation: u16,
        sender_mac: [u8; 6],
        sender_ip: Ipv4Addr,
        target_mac: [u8; 6],
        target_ip: Ipv4Addr,
    },
    Other {
        ethertype: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    None,
    Tcp {
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        window: u16,
        payload_len: usize,
        checksum_ok: bool,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
        payload_len: usize,
        checksum_ok: bool,
    },
    Icmpv4 {
        icmp_type: u8,
        code: u8,
    },
    Icmpv6 {
        icmp_type: u8,
        code: u8,
    },
    Other {
        protocol: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// Transport 5-tuple as seen from the frame's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowKey {
    pub proto: Proto,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl FlowKey {
    /// The same flow seen from the other end.
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
        }
    }
}

/// Dissect one Ethernet frame. Never panics; parsing stops at the first bad layer.
pub fn dissect(frame: &[u8]) -> FrameInfo {
    let mut info = FrameInfo {
        len: frame.len(),
        dst_mac: [0; 6],
        src_mac: [0; 6],
        ethertype: 0,
        net: Net::None,
        transport: Transport::None,
        malformed: None,
        foreign: None,
    };
    let Some(h) = Headers::read(frame) else {
        info.set_malformed("truncated Ethernet header");
        return info;
    };
    (info.dst_mac, info.src_mac) = (h.dst_mac, h.src_mac);
    info.ethertype = h.ethertype;
    let b = &frame[ETHERNET_HEADER..];
    match EthernetProtocol::from(h.ethertype) {
        EthernetProtocol::Ipv4 => dissect_ipv4(&mut info, h.ip, b),
        EthernetProtocol::Ipv6 => dissect_ipv6(&mut info, h.ip, b),
        EthernetProtocol::Arp => dissect_arp(&mut info, b),
        _ => {
            info.net = Net::Other {
                ethertype: info.ethertype,
            }
        }
    }
    info
}

/// `b` is the Ethernet payload. The checks are smoltcp's (`Ipv4Packet::check_len`, then the version), so what
/// parses here is what the stack takes apart.
fn dissect_ipv4(info: &mut FrameInfo, ip: Option<IpHeader>, b: &[u8]) {
    let Some(
        ip @ IpHeader {
            src: IpAddr::V4(src),
            dst: IpAddr::V4(dst),
            ..
        },
    ) = ip
    else {
        return info.set_malformed("truncated IPv4 header");
    };
    let (ihl, total) = (ip.header_len, ip.total_len);
    // The frame holds the header and the packet, and the header fits both the packet and its fixed part; if not,
    // say which.
    if b.len() < ihl || ihl > total || b.len() < total || ihl < 20 {
        let why = if b.len() < ihl.max(20) {
            "truncated IPv4 header"
        } else if ihl >= 20 && total >= ihl {
            "truncated IPv4 packet"
        } else {
            "bad IPv4 length field"
        };
        return info.set_malformed(why);
    }
    if ip.version != 4 {
        return info.set_malformed(&format!("bad IPv4 version {}", ip.version));
    }
    let (protocol, fragment) = (ip.protocol, ip.fragment);
    let (ttl, header_checksum_ok) = (ip.hop_limit, Ipv4Packet::new_unchecked(b).verify_checksum());
    info.net = Net::Ipv4 {
        src,
        dst,
        protocol,
        ttl,
        header_checksum_ok,
        fragment,
    };
    if !fragment {
        dissect_transport(info, &ip, &b[ihl..total]);
    }
}

/// `b` is the Ethernet payload; the checks are smoltcp's (`Ipv6Packet::check_len`, then the version).
fn dissect_ipv6(info: &mut FrameInfo, ip: Option<IpHeader>, b: &[u8]) {
    let Some(
        ip @ IpHeader {
            src: IpAddr::V6(src),
            dst: IpAddr::V6(dst),
            ..
        },
    ) = ip
    else {
        return info.set_malformed("truncated IPv6 header");
    };
    if b.len() < ip.total_len {
        return info.set_malformed("truncated IPv6 payload");
    }
    if ip.version != 6 {
        return info.set_malformed(&format!("bad IPv6 version {}", ip.version));
    }
    let (next_header, hop_limit) = (ip.protocol, ip.hop_limit);
    info.net = Net::Ipv6 {
        src,
        dst,
        next_header,
        hop_limit,
    };
    dissect_transport(info, &ip, &b[ip.header_len..ip.total_len]);
}

fn dissect_arp(info: &mut FrameInfo, b: &[u8]) {
    let Ok(pkt) = ArpPacket::new_checked(b) else {
        return info.set_malformed("truncated ARP packet");
    };
    match ArpRepr::parse(&pkt) {
        Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: sm,
            source_protocol_addr: sender_ip,
            target_hardware_addr: tm,
            target_protocol_addr: target_ip,
        }) => {
            let (operation, sender_mac, target_mac) = (u16::from(operation), sm.0, tm.0);
            info.net = Net::Arp {
                operation,
                sender_mac,
                sender_ip,
                target_mac,
                target_ip,
            };
        }
        _ => info.set_malformed("unsupported ARP hardware/protocol type"),
    }
}

/// `payload` is exactly the IP payload (Ethernet padding already excluded). A TCP or UDP header is the one
/// read at the same place (`ip.transport`), taken when the payload holds its fixed part and checked as smoltcp's
/// `TcpPacket::check_len` and `UdpPacket::check_len` do.
fn dissect_transport(info: &mut FrameInfo, ip: &IpHeader, b: &[u8]) {
    let (proto, src, dst) = (
        ip.protocol,
        IpAddress::from(ip.src),
        IpAddress::from(ip.dst),
    );
    let v6 = matches!(src, IpAddress::Ipv6(_));
    info.transport = match (IpProtocol::from(proto), &ip.transport) {
        (IpProtocol::Tcp, Some(L4Header::Tcp(tcp))) if b.len() >= 20 => {
            let hl = tcp.header_len;
            if hl < 20 {
                return info.set_malformed("bad TCP data offset");
            }
            if b.len() < hl {
                return info.set_malformed("truncated TCP header");
            }
            Transport::Tcp {
                src_port: tcp.src_port,
                dst_port: tcp.dst_port,
                seq: tcp.seq,
                ack: tcp.ack,
                flags: tcp.flags.clone(),
                window: tcp.window,
                payload_len: b.len() - hl,
                checksum_ok: TcpPacket::new_unchecked(b).verify_checksum(&src, &dst),
            }
        }
        (IpProtocol::Tcp, _) => return info.set_malformed("truncated TCP header"),
        (IpProtocol::Udp, Some(L4Header::Udp(udp))) if b.len() >= 8 => {
            if b.len() < udp.len || udp.len < 8 {
                return info.set_malformed("bad UDP length");
            }
            Transport::Udp {
                src_port: udp.src_port,
                dst_port: udp.dst_port,
                payload_len: udp.len - 8,
                checksum_ok: UdpPacket::new_unchecked(b).verify_checksum(&src, &dst),
            }
        }
        (IpProtocol::Udp, _) => return info.set_malformed("truncated UDP header"),
        (IpProtocol::Icmp, _) if !v6 => match Icmpv4Packet::new_checked(b) {
            Ok(p) => Transport::Icmpv4 {
                icmp_type: p.msg_type().into(),
                code: p.msg_code(),
            },
            Err(_) => return info.set_malformed("truncated ICMP header"),
        },
        // smoltcp's check rejects ICMPv6 types it does not know, so read type/code directly.
        (IpProtocol::Icmpv6, _) if v6 => match (Icmpv6Packet::new_checked(b), b.get(..4)) {
            (Ok(p), _) => Transport::Icmpv6 {
                icmp_type: p.msg_type().into(),
                code: p.msg_code(),
            },
            (Err(_), Some(h)) => Transport::Icmpv6 {
                icmp_type: h[0],
                code: h[1],
            },
            (Err(_), None) => return info.set_malformed("truncated ICMPv6 header"),
        },
        _ => Transport::Other { protocol: proto },
    };
}

impl FrameInfo {
    /// A record of `len` bytes that is no Ethernet frame, described as `what`.
    pub fn foreign(len: usize, what: String) -> FrameInfo {
        FrameInfo {
            len,
            dst_mac: [0; 6],
            src_mac: [0; 6],
            ethertype: 0,
            net: Net::None,
            transport: Transport::None,
            malformed: None,
            foreign: Some(what),
        }
    }

    fn set_malformed(&mut self, what: &str) {
        self.malformed.get_or_insert_with(|| what.to_string());
    }

    /// The transport 5-tuple seen from the frame's sender, if TCP or UDP over IPv4/IPv6.
    pub fn flow_key(&self) -> Option<FlowKey> {
        let (s, d): (IpAddr, IpAddr) = match self.net {
            Net::Ipv4 { src, dst, .. } => (src.into(), dst.into()),
            Net::Ipv6 { src, dst, .. } => (src.into(), dst.into()),
            _ => return None,
        };
        let (proto, a, b) = match self.transport {
            Transport::Tcp {
                src_port: a,
                dst_port: b,
                ..
            } => (Proto::Tcp, a, b),
            Transport::Udp {
                src_port: a,
                dst_port: b,
                ..
            } => (Proto::Udp, a, b),
            _ => return None,
        };
        let (src, dst) = (SocketAddr::new(s, a), SocketAddr::new(d, b));
        Some(FlowKey { proto, src, dst })
    }

    /// TCP payload length (from the IP length, so Ethernet padding is excluded); 0 if not TCP.
    pub fn tcp_payload_len(&self) -> usize {
        match self.transport {
            Transport::Tcp { payload_len, .. } => payload_len,
            _ => 0,
        }
    }

    /// Destination MAC is broadcast or has the multicast (group) bit set.
    pub fn is_broadcast_or_multicast_dst(&self) -> bool {
        EthernetAddress(self.dst_mac).is_multicast() // broadcast has the group bit too
    }
}
