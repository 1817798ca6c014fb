//! Every TCP/UDP flow of the capture as the survey read it (frames, payload bytes each way, its handshake,
//! a loopback rename), records no link type could be made Ethernet, and — once the run has ended — the flows
//! the stack's apps read and wrote nothing for, each with why: so no capture plays 0 bytes unexplained.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::pipeline::dissect::Headers;
use crate::pipeline::trace::{ConnProto, ConnectionRecord};

use super::capture::CapturedFrame;
use super::loopback::Rename;
use super::role::{Identity, is_host};
use super::segment::Layers;

/// Flows tallied at most: a capture with more (a scan) has the rest counted, not described.
pub const MAX_FLOWS: usize = 1 << 16;

/// One flow, its ends in a fixed order (`a` < `b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowEnds {
    pub proto: ConnProto,
    pub a: SocketAddr,
    pub b: SocketAddr,
}

/// What the capture holds of one flow.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlowSeen {
    pub frames: u64,
    /// Payload bytes on the wire from `a` to `b`, and from `b` to `a`.
    pub bytes_ab: u64,
    pub bytes_ba: u64,
    /// The end a SYN (without ACK) went to: the flow's server, when the handshake was captured.
    pub syn_to: Option<SocketAddr>,
    /// The end that sent a RST, if one did.
    pub rst_from: Option<SocketAddr>,
    /// The capture frame (1-based) the flow starts at.
    pub first_frame: u64,
    /// The loopback rename its packets had.
    pub renamed: Option<Rename>,
    /// Frames with payload the capture cut short (the snap length): refused at the wire.
    pub truncated: u64,
}

impl FlowSeen {
    pub fn payload(&self) -> u64 {
        self.bytes_ab + self.bytes_ba
    }
}

/// Records that could not become Ethernet frames, per link type: how many, and the first one's problem.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub records: u64,
    pub first_problem: String,
}

/// The survey's pass over the capture, flow by flow.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub flows: BTreeMap<FlowEnds, FlowSeen>,
    /// Flows beyond `MAX_FLOWS`, counted only.
    pub untallied_frames: u64,
    pub unreadable: BTreeMap<u32, Unreadable>,
}

impl Tally {
    pub fn add(&mut self, f: &CapturedFrame) {
        if let Some(problem) = &f.problem {
            let u = self.unreadable.entry(f.linktype).or_default();
            if u.records == 0 {
                u.first_problem = problem.clone();
            }
            u.records += 1;
            return;
        }
        let Some(l) = Headers::read(&f.frame).and_then(|h| Layers::of(&h, f.orig_len as usize))
        else {
            return;
        };
        let (proto, payload) = match (l.tcp, l.udp) {
            (Some(t), _) => (ConnProto::Tcp, t.payload_len as u64),
            (None, Some(_)) => (ConnProto::Udp, l.end.saturating_sub(l.l4 + 8) as u64),
            _ => return,
        };
        let (Some(src), Some(dst)) = (l.src_addr(), l.dst_addr()) else {
            return;
        };
        let key = FlowEnds {
            proto,
            a: src.min(dst),
            b: src.max(dst),
        };
        if !self.flows.contains_key(&key) && self.flows.len() >= MAX_FLOWS {
            self.untallied_frames += 1;
            return;
        }
        let seen = self.flows.entry(key).or_insert_with(|| FlowSeen {
            first_frame: f.index + 1,
            ..FlowSeen::default()
        });
        seen.frames += 1;
        seen.truncated += u64::from(f.truncated && payload > 0);
        if src == key.a {
            seen.bytes_ab += payload;
        } else {
            seen.bytes_ba += payload;
        }
        if let Some(t) = l.tcp {
            if t.syn && !t.ack_flag {
                seen.syn_to = Some(dst);
            }
            if t.rst {
                seen.rst_from.get_or_insert(src);
            }
        }
        if seen.renamed.is_none() {
            seen.renamed = f.renamed;
        }
    }

