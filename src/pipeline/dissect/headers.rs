//! The one reading of a frame's header bytes: the Ethernet header, the fixed IPv4 or IPv6 header under it, and
//! the fixed TCP or UDP header where the IP header puts it. Each is read only where the frame holds it, and no
//! length field is believed yet: `dissect` checks the lengths against each other and against the frame (the
//! stack's view: these are the bytes it gets), the replay against the length the frame had on the wire (a
//! capture may have cut it short).

use std::net::IpAddr;

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};

/// Length of an Ethernet II header: where the network layer starts.
pub(crate) const ETHERNET_HEADER: usize = 14;

/// A frame's headers as they read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Headers {
    /// The frame's length: the bytes held.
    pub len: usize,
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub ethertype: u16,
    /// The IP header, when the ethertype is IPv4 or IPv6 and the frame holds the header's fixed part.
    pub ip: Option<IpHeader>,
}

/// An IPv4 or IPv6 header (addresses of that family) as its fixed part reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IpHeader {
    /// The version field, whatever the ethertype said.
    pub version: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4's protocol, IPv6's next header (extension headers are not walked).
    pub protocol: u8,
    /// IPv4's TTL, IPv6's hop limit.
    pub hop_limit: u8,
    /// IPv4's more-fragments flag or fragment offset is set; never for IPv6.
    pub fragment: bool,
    /// Where the transport header starts in the packet: IPv4's IHL × 4 (a damaged header can say less than its
    /// fixed 20 bytes), 40 for IPv6.
    pub header_len: usize,
    /// The packet's length as its header says: IPv4's total length, 40 + IPv6's payload length.
    pub total_len: usize,
    /// The TCP or UDP header at `header_len`, when the protocol is one of them, `header_len` is past the fixed
    /// IP header, and the frame holds the transport header's fixed part there (whatever the IP lengths say).
    pub transport: Option<L4Header>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum L4Header {
    Tcp(TcpHeader),
    Udp(UdpHeader),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TcpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// The data offset × 4: where the payload starts (a damaged header can say less than its fixed 20 bytes).
    pub header_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UdpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    /// The length field: header and payload.
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    pub urg: bool,
}

impl Headers {
    /// The headers of an Ethernet frame; None if it is shorter than an Ethernet header.
    pub(crate) fn read(frame: &[u8]) -> Option<Headers> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        let b = eth.payload();
        let ip = match eth.ethertype() {
            EthernetProtocol::Ipv4 => ipv4(b),
            EthernetProtocol::Ipv6 => ipv6(b),
            _ => None,
        };
        Some(Headers {
            len: frame.len(),
            dst_mac: eth.dst_addr().0,
            src_mac: eth.src_addr().0,
            ethertype: u16::from(eth.ethertype()),
            ip: ip.map(|ip| IpHeader {
                transport: transport(&ip, b),
                ..ip
            }),
        })
    }
}

fn ipv4(b: &[u8]) -> Option<IpHeader> {
    if b.len() < 20 {
        return None;
    }
    let ip = Ipv4Packet::new_unchecked(b);
    Some(IpHeader {
        version: ip.version(),
        src: IpAddr::V4(ip.src_addr()),
        dst: IpAddr::V4(ip.dst_addr()),
        protocol: u8::from(ip.next_header()),
        hop_limit: ip.hop_limit(),
        fragment: ip.more_frags() || ip.frag_offset() != 0,
        header_len: usize::from(ip.header_len()),
        total_len: usize::from(ip.total_len()),
        transport: None,
    })
}

fn ipv6(b: &[u8]) -> Option<IpHeader> {
    if b.len() < 40 {
        return None;
    }
    let ip = Ipv6Packet::new_unchecked(b);
    Some(IpHeader {
        version: ip.version(),
        src: IpAddr::V6(ip.src_addr()),
        dst: IpAddr::V6(ip.dst_addr()),
        protocol: u8::from(ip.next_header()),
        hop_limit: ip.hop_limit(),
        fragment: false,
        header_len: ip.header_len(),
        total_len: ip.total_len(),
        transport: None,
    })
}

/// The transport header of `ip`, read from all the network-layer bytes `b` holds past the IP header.
fn transport(ip: &IpHeader, b: &[u8]) -> Option<L4Header> {
    if ip.header_len < 20 {
        return None;
    }
    // A later IPv4 fragment holds payload where the first one has the transport header: there is none to
    // read, and a replay must not rewrite "acks" and "checksums" in the middle of the datagram's data.
    if ip.fragment && b.len() >= 20 && Ipv4Packet::new_unchecked(b).frag_offset() != 0 {
        return None;
    }
    let held = b.get(ip.header_len..)?;
    match IpProtocol::from(ip.protocol) {
        IpProtocol::Tcp if held.len() >= 20 => {
            let t = TcpPacket::new_unchecked(held);
            Some(L4Header::Tcp(TcpHeader {
                src_port: t.src_port(),
                dst_port: t.dst_port(),
                seq: t.seq_number().0 as u32,
                ack: t.ack_number().0 as u32,
                flags: TcpFlags {
                    syn: t.syn(),
                    ack: t.ack(),
                    fin: t.fin(),
                    rst: t.rst(),
                    psh: t.psh(),
                    urg: t.urg(),
                },
                window: t.window_len(),
                header_len: usize::from(t.header_len()),
            }))
        }
        IpProtocol::Udp if held.len() >= 8 => {
            let u = UdpPacket::new_unchecked(held);
            Some(L4Header::Udp(UdpHeader {
                src_port: u.src_port(),
                dst_port: u.dst_port(),
                len: usize::from(u.len()),
            }))
        }
        // The first fragment of an IPv6 UDP datagram (its fragment header right after the fixed one, offset
        // 0, next header UDP): its ports name the datagram's flow, as a first IPv4 fragment's do.
        IpProtocol::Ipv6Frag
            if held.len() >= 16
                && held[0] == 17
                && u16::from_be_bytes([held[2], held[3]]) >> 3 == 0 =>
        {
            let u = UdpPacket::new_unchecked(&held[8..]);
            Some(L4Header::Udp(UdpHeader {
                src_port: u.src_port(),
                dst_port: u.dst_port(),
                len: usize::from(u.len()),
            }))
        }
        _ => None,
    }
}
