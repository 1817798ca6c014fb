//! ARP and neighbour discovery with the capture's MACs: the stack's requests and solicitations answered for
//! the hosts the capture holds, and each peer's MAC made known to the stack before the peer's first frame.

use std::net::IpAddr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv6Address, Ipv6Packet, Ipv6Repr,
    NdiscRepr, RawHardwareAddress,
};

use crate::pipeline::dissect::{ETHERNET_HEADER, Headers, Net, dissect};
use crate::pipeline::wire::{Arrival, Fate};

use super::ReplayWire;

impl ReplayWire {
    /// Make the stack know a peer's MAC before its first frame: the ARP request (or neighbour solicitation)
    /// a real host would have sent first.
    pub(super) fn prime(&mut self, peer: IpAddr) -> Option<Arrival> {
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
            capture_frame: None,
            at: None,
            note: Some(format!(
                "synthetic: made by the replay so the stack learns {peer}'s MAC from the capture"
            )),
        })
    }

    /// `h` holds the headers of `frame`, a frame the stack sent.
    pub(super) fn answer_arp(&self, frame: &[u8], h: &Headers) -> Option<Arrival> {
        // Every frame the stack sends comes here: only an ARP one is dissected.
        if EthernetProtocol::from(h.ethertype) != EthernetProtocol::Arp {
            return None;
        }
        let Net::Arp {
            operation,
            sender_mac,
            sender_ip,
            target_ip,
            ..
        } = dissect(frame).net
        else {
            return None;
        };
        if ArpOperation::from(operation) != ArpOperation::Request {
            return None;
        }
        let peer = IpAddr::V4(target_ip);
        let mac = *self.macs.get(&peer)?;
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(mac),
            source_protocol_addr: target_ip,
            target_hardware_addr: EthernetAddress(sender_mac),
            target_protocol_addr: sender_ip,
        };
        let mut buf = vec![0u8; 14 + reply.buffer_len()];
        let mut out = EthernetFrame::new_unchecked(&mut buf);
        EthernetRepr {
            src_addr: EthernetAddress(mac),
            dst_addr: EthernetAddress(sender_mac),
            ethertype: EthernetProtocol::Arp,
        }
        .emit(&mut out);
        reply.emit(&mut ArpPacket::new_unchecked(out.payload_mut()));
        Some(Arrival {
            frame: buf,
            fate: Fate::Inject,
            capture_frame: None,
            at: None,
            note: Some(format!(
                "synthetic: the replay answers the stack's ARP request with {peer}'s MAC from the capture"
            )),
        })
    }

    /// `h` holds the headers of `frame`, a frame the stack sent.
    pub(super) fn answer_ns(&self, frame: &[u8], h: &Headers) -> Option<Arrival> {
        let ip = h.ip.as_ref()?;
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (ip.src, ip.dst) else {
            return None;
        };
        // An ICMPv6 message, in an IPv6 packet the frame holds whole (extension headers are not walked).
        let ip_end = ETHERNET_HEADER + ip.total_len;
        if h.len < ip_end || IpProtocol::from(ip.protocol) != IpProtocol::Icmpv6 {
            return None;
        }
        let icmp =
            Icmpv6Packet::new_checked(&frame[ETHERNET_HEADER + ip.header_len..ip_end]).ok()?;
        let repr = Icmpv6Repr::parse(&src, &dst, &icmp, &ChecksumCapabilities::default()).ok()?;
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
        let frame = ipv6_icmp(mac, h.src_mac, target_addr, src, &advert);
        Some(Arrival {
            frame,
            fate: Fate::Inject,
            capture_frame: None,
            at: None,
            note: Some(format!(
                "synthetic: the replay answers the stack's neighbour solicitation with {peer}'s MAC from the capture"
            )),
        })
    }
}

pub(super) fn is_arp_from(h: &Headers, mac: [u8; 6]) -> bool {
    EthernetProtocol::from(h.ethertype) == EthernetProtocol::Arp && h.src_mac == mac
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
