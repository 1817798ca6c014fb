//! Decides what the stack did with one rx frame, from the evidence of its window: the frame itself, smoltcp's
//! log lines, the immediate replies, and what changed in the sockets. smoltcp's return value says nothing
//! and several drops are silent (docs/architecture.md, "What smoltcp tells us"), so each rule below names the
//! evidence it uses.

use std::sync::LazyLock;

use super::capture::LogLine;
use super::dissect::{FrameInfo, Net, Transport};
use super::ids::PacketId;
use super::reason::Reason;
use memchr::memmem;

/// What the frame did to the socket that took it, measured by the engine around the window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketEffect {
    /// A TCP or UDP socket took the frame (its state, queues or the log say so).
    pub touched: bool,
    /// TCP: payload accepted into the rx buffer, as (offset past the readable end, octets).
    pub tcp_accepted: Option<(u64, u64)>,
    /// UDP: the datagram was queued in the socket's rx buffer.
    pub udp_queued: bool,
    /// The socket's TCP state changed (e.g. "LISTEN → SYN-RECEIVED").
    pub state_change: Option<String>,
}

/// An immediate reply the stack sent while processing the frame.
#[derive(Debug, Clone)]
pub struct Reply {
    pub id: PacketId,
    pub info: FrameInfo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The stack handled the frame completely; the note says how.
    Consumed { note: String },
    /// Payload went into a socket's rx buffer; the packet continues along the path.
    ToSocket { note: Option<String> },
    /// Dropped inside the stack.
    Dropped(Reason),
    /// Payload refused for lack of room: dropped at `socket_buffer`.
    DroppedAtSocket(Reason),
}

/// Lines from the TCP socket that mean "this segment was not applied".
const TCP_REFUSALS: [&str; 10] = [
    "unacceptable",
    "expecting a SYN|ACK",
    "expecting an ACK",
    "duplicate ACK (",
    "zero-length segment not inside",
    "segment not in receive window",
    "dropping out-of-window RST",
    "unexpected packet",
    "assembler: too many holes",
    "non-zero-length segment with zero receive window",
];

fn malformed_what(logs: &[LogLine]) -> Option<&str> {
    logs.iter()
        .find_map(|l| l.message.strip_prefix("iface: malformed "))
}

fn find_log<'a>(logs: &'a [LogLine], needle: &str) -> Option<&'a LogLine> {
    find_with(logs, &memmem::Finder::new(needle))
}

fn find_with<'a>(logs: &'a [LogLine], finder: &memmem::Finder) -> Option<&'a LogLine> {
    logs.iter()
        .find(|l| finder.find(l.message.as_bytes()).is_some())
}

/// What every rx frame's log lines are searched for, built once.
static REJECTED_V4: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new("Rejecting IPv4 packet"));
static REJECTED_V6: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new("Rejecting IPv6 packet"));
static NO_ROUTE: LazyLock<[memmem::Finder<'static>; 2]> = LazyLock::new(|| {
    [
        memmem::Finder::new("no matching routes"),
        memmem::Finder::new("NoRoute"),
    ]
});
static NON_UNICAST: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new("non-unicast"));

/// The TCP refusals as searchers built once: every TCP frame's socket lines are checked against all of them.
static TCP_REFUSAL_FINDERS: LazyLock<Vec<memmem::Finder<'static>>> =
    LazyLock::new(|| TCP_REFUSALS.iter().map(memmem::Finder::new).collect());

/// smoltcp's words when its IPv4 assembler did not take a fragment (no assembler free, a fragment it
/// cannot place), if it said any.
pub fn reassembly_refused(logs: &[LogLine]) -> Option<String> {
    logs.iter()
        .find(|l| {
            l.message.starts_with("No available packet assembler")
                || l.message.starts_with("fragmentation error")
                || l.message.starts_with("iface: malformed")
        })
        .map(|l| l.message.clone())
}

/// Parses "rx buffer: receiving N octets at offset O".
pub fn parse_receiving(message: &str) -> Option<(u64, u64)> {
    let rest = message.strip_prefix("rx buffer: receiving ")?;
    let (n, rest) = rest.split_once(" octets at offset ")?;
    Some((rest.trim().parse().ok()?, n.trim().parse().ok()?))
}