    /// The loopback recordings: per recorded address, how many flows had their peer renamed, and the rename.
    pub fn loopback(&self) -> BTreeMap<IpAddr, (u64, Rename)> {
        let mut by_addr: BTreeMap<IpAddr, (u64, Rename)> = BTreeMap::new();
        for r in self.flows.values().filter_map(|s| s.renamed) {
            by_addr.entry(r.original).or_insert((0, r)).0 += 1;
        }
        by_addr
    }
}

/// Why a flow of the capture played nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhyNot {
    /// Neither end is the host the stack plays.
    NotTheStacksHost,
    /// A TCP flow whose handshake the capture lacks (it starts mid-connection): a join must open it.
    NoSyn,
    /// The peer is outside every prefix of the stack's address plan: smoltcp has no route to it.
    PeerUnreachable,
    /// The stack refused it: the recorded host answered RST, or the port has no listener.
    Refused,
    /// The capture holds no payload of it (a handshake, a refused SYN, bare ACKs).
    NoPayload,
    /// Its data frames were cut short by the capture's snap length, so they cannot be injected.
    Truncated,
    /// Nothing above explains it: the packets of the flow in the export say what happened.
    Unexplained,
}

impl WhyNot {
    pub fn code(self) -> &'static str {
        match self {
            WhyNot::NotTheStacksHost => "not_the_stacks_host",
            WhyNot::NoSyn => "no_syn",
            WhyNot::PeerUnreachable => "peer_unreachable",
            WhyNot::Refused => "refused",
            WhyNot::NoPayload => "no_payload",
            WhyNot::Truncated => "truncated",
            WhyNot::Unexplained => "unexplained",
        }
    }
}

/// One flow that did not play, as the summary and the export say it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotPlayed {
    pub proto: &'static str,
    /// The ends as the stack saw them (the stack's first when it is one of them).
    pub flow: String,
    pub frames: u64,
    pub payload_bytes: u64,
    pub first_frame: u64,
    pub reason: WhyNot,
    pub detail: String,
}

impl fmt::Display for NotPlayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} — {}", self.proto, self.flow, self.detail)
    }
}

/// The flows of `tally` the run's apps read and wrote nothing for, each with its reason (in capture order).
pub fn not_played(tally: &Tally, id: &Identity, conns: &[ConnectionRecord]) -> Vec<NotPlayed> {
    let mut played: BTreeMap<FlowEnds, u64> = BTreeMap::new();
    for c in conns {
        let key = FlowEnds {
            proto: c.proto,
            a: c.local.min(c.remote),
            b: c.local.max(c.remote),
        };
        *played.entry(key).or_default() += c.app_read.bytes + c.app_written.bytes;
    }
    let mut out: Vec<NotPlayed> = tally
        .flows
        .iter()
        .filter(|(k, _)| played.get(k).copied().unwrap_or(0) == 0)
        .map(|(k, s)| {
            let (reason, detail) = why(k, s, id, played.contains_key(k));
            // The stack's end first; between two other hosts, the server's (the SYN's receiver, else the
            // lower port).
            let server = s
                .syn_to
                .unwrap_or(if k.a.port() <= k.b.port() { k.a } else { k.b });
            let first = if id.owns(k.a.ip()) || id.owns(k.b.ip()) {
                if id.owns(k.b.ip()) { k.b } else { k.a }
            } else {
                server
            };
            let (stack, peer) = if first == k.a { (k.a, k.b) } else { (k.b, k.a) };
            let mut detail = detail;
            if let Some(r) = s.renamed {
                detail.push_str(&format!(
                    " (a loopback recording: the peer was {})",
                    r.original
                ));
            }
            NotPlayed {
                proto: k.proto.name(),
                flow: format!("{stack} ⇄ {peer}"),
                frames: s.frames,
                payload_bytes: s.payload(),
                first_frame: s.first_frame,
                reason,
                detail,
            }
        })
        .collect();
    out.sort_by_key(|n| n.first_frame);
    out
}

