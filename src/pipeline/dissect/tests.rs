//! The dissector's tests: fields, summaries and detail lines of well-formed frames, and damaged frames.

use std::net::{Ipv4Addr, Ipv6Addr};

use smoltcp::phy::ChecksumCapabilities as Caps;
use smoltcp::wire::{ArpOperation as Op, EthernetRepr, Icmpv4Repr, Ipv4Repr, Ipv6Repr};
use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, Icmpv4Packet, IpAddress,
    IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};
use smoltcp::wire::{TcpControl as Ctl, TcpRepr, TcpSeqNumber as Seq, UdpRepr};

use super::*;

const SRV_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const CLI_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const SRV: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLI: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn eth(ty: EthernetProtocol, src: [u8; 6], dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let (src_addr, dst_addr) = (EthernetAddress(src), EthernetAddress(dst));
    let mut buf = vec![0u8; 14 + payload.len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr,
        dst_addr,
        ethertype: ty,
    }
    .emit(&mut frame);
    frame.payload_mut().copy_from_slice(payload);
    buf
}

/// IPv4 frame between CLI and SRV carrying `l4` (already checksummed for these addresses).
fn v4(src: Ipv4Addr, dst: Ipv4Addr, next_header: IpProtocol, l4: &[u8]) -> Vec<u8> {
    let (payload_len, hop_limit) = (l4.len(), 64);
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header,
        payload_len,
        hop_limit,
    };
    let mut buf = vec![0u8; ip.buffer_len() + l4.len()];
    let mut pkt = Ipv4Packet::new_unchecked(&mut buf[..]);
    ip.emit(&mut pkt, &Caps::default());
    pkt.payload_mut().copy_from_slice(l4);
    let macs = if src == CLI {
        (CLI_MAC, SRV_MAC)
    } else {
        (SRV_MAC, CLI_MAC)
    };
    eth(EthernetProtocol::Ipv4, macs.0, macs.1, &buf)
}

/// TCP segment bytes checksummed for `ips`: window 64240, no options.
fn seg(
    ips: (IpAddress, IpAddress),
    ports: (u16, u16),
    ctl: Ctl,
    seq: (i32, Option<i32>),
    payload: &[u8],
) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: ports.0,
        dst_port: ports.1,
        control: ctl,
        seq_number: Seq(seq.0),
        ack_number: seq.1.map(Seq),
        window_len: 64240,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    let pkt = &mut TcpPacket::new_unchecked(&mut buf[..]);
    repr.emit(pkt, &ips.0, &ips.1, &Caps::default());
    buf
}

/// TCP over IPv4, client 10.0.0.2:40000 <-> server 10.0.0.1:7.
fn tcp4(from_srv: bool, ctl: Ctl, seq: (i32, Option<i32>), payload: &[u8]) -> Vec<u8> {
    let (s, d, ports) = if from_srv {
        (SRV, CLI, (7, 40000))
    } else {
        (CLI, SRV, (40000, 7))
    };
    v4(
        s,
        d,
        IpProtocol::Tcp,
        &seg((s.into(), d.into()), ports, ctl, seq, payload),
    )
}

fn syn() -> Vec<u8> {
    tcp4(false, Ctl::Syn, (1000, None), &[])
}

fn arp(operation: Op, src: ([u8; 6], Ipv4Addr), dst: ([u8; 6], Ipv4Addr)) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr: EthernetAddress(src.0),
        source_protocol_addr: src.1,
        target_hardware_addr: EthernetAddress(dst.0),
        target_protocol_addr: dst.1,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
    let eth_dst = if operation == Op::Request {
        [0xff; 6]
    } else {
        dst.0
    };
    eth(EthernetProtocol::Arp, src.0, eth_dst, &buf)
}

fn dbg(x: &impl std::fmt::Debug) -> String {
    format!("{x:?}")
}

