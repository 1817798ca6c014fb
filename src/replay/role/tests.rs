//! The survey's port reading: a later IPv4 fragment's payload, or an IPv6 fragment, is no transport header.

use super::*;
use crate::replay::testgen::{self, MAC_A, MAC_B};

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];

fn frame(eth: Vec<u8>) -> CapturedFrame {
    CapturedFrame {
        index: 0,
        t_ns: 1,
        timestamped: true,
        interface: 0,
        linktype: 1,
        orig_len: eth.len() as u32,
        frame: eth,
        truncated: false,
        synthetic_l2: false,
        vlan: Vec::new(),
        comment: None,
        problem: None,
    }
}

/// A UDP datagram to `port` in an IPv4 packet with the given flags/fragment-offset word.
fn udp_v4(port: u16, flags_offset: u16) -> CapturedFrame {
    let mut ip = testgen::ipv4(CLIENT, SERVER, 17, &testgen::udp(40000, port, b"data"));
    ip[6..8].copy_from_slice(&flags_offset.to_be_bytes());
    frame(testgen::ethernet(MAC_B, MAC_A, 0x0800, &ip))
}

#[test]
fn only_first_fragments_say_a_udp_port() {
    let mut s = Survey::default();
    s.add(&udp_v4(53, 0x2000)); // more fragments, offset 0: the first fragment, its UDP header is real
    s.add(&udp_v4(7777, 0x0001)); // offset 8 bytes, last fragment: payload
    s.add(&udp_v4(8888, 0x2004)); // offset 32 bytes, more to come: payload
    let ip = IpAddr::V4(Ipv4Addr::from(SERVER));
    assert_eq!(s.identity(ip).udp_ports, BTreeSet::from([53]));
    assert_eq!(s.frames, 3);
}

#[test]
fn ipv6_fragments_name_no_port() {
    // Fragment extension header (44): next header UDP, offset 1 (×8 bytes), then UDP-looking payload.
    let mut payload = vec![17, 0, 0x00, 0x08, 0, 0, 0, 1];
    payload.extend_from_slice(&testgen::udp(40000, 9999, b"data"));
    let ip = testgen::ipv6(testgen::v6(1), testgen::v6(2), 44, &payload);
    let mut s = Survey::default();
    s.add(&frame(testgen::ethernet(MAC_B, MAC_A, 0x86dd, &ip)));
    let server = IpAddr::V6(Ipv6Addr::from(testgen::v6(2)));
    assert!(s.identity(server).udp_ports.is_empty());
}
