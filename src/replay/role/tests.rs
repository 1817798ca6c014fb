//! The survey's tests: the address plan's prefixes, and its port reading (a later IPv4 fragment's payload, or an IPv6
//! fragment, is no transport header).

use super::*;
use crate::replay::testgen::{self, MAC_A, MAC_B};

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];

fn frame(eth: Vec<u8>) -> CapturedFrame {
    testgen::captured(0, eth)
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

/// A TCP segment from `src`:`sport` to `dst`:`dport` with these flags and payload.
fn tcp_v4(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    flags: u8,
    data: &[u8],
) -> CapturedFrame {
    let seg = testgen::tcp(sport, dport, 1000, 2000, flags, data);
    let ip = testgen::ipv4(src, dst, 6, &seg);
    let (dmac, smac) = if src == CLIENT {
        (MAC_A, MAC_B)
    } else {
        (MAC_B, MAC_A)
    };
    frame(testgen::ethernet(dmac, smac, 0x0800, &ip))
}

const ACK: u8 = 0x10;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;

fn sock(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
}

#[test]
fn a_flow_with_no_handshake_is_served_by_its_well_known_port() {
    let mut s = Survey::default();
    // Only the server's data and the client's ack: the capture began mid-connection.
    s.add(&tcp_v4(SERVER, 443, CLIENT, 50000, ACK, &[7; 1200]));
    s.add(&tcp_v4(CLIENT, 50000, SERVER, 443, ACK, b""));
    let server = IpAddr::V4(Ipv4Addr::from(SERVER));
    assert_eq!(
        s.choose(None),
        Some(server),
        "the joined flow counts as its SYN"
    );
    let id = s.identity(server);
    assert_eq!(id.tcp_ports, BTreeSet::from([443]));
    assert_eq!(
        id.joins,
        BTreeMap::from([(
            (sock(SERVER, 443), sock(CLIENT, 50000)),
            JoinHint {
                mss: 1460,
                server_first_seq: Some(1000),
                client_first_seq: Some(1000)
            }
        )])
    );
    // As the client, the stack serves nothing and joins nothing.
    let client = s.identity(IpAddr::V4(Ipv4Addr::from(CLIENT)));
    assert!(client.joins.is_empty() && client.tcp_ports.is_empty());
}

#[test]
fn the_server_of_a_joined_flow_is_the_end_with_many_peers_else_the_lower_port() {
    let mut s = Survey::default();
    // Two high ports: 9000 talks with two client ports, so it serves, though 8999 < 9000 would say otherwise.
    s.add(&tcp_v4(CLIENT, 8999, SERVER, 9000, ACK, b"one"));
    s.add(&tcp_v4(CLIENT, 40001, SERVER, 9000, ACK, b"two"));
    let id = s.identity(IpAddr::V4(Ipv4Addr::from(SERVER)));
    assert_eq!(id.tcp_ports, BTreeSet::from([9000]));
    assert_eq!(id.joins.len(), 2);
    // One flow between two high ports: the lower one serves; the largest payload it sent sets the MSS.
    let mut s = Survey::default();
    s.add(&tcp_v4(CLIENT, 45000, SERVER, 8080, ACK, b"GET"));
    s.add(&tcp_v4(SERVER, 8080, CLIENT, 45000, ACK, &[1; 1600]));
    let id = s.identity(IpAddr::V4(Ipv4Addr::from(SERVER)));
    let joins: Vec<_> = id.joins.iter().map(|(k, h)| (*k, h.mss)).collect();
    assert_eq!(joins, [((sock(SERVER, 8080), sock(CLIENT, 45000)), 1600)]);
    // A port known to listen (a SYN to it elsewhere in the capture) serves, whatever the numbers say.
    let mut s = Survey::default();
    s.add(&tcp_v4(CLIENT, 30000, SERVER, 60000, SYN, b""));
    s.add(&tcp_v4(CLIENT, 20000, SERVER, 60000, ACK, b"mid-flow"));
    let id = s.identity(IpAddr::V4(Ipv4Addr::from(SERVER)));
    assert_eq!(
        id.joins.keys().next(),
        Some(&(sock(SERVER, 60000), sock(CLIENT, 20000)))
    );
}

#[test]
fn flows_with_a_handshake_or_nothing_to_play_are_not_joined() {
    let mut s = Survey::default();
    // A captured SYN: the usual replay, nothing to join.
    s.add(&tcp_v4(CLIENT, 40000, SERVER, 80, SYN, b""));
    s.add(&tcp_v4(CLIENT, 40000, SERVER, 80, ACK, b"GET /"));
    // A stray RST, and a flow of bare ACKs: nothing to play.
    s.add(&tcp_v4(CLIENT, 40002, SERVER, 22, RST | ACK, b""));
    s.add(&tcp_v4(CLIENT, 40003, SERVER, 25, ACK, b""));
    let id = s.identity(IpAddr::V4(Ipv4Addr::from(SERVER)));
    assert!(id.joins.is_empty());
    assert_eq!(id.tcp_ports, BTreeSet::from([80]));
}

/// A TCP segment from `src` to `dst` at a unicast MAC.
fn tcp_to(src: [u8; 4], dst: [u8; 4], flags: u8) -> CapturedFrame {
    let ip = testgen::ipv4(src, dst, 6, &testgen::tcp(40000, 80, 1, 0, flags, b""));
    frame(testgen::ethernet(MAC_B, MAC_A, 0x0800, &ip))
}

#[test]
fn a_peer_seen_only_as_a_destination_is_inside_the_plan() {
    let mut s = Survey::default();
    s.add(&tcp_to(CLIENT, SERVER, 0x02));
    s.add(&tcp_to(SERVER, CLIENT, 0x12));
    // The stack's SYN to a host that never answers (its frames are not in the capture).
    s.add(&tcp_to(SERVER, [10, 0, 1, 9], 0x02));
    let id = s.identity(IpAddr::V4(Ipv4Addr::from(SERVER)));
    assert_eq!(id.prefix_v4, 23, "10.0.0.2 and 10.0.1.9 share 23 bits");
    // A destination at a group MAC (a directed broadcast) is no peer to hold.
    let mut b = Survey::default();
    b.add(&tcp_to(CLIENT, SERVER, 0x02));
    let ip = testgen::ipv4(SERVER, [10, 0, 3, 255], 17, &testgen::udp(1, 2, b""));
    b.add(&frame(testgen::ethernet([0xff; 6], MAC_A, 0x0800, &ip)));
    let id = b.identity(IpAddr::V4(Ipv4Addr::from(SERVER)));
    assert_eq!(id.prefix_v4, 30);
}