#[test]
fn a_segment_without_flags_says_none_and_its_sequence_number_is_unsigned() {
    let frame = tcp4(false, Ctl::None, (-1, None), &[]);
    assert_eq!(
        dissect(&frame).summary(),
        "10.0.0.2:40000 > 10.0.0.1:7 TCP [none] seq=4294967295 win=64240 len=0"
    );
}

#[test]
fn summaries() {
    let mut bad = tcp4(false, Ctl::Psh, (1001, Some(6)), b"hello");
    *bad.last_mut().unwrap() ^= 0xff;
    let (mut udp, s, d) = (vec![0u8; 8 + 64], CLI.into(), SRV.into());
    let pkt = &mut UdpPacket::new_unchecked(&mut udp[..]);
    let ports = UdpRepr {
        src_port: 5353,
        dst_port: 7,
    };
    ports.emit(pkt, &s, &d, 64, |p| p.fill(7), &Caps::default());
    let (ident, seq_no, data) = (1, 2, &b"ping"[..]);
    let echo = Icmpv4Repr::EchoRequest {
        ident,
        seq_no,
        data,
    };
    let mut icmp = vec![0u8; echo.buffer_len()];
    let pkt = &mut Icmpv4Packet::new_unchecked(&mut icmp[..]);
    echo.emit(pkt, &Caps::default());
    let lldp = EthernetProtocol::Unknown(0x88cc);
    let cases = [
        (
            syn(),
            "10.0.0.2:40000 > 10.0.0.1:7 TCP [S] seq=1000 win=64240 len=0",
        ),
        (
            tcp4(true, Ctl::Syn, (5, Some(1001)), &[]),
            "10.0.0.1:7 > 10.0.0.2:40000 TCP [S.] seq=5 ack=1001 win=64240 len=0",
        ),
        (
            tcp4(false, Ctl::Psh, (1001, Some(6)), &[0xab; 1448]),
            "10.0.0.2:40000 > 10.0.0.1:7 TCP [P.] seq=1001 ack=6 win=64240 len=1448",
        ),
        (
            bad,
            "10.0.0.2:40000 > 10.0.0.1:7 TCP [P.] seq=1001 ack=6 win=64240 len=5 bad-checksum",
        ),
        (
            v4(CLI, SRV, IpProtocol::Udp, &udp),
            "10.0.0.2:5353 > 10.0.0.1:7 UDP len=64",
        ),
        (
            v4(CLI, SRV, IpProtocol::Icmp, &icmp),
            "10.0.0.2 > 10.0.0.1 ICMP echo request",
        ),
        (
            arp(Op::Request, (CLI_MAC, CLI), ([0; 6], SRV)),
            "ARP who-has 10.0.0.1 tell 10.0.0.2",
        ),
        (
            arp(Op::Reply, (SRV_MAC, SRV), (CLI_MAC, CLI)),
            "ARP 10.0.0.1 is-at 02:00:00:00:00:01",
        ),
        (
            eth(lldp, CLI_MAC, SRV_MAC, &[0; 46]),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 ethertype 0x88cc len=60",
        ),
    ];
    let mut infos = Vec::new();
    for (frame, want) in cases {
        infos.push(dissect(&frame));
        assert_eq!(infos.last().unwrap().summary(), want);
    }
    let fields: Vec<String> = infos.iter().map(|f| dbg(&f.transport)).collect();
    assert!(fields[2].contains("psh: true, urg: false }, window: 64240, payload_len: 1448,"));
    assert!(fields[2].starts_with("Tcp { src_port: 40000, dst_port: 7, seq: 1001, ack: 6, flags: TcpFlags { syn: false, ack: true, fin: false, rst: false,"));
    assert!(fields[3].ends_with("payload_len: 5, checksum_ok: false }"));
    assert_eq!(
        fields[4],
        "Udp { src_port: 5353, dst_port: 7, payload_len: 64, checksum_ok: true }"
    );
    assert_eq!(fields[5], "Icmpv4 { icmp_type: 8, code: 0 }");
    assert_eq!(
        dbg(&infos[6].net),
        "Arp { operation: 1, sender_mac: [2, 0, 0, 0, 0, 2], sender_ip: 10.0.0.2, target_mac: [0, 0, 0, 0, 0, 0], target_ip: 10.0.0.1 }"
    );
    assert_eq!(
        dbg(&infos[7].net),
        "Arp { operation: 2, sender_mac: [2, 0, 0, 0, 0, 1], sender_ip: 10.0.0.1, target_mac: [2, 0, 0, 0, 0, 2], target_ip: 10.0.0.2 }"
    );
    assert!(infos[6].is_broadcast_or_multicast_dst() && !infos[7].is_broadcast_or_multicast_dst());
    assert_eq!(infos[8].net, Net::Other { ethertype: 0x88cc });
    let tcp_lens: Vec<usize> = infos.iter().map(FrameInfo::tcp_payload_len).collect();
    assert_eq!(tcp_lens, [0, 0, 1448, 5, 0, 0, 0, 0, 0]);
    let protos: Vec<_> = infos
        .iter()
        .map(|f| f.flow_key().map(|k| k.proto))
        .collect();
    let (t, u) = (Some(Proto::Tcp), Some(Proto::Udp));
    assert_eq!(protos, [t, t, t, t, u, None, None, None, None]);
}