pub fn classify(
    info: &FrameInfo,
    our_mac: [u8; 6],
    logs: &[LogLine],
    replies: &[Reply],
    effect: &SocketEffect,
) -> Verdict {
    if info.len < 14 {
        return Verdict::Dropped(Reason::Malformed {
            what: format!("{}-byte frame is shorter than an Ethernet header", info.len),
        });
    }
    // smoltcp checks the destination MAC first and says nothing (ethernet.rs).
    if info.dst_mac != our_mac && !info.is_broadcast_or_multicast_dst() {
        return Verdict::Dropped(Reason::ForeignMac {
            dst: super::dissect::format_mac(&info.dst_mac),
            ours: super::dissect::format_mac(&our_mac),
        });
    }
    if let Some(what) = malformed_what(logs) {
        return Verdict::Dropped(checksum_or_malformed(info, what));
    }
    // Before "Rejecting IPv4 packet": that line also ends "; no matching routes" when routing is the cause.
    if logs.iter().any(|l| {
        NO_ROUTE
            .iter()
            .any(|f| f.find(l.message.as_bytes()).is_some())
    }) && let Some((src, dst)) = addresses(&info.net)
    {
        return Verdict::Dropped(Reason::NoRoute { src, dst });
    }
    if let Some(l) = find_with(logs, &REJECTED_V4).or_else(|| find_with(logs, &REJECTED_V6)) {
        return Verdict::Dropped(Reason::NotForUs {
            detail: l.message.clone(),
        });
    }
    if let Some(l) = find_with(logs, &NON_UNICAST) {
        return Verdict::Dropped(Reason::Ignored {
            detail: l.message.clone(),
        });
    }
    match &info.net {
        Net::Arp { .. } => classify_arp(info, logs, replies),
        Net::Ipv4 { .. } | Net::Ipv6 { .. } => match &info.transport {
            Transport::Tcp { .. } => classify_tcp(info, logs, replies, effect),
            Transport::Udp { .. } => classify_udp(info, logs, replies, effect),
            Transport::Icmpv4 { icmp_type, code } | Transport::Icmpv6 { icmp_type, code } => {
                classify_icmp(*icmp_type, *code, replies)
            }
            Transport::Other { protocol } => match replies.first() {
                // An IPv6 next header smoltcp does not know (a fragment header among them) is answered with
                // Parameter Problem, not ignored.
                Some(r) if matches!(r.info.transport, Transport::Icmpv6 { icmp_type: 4, .. }) => {
                    Verdict::Dropped(Reason::ParameterProblem {
                        next_header: *protocol,
                        reply: Some(r.id),
                    })
                }
                Some(r) if is_icmp_unreachable(&r.info) => {
                    Verdict::Dropped(Reason::ProtocolUnreachable {
                        protocol: *protocol,
                        reply: Some(r.id),
                    })
                }
                _ => Verdict::Dropped(Reason::Ignored {
                    detail: format!("IP protocol {protocol} is not handled"),
                }),
            },
            Transport::None => Verdict::Dropped(Reason::Malformed {
                what: "IP packet without a readable transport header".into(),
            }),
        },
        Net::Other { ethertype } => Verdict::Dropped(Reason::UnknownEtherType {
            ethertype: *ethertype,
        }),
        Net::None => Verdict::Dropped(Reason::Malformed {
            what: info
                .malformed
                .clone()
                .unwrap_or_else(|| "unreadable network header".into()),
        }),
    }
}

/// The IP packet's source and destination, as text.
fn addresses(net: &Net) -> Option<(String, String)> {
    match net {
        Net::Ipv4 { src, dst, .. } => Some((src.to_string(), dst.to_string())),
        Net::Ipv6 { src, dst, .. } => Some((src.to_string(), dst.to_string())),
        _ => None,
    }
}

fn checksum_or_malformed(info: &FrameInfo, what: &str) -> Reason {
    if let Net::Ipv4 {
        header_checksum_ok: false,
        ..
    } = info.net
    {
        return Reason::BadChecksum {
            layer: "IPv4 header",
        };
    }
    match info.transport {
        Transport::Tcp {
            checksum_ok: false, ..
        } => Reason::BadChecksum { layer: "TCP" },
        Transport::Udp {
            checksum_ok: false, ..
        } => Reason::BadChecksum { layer: "UDP" },
        _ => Reason::Malformed {
            what: format!("smoltcp could not parse {what}"),
        },
    }
}

fn is_icmp_unreachable(info: &FrameInfo) -> bool {
    matches!(
        info.transport,
        Transport::Icmpv4 { icmp_type: 3, .. } | Transport::Icmpv6 { icmp_type: 1, .. }
    )
}

fn classify_arp(info: &FrameInfo, logs: &[LogLine], replies: &[Reply]) -> Verdict {
    let Net::Arp {
        operation,
        target_ip,
        sender_ip,
        ..
    } = &info.net
    else {
        unreachable!("classify_arp is only called for ARP")
    };
    if replies
        .iter()
        .any(|r| matches!(r.info.net, Net::Arp { operation: 2, .. }))
    {
        return Verdict::Consumed {
            note: format!("ARP request for {target_ip} answered"),
        };
    }
    if let Some(l) = logs.iter().find(|l| l.message.starts_with("arp:")) {
        return Verdict::Dropped(Reason::Ignored {
            detail: l.message.clone(),
        });
    }
    match operation {
        2 => Verdict::Consumed {
            note: format!("ARP reply from {sender_ip}: neighbor cache updated"),
        },
        1 => Verdict::Dropped(Reason::Ignored {
            detail: format!("ARP request for {target_ip}, which is not our address"),
        }),
        op => Verdict::Dropped(Reason::Ignored {
            detail: format!("ARP operation {op}"),
        }),
    }
}

