//! Every kind of drop the issue names, each checked in the exported timeline with its reason: a SYN to a port
//! with no listener (and the RST it caused), a bad TCP checksum, a foreign MAC, an unbound UDP port, a full
//! socket rx buffer (an app that stops reading) and a full frame buffer.

mod common;

use std::collections::BTreeMap;

use common::*;
use pktpath::export::header::{SourceKind, Speed, StackInfo};
use pktpath::export::{self, Format, Header};
use pktpath::pipeline::{AppKind, Pipeline, PipelineConfig, VirtualClock};
use pktpath::sim::script::ScriptedWire;
use serde_json::{Value, json};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, Ipv6Address, TcpControl,
    TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr,
};

const STACK_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const STACK_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const PEER_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
const STACK_IP6: Ipv6Address = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const PEER_IP6: Ipv6Address = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

fn ethernet(
    dst: [u8; 6],
    ethertype: EthernetProtocol,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let mut buf = vec![0u8; 14 + payload_len];
    let repr = EthernetRepr {
        src_addr: EthernetAddress(PEER_MAC),
        dst_addr: EthernetAddress(dst),
        ethertype,
    };
    repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    fill(&mut buf[14..]);
    buf
}

fn arp_request() -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(PEER_MAC),
        source_protocol_addr: PEER_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: STACK_IP,
    };
    ethernet([0xff; 6], EthernetProtocol::Arp, repr.buffer_len(), |b| {
        repr.emit(&mut ArpPacket::new_unchecked(b))
    })
}

fn ipv4(
    dst_mac: [u8; 6],
    proto: IpProtocol,
    l4_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: PEER_IP,
        dst_addr: STACK_IP,
        next_header: proto,
        payload_len: l4_len,
        hop_limit: 64,
    };
    ethernet(dst_mac, EthernetProtocol::Ipv4, 20 + l4_len, |b| {
        ip.emit(
            &mut Ipv4Packet::new_unchecked(&mut b[..]),
            &ChecksumCapabilities::default(),
        );
        fill(&mut b[20..]);
    })
}

fn syn(dst_mac: [u8; 6], src_port: u16, dst_port: u16) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port,
        dst_port,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(1000),
        ack_number: None,
        window_len: 64240,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    ipv4(dst_mac, IpProtocol::Tcp, tcp.buffer_len(), |b| {
        tcp.emit(
            &mut TcpPacket::new_unchecked(b),
            &PEER_IP.into(),
            &STACK_IP.into(),
            &ChecksumCapabilities::default(),
        )
    })
}

fn udp(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let repr = UdpRepr {
        src_port: 5000,
        dst_port,
    };
    ipv4(STACK_MAC, IpProtocol::Udp, 8 + payload.len(), |b| {
        repr.emit(
            &mut UdpPacket::new_unchecked(b),
            &PEER_IP.into(),
            &STACK_IP.into(),
            payload.len(),
            |p| p.copy_from_slice(payload),
            &ChecksumCapabilities::default(),
        )
    })
}

