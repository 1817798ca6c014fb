//! Exact-bytes tests of every link-type conversion.

use super::*;
use crate::replay::testgen::{self, MAC_A, MAC_B};

const H1: [u8; 6] = [0x02, 0x00, 10, 0, 0, 1];
const H2: [u8; 6] = [0x02, 0x00, 10, 0, 0, 2];

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    testgen::ethernet(dst, src, ethertype, payload)
}

fn ok(n: &Normalised) {
    assert_eq!(n.problem, None, "unexpected problem");
}

#[test]
fn ethernet_passes_through_unchanged() {
    let f = eth(MAC_B, MAC_A, ETHERTYPE_IPV4, &testgen::sample_ipv4());
    let n = normalise(LINKTYPE_ETHERNET, &f, f.len() as u32);
    ok(&n);
    assert_eq!(
        (n.frame.clone(), n.orig_len, n.synthetic_l2),
        (f.clone(), f.len() as u32, false)
    );
    assert!(n.vlan.is_empty());
}

#[test]
fn one_8021q_tag_is_stripped_and_orig_len_shrinks_by_four() {
    let ip = testgen::sample_ipv4();
    let tagged = testgen::ethernet_tagged(MAC_B, MAC_A, &[(0x8100, 0x2064)], ETHERTYPE_IPV4, &ip);
    let n = normalise(LINKTYPE_ETHERNET, &tagged, 1000);
    ok(&n);
    assert_eq!(n.frame, eth(MAC_B, MAC_A, ETHERTYPE_IPV4, &ip));
    // Priority bits (the 0x2000) are not part of the VID.
    assert_eq!(n.vlan, vec![100]);
    assert_eq!(n.orig_len, 996);
}

#[test]
fn qinq_tags_of_every_tpid_are_stripped_outermost_first() {
    let ip = testgen::sample_ipv6();
    for outer in [0x88a8, 0x9100, 0x8100] {
        let tags = [(outer, 10), (0x8100, 20)];
        let tagged = testgen::ethernet_tagged(MAC_B, MAC_A, &tags, ETHERTYPE_IPV6, &ip);
        let n = normalise(LINKTYPE_ETHERNET, &tagged, tagged.len() as u32);
        ok(&n);
        assert_eq!(n.frame, eth(MAC_B, MAC_A, ETHERTYPE_IPV6, &ip));
        assert_eq!(n.vlan, vec![10, 20]);
        assert_eq!(n.orig_len as usize, n.frame.len());
    }
}

#[test]
fn a_tag_cut_by_the_snap_length_stays() {
    let f = [&MAC_B[..], &MAC_A[..], &[0x81, 0x00, 0x00]].concat();
    let n = normalise(LINKTYPE_ETHERNET, &f, 60);
    ok(&n);
    assert_eq!((n.frame, n.orig_len, n.vlan), (f, 60, vec![]));
}

#[test]
fn a_runt_ethernet_frame_is_a_problem() {
    let n = normalise(LINKTYPE_ETHERNET, &[1, 2, 3], 3);
    assert_eq!(
        n.problem.as_deref(),
        Some("3 bytes is shorter than an Ethernet header")
    );
    assert_eq!(n.frame, vec![1, 2, 3]);
}

#[test]
fn raw_ip_picks_the_version_from_the_nibble() {
    let v4 = testgen::sample_ipv4();
    let n = normalise(LINKTYPE_RAW, &v4, v4.len() as u32);
    ok(&n);
    assert_eq!(n.frame, eth(H2, H1, ETHERTYPE_IPV4, &v4));
    assert_eq!((n.orig_len as usize, n.synthetic_l2), (v4.len() + 14, true));

    let v6 = testgen::sample_ipv6();
    let n = normalise(LINKTYPE_RAW, &v6, v6.len() as u32);
    ok(&n);
    let (src, dst) = (unicast_mac(&testgen::v6(1)), unicast_mac(&testgen::v6(2)));
    assert_eq!(n.frame, eth(dst, src, ETHERTYPE_IPV6, &v6));
    assert_eq!(src[0], 0x06);
    assert_ne!(src, dst);
}

#[test]
fn raw_ip_of_another_version_or_empty_is_a_problem() {
    let n = normalise(LINKTYPE_RAW, &[0x50, 0, 0, 0], 4);
    assert_eq!(
        n.problem.as_deref(),
        Some("raw IP packet with IP version 5")
    );
    assert_eq!(
        normalise(LINKTYPE_RAW, &[], 0).problem.as_deref(),
        Some("empty raw IP packet")
    );
}

