use super::*;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetAddress, Icmpv4Packet, Icmpv4Repr};

use crate::pipeline::trace::{Hop, Outcome, Trigger};
use crate::replay::testgen::{MAC_A, MAC_B, ethernet, ipv4, ipv6, tcp, udp, v6};

// ---- parsing and display ----

fn norm(input: &str) -> String {
    match Filter::parse(input) {
        Ok(f) => f.to_string(),
        Err(e) => panic!("{input:?} failed: {e}"),
    }
}

fn err(input: &str) -> String {
    match Filter::parse(input) {
        Ok(f) => panic!("{input:?} parsed as {f}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_keyword_parses_and_normalises() {
    let cases = [
        ("tcp", "tcp"),
        ("udp", "udp"),
        ("icmp", "icmp"),
        ("arp", "arp"),
        ("ip", "ip"),
        ("ip6", "ip6"),
        ("syn", "syn"),
        ("fin", "fin"),
        ("rst", "rst"),
        ("ack", "ack"),
        ("psh", "psh"),
        ("rx", "rx"),
        ("tx", "tx"),
        ("dropped", "dropped"),
        ("delivered", "delivered"),
        ("consumed", "consumed"),
        ("sent", "sent"),
        ("in_flight", "in_flight"),
        ("host 10.0.0.1", "host 10.0.0.1"),
        ("host 2001:DB8::1", "host 2001:db8::1"),
        ("src host 10.0.0.1", "src host 10.0.0.1"),
        ("dst host ::1", "dst host ::1"),
        ("port 80", "port 80"),
        ("port 0", "port 0"),
        ("port 65535", "port 65535"),
        ("port 007", "port 7"),
        ("src port 40000", "src port 40000"),
        ("dst port 7", "dst port 7"),
        ("stage wire", "stage wire"),
        ("stage frame_buffer", "stage frame_buffer"),
        ("stage stack", "stage stack"),
        ("stage socket_buffer", "stage socket_buffer"),
        ("stage conn_buffer", "stage conn_buffer"),
        ("stage app", "stage app"),
        ("flow 0", "flow 0"),
        ("flow 18446744073709551615", "flow 18446744073709551615"),
    ];
    for (input, want) in cases {
        assert_eq!(norm(input), want, "{input:?}");
    }
}

#[test]
fn keywords_and_arguments_are_case_insensitive() {
    assert_eq!(norm("TCP"), "tcp");
    assert_eq!(norm("Tcp AND Udp Or NOT Icmp"), "tcp and udp or not icmp");
    assert_eq!(norm("SRC HOST 10.0.0.1"), "src host 10.0.0.1");
    assert_eq!(norm("Dst Port 7"), "dst port 7");
    assert_eq!(norm("STAGE Frame_Buffer"), "stage frame_buffer");
    assert_eq!(norm("Flow 3"), "flow 3");
    assert_eq!(norm("DROPPED or In_Flight"), "dropped or in_flight");
    assert_eq!(norm("RX and TX"), "rx and tx");
}

#[test]
fn empty_input_matches_everything() {
    for input in ["", "   ", "\t\n"] {
        let f = Filter::parse(input).unwrap();
        assert!(f.is_match_all());
        assert_eq!(f.expr(), None);
        assert_eq!(f.to_string(), "");
        assert!(f.matches(&rec(Dir::Rx, vec![])));
    }
    assert_eq!(Filter::parse("").unwrap(), Filter::default());
}

fn p(input: &str) -> Expr {
    Filter::parse(input).unwrap().expr().unwrap().clone()
}

fn pred(p: Pred) -> Expr {
    Expr::Pred(p)
}

const TCP: Expr = Expr::Pred(Pred::Proto(Proto::Tcp));
const UDP: Expr = Expr::Pred(Pred::Proto(Proto::Udp));
const ICMP: Expr = Expr::Pred(Pred::Proto(Proto::Icmp));

fn not(e: Expr) -> Expr {
    Expr::Not(Box::new(e))
}

#[test]
fn precedence_not_over_and_over_or() {
    let port7 = pred(Pred::Port(Side::Any, 7));
    assert_eq!(
        p("tcp or udp and port 7"),
        Expr::Or(vec![TCP, Expr::And(vec![UDP, port7.clone()])])
    );
    assert_eq!(p("tcp or udp and port 7"), p("tcp or (udp and port 7)"));
    assert_ne!(p("tcp or udp and port 7"), p("(tcp or udp) and port 7"));
    assert_eq!(
        p("tcp and udp or port 7"),
        Expr::Or(vec![Expr::And(vec![TCP, UDP]), port7.clone()])
    );
    assert_eq!(p("not tcp and udp"), Expr::And(vec![not(TCP), UDP]));
    assert_eq!(p("not tcp and udp"), p("(not tcp) and udp"));
    assert_eq!(p("not tcp or udp"), Expr::Or(vec![not(TCP), UDP]));
    assert_eq!(p("not not tcp"), not(not(TCP)));
    assert_eq!(
        p("tcp and not udp or icmp"),
        Expr::Or(vec![Expr::And(vec![TCP, not(UDP)]), ICMP])
    );
}

#[test]
fn parentheses_group_and_same_operator_chains_flatten() {
    let port7 = pred(Pred::Port(Side::Any, 7));
    assert_eq!(
        p("(tcp or udp) and port 7"),
        Expr::And(vec![Expr::Or(vec![TCP, UDP]), port7])
    );
    assert_eq!(p("not (tcp or udp)"), not(Expr::Or(vec![TCP, UDP])));
    assert_eq!(p("((tcp))"), TCP);
    assert_eq!(p("tcp or udp or icmp"), Expr::Or(vec![TCP, UDP, ICMP]));
    assert_eq!(p("tcp or (udp or icmp)"), p("tcp or udp or icmp"));
    assert_eq!(p("(tcp and udp) and icmp"), Expr::And(vec![TCP, UDP, ICMP]));
    assert_eq!(norm("(tcp)"), "tcp");
    assert_eq!(norm("(tcp or udp) and port 7"), "(tcp or udp) and port 7");
    assert_eq!(norm("tcp or (udp and port 7)"), "tcp or udp and port 7");
    assert_eq!(norm("not (tcp or udp)"), "not (tcp or udp)");
    assert_eq!(norm("not (tcp and udp)"), "not (tcp and udp)");
    assert_eq!(norm("not (not tcp)"), "not not tcp");
    assert_eq!(norm("(not tcp) and udp"), "not tcp and udp");
    assert_eq!(
        norm("((tcp or udp) and (syn or fin)) or not (rx)"),
        "(tcp or udp) and (syn or fin) or not rx"
    );
}

#[test]
fn symbol_aliases() {
    assert_eq!(p("tcp && udp"), p("tcp and udp"));
    assert_eq!(p("tcp || udp"), p("tcp or udp"));
    assert_eq!(p("!tcp"), p("not tcp"));
    assert_eq!(p("!(tcp||udp)&&!icmp"), p("not (tcp or udp) and not icmp"));
    assert_eq!(p("!!tcp"), not(not(TCP)));
    assert_eq!(norm("tcp&&port 80||!udp"), "tcp and port 80 or not udp");
}

#[test]
fn display_round_trips() {
    let inputs = [
        "tcp or udp and port 7",
        "(tcp or udp) and port 7",
        "not (tcp and syn) or (rx and not stage app)",
        "!(!(host 10.0.0.1 || dst host 2001:db8::2) && src port 1)",
        "(((dropped)))",
        "flow 3 and (stage wire or stage stack) and not (fin or rst)",
    ];
    for input in inputs {
        let f = Filter::parse(input).unwrap();
        let again = Filter::parse(&f.to_string()).unwrap();
        assert_eq!(again, f, "{input:?} → {f}");
        assert_eq!(again.to_string(), f.to_string());
    }
}

#[test]
fn host_and_port_arguments() {
    assert_eq!(
        p("host 10.0.0.1"),
        pred(Pred::Host(Side::Any, "10.0.0.1".parse().unwrap()))
    );
    assert_eq!(
        p("dst host fe80::1"),
        pred(Pred::Host(Side::Dst, "fe80::1".parse().unwrap()))
    );
    assert_eq!(p("src port 53"), pred(Pred::Port(Side::Src, 53)));
    assert_eq!(
        p("stage socket_buffer"),
        pred(Pred::Stage(Stage::SocketBuffer))
    );
    assert_eq!(p("flow 12"), pred(Pred::Flow(12)));
    assert_eq!(p("in_flight"), pred(Pred::Outcome(OutcomeKind::InFlight)));
}

// ---- errors ----

#[test]
fn errors_have_exact_position_and_message() {
    let cases = [
        // unknown word
        (
            "tcpx",
            "at 0: unknown word 'tcpx', expected a predicate such as tcp, udp, icmp, arp, host, port, \
             syn, rx, tx, dropped, stage or flow",
        ),
        (
            "tcp and foo",
            "at 8: unknown word 'foo', expected a predicate such as tcp, udp, icmp, arp, host, port, \
             syn, rx, tx, dropped, stage or flow",
        ),
        // missing argument
        (
            "tcp and port",
            "at 12: expected a port number after 'port', found end of input",
        ),
        (
            "host",
            "at 4: expected an IPv4 or IPv6 address after 'host', found end of input",
        ),
        (
            "host and tcp",
            "at 5: expected an IPv4 or IPv6 address after 'host', found 'and'",
        ),
        (
            "(port)",
            "at 5: expected a port number after 'port', found ')'",
        ),
        (
            "stage",
            "at 5: expected a stage name after 'stage', found end of input",
        ),
        (
            "flow",
            "at 4: expected a connection id after 'flow', found end of input",
        ),
        (
            "src",
            "at 3: expected 'host' or 'port' after 'src', found end of input",
        ),
        (
            "dst tcp",
            "at 4: expected 'host' or 'port' after 'dst', found 'tcp'",
        ),
        (
            "src host",
            "at 8: expected an IPv4 or IPv6 address after 'src host', found end of input",
        ),
        // wrong argument
        (
            "tcp and port http",
            "at 13: expected a port number after 'port', found 'http'",
        ),
        (
            "port -1",
            "at 5: expected a port number after 'port', found '-1'",
        ),
        (
            "dst port +80",
            "at 9: expected a port number after 'dst port', found '+80'",
        ),
        (
            "flow x1",
            "at 5: expected a connection id after 'flow', found 'x1'",
        ),
        (
            "flow 99999999999999999999",
            "at 5: connection id '99999999999999999999' is out of range",
        ),
        (
            "stage nic",
            "at 6: unknown stage 'nic', expected one of wire, frame_buffer, stack, socket_buffer, \
             conn_buffer, app",
        ),
        // bad IP
        (
            "host 10.0.0",
            "at 5: expected an IPv4 or IPv6 address after 'host', found '10.0.0'",
        ),
        (
            "host 10.0.0.256",
            "at 5: expected an IPv4 or IPv6 address after 'host', found '10.0.0.256'",
        ),
        (
            "src host 2001:db8:::1",
            "at 9: expected an IPv4 or IPv6 address after 'src host', found '2001:db8:::1'",
        ),
        // port out of range
        (
            "port 65536",
            "at 5: port number '65536' is out of range, expected 0 to 65535",
        ),
        (
            "src port 99999999999999999999999",
            "at 9: port number '99999999999999999999999' is out of range, expected 0 to 65535",
        ),
        // unbalanced parentheses
        (
            "(tcp",
            "at 4: unbalanced parenthesis: expected ')' to close '(' at 0, found end of input",
        ),
        (
            "tcp and ((udp)",
            "at 14: unbalanced parenthesis: expected ')' to close '(' at 8, found end of input",
        ),
        ("tcp)", "at 3: unbalanced parenthesis: unmatched ')'"),
        (")", "at 0: expected an expression, found ')'"),
        (
            "(tcp udp)",
            "at 5: expected 'and', 'or' or ')' to close '(' at 0, found 'udp'",
        ),
        // trailing tokens
        (
            "tcp udp",
            "at 4: expected 'and', 'or' or end of input, found 'udp'",
        ),
        (
            "port 80 443",
            "at 8: expected 'and', 'or' or end of input, found '443'",
        ),
        (
            "tcp (udp)",
            "at 4: expected 'and', 'or' or end of input, found '('",
        ),
        (
            "tcp !udp",
            "at 4: expected 'and', 'or' or end of input, found '!'",
        ),
        // empty parentheses
        (
            "()",
            "at 1: empty parentheses, expected an expression between '(' and ')'",
        ),
        (
            "tcp and ( )",
            "at 10: empty parentheses, expected an expression between '(' and ')'",
        ),
        // missing operands
        ("and", "at 0: expected an expression, found 'and'"),
        (
            "tcp and",
            "at 7: expected an expression after 'and', found end of input",
        ),
        (
            "tcp ||",
            "at 6: expected an expression after '||', found end of input",
        ),
        (
            "tcp or and udp",
            "at 7: expected an expression after 'or', found 'and'",
        ),
        (
            "not",
            "at 3: expected an expression after 'not', found end of input",
        ),
        ("! )", "at 2: expected an expression after '!', found ')'"),
        ("(or)", "at 1: expected an expression after '(', found 'or'"),
        // lone symbols
        ("tcp & udp", "at 4: unexpected '&', expected '&&'"),
        ("tcp | udp", "at 4: unexpected '|', expected '||'"),
        ("tcp |", "at 4: unexpected '|', expected '||'"),
        ("&", "at 0: unexpected '&', expected '&&'"),
        ("tcp and &", "at 8: unexpected '&', expected '&&'"),
        ("port &", "at 5: unexpected '&', expected '&&'"),
        ("src |", "at 4: unexpected '|', expected '||'"),
        ("(tcp | udp)", "at 5: unexpected '|', expected '||'"),
        ("(tcp &&& udp)", "at 7: unexpected '&', expected '&&'"),
        // the first problem in reading order wins, even before a lone symbol
        (
            "foo & bar",
            "at 0: unknown word 'foo', expected a predicate such as tcp, udp, icmp, arp, host, port, \
             syn, rx, tx, dropped, stage or flow",
        ),
        (
            "port x |",
            "at 5: expected a port number after 'port', found 'x'",
        ),
        // long and odd tokens are shortened and escaped
        (
            "abcdefghijklmnopqrstuvwxyz0123",
            "at 0: unknown word 'abcdefghijklmnopqrstuvwx…', expected a predicate such as tcp, udp, \
             icmp, arp, host, port, syn, rx, tx, dropped, stage or flow",
        ),
        (
            "tcp and port \u{7}",
            "at 13: expected a port number after 'port', found '\\u{7}'",
        ),
        (
            "tcp and port ü",
            "at 13: expected a port number after 'port', found 'ü'",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(err(input), want, "{input:?}");
    }
}

#[test]
fn error_fields() {
    let e = Filter::parse("tcp and port http").unwrap_err();
    assert_eq!(e.offset, 13);
    assert_eq!(
        e.message,
        "expected a port number after 'port', found 'http'"
    );
    // The offset is in bytes: a multi-byte word before the problem counts its bytes.
    let e = Filter::parse("host ü").unwrap_err();
    assert_eq!(e.offset, 5);
    let e = Filter::parse("(ü").unwrap_err();
    assert_eq!(e.offset, 1);
    let e = Filter::parse("(tcp or ü)").unwrap_err();
    assert_eq!(e.offset, 8);
    let e = Filter::parse("(tcp ü").unwrap_err();
    assert_eq!(e.offset, 5);
    let e = Filter::parse("(tcp and udp ü").unwrap_err();
    assert_eq!(e.offset, 13);
    let e = Filter::parse("tcp\u{a0}and udp").unwrap_err();
    assert_eq!(e.offset, 0, "a non-ASCII blank is part of a word: {e}");
}

#[test]
fn from_str_is_parse() {
    let f: Filter = "TCP && !syn".parse().unwrap();
    assert_eq!(f, Filter::parse("tcp and not syn").unwrap());
    assert_eq!(
        "tcp (".parse::<Filter>().unwrap_err().to_string(),
        "at 4: expected 'and', 'or' or end of input, found '('"
    );
}

#[test]
fn nesting_is_limited_not_a_stack_overflow() {
    let ok = format!("{}tcp{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(norm(&ok), "tcp");
    let deep = format!("{}tcp{}", "(".repeat(100_000), ")".repeat(100_000));
    assert_eq!(
        err(&deep),
        format!("at {MAX_DEPTH}: expression nested too deeply (more than {MAX_DEPTH} levels)")
    );
    let nots = "!".repeat(10_000) + "tcp";
    assert!(err(&nots).starts_with(&format!("at {MAX_DEPTH}: expression nested too deeply")));
    // Long flat chains are fine: they do not nest.
    let chain = vec!["tcp"; 50_000].join(" or ");
    let f = Filter::parse(&chain).unwrap();
    assert!(matches!(f.expr(), Some(Expr::Or(v)) if v.len() == 50_000));
}

#[test]
fn prefixes_and_garbage_never_panic() {
    let valid = [
        "(tcp or udp) and not (src host 10.0.0.1 || dst port 80) && !stage frame_buffer",
        "!(!(host 2001:db8::1 or flow 7) and (syn || fin || rst)) or dropped and in_flight",
        "src port 40000 and dst host 10.0.0.2 and stage app and (rx or tx) and not consumed",
    ];
    let pkts = sample_packets();
    for v in valid {
        Filter::parse(v).unwrap();
        for end in 0..=v.len() {
            let Some(prefix) = v.get(..end) else { continue };
            if let Ok(f) = Filter::parse(prefix) {
                // A filter that parses displays as one that parses to the same thing.
                assert_eq!(Filter::parse(&f.to_string()).unwrap(), f, "{prefix:?}");
                for pkt in &pkts {
                    f.matches(pkt);
                }
            }
            // Every suffix too (starts mid-expression).
            let _ = v.get(end..).map(Filter::parse);
        }
    }
    // Random strings from a small deterministic generator: bytes of all kinds, and filter-ish tokens.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let words = [
        "tcp", "and", "or", "not", "(", ")", "!", "&&", "||", "&", "|", "host", "port", "src",
        "dst", "stage", "flow", "app", "10.0.0.1", "::1", "80", "99999", "ü", " ", "syn",
        "dropped",
    ];
    for _ in 0..3000 {
        let len = (next() % 40) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let s = String::from_utf8_lossy(&bytes);
        if let Err(e) = Filter::parse(&s) {
            // The offset is a char boundary with only ASCII before it, so it is also the column.
            assert!(
                s.get(..e.offset).is_some_and(|head| head.is_ascii()),
                "{s:?}: {e}"
            );
            assert!(!e.to_string().contains('\n'));
        }
        let n = (next() % 12) as usize;
        let s: Vec<&str> = (0..n)
            .map(|_| words[(next() % words.len() as u64) as usize])
            .collect();
        let s = s.join(" ");
        match Filter::parse(&s) {
            Ok(f) => {
                assert_eq!(Filter::parse(&f.to_string()).unwrap(), f, "{s:?}");
                for pkt in &pkts {
                    f.matches(pkt);
                }
            }
            Err(e) => assert!(
                s.get(..e.offset).is_some_and(|h| h.is_ascii()),
                "{s:?}: {e}"
            ),
        }
    }
}

// ---- matching ----

const CLI: [u8; 4] = [10, 0, 0, 2];
const SRV: [u8; 4] = [10, 0, 0, 1];

fn rec(dir: Dir, frame: Vec<u8>) -> PacketRecord {
    PacketRecord::new(1, dir, frame, Trigger::Wire)
}

fn eth4(payload: &[u8]) -> Vec<u8> {
    ethernet(MAC_B, MAC_A, 0x0800, payload)
}

fn tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8) -> Vec<u8> {
    eth4(&ipv4(src, dst, 6, &tcp(sport, dport, 1000, 1, flags, b"")))
}

fn arp_request() -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(MAC_A),
        source_protocol_addr: CLI.into(),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: SRV.into(),
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
    ethernet([0xff; 6], MAC_A, 0x0806, &buf)
}

fn icmp4_echo() -> Vec<u8> {
    let echo = Icmpv4Repr::EchoRequest {
        ident: 1,
        seq_no: 2,
        data: b"ping",
    };
    let mut buf = vec![0u8; echo.buffer_len()];
    echo.emit(
        &mut Icmpv4Packet::new_unchecked(&mut buf[..]),
        &ChecksumCapabilities::default(),
    );
    eth4(&ipv4(CLI, SRV, 1, &buf))
}

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// Indices: 0 rx TCP SYN 10.0.0.2:40000 → 10.0.0.1:7, wire→app, delivered, flow 1;
/// 1 tx TCP SYN-ACK 10.0.0.1:7 → 10.0.0.2:40000, sent, flow 1;
/// 2 rx TCP FIN|ACK, dropped at frame_buffer, flow 2;
/// 3 tx TCP RST|ACK, no outcome yet;
/// 4 rx UDP over IPv6 2001:db8::1:5353 → 2001:db8::2:53, consumed at the stack;
/// 5 rx UDP over IPv4 10.0.0.2:7 → 10.0.0.1:9, in_flight;
/// 6 rx ARP request 10.0.0.2 asks for 10.0.0.1, consumed;
/// 7 rx ICMPv4 echo request 10.0.0.2 → 10.0.0.1;
/// 8 rx ICMPv6 echo request 2001:db8::1 → 2001:db8::2;
/// 9 rx a truncated frame (5 bytes), dropped at the wire.
fn sample_packets() -> Vec<PacketRecord> {
    let outcome = |kind, stage| {
        Some(Outcome {
            kind,
            stage,
            reason: None,
            note: None,
        })
    };
    let hops = |stages: &[Stage]| -> Vec<Hop> {
        stages
            .iter()
            .enumerate()
            .map(|(i, &stage)| Hop {
                stage,
                t_ns: i as u64 * 10,
            })
            .collect()
    };
    let mut v = Vec::new();

    let mut r = rec(Dir::Rx, tcp4(CLI, 40000, SRV, 7, SYN));
    r.flow = Some(1);
    r.hops = hops(&Stage::ALL);
    r.outcome = outcome(OutcomeKind::Delivered, Stage::App);
    v.push(r);

    let mut r = rec(Dir::Tx, tcp4(SRV, 7, CLI, 40000, SYN | ACK));
    r.flow = Some(1);
    r.hops = hops(&[Stage::Stack, Stage::FrameBuffer, Stage::Wire]);
    r.outcome = outcome(OutcomeKind::Sent, Stage::Wire);
    v.push(r);

    let mut r = rec(Dir::Rx, tcp4(CLI, 40001, SRV, 7, FIN | ACK | PSH));
    r.flow = Some(2);
    r.hops = hops(&[Stage::Wire, Stage::FrameBuffer]);
    r.outcome = outcome(OutcomeKind::Dropped, Stage::FrameBuffer);
    v.push(r);

    let mut r = rec(Dir::Tx, tcp4(SRV, 7, CLI, 40001, RST | ACK));
    r.flow = Some(2);
    r.hops = hops(&[Stage::Stack]);
    v.push(r);

    let frame = ethernet(
        MAC_B,
        MAC_A,
        0x86dd,
        &ipv6(v6(1), v6(2), 17, &udp(5353, 53, b"q")),
    );
    let mut r = rec(Dir::Rx, frame);
    r.hops = hops(&[Stage::Wire, Stage::FrameBuffer, Stage::Stack]);
    r.outcome = outcome(OutcomeKind::Consumed, Stage::Stack);
    v.push(r);

    let mut r = rec(Dir::Rx, eth4(&ipv4(CLI, SRV, 17, &udp(7, 9, b"x"))));
    r.flow = Some(3);
    r.hops = hops(&[
        Stage::Wire,
        Stage::FrameBuffer,
        Stage::Stack,
        Stage::SocketBuffer,
    ]);
    r.outcome = outcome(OutcomeKind::InFlight, Stage::SocketBuffer);
    v.push(r);

    let mut r = rec(Dir::Rx, arp_request());
    r.hops = hops(&[Stage::Wire, Stage::FrameBuffer, Stage::Stack]);
    r.outcome = outcome(OutcomeKind::Consumed, Stage::Stack);
    v.push(r);

    v.push(rec(Dir::Rx, icmp4_echo()));

    let icmp6 = [128, 0, 0, 0, 0, 1, 0, 1];
    let frame = ethernet(MAC_B, MAC_A, 0x86dd, &ipv6(v6(1), v6(2), 58, &icmp6));
    v.push(rec(Dir::Rx, frame));

    let mut r = rec(Dir::Rx, vec![1, 2, 3, 4, 5]);
    r.hops = hops(&[Stage::Wire]);
    r.outcome = outcome(OutcomeKind::Dropped, Stage::Wire);
    v.push(r);
    v
}

fn matching(input: &str) -> Vec<usize> {
    let f = Filter::parse(input).unwrap();
    let pkts = sample_packets();
    (0..pkts.len()).filter(|&i| f.matches(&pkts[i])).collect()
}

#[test]
fn predicates_match_real_frames() {
    let cases: &[(&str, &[usize])] = &[
        ("", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ("tcp", &[0, 1, 2, 3]),
        ("udp", &[4, 5]),
        ("icmp", &[7, 8]),
        ("arp", &[6]),
        ("ip", &[0, 1, 2, 3, 5, 7]),
        ("ip6", &[4, 8]),
        ("syn", &[0, 1]),
        ("fin", &[2]),
        ("rst", &[3]),
        ("ack", &[1, 2, 3]),
        ("psh", &[2]),
        ("rx", &[0, 2, 4, 5, 6, 7, 8, 9]),
        ("tx", &[1, 3]),
        ("dropped", &[2, 9]),
        ("delivered", &[0]),
        ("consumed", &[4, 6]),
        ("sent", &[1]),
        // An explicit in_flight outcome, or none yet.
        ("in_flight", &[3, 5, 7, 8]),
        ("host 10.0.0.1", &[0, 1, 2, 3, 5, 6, 7]),
        ("src host 10.0.0.1", &[1, 3]),
        ("dst host 10.0.0.1", &[0, 2, 5, 6, 7]),
        ("host 10.0.0.3", &[]),
        ("host 2001:db8::2", &[4, 8]),
        ("src host 2001:db8::1", &[4, 8]),
        ("dst host 2001:db8::1", &[]),
        ("port 7", &[0, 1, 2, 3, 5]),
        ("src port 7", &[1, 3, 5]),
        ("dst port 7", &[0, 2]),
        ("port 40000", &[0, 1]),
        ("port 53", &[4]),
        ("dst port 9", &[5]),
        ("port 0", &[]),
        ("stage wire", &[0, 1, 2, 4, 5, 6, 9]),
        ("stage frame_buffer", &[0, 1, 2, 4, 5, 6]),
        ("stage stack", &[0, 1, 3, 4, 5, 6]),
        ("stage socket_buffer", &[0, 5]),
        ("stage conn_buffer", &[0]),
        ("stage app", &[0]),
        ("flow 1", &[0, 1]),
        ("flow 2", &[2, 3]),
        ("flow 3", &[5]),
        ("flow 4", &[]),
    ];
    for (input, want) in cases {
        assert_eq!(matching(input), *want, "{input:?}");
    }
}

#[test]
fn combinations_match() {
    let cases: &[(&str, &[usize])] = &[
        ("tcp and syn", &[0, 1]),
        ("tcp and syn and not ack", &[0]),
        ("tcp or udp and port 7", &[0, 1, 2, 3, 5]),
        ("(tcp or udp) and port 53", &[4]),
        ("tcp or (udp and port 53)", &[0, 1, 2, 3, 4]),
        ("not tcp", &[4, 5, 6, 7, 8, 9]),
        ("!tcp && !udp", &[6, 7, 8, 9]),
        ("not (tcp or udp)", &[6, 7, 8, 9]),
        ("rx and dropped", &[2, 9]),
        ("dropped and not stage frame_buffer", &[9]),
        ("flow 1 || flow 3", &[0, 1, 5]),
        ("tx and not sent", &[3]),
        ("icmp and ip6", &[8]),
        ("not not arp", &[6]),
        ("host 10.0.0.2 and not tcp", &[5, 6, 7]),
    ];
    for (input, want) in cases {
        assert_eq!(matching(input), *want, "{input:?}");
    }
}

#[test]
fn predicates_on_frames_that_do_not_dissect_are_false() {
    let junk = &sample_packets()[9];
    for input in [
        "tcp",
        "udp",
        "icmp",
        "arp",
        "ip",
        "ip6",
        "syn",
        "host 0.0.0.0",
        "port 0",
    ] {
        assert!(!Filter::parse(input).unwrap().matches(junk), "{input}");
        assert!(
            Filter::parse(&format!("not {input}"))
                .unwrap()
                .matches(junk)
        );
    }
    let empty = rec(Dir::Tx, Vec::new());
    assert!(!Filter::parse("tcp or host ::").unwrap().matches(&empty));
    assert!(Filter::parse("tx and in_flight").unwrap().matches(&empty));
}

#[test]
fn a_million_matches_is_cheap() {
    // Loose measurement only; run with `--nocapture` to see the rate. Debug builds are ~10x slower
    // (about 4 µs a match, mostly the dissector's checksum checks), so they do a fifth of the work.
    let pkts = sample_packets();
    let f =
        Filter::parse("(tcp and (syn or fin) and port 7) or (udp and host 2001:db8::2) or dropped")
            .unwrap();
    let n = if cfg!(debug_assertions) {
        200_000
    } else {
        1_000_000
    };
    let start = std::time::Instant::now();
    let hits = (0..n).filter(|i| f.matches(&pkts[i % pkts.len()])).count();
    let took = start.elapsed();
    // 0,1 (tcp syn port 7), 2 (fin, port 7), 4 (udp v6), 9 (dropped) of every 10.
    assert_eq!(hits, n / 10 * 5);
    eprintln!(
        "{n} matches in {took:?} ({:.0} ns each)",
        took.as_nanos() as f64 / n as f64
    );
}
