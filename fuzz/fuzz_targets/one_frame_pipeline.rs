//! Fuzz target: one frame into a fresh pipeline, injected at the wire as a replay or a live TAP injects it,
//! through the guarded frame buffer and smoltcp to the real apps behind their AF_UNIX socket pairs (echo on
//! the frame's destination port). The stack takes the frame's destination as its own address, as a replay's
//! survey would, so the frame reaches the sockets rather than being dropped as not for it. The first byte
//! says whether the harness completes the IPv4 and TCP/UDP checksums first, as a replay completes
//! offloaded ones. The frame must get exactly one rx record with an outcome, whatever its bytes.
#![no_main]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use pktpath::pipeline::dissect::{Net, Transport, dissect};
use pktpath::pipeline::stack::StackConfig;
use pktpath::pipeline::{
    AppKind, Arrival, Dir, Nanos, Pipeline, PipelineConfig, VirtualClock, Wire,
};
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

/// The far side: delivers its one frame at time 0, then is done; what the stack sends is let go.
struct OneFrame {
    frame: Option<Vec<u8>>,
}

impl Wire for OneFrame {
    fn advance(&mut self, _now: Nanos) {}
    fn receive(&mut self, _now: Nanos) -> Option<Vec<u8>> {
        self.frame.take()
    }
    fn arrive(&mut self, now: Nanos) -> Option<Arrival> {
        self.receive(now).map(|frame| Arrival {
            capture_frame: Some(1),
            ..Arrival::inject(frame)
        })
    }
    fn transmit(&mut self, _now: Nanos, _frame: &[u8]) {}
    fn next_event(&self) -> Option<Nanos> {
        self.frame.as_ref().map(|_| 0)
    }
    fn is_done(&self) -> bool {
        self.frame.is_none()
    }
}

/// Completes the IPv4 header checksum and the TCP or UDP checksum of an Ethernet frame, where they parse.
fn complete_checksums(frame: &mut [u8]) {
    let Some(l3) = frame.get_mut(14..) else {
        return;
    };
    let (src, dst, protocol, payload): (IpAddress, IpAddress, _, &mut [u8]) = match l3.first() {
        Some(b) if b >> 4 == 4 => {
            let Ok(mut ip) = Ipv4Packet::new_checked(&mut *l3) else {
                return;
            };
            ip.fill_checksum();
            let (src, dst, protocol) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
            let header = ip.header_len() as usize;
            let total = usize::from(ip.total_len()).min(l3.len());
            if header > total {
                return;
            }
            (src.into(), dst.into(), protocol, &mut l3[header..total])
        }
        Some(b) if b >> 4 == 6 => {
            let Ok(ip) = Ipv6Packet::new_checked(&mut *l3) else {
                return;
            };
            let (src, dst, protocol) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
            let total = (40 + usize::from(ip.payload_len())).min(l3.len());
            (src.into(), dst.into(), protocol, &mut l3[40..total])
        }
        _ => return,
    };
    match protocol {
        IpProtocol::Tcp => {
            if let Ok(mut tcp) = TcpPacket::new_checked(payload) {
                tcp.fill_checksum(&src, &dst);
            }
        }
        IpProtocol::Udp => {
            if let Ok(mut udp) = UdpPacket::new_checked(payload) {
                udp.fill_checksum(&src, &dst);
            }
        }
        _ => {}
    }
}

fn is_host(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast())
}

/// A stack that is the frame's destination (its MAC and IP) with echo on its destination port.
fn config_for(frame: &[u8]) -> PipelineConfig {
    let info = dissect(frame);
    let mut stack = StackConfig::default();
    if info.dst_mac[0] & 1 == 0 && info.dst_mac != [0; 6] {
        stack.mac = info.dst_mac;
    }
    // Only an address a host can own: smoltcp refuses (panics on) a broadcast or multicast one, and a
    // replay's survey never picks one (`role::is_host`).
    match info.net {
        Net::Ipv4 { dst, .. } if is_host(dst) => stack.ipv4 = (dst, 24),
        Net::Arp { target_ip, .. } if is_host(target_ip) => stack.ipv4 = (target_ip, 24),
        Net::Ipv6 { dst, .. } if !dst.is_multicast() && !dst.is_unspecified() => {
            stack.ipv6 = Some((dst, 64))
        }
        _ => {}
    }
    let port = match info.transport {
        Transport::Tcp { dst_port, .. } | Transport::Udp { dst_port, .. } if dst_port != 0 => {
            dst_port
        }
        _ => 7,
    };
    PipelineConfig::serving(stack, 256, BTreeMap::from([(port, AppKind::Echo)]))
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, frame)) = data.split_first() else {
        return;
    };
    let mut frame = frame.to_vec();
    if choice & 1 == 1 {
        complete_checksums(&mut frame);
    }
    let config = config_for(&frame);
    let wire = OneFrame { frame: Some(frame) };
    let mut pipeline = Pipeline::new(config, Box::new(VirtualClock::new(1000)), Box::new(wire));
    // Ten seconds of virtual time: the echo, its ACKs and a retransmission or two; bounded in steps too.
    let _ = pipeline.run_until(10_000_000_000, 10_000);
    pipeline.finish();
    let records: Vec<_> = pipeline.drain_finished().collect();
    let rx: Vec<_> = records.iter().filter(|p| p.dir == Dir::Rx).collect();
    assert_eq!(rx.len(), 1, "one frame in, {} rx records", rx.len());
    assert!(rx[0].outcome.is_some(), "the frame has no outcome");
    assert_eq!(rx[0].capture_frame, Some(1));
    for p in &records {
        assert!(p.outcome.is_some(), "packet {} has no outcome", p.id);
    }
    assert!(
        records.len() <= 21 + 50,
        "{} records for one frame",
        records.len()
    );
});