/// Run the frames (each at its time) through a pipeline with echo on TCP 7 and UDP 7, exporting JSON.
fn run(frames: Vec<(u64, Vec<u8>)>, frame_buffer: usize) -> Value {
    let mut config = PipelineConfig {
        frame_buffer,
        ..PipelineConfig::default()
    };
    config.stack.mac = STACK_MAC;
    config.stack.ipv6 = Some((STACK_IP6, 64));
    config.tcp_apps = BTreeMap::from([(7, AppKind::Echo)]);
    config.udp_apps = BTreeMap::from([(7, AppKind::Echo)]);
    let stack = StackInfo::of(&config);
    let mut pipeline = Pipeline::new(
        config,
        Box::new(VirtualClock::new(1000)),
        Box::new(ScriptedWire::new(frames)),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drops.json");
    let source = SourceKind::Replay {
        file: "scripted frames".into(),
        capture_format: "in-memory".into(),
        speed: Speed::Times(1.0),
        as_host: "10.0.0.1".into(),
        seed: 0,
        apps: vec!["7=echo".into()],
        hop_cost_ns: 1000,
    };
    let header = Header::new(source, stack);
    let mut writer = export::create(&path, Format::Json, &header).unwrap();
    while !pipeline.run_until(10_000_000_000, 1000) {
        for p in pipeline.drain_finished() {
            writer.packet(&p).unwrap();
        }
    }
    let conns = pipeline.finish();
    for p in pipeline.drain_finished() {
        writer.packet(&p).unwrap();
    }
    writer.finish(&conns, pipeline.stats(), None).unwrap();
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for p in packets(&doc) {
        check_packet(p);
    }
    doc
}

fn packet(doc: &Value, id: u64) -> &Value {
    packets(doc)
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no packet {id}"))
}

fn rx_by_summary<'a>(doc: &'a Value, needle: &str) -> &'a Value {
    packets(doc)
        .iter()
        .find(|p| p["dir"] == "rx" && p["summary"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no rx packet with {needle}"))
}

#[test]
fn syn_to_a_port_without_listener_is_dropped_with_the_rst_it_caused() {
    // The ARP request first, so the stack knows where to send its answer.
    let doc = run(
        vec![(0, arp_request()), (10_000, syn(STACK_MAC, 40000, 81))],
        16,
    );
    let syn = rx_by_summary(&doc, ":81 TCP [S]");
    assert_eq!(syn["outcome"]["kind"], "dropped");
    assert_eq!(syn["outcome"]["stage"], "stack");
    assert_eq!(syn["outcome"]["code"], "no_listener");
    let caused = syn["caused"].as_array().unwrap();
    assert_eq!(caused.len(), 1, "{syn}");
    let rst = packet(&doc, caused[0].as_u64().unwrap());
    assert_eq!(rst["dir"], "tx");
    assert!(
        rst["summary"]
            .as_str()
            .unwrap()
            .starts_with("10.0.0.1:81 > 10.0.0.2:40000 TCP [R.] seq=0 ack=1001"),
        "{rst}"
    );
    assert_eq!(rst["outcome"]["kind"], "sent");
    assert_eq!(
        rst["trigger"],
        json!({"kind": "frame", "packet": syn["id"]})
    );
    assert_eq!(
        syn["outcome"]["reason"],
        format!(
            "no socket accepts this segment for TCP port 81; smoltcp answered with RST (packet {})",
            rst["id"]
        )
    );
    // The ARP request was answered, and is consumed.
    let arp = rx_by_summary(&doc, "ARP who-has 10.0.0.1");
    assert_eq!(arp["outcome"]["kind"], "consumed");
    assert_eq!(
        arp["outcome"]["reason"],
        "ARP request for 10.0.0.1 answered"
    );
}

#[test]
fn bad_tcp_checksum_is_dropped_at_the_stack() {
    let mut frame = syn(STACK_MAC, 40000, 7);
    frame[14 + 20 + 16] ^= 0x5a; // the TCP checksum field
    let doc = run(vec![(0, arp_request()), (10_000, frame)], 16);
    let p = rx_by_summary(&doc, ":7 TCP [S]");
    assert!(
        p["summary"].as_str().unwrap().ends_with("bad-checksum"),
        "{p}"
    );
    assert_eq!(p["outcome"]["kind"], "dropped");
    assert_eq!(p["outcome"]["stage"], "stack");
    assert_eq!(p["outcome"]["code"], "bad_checksum");
    assert_eq!(p["outcome"]["reason"], "bad TCP checksum");
    assert!(
        p["caused"].as_array().unwrap().is_empty(),
        "a bad segment must not be answered: {p}"
    );
    assert!(
        p["stack_log"][0]
            .as_str()
            .unwrap()
            .contains("iface: malformed TcpRepr::parse"),
        "{p}"
    );
    // No connection came of it.
    assert!(doc["connections"].as_array().unwrap().is_empty());
}

#[test]
fn frame_for_a_foreign_mac_is_dropped_silently_by_smoltcp_and_explained() {
    let doc = run(
        vec![
            (0, arp_request()),
            (10_000, syn([2, 0, 0, 0, 0, 0x99], 40000, 7)),
        ],
        16,
    );
    let p = rx_by_summary(&doc, ":7 TCP [S]");
    assert_eq!(p["outcome"]["kind"], "dropped");
    assert_eq!(p["outcome"]["code"], "foreign_mac");
    assert_eq!(
        p["outcome"]["reason"],
        "destination MAC 02:00:00:00:00:99 is not ours (02:00:00:00:00:01) nor broadcast; smoltcp ignores it silently"
    );
    assert!(p["stack_log"].is_null(), "smoltcp logs nothing for it: {p}");
    assert!(p["caused"].as_array().unwrap().is_empty());
}

#[test]
fn udp_to_an_unbound_port_is_dropped_with_the_icmp_it_caused() {
    let doc = run(
        vec![
            (0, arp_request()),
            (10_000, udp(9, b"hello")),
            (20_000, udp(7, b"echo me")),
        ],
        16,
    );
    let p = rx_by_summary(&doc, ":9 UDP");
    assert_eq!(p["outcome"]["code"], "port_unreachable");
    let icmp = packet(&doc, p["caused"][0].as_u64().unwrap());
    assert!(
        icmp["summary"]
            .as_str()
            .unwrap()
            .contains("ICMP port unreachable"),
        "{icmp}"
    );
    // The datagram to the echo port is delivered and answered with the same bytes.
    let ok = rx_by_summary(&doc, ":7 UDP");
    assert_eq!(ok["outcome"]["kind"], "delivered");
    let reply = packets(&doc)
        .iter()
        .find(|x| x["dir"] == "tx" && x["payload_of"] == json!([ok["id"]]))
        .expect("echo reply");
    assert!(
        reply["summary"]
            .as_str()
            .unwrap()
            .starts_with("10.0.0.1:7 > 10.0.0.2:5000 UDP len=7"),
        "{reply}"
    );
}

#[test]
fn burst_beyond_the_frame_buffer_is_dropped_and_counted() {
    // Ten SYNs in the same instant; the buffer holds four.
    let mut frames = vec![(0, arp_request())];
    frames.extend((0..10).map(|i| (10_000, syn(STACK_MAC, 40000 + i, 7))));
    let doc = run(frames, 4);
    let dropped: Vec<_> = packets(&doc)
        .iter()
        .filter(|p| p["outcome"]["code"] == "frame_buffer_full")
        .collect();
    assert_eq!(dropped.len(), 6, "4 of 10 fit");
    for p in &dropped {
        assert_eq!(p["outcome"]["stage"], "frame_buffer");
        assert_eq!(
            p["outcome"]["reason"],
            "frame buffer full (4 frames waiting for the stack)"
        );
        assert_eq!(hop_stages(p), ["wire", "frame_buffer"]);
    }
    assert_eq!(
        doc["stats"]["drops"],
        json!([{"stage": "frame_buffer", "code": "frame_buffer_full", "count": 6}])
    );
    // The four that fit were each taken by their own listener: four connections, none reset.
    assert_eq!(doc["connections"].as_array().unwrap().len(), 4);
}

#[test]
fn an_app_that_stops_reading_fills_the_socket_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, doc) = sim_json(
        dir.path(),
        "stall.json",
        &[
            "--app",
            "stall",
            "--clients",
            "1",
            "--bytes",
            "600000",
            "--udp",
            "0",
            "--max-time",
            "5",
        ],
    );
    let full: Vec<_> = packets(&doc)
        .iter()
        .filter(|p| p["outcome"]["code"] == "socket_buffer_full")
        .collect();
    assert!(!full.is_empty(), "{summary}");
    for p in &full {
        assert_eq!(p["outcome"]["stage"], "socket_buffer");
        assert_eq!(
            hop_stages(p),
            ["wire", "frame_buffer", "stack", "socket_buffer"]
        );
        assert!(
            p["outcome"]["reason"]
                .as_str()
                .unwrap()
                .starts_with("socket rx buffer full: "),
            "{p}"
        );
    }
    // Nothing reached the app; what fit waits in the buffers until the run ends.
    assert_eq!(doc["stats"]["outcomes"]["delivered"], 0);
    assert!(doc["stats"]["outcomes"]["in_flight"].as_u64().unwrap() > 0);
    let c = &doc["connections"][0];
    assert_eq!(c["app_read"]["bytes"], 0);
}