fn why(k: &FlowEnds, s: &FlowSeen, id: &Identity, opened: bool) -> (WhyNot, String) {
    let stack_end = [k.a, k.b].into_iter().find(|e| id.owns(e.ip()));
    let Some(stack_end) = stack_end else {
        let server = s
            .syn_to
            .unwrap_or(if k.a.port() < k.b.port() { k.a } else { k.b });
        // A group address (multicast, broadcast) is no host the stack could play: its sender is.
        let other = if server == k.a { k.b } else { k.a };
        let server = if is_host(&server.ip()) { server } else { other };
        return (
            WhyNot::NotTheStacksHost,
            format!(
                "not the stack's host (between two other hosts; --as {} plays it)",
                server.ip()
            ),
        );
    };
    let peer = if stack_end == k.a { k.b } else { k.a };
    if s.payload() == 0 {
        let what = match (s.syn_to, s.rst_from) {
            (Some(_), Some(r)) if r == stack_end => "a SYN the recorded host refused",
            (Some(_), Some(_)) => "a SYN answered by RST",
            (Some(_), None) => "a handshake and no data",
            _ => "no data",
        };
        return (
            WhyNot::NoPayload,
            format!(
                "the capture holds no payload for it ({what}, {})",
                frames(s.frames)
            ),
        );
    }
    if !reachable(id, peer.ip()) {
        return (
            WhyNot::PeerUnreachable,
            format!(
                "peer unreachable: {} is outside the stack's address plan (no route)",
                peer.ip()
            ),
        );
    }
    if k.proto == ConnProto::Tcp && s.syn_to.is_none() {
        return (
            WhyNot::NoSyn,
            "no SYN captured: the capture starts mid-connection, and the flow was not joined"
                .into(),
        );
    }
    if k.proto == ConnProto::Tcp
        && s.syn_to == Some(stack_end)
        && !id.tcp_ports.contains(&stack_end.port())
    {
        return (
            WhyNot::Refused,
            format!(
                "the stack refused it: port {} has no listener (the recorded host answered RST there)",
                stack_end.port()
            ),
        );
    }
    if s.truncated > 0 {
        return (
            WhyNot::Truncated,
            format!(
                "the capture cut {} with payload short (snap length): they cannot be injected",
                frames(s.truncated)
            ),
        );
    }
    let detail = if opened {
        "the connection opened, but its app read and wrote nothing; the flow's packets say why"
    } else {
        "no connection or flow was made for it; the flow's packets say why"
    };
    (WhyNot::Unexplained, detail.into())
}

/// Is `peer` on the stack's link under its address plan?
fn reachable(id: &Identity, peer: IpAddr) -> bool {
    match peer {
        IpAddr::V4(p) => id.ipv4.is_some_and(|s| {
            let bits = u32::from(id.prefix_v4.min(32));
            bits == 0 || (u32::from(s) ^ u32::from(p)) >> (32 - bits) == 0
        }),
        IpAddr::V6(p) => id.ipv6.is_some_and(|s| {
            let bits = u32::from(id.prefix_v6.min(128));
            let link_local = p.segments()[0] & 0xffc0 == 0xfe80;
            link_local || bits == 0 || (u128::from(s) ^ u128::from(p)) >> (128 - bits) == 0
        }),
    }
}

fn frames(n: u64) -> String {
    format!("{n} frame{}", if n == 1 { "" } else { "s" })
}

/// A link type as the summary names it: its number, and its tcpdump.org name when it is a known one.
pub fn linktype_name(linktype: u32) -> String {
    let name = match linktype {
        0 => "BSD loopback",
        1 => "Ethernet",
        101 => "raw IP",
        105 => "IEEE 802.11",
        108 => "OpenBSD loopback",
        113 => "Linux cooked",
        127 => "IEEE 802.11 with radiotap",
        192 => "PPI",
        228 => "raw IPv4",
        229 => "raw IPv6",
        276 => "Linux cooked v2",
        u32::MAX => "undeclared interface",
        _ => return format!("link type {linktype}"),
    };
    if linktype == u32::MAX {
        return name.into();
    }
    format!("link type {linktype} ({name})")
}

#[cfg(test)]
mod tests;