#[test]
fn linktypes_ipv4_and_ipv6_wrap_without_looking_at_the_nibble() {
    let v4 = testgen::sample_ipv4();
    assert_eq!(
        normalise(LINKTYPE_IPV4, &v4, 40).frame,
        eth(H2, H1, ETHERTYPE_IPV4, &v4)
    );
    let v6 = testgen::sample_ipv6();
    let n = normalise(LINKTYPE_IPV6, &v6, v6.len() as u32);
    ok(&n);
    assert_eq!(n.frame[12..14], [0x86, 0xdd]);
}

#[test]
fn a_truncated_raw_packet_keeps_its_header_delta() {
    let v4 = testgen::sample_ipv4();
    let n = normalise(LINKTYPE_RAW, &v4[..30], 1500);
    ok(&n);
    assert_eq!((n.frame.len(), n.orig_len), (44, 1514));
}

#[test]
fn an_ip_packet_too_short_for_its_addresses_is_a_problem() {
    let v4 = testgen::sample_ipv4();
    let n = normalise(LINKTYPE_RAW, &v4[..18], 40);
    assert_eq!(
        n.problem.as_deref(),
        Some("IP packet of 18 bytes is too short to hold its addresses")
    );
    assert_eq!((n.frame, n.orig_len), (v4[..18].to_vec(), 40));
}

#[test]
fn sll_uses_its_six_byte_address_as_the_source() {
    let v4 = testgen::sample_ipv4();
    let f = testgen::sll(0, &MAC_A, ETHERTYPE_IPV4, &v4);
    let n = normalise(LINKTYPE_LINUX_SLL, &f, f.len() as u32);
    ok(&n);
    assert_eq!(n.frame, eth(H2, MAC_A, ETHERTYPE_IPV4, &v4));
    assert_eq!((n.orig_len as usize, n.synthetic_l2), (f.len() - 2, true));
}

#[test]
fn sll_without_an_ethernet_address_synthesizes_the_source() {
    let v4 = testgen::sample_ipv4();
    let f = testgen::sll(4, &[], ETHERTYPE_IPV4, &v4);
    let n = normalise(LINKTYPE_LINUX_SLL, &f, f.len() as u32);
    ok(&n);
    assert_eq!(n.frame, eth(H2, H1, ETHERTYPE_IPV4, &v4));
}

#[test]
fn sll_arp_goes_to_broadcast() {
    let arp = [0u8; 28];
    let f = testgen::sll(1, &MAC_A, ETHERTYPE_ARP, &arp);
    let n = normalise(LINKTYPE_LINUX_SLL, &f, f.len() as u32);
    ok(&n);
    assert_eq!(n.frame, eth([0xff; 6], MAC_A, ETHERTYPE_ARP, &arp));
}

#[test]
fn sll_pseudo_protocols_and_short_headers_are_problems() {
    let f = testgen::sll(0, &MAC_A, 0x0004, &[0xaa; 10]);
    let n = normalise(LINKTYPE_LINUX_SLL, &f, f.len() as u32);
    assert_eq!(
        n.problem.as_deref(),
        Some("Linux cooked capture with non-Ethernet protocol 0x0004")
    );
    assert!(
        normalise(LINKTYPE_LINUX_SLL, &f[..10], 10)
            .problem
            .is_some()
    );
    assert!(
        normalise(LINKTYPE_LINUX_SLL2, &f[..19], 19)
            .problem
            .is_some()
    );
}

#[test]
fn sll_carries_vlan_tags_too() {
    let v4 = testgen::sample_ipv4();
    let tagged = [&[0x00, 0x07, 0x08, 0x00][..], &v4].concat();
    let f = testgen::sll(0, &MAC_A, 0x8100, &tagged);
    let n = normalise(LINKTYPE_LINUX_SLL, &f, f.len() as u32);
    ok(&n);
    assert_eq!(n.frame, eth(H2, MAC_A, ETHERTYPE_IPV4, &v4));
    assert_eq!(
        (n.vlan.clone(), n.orig_len as usize),
        (vec![7], f.len() - 2 - 4)
    );
}