#[test]
fn a_small_frame_buffer_drops_but_tcp_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, doc) = sim_json(
        dir.path(),
        "fb.json",
        &["--frame-buffer", "8", "--udp", "0"],
    );
    assert!(summary.contains("frame_buffer_full"), "{summary}");
    assert!(
        summary.contains(
            "2/2 connections completed, 0 reset; app read exactly what the peer sent on 2/2"
        ),
        "{summary}"
    );
    let drops = doc["stats"]["drops"].as_array().unwrap();
    assert!(
        drops
            .iter()
            .any(|d| d["code"] == "frame_buffer_full" && d["count"].as_u64().unwrap() > 0)
    );
}

/// A lone IPv4 fragment (more fragments to come, none does): smoltcp's assembler holds it, the packet waits
/// at `stack`, and when the run ends its datagram is still incomplete: dropped for that, not `malformed`.
/// (Before reassembly was enabled smoltcp refused every fragment as it parsed it.)
#[test]
fn a_lone_ipv4_fragment_is_held_and_ends_incomplete() {
    let mut frag = udp(7, b"first part");
    let mut ip = Ipv4Packet::new_unchecked(&mut frag[14..]);
    ip.set_more_frags(true);
    ip.fill_checksum();
    let doc = run(vec![(0, arp_request()), (10_000, frag)], 16);
    let p = packets(&doc)
        .iter()
        .find(|p| p["dir"] == "rx" && !p["summary"].as_str().unwrap().starts_with("ARP"))
        .expect("the fragment");
    assert_eq!(p["outcome"]["code"], "reassembly_incomplete", "{p}");
    assert_eq!(p["outcome"]["stage"], "stack", "{p}");
    assert_eq!(
        p["outcome"]["reason"],
        "reassembly incomplete: the run ended before datagram id 0x0 from 10.0.0.2 to 10.0.0.1 (UDP) \
         completed (1 fragment held, bytes 0–17; its last fragment never came)"
    );
    let log = p["stack_log"].to_string();
    assert!(
        log.contains(
            "pktpath: held for reassembly: fragment 1 of datagram id 0x0 from 10.0.0.2 to 10.0.0.1 (UDP), \
             bytes 0–17; smoltcp holds it"
        ),
        "{log}"
    );
    assert!(
        log.contains("frag assembler: receiving 18 octets at offset 0"),
        "{log}"
    );
}