fn classify_icmp(icmp_type: u8, code: u8, replies: &[Reply]) -> Verdict {
    let answered = replies.iter().any(|r| {
        matches!(
            r.info.transport,
            Transport::Icmpv4 { icmp_type: 0, .. } | Transport::Icmpv6 { icmp_type: 129, .. }
        )
    });
    match (icmp_type, answered) {
        (8, true) | (128, true) => Verdict::Consumed {
            note: "echo request answered".into(),
        },
        // IPv6 neighbor discovery is consumed by the interface itself.
        (133..=137, _) => Verdict::Consumed {
            note: format!("ICMPv6 neighbor discovery (type {icmp_type})"),
        },
        _ => Verdict::Dropped(Reason::Ignored {
            detail: format!("ICMP type {icmp_type} code {code}: no socket wants it"),
        }),
    }
}

fn classify_tcp(
    info: &FrameInfo,
    logs: &[LogLine],
    replies: &[Reply],
    effect: &SocketEffect,
) -> Verdict {
    let Transport::Tcp {
        dst_port,
        flags,
        payload_len,
        ..
    } = &info.transport
    else {
        unreachable!("classify_tcp is only called for TCP")
    };
    let socket_lines: Vec<&LogLine> = logs
        .iter()
        .filter(|l| l.target.ends_with("socket::tcp"))
        .collect();
    let refusals = &*TCP_REFUSAL_FINDERS;
    if let Some(l) = socket_lines.iter().find(|l| {
        refusals
            .iter()
            .any(|r| r.find(l.message.as_bytes()).is_some())
    }) {
        let detail = l.message.clone();
        if *payload_len > 0 && detail.contains("zero receive window") {
            return Verdict::DroppedAtSocket(Reason::SocketBufferFull {
                detail: format!("{payload_len} bytes arrived at a zero window ({detail})"),
            });
        }
        return Verdict::Dropped(Reason::TcpRejected { detail });
    }
    if let Some((_, n)) = effect.tcp_accepted {
        let note = (n < *payload_len as u64).then(|| {
            format!("{n} of {payload_len} payload bytes accepted; the rest lay beyond the window")
        });
        return Verdict::ToSocket { note };
    }
    if !effect.touched && !flags.rst {
        let reply = replies
            .iter()
            .find(|r| matches!(&r.info.transport, Transport::Tcp { flags, .. } if flags.rst));
        return Verdict::Dropped(Reason::NoListener {
            port: *dst_port,
            reply: reply.map(|r| r.id),
        });
    }
    if !effect.touched {
        return Verdict::Dropped(Reason::Ignored {
            detail: "RST for no known connection".into(),
        });
    }
    if *payload_len > 0 {
        // A socket took the segment, yet none of its payload went into the buffer and smoltcp said nothing:
        // the segment only carried data already received.
        if let Some(l) = find_log(logs, "received a keep-alive") {
            return Verdict::Consumed {
                note: l.message.clone(),
            };
        }
        return Verdict::Dropped(Reason::TcpRejected {
            detail: format!("{payload_len} payload bytes were not taken into the rx buffer"),
        });
    }
    let note = match &effect.state_change {
        Some(change) => format!("{} {change}", tcp_flag_word(flags)),
        None => format!("{} processed", tcp_flag_word(flags)),
    };
    Verdict::Consumed { note }
}

fn tcp_flag_word(flags: &super::dissect::TcpFlags) -> &'static str {
    match (flags.syn, flags.fin, flags.rst, flags.ack) {
        (true, _, _, false) => "SYN",
        (true, _, _, true) => "SYN-ACK",
        (_, true, _, _) => "FIN",
        (_, _, true, _) => "RST",
        _ => "ACK",
    }
}

fn classify_udp(
    info: &FrameInfo,
    logs: &[LogLine],
    replies: &[Reply],
    effect: &SocketEffect,
) -> Verdict {
    let Transport::Udp { dst_port, .. } = &info.transport else {
        unreachable!("classify_udp is only called for UDP")
    };
    if let Some(l) = find_log(logs, "buffer full, dropped incoming packet") {
        return Verdict::DroppedAtSocket(Reason::SocketBufferFull {
            detail: l.message.clone(),
        });
    }
    if effect.udp_queued {
        return Verdict::ToSocket { note: None };
    }
    if let Some(r) = replies.iter().find(|r| is_icmp_unreachable(&r.info)) {
        return Verdict::Dropped(Reason::PortUnreachable {
            port: *dst_port,
            reply: Some(r.id),
        });
    }
    if let Some(l) = find_log(logs, "udp:") {
        return Verdict::Dropped(Reason::Ignored {
            detail: l.message.clone(),
        });
    }
    Verdict::Dropped(Reason::Unexplained)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_receiving_line() {
        assert_eq!(
            parse_receiving("rx buffer: receiving 1448 octets at offset 0"),
            Some((0, 1448))
        );
        assert_eq!(
            parse_receiving("rx buffer: receiving 10 octets at offset 2896"),
            Some((2896, 10))
        );
        assert_eq!(parse_receiving("rx buffer: enqueueing 10 octets"), None);
    }
}