#[test]
fn tcp_syn_fields_flow_key_and_layers() {
    let f = dissect(&syn());
    assert_eq!(
        (f.len, f.src_mac, f.dst_mac, f.ethertype),
        (54, CLI_MAC, SRV_MAC, 0x0800)
    );
    assert_eq!(
        dbg(&f.net),
        "Ipv4 { src: 10.0.0.2, dst: 10.0.0.1, protocol: 6, ttl: 64, header_checksum_ok: true, fragment: false }"
    );
    let flags =
        "TcpFlags { syn: true, ack: false, fin: false, rst: false, psh: false, urg: false }";
    let want = format!(
        "Tcp {{ src_port: 40000, dst_port: 7, seq: 1000, ack: 0, flags: {flags}, window: 64240, payload_len: 0, checksum_ok: true }}"
    );
    assert_eq!((dbg(&f.transport), f.malformed.clone()), (want, None));
    let layers = [
        "Ethernet 02:00:00:00:00:02 > 02:00:00:00:00:01 type IPv4",
        "IPv4 10.0.0.2 > 10.0.0.1 proto TCP ttl 64 checksum ok",
        "TCP 40000 > 7 seq=1000 ack=0 flags [S] win=64240 payload 0 checksum ok",
    ];
    assert_eq!(f.layers(), layers);
    let key = f.flow_key().unwrap();
    assert_eq!(
        dbg(&key),
        "FlowKey { proto: Tcp, src: 10.0.0.2:40000, dst: 10.0.0.1:7 }"
    );
    assert_eq!(
        (key.reversed().src, key.reversed().reversed()),
        (key.dst, key)
    );
    let f = dissect(&tcp4(true, Ctl::Syn, (5, Some(1001)), &[]));
    assert_eq!(f.flow_key(), Some(key.reversed()));
}

#[test]
fn ipv4_header_checksum_and_ipv6() {
    let mut frame = syn();
    frame[14 + 8] = 1; // TTL: now the IPv4 header checksum is wrong, TCP's is not
    let f = dissect(&frame);
    assert!(dbg(&f.net).ends_with("ttl: 1, header_checksum_ok: false, fragment: false }"));
    assert!(dbg(&f.transport).ends_with("checksum_ok: true }"));
    assert!(f.summary().ends_with("len=0 bad-checksum"));
    assert!(f.layers()[1].ends_with("ttl 1 checksum BAD"));

    let (src, dst): (Ipv6Addr, Ipv6Addr) = ("fd00::2".parse().unwrap(), "fd00::1".parse().unwrap());
    let l4 = seg(
        (src.into(), dst.into()),
        (40000, 7),
        Ctl::Syn,
        (1000, None),
        &[],
    );
    let (next_header, payload_len, hop_limit) = (IpProtocol::Tcp, l4.len(), 64);
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header,
        payload_len,
        hop_limit,
    };
    let mut buf = vec![0u8; ip.buffer_len() + l4.len()];
    let mut pkt = Ipv6Packet::new_unchecked(&mut buf[..]);
    ip.emit(&mut pkt);
    pkt.payload_mut().copy_from_slice(&l4);
    let f = dissect(&eth(EthernetProtocol::Ipv6, CLI_MAC, SRV_MAC, &buf));
    assert_eq!(
        f.summary(),
        "[fd00::2]:40000 > [fd00::1]:7 TCP [S] seq=1000 win=64240 len=0"
    );
    assert_eq!(
        dbg(&f.net),
        "Ipv6 { src: fd00::2, dst: fd00::1, next_header: 6, hop_limit: 64 }"
    );
    assert!(dbg(&f.transport).ends_with("payload_len: 0, checksum_ok: true }"));
    assert_eq!(dbg(&f.flow_key().unwrap().src), "[fd00::2]:40000");
}