#[test]
fn sll2_uses_its_address_and_shrinks_by_six() {
    let v6 = testgen::sample_ipv6();
    let f = testgen::sll2(0, &MAC_B, ETHERTYPE_IPV6, &v6);
    let n = normalise(LINKTYPE_LINUX_SLL2, &f, f.len() as u32);
    ok(&n);
    assert_eq!(
        n.frame,
        eth(unicast_mac(&testgen::v6(2)), MAC_B, ETHERTYPE_IPV6, &v6)
    );
    assert_eq!(n.orig_len as usize, f.len() - 6);
}

#[test]
fn null_reads_the_family_in_either_byte_order() {
    let v4 = testgen::sample_ipv4();
    for big in [false, true] {
        let f = testgen::null(2, big, &v4);
        let n = normalise(LINKTYPE_NULL, &f, f.len() as u32);
        ok(&n);
        assert_eq!(n.frame, eth(H2, H1, ETHERTYPE_IPV4, &v4));
        assert_eq!(n.orig_len as usize, f.len() + 10);
    }
    let v6 = testgen::sample_ipv6();
    for family in [24, 28, 30] {
        let n = normalise(LINKTYPE_NULL, &testgen::null(family, false, &v6), 0);
        ok(&n);
        assert_eq!(n.frame[12..14], [0x86, 0xdd]);
    }
}

#[test]
fn loop_is_always_big_endian() {
    let v6 = testgen::sample_ipv6();
    let n = normalise(LINKTYPE_LOOP, &testgen::null(24, true, &v6), 0);
    ok(&n);
    // Little-endian 2 read big-endian is 0x02000000: not a family.
    let n = normalise(LINKTYPE_LOOP, &testgen::null(2, false, &v6), 0);
    assert_eq!(
        n.problem.as_deref(),
        Some("unsupported loopback address family 33554432")
    );
}

#[test]
fn an_unknown_family_or_short_loopback_header_is_a_problem() {
    let n = normalise(LINKTYPE_NULL, &testgen::null(7, false, &[1, 2]), 6);
    assert_eq!(
        n.problem.as_deref(),
        Some("unsupported loopback address family 7")
    );
    assert!(normalise(LINKTYPE_NULL, &[2, 0], 2).problem.is_some());
}

#[test]
fn an_unsupported_link_type_is_passed_on_raw_with_a_problem() {
    let n = normalise(147, &[9, 9, 9], 5);
    assert_eq!(n.problem.as_deref(), Some("unsupported link type 147"));
    assert_eq!(
        (n.frame, n.orig_len, n.synthetic_l2),
        (vec![9, 9, 9], 5, false)
    );
}

#[test]
fn group_destinations_get_their_standard_macs() {
    assert_eq!(destination_mac(&[255, 255, 255, 255]), [0xff; 6]);
    assert_eq!(
        destination_mac(&[224, 0, 0, 251]),
        [0x01, 0x00, 0x5e, 0, 0, 251]
    );
    assert_eq!(
        destination_mac(&[239, 255, 1, 2]),
        [0x01, 0x00, 0x5e, 0x7f, 1, 2]
    );
    let mut ff02 = [0u8; 16];
    ff02[0] = 0xff;
    ff02[1] = 0x02;
    ff02[15] = 0xfb;
    assert_eq!(destination_mac(&ff02), [0x33, 0x33, 0, 0, 0, 0xfb]);
    assert_eq!(destination_mac(&[10, 0, 0, 2]), H2);
}

#[test]
fn synthesized_macs_are_stable_and_distinct() {
    assert_eq!(unicast_mac(&testgen::v6(1)), unicast_mac(&testgen::v6(1)));
    let macs: std::collections::HashSet<[u8; 6]> =
        (0..=255).map(|i| unicast_mac(&testgen::v6(i))).collect();
    assert_eq!(macs.len(), 256);
    assert!(
        macs.iter().all(|m| m[0] & 0x03 == 0x02),
        "locally administered unicast"
    );
}

/// An 802.11 data frame: frame control, duration, the address fields, sequence control, (QoS), LLC/SNAP.
fn dot11(fc1: u8, qos: bool, addrs: &[[u8; 6]], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![if qos { 0x88 } else { 0x08 }, fc1, 0, 0];
    for a in &addrs[..3] {
        f.extend_from_slice(a);
    }
    f.extend_from_slice(&[0x10, 0]);
    if let Some(a4) = addrs.get(3) {
        f.extend_from_slice(a4);
    }
    if qos {
        f.extend_from_slice(&[0, 0]);
    }
    f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
    f.extend_from_slice(payload);
    f
}

