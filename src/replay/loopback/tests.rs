//! The rename's tests: which end is the peer, and checksums that verify afterwards.

use super::*;
use crate::replay::testgen;

const LO: [u8; 4] = [127, 0, 0, 1];

/// A TCP segment 127.0.0.1:`sp` → 127.0.0.1:`dp` with a correct checksum (made by renaming nothing).
fn tcp_v4(sp: u16, dp: u16, flags: u8) -> Vec<u8> {
    let mut p = testgen::ipv4(LO, LO, 6, &testgen::tcp(sp, dp, 1, 0, flags, b"GET /"));
    let ip = read_ip(ETHERTYPE_IPV4, &p).unwrap();
    fix_checksums(&mut p, &ip);
    p
}

/// The Internet checksum over the IPv4 header, and over the TCP pseudo-header and segment, both verify.
fn verifies(p: &[u8]) -> bool {
    let header = fold(sum(&p[..20])) == 0xffff;
    let pseudo = sum(&p[12..20]) + 6 + (p.len() - 20) as u32;
    header && fold(pseudo + sum(&p[20..])) == 0xffff
}

#[test]
fn the_syn_sender_is_the_peer_in_both_directions() {
    let mut r = Renamer::default();
    let mut syn = tcp_v4(47032, 8000, 0x02);
    let got = r.apply(ETHERTYPE_IPV4, &mut syn).unwrap();
    assert_eq!(
        got.to_string(),
        "peer 127.0.0.1:47032 renamed 192.0.2.2 (a loopback recording: both ends had the same address)"
    );
    assert_eq!((&syn[12..16], &syn[16..20]), (&[192, 0, 2, 2][..], &LO[..]));
    assert!(verifies(&syn));
    let mut reply = tcp_v4(8000, 47032, 0x12);
    r.apply(ETHERTYPE_IPV4, &mut reply).unwrap();
    assert_eq!(
        (&reply[12..16], &reply[16..20]),
        (&LO[..], &[192, 0, 2, 2][..])
    );
    assert!(verifies(&reply));
}

#[test]
fn without_a_handshake_the_higher_port_is_the_peer_and_different_ends_are_left_alone() {
    let mut r = Renamer::default();
    let mut data = tcp_v4(8000, 50000, 0x18);
    let got = r.apply(ETHERTYPE_IPV4, &mut data).unwrap();
    assert_eq!(got.port, Some(50000));
    assert_eq!(&data[16..20], &[192, 0, 2, 2]);
    let mut other = testgen::ipv4(LO, [127, 0, 0, 2], 6, &testgen::tcp(1, 2, 1, 0, 0x02, b""));
    assert_eq!(r.apply(ETHERTYPE_IPV4, &mut other), None);
}

#[test]
fn ipv6_is_renamed_to_the_documentation_prefix_with_its_checksum() {
    let lo = Ipv6Addr::LOCALHOST.octets();
    let mut p = testgen::ipv6(lo, lo, 17, &testgen::udp(40000, 53, b"q"));
    let mut r = Renamer::default();
    let got = r.apply(ETHERTYPE_IPV6, &mut p).unwrap();
    assert_eq!(
        got.to_string().split(" (").next(),
        Some("peer [::1]:40000 renamed 2001:db8::2, the stack's end 2001:db8::1")
    );
    assert_eq!(
        (&p[8..24], &p[24..40]),
        (&PEER_V6.octets()[..], &STACK_V6.octets()[..])
    );
    let pseudo = sum(&p[8..40]) + 17 + (p.len() - 40) as u32;
    assert_eq!(fold(pseudo + sum(&p[40..])), 0xffff);
}

#[test]
fn an_echo_request_renames_its_sender_and_the_reply_its_receiver() {
    let echo = |t: u8| testgen::ipv4(LO, LO, 1, &[t, 0, 0xf7, 0xff, 0, 0, 0, 0]);
    let mut r = Renamer::default();
    let mut request = echo(8);
    let got = r.apply(ETHERTYPE_IPV4, &mut request).unwrap();
    assert_eq!(got.port, None);
    assert!(
        got.to_string()
            .starts_with("peer 127.0.0.1 renamed 192.0.2.2 (")
    );
    assert_eq!(&request[12..16], &[192, 0, 2, 2]);
    assert_eq!(fold(sum(&request[..20])), 0xffff, "header checksum");
    // ICMP's own checksum covers no addresses: it is left as it was.
    assert_eq!(&request[20..], &[8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
    let mut reply = echo(0);
    r.apply(ETHERTYPE_IPV4, &mut reply).unwrap();
    assert_eq!(
        (&reply[12..16], &reply[16..20]),
        (&LO[..], &[192, 0, 2, 2][..])
    );
    let mut other = echo(3);
    assert_eq!(
        r.apply(ETHERTYPE_IPV4, &mut other),
        None,
        "an unreachable says nothing"
    );
}