/// An echo request from an address the stack has no route back to: smoltcp cannot send the reply
/// ("NoRoute"), and the reason says so instead of "no socket wants it".
#[test]
fn an_echo_request_with_no_route_back_is_dropped_as_no_route() {
    let far = Ipv4Address::new(192, 168, 77, 9);
    let ip = Ipv4Repr {
        src_addr: far,
        dst_addr: STACK_IP,
        next_header: IpProtocol::Icmp,
        payload_len: 12,
        hop_limit: 64,
    };
    let echo = ethernet(STACK_MAC, EthernetProtocol::Ipv4, 32, |b| {
        ip.emit(
            &mut Ipv4Packet::new_unchecked(&mut b[..]),
            &ChecksumCapabilities::default(),
        );
        let icmp = &mut b[20..];
        icmp[..8].copy_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
        icmp[8..12].copy_from_slice(b"ping");
        let mut acc: u32 = icmp
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        icmp[2..4].copy_from_slice(&(!(acc as u16)).to_be_bytes());
    });
    let doc = run(vec![(0, echo)], 16);
    let p = packets(&doc)
        .iter()
        .find(|p| p["dir"] == "rx")
        .expect("the echo request");
    assert_eq!(p["outcome"]["code"], "no_route", "{p}");
    assert_eq!(
        p["outcome"]["reason"],
        "no route between 192.168.77.9 and 10.0.0.1: smoltcp has no route to answer 192.168.77.9"
    );
}