const AP: [u8; 6] = [0x02, 0, 0, 0xaa, 0xaa, 0xaa];

#[test]
fn an_80211_data_frame_becomes_the_ethernet_frame_it_bridges_to() {
    let ip = testgen::sample_ipv4();
    let want = eth(H2, H1, ETHERTYPE_IPV4, &ip);
    // ToDS (H1 → AP → H2), FromDS (AP → H1 from H2 … here H2's frame to H1 read back), and both (a WDS).
    let cases = [
        (0x01, vec![AP, H1, H2]),
        (0x02, vec![H2, AP, H1]),
        (0x00, vec![H2, H1, AP]),
        (0x03, vec![AP, AP, H2, H1]),
    ];
    for (fc1, addrs) in cases {
        for qos in [false, true] {
            let f = dot11(fc1, qos, &addrs, &ip);
            let n = normalise(LINKTYPE_IEEE802_11, &f, f.len() as u32);
            ok(&n);
            assert_eq!(n.frame, want, "fc1 {fc1:#x} qos {qos}");
            assert!(n.synthetic_l2);
            assert_eq!(n.orig_len as usize, want.len());
        }
    }
}

#[test]
fn radiotap_and_ppi_headers_are_stripped_with_the_fcs_they_announce() {
    let ip = testgen::sample_ipv4();
    let f = dot11(0x01, false, &[AP, H1, H2], &ip);
    let want = eth(H2, H1, ETHERTYPE_IPV4, &ip);
    // Radiotap: TSFT (8 bytes at offset 8) and Flags with FCS-at-end, then the frame and 4 FCS bytes.
    let mut rt = vec![0, 0, 17, 0, 0x03, 0, 0, 0];
    rt.extend_from_slice(&[0; 8]);
    rt.push(0x10);
    rt.extend_from_slice(&f);
    rt.extend_from_slice(&[1, 2, 3, 4]);
    let n = normalise(LINKTYPE_IEEE802_11_RADIOTAP, &rt, rt.len() as u32);
    ok(&n);
    assert_eq!(n.frame, want);
    // PPI: an 802.11-common field (type 2, 20 bytes) whose flags say an FCS follows.
    let mut ppi = vec![0, 0, 32, 0, 105, 0, 0, 0, 2, 0, 20, 0];
    let mut common = [0u8; 20];
    common[8] = 1;
    ppi.extend_from_slice(&common);
    ppi.extend_from_slice(&f);
    ppi.extend_from_slice(&[1, 2, 3, 4]);
    let n = normalise(LINKTYPE_PPI, &ppi, ppi.len() as u32);
    ok(&n);
    assert_eq!(n.frame, want);
}

#[test]
fn other_80211_frames_are_refused_saying_what_they_are() {
    let problem = |f: &[u8]| normalise(LINKTYPE_IEEE802_11, f, f.len() as u32).problem;
    let beacon = [&[0x80, 0, 0, 0][..], &[0xff; 6], &AP, &AP, &[0, 0]].concat();
    assert_eq!(
        problem(&beacon).as_deref(),
        Some("IEEE 802.11 beacon (management frame): no IP packet")
    );
    let ack = [&[0xd4, 0, 0, 0][..], &H1].concat();
    assert_eq!(
        problem(&ack).as_deref(),
        Some("IEEE 802.11 ACK (control frame): no IP packet")
    );
    let protected = dot11(0x41, false, &[AP, H1, H2], b"ciphertext");
    assert!(
        problem(&protected)
            .unwrap()
            .contains("protected (encrypted)")
    );
    let short = dot11(0x01, false, &[AP, H1, H2], b"")[..20].to_vec();
    assert!(
        problem(&short)
            .unwrap()
            .contains("shorter than its 24-byte header")
    );
    assert_eq!(
        problem(&[0x08]).as_deref(),
        Some("1 bytes is shorter than an 802.11 header")
    );
    for cut in 0..12 {
        let rt = [0u8, 0, 9, 0, 2, 0, 0, 0, 0x10, 0x08, 1];
        let n = normalise(LINKTYPE_IEEE802_11_RADIOTAP, &rt[..cut], cut as u32);
        assert!(n.problem.is_some(), "cut {cut}");
    }
}
