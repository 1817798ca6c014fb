//! The survey's tests: the address plan's prefixes, and its port reading (a later IPv4 fragment's payload, or an IPv6
//! fragment, is no transport header).

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
        renamed: None,
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

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn the_ipv4_prefix_holds_every_peer_and_makes_none_the_broadcast_address() {
    let p = |stack: &str, peers: &[&str]| {
        common_prefix_v4(v4(stack), &peers.iter().map(|a| v4(a)).collect::<Vec<_>>())
    };
    assert_eq!(p("10.77.0.2", &["10.77.0.1"]), 30, "capped at /30");
    assert_eq!(p("10.77.0.2", &["10.77.1.1"]), 23);
    assert_eq!(
        p("145.254.160.237", &["65.208.228.223"]),
        0,
        "the other half"
    );
    assert_eq!(
        p("10.0.0.1", &["10.0.0.3"]),
        29,
        "10.0.0.3 is 10.0.0.0/30's broadcast"
    );
    assert_eq!(p("10.0.0.3", &["10.0.0.1"]), 29, "so is the stack");
    assert_eq!(p("10.0.0.1", &["10.0.0.7"]), 28, "and 10.0.0.7 then /29's");
    assert_eq!(p("10.0.0.1", &["255.255.255.255"]), 30, "not a peer");
    assert_eq!(
        p("0.0.0.1", &["255.255.255.254"]),
        0,
        "/0's broadcast is no host"
    );
}

#[test]
fn the_ipv6_prefix_holds_every_global_peer_at_most_slash_64() {
    let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    let p = |stack: &str, peers: &[&str]| {
        common_prefix_v6(a(stack), &peers.iter().map(|x| a(x)).collect::<Vec<_>>())
    };
    assert_eq!(p("fd77::2", &["fd77::1", "ff02::1:ff00:2"]), 64);
    assert_eq!(p("2001:db8:1::2", &["2001:db8:2::1"]), 46);
    assert_eq!(
        p("2001:db8::2", &["fe80::1", "8000::1"]),
        0,
        "link-local left out"
    );
}

/// A TCP segment from `src` to `dst` at a unicast MAC.
fn tcp_v4(src: [u8; 4], dst: [u8; 4], flags: u8) -> CapturedFrame {
    let ip = testgen::ipv4(src, dst, 6, &testgen::tcp(40000, 80, 1, 0, flags, b""));
    frame(testgen::ethernet(MAC_B, MAC_A, 0x0800, &ip))
}

#[test]
fn a_peer_seen_only_as_a_destination_is_inside_the_plan() {
    let mut s = Survey::default();
    s.add(&tcp_v4(CLIENT, SERVER, 0x02));
    s.add(&tcp_v4(SERVER, CLIENT, 0x12));
    // The stack's SYN to a host that never answers (its frames are not in the capture).
    s.add(&tcp_v4(SERVER, [10, 0, 1, 9], 0x02));
    let id = s.identity(IpAddr::V4(Ipv4Addr::from(SERVER)));
    assert_eq!(id.prefix_v4, 23, "10.0.0.2 and 10.0.1.9 share 23 bits");
    // A destination at a group MAC (a directed broadcast) is no peer to hold.
    let mut b = Survey::default();
    b.add(&tcp_v4(CLIENT, SERVER, 0x02));
    let ip = testgen::ipv4(SERVER, [10, 0, 3, 255], 17, &testgen::udp(1, 2, b""));
    b.add(&frame(testgen::ethernet([0xff; 6], MAC_A, 0x0800, &ip)));
    let id = b.identity(IpAddr::V4(Ipv4Addr::from(SERVER)));
    assert_eq!(id.prefix_v4, 30);
}
