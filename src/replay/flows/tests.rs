//! The tally and the reasons: each flow that played nothing gets the reason the capture and the plan give.

use std::net::Ipv4Addr;

use super::*;
use crate::pipeline::trace::{ConnEvent, Role, StreamDigest};
use crate::replay::role::Survey;
use crate::replay::testgen::{self, MAC_A, MAC_B};

const SYN: u8 = 0x02;
const SYN_ACK: u8 = 0x12;
const PSH_ACK: u8 = 0x18;
const RST: u8 = 0x04;

fn frame(index: u64, src: [u8; 4], dst: [u8; 4], tcp: Vec<u8>) -> CapturedFrame {
    let eth = testgen::ethernet(MAC_B, MAC_A, 0x0800, &testgen::ipv4(src, dst, 6, &tcp));
    let mut f = testgen::captured(index, eth);
    f.t_ns = index;
    f
}

const STACK: [u8; 4] = [10, 0, 0, 2];
const PEER: [u8; 4] = [10, 0, 0, 1];

fn capture() -> Vec<CapturedFrame> {
    let t = testgen::tcp;
    vec![
        // Played: a handshake and a request to port 80.
        frame(0, PEER, STACK, t(40000, 80, 1, 0, SYN, b"")),
        frame(1, STACK, PEER, t(80, 40000, 9, 2, SYN_ACK, b"")),
        frame(2, PEER, STACK, t(40000, 80, 2, 10, PSH_ACK, b"GET /")),
        // Mid-flow: data with no SYN captured.
        frame(3, PEER, STACK, t(40001, 80, 100, 50, PSH_ACK, b"more")),
        // Between two other hosts.
        frame(
            4,
            [10, 0, 0, 7],
            [10, 0, 0, 8],
            t(5000, 443, 1, 1, PSH_ACK, b"tls"),
        ),
        // A SYN the recorded host refused.
        frame(5, PEER, STACK, t(40002, 81, 1, 0, SYN, b"")),
        frame(6, STACK, PEER, t(81, 40002, 0, 2, RST | 0x10, b"")),
    ]
}

fn digest(bytes: u64) -> StreamDigest {
    StreamDigest { bytes, crc32: 0 }
}

#[test]
fn every_flow_that_played_nothing_is_named_with_its_reason() {
    let mut survey = Survey::default();
    let mut tally = Tally::default();
    for f in capture() {
        survey.add(&f);
        tally.add(&f);
    }
    let id = survey.identity(IpAddr::V4(Ipv4Addr::from(STACK)));
    let s = |p: u16| SocketAddr::from((STACK, p));
    let conns = vec![ConnectionRecord {
        id: 1,
        proto: ConnProto::Tcp,
        local: s(80),
        remote: SocketAddr::from((PEER, 40000)),
        role: Role::Accepted,
        app: "recorded".into(),
        events: Vec::<ConnEvent>::new(),
        app_read: digest(5),
        app_written: digest(0),
        events_elided: 0,
    }];
    let got: Vec<(String, WhyNot)> = not_played(&tally, &id, &conns)
        .into_iter()
        .map(|n| (n.to_string(), n.reason))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "tcp 10.0.0.2:80 ⇄ 10.0.0.1:40001 — no SYN captured: the capture starts mid-connection, \
                 and the flow was not joined"
                    .to_string(),
                WhyNot::NoSyn
            ),
            (
                "tcp 10.0.0.8:443 ⇄ 10.0.0.7:5000 — not the stack's host (between two other hosts; --as \
                 10.0.0.8 plays it)"
                    .to_string(),
                WhyNot::NotTheStacksHost
            ),
            (
                "tcp 10.0.0.2:81 ⇄ 10.0.0.1:40002 — the capture holds no payload for it (a SYN the \
                 recorded host refused, 2 frames)"
                    .to_string(),
                WhyNot::NoPayload
            ),
        ]
    );
    let played = &tally.flows[&FlowEnds {
        proto: ConnProto::Tcp,
        a: SocketAddr::from((PEER, 40000)),
        b: s(80),
    }];
    assert_eq!((played.frames, played.bytes_ab, played.bytes_ba), (3, 5, 0));
}