/// A lone IPv6 fragment (next header 44, more to come): held by pktpath's reassembly (smoltcp 0.14 does not
/// reassemble IPv6 over Ethernet), never given to smoltcp, and dropped incomplete when the run ends. (It used
/// to reach smoltcp, which answered with Parameter Problem.)
#[test]
fn a_lone_ipv6_fragment_is_held_and_ends_incomplete() {
    let mut packet = vec![0x60, 0, 0, 0, 0, 16, 44, 64];
    packet.extend_from_slice(&PEER_IP6.octets());
    packet.extend_from_slice(&STACK_IP6.octets());
    // Fragment header: next header UDP, offset 0, more fragments, identification 1; then 8 payload bytes.
    packet.extend_from_slice(&[17, 0, 0x00, 0x01, 0, 0, 0, 1]);
    packet.extend_from_slice(&[0x13, 0x88, 0, 7, 0, 16, 0, 0]);
    let frame = ethernet(STACK_MAC, EthernetProtocol::Ipv6, packet.len(), |b| {
        b.copy_from_slice(&packet)
    });
    let doc = run(vec![(0, neighbour_advert()), (10_000, frame)], 16);
    let p = packets(&doc)
        .iter()
        .find(|p| p["dir"] == "rx" && p["summary"].as_str().unwrap().contains("proto 44"))
        .expect("the fragment");
    assert_eq!(p["outcome"]["code"], "reassembly_incomplete", "{p}");
    assert_eq!(p["outcome"]["stage"], "stack", "{p}");
    assert_eq!(p["caused"], serde_json::json!([]), "{p}");
    assert_eq!(
        p["outcome"]["reason"],
        "reassembly incomplete: the run ended before datagram id 0x1 from fd00::2 to fd00::1 (UDP) completed \
         (1 fragment held, bytes 0–7; its last fragment never came)"
    );
    assert_eq!(
        p["stack_log"],
        serde_json::json!([
            "pktpath: held for reassembly: fragment 1 of datagram id 0x1 from fd00::2 to fd00::1 (UDP), bytes \
             0–7; pktpath holds it (smoltcp 0.14 does not reassemble IPv6 over Ethernet)"
        ])
    );
}

/// An IPv6 next header smoltcp does not handle (253, reserved for experiments) is answered with ICMPv6
/// Parameter Problem: named for that, not "ignored".
#[test]
fn an_unknown_ipv6_next_header_is_answered_with_parameter_problem() {
    let mut packet = vec![0x60, 0, 0, 0, 0, 8, 253, 64];
    packet.extend_from_slice(&PEER_IP6.octets());
    packet.extend_from_slice(&STACK_IP6.octets());
    packet.extend_from_slice(&[0x13, 0x88, 0, 7, 0, 8, 0, 0]);
    let frame = ethernet(STACK_MAC, EthernetProtocol::Ipv6, packet.len(), |b| {
        b.copy_from_slice(&packet)
    });
    let doc = run(vec![(0, neighbour_advert()), (10_000, frame)], 16);
    let p = packets(&doc)
        .iter()
        .find(|p| p["dir"] == "rx" && p["summary"].as_str().unwrap().contains("proto 253"))
        .expect("the packet");
    assert_eq!(p["outcome"]["code"], "parameter_problem", "{p}");
    let reply = p["caused"][0].as_u64().expect("a reply");
    assert_eq!(
        p["outcome"]["reason"],
        format!(
            "IPv6 next header 253 is not handled; smoltcp answered with ICMPv6 Parameter Problem (packet \
             {reply})"
        )
    );
}

/// The peer announcing its MAC, so that the stack can answer it without a Neighbor Solicitation first.
fn neighbour_advert() -> Vec<u8> {
    use smoltcp::wire::{
        Icmpv6Packet, Icmpv6Repr, Ipv6Packet, Ipv6Repr, NdiscNeighborFlags, NdiscRepr,
        RawHardwareAddress,
    };
    let icmp = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
        flags: NdiscNeighborFlags::OVERRIDE | NdiscNeighborFlags::SOLICITED,
        target_addr: PEER_IP6,
        lladdr: Some(RawHardwareAddress::from_bytes(&PEER_MAC)),
    });
    let ip = Ipv6Repr {
        src_addr: PEER_IP6,
        dst_addr: STACK_IP6,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: 255,
    };
    ethernet(
        STACK_MAC,
        EthernetProtocol::Ipv6,
        40 + icmp.buffer_len(),
        |b| {
            ip.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
            icmp.emit(
                &PEER_IP6,
                &STACK_IP6,
                &mut Icmpv6Packet::new_unchecked(&mut b[40..]),
                &ChecksumCapabilities::default(),
            );
        },
    )
}