#[test]
fn truncated_and_garbage_frames_never_panic() {
    let frame = tcp4(false, Ctl::Psh, (1001, Some(6)), b"12345678");
    for n in 0..=frame.len() {
        let f = dissect(&frame[..n]);
        let _ = (f.summary(), f.layers(), f.flow_key(), f.tcp_payload_len());
        assert_eq!(f.malformed.is_none(), n == frame.len(), "prefix {n}");
    }
    let empty = dissect(&[]);
    assert_eq!((empty.dst_mac, empty.ethertype), ([0; 6], 0));
    let why = |n: usize| dissect(&frame[..n]).malformed.unwrap_or_default();
    assert_eq!(
        [why(0), why(24)],
        ["truncated Ethernet header", "truncated IPv4 header"]
    );
    let cut = "02:00:00:00:00:02 > 02:00:00:00:00:01 ethertype 0x0800 len=40 (malformed: truncated IPv4 packet)";
    assert_eq!(dissect(&frame[..40]).summary(), cut);
    // IPv4 total length says 30: the IP layer parses, the TCP header is cut short.
    let mut short = frame.clone();
    short[16..18].copy_from_slice(&30u16.to_be_bytes());
    let f = dissect(&short);
    let want = "10.0.0.2 > 10.0.0.1 proto TCP bad-checksum (malformed: truncated TCP header)";
    assert_eq!(f.summary(), want);
    assert_eq!(
        f.layers().last().unwrap(),
        "Malformed: truncated TCP header"
    );
    let mut x: u32 = 12345; // pseudo-random garbage behind each ethertype we parse
    for i in 0..4000 {
        let mut rand = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        };
        let mut buf: Vec<u8> = (0..i % 120).map(|_| rand()).collect();
        if buf.len() >= 15 {
            let ty = [0x0800u16, 0x86dd, 0x0806, 0x88cc][i % 4];
            buf[12..14].copy_from_slice(&ty.to_be_bytes());
            buf[14] = [0x45, 0x60, buf[14], buf[14]][i % 4];
        }
        let f = dissect(&buf);
        let _ = (f.summary(), f.layers(), f.flow_key(), f.tcp_payload_len());
    }
}

#[test]
fn padding_and_fragments() {
    let mut frame = syn();
    frame.resize(60, 0);
    let f = dissect(&frame);
    assert_eq!(
        (f.len, f.tcp_payload_len(), f.malformed.clone()),
        (60, 0, None)
    );
    assert!(dbg(&f.transport).ends_with("payload_len: 0, checksum_ok: true }"));
    let mut frame = syn();
    frame[14 + 6] |= 0x20; // more-fragments (and so a stale header checksum)
    let f = dissect(&frame);
    assert!(dbg(&f.net).ends_with("fragment: true }"));
    assert_eq!(f.transport, Transport::None);
    assert_eq!(
        f.summary(),
        "10.0.0.2 > 10.0.0.1 proto TCP fragment bad-checksum"
    );
    assert_eq!(format_mac(&[0xff; 6]), "ff:ff:ff:ff:ff:ff");
}