#[test]
fn records_of_an_unplayable_link_type_are_counted_by_link_type() {
    let mut tally = Tally::default();
    for i in 0..3 {
        let mut f = frame(i, PEER, STACK, testgen::tcp(1, 2, 0, 0, SYN, b""));
        f.linktype = 105;
        f.problem = Some(format!("problem {i}"));
        tally.add(&f);
    }
    let u = &tally.unreadable[&105];
    assert_eq!((u.records, u.first_problem.as_str()), (3, "problem 0"));
    assert!(tally.flows.is_empty());
    assert_eq!(linktype_name(105), "link type 105 (IEEE 802.11)");
}

#[test]
fn the_plan_the_listeners_and_the_snap_length_give_their_reasons() {
    let t = testgen::tcp;
    let far = [192, 168, 7, 7];
    let mut cut = frame(4, PEER, STACK, t(40003, 80, 2, 1, PSH_ACK, b"GET /"));
    cut.orig_len += 100;
    cut.truncated = true;
    let frames = [
        // A peer the plan leaves off-link (the identity below is made by hand, /30).
        frame(0, far, STACK, t(40000, 80, 1, 0, SYN, b"")),
        frame(1, far, STACK, t(40000, 80, 2, 1, PSH_ACK, b"data")),
        // Data after a SYN to a port the stack does not listen on.
        frame(2, PEER, STACK, t(40002, 81, 1, 0, SYN, b"")),
        frame(3, PEER, STACK, t(40002, 81, 2, 1, PSH_ACK, b"data")),
        // Data the capture cut short.
        frame(5, PEER, STACK, t(40003, 80, 1, 0, SYN, b"")),
        cut,
        // Nothing in the capture explains why this one would not play.
        frame(6, PEER, STACK, t(40004, 80, 1, 0, SYN, b"")),
        frame(7, PEER, STACK, t(40004, 80, 2, 1, PSH_ACK, b"data")),
    ];
    let mut tally = Tally::default();
    for f in &frames {
        tally.add(f);
    }
    let id = Identity {
        ip: IpAddr::V4(Ipv4Addr::from(STACK)),
        mac: MAC_A,
        mac_seen: true,
        ipv4: Some(Ipv4Addr::from(STACK)),
        ipv6: None,
        prefix_v4: 30,
        prefix_v6: 64,
        tcp_ports: [80].into(),
        udp_ports: Default::default(),
        joins: Default::default(),
    };
    let got: Vec<(WhyNot, String)> = not_played(&tally, &id, &[])
        .into_iter()
        .map(|n| (n.reason, n.detail))
        .collect();
    let reasons: Vec<WhyNot> = got.iter().map(|g| g.0).collect();
    assert_eq!(
        reasons,
        [
            WhyNot::PeerUnreachable,
            WhyNot::Refused,
            WhyNot::Truncated,
            WhyNot::Unexplained
        ],
        "{got:?}"
    );
    assert_eq!(
        got[0].1,
        "peer unreachable: 192.168.7.7 is outside the stack's address plan (no route)"
    );
    assert_eq!(
        got[1].1,
        "the stack refused it: port 81 has no listener (the recorded host answered RST there)"
    );
    assert_eq!(
        got[2].1,
        "the capture cut 1 frame with payload short (snap length): they cannot be injected"
    );
}

#[test]
fn the_hint_for_a_flow_to_a_group_address_names_its_sender() {
    let udp = testgen::udp(8001, 8001, b"hello");
    let ip = testgen::ipv4([10, 0, 9, 5], [224, 0, 0, 7], 17, &udp);
    let eth = testgen::ethernet([0x01, 0, 0x5e, 0, 0, 7], MAC_B, 0x0800, &ip);
    let mut f = frame(0, PEER, STACK, Vec::new());
    f.orig_len = eth.len() as u32;
    f.frame = eth;
    let mut tally = Tally::default();
    tally.add(&f);
    let mut survey = Survey::default();
    survey.add(&f);
    let id = survey.identity(IpAddr::V4(Ipv4Addr::from(STACK)));
    let got: Vec<String> = not_played(&tally, &id, &[])
        .into_iter()
        .map(|n| n.detail)
        .collect();
    assert_eq!(
        got,
        ["not the stack's host (between two other hosts; --as 10.0.9.5 plays it)"]
    );
}
