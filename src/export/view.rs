//! Serializable views of the trace model: the `pktpath-timeline` version 1 vocabulary (docs/timeline-format.md).
//! Kept apart from the domain types so the format changes only on purpose.

use serde::Serialize;
use serde_json::Value;

use crate::pipeline::OutcomeKind;
use crate::pipeline::capture::LogLine;
use crate::pipeline::trace::{ConnectionRecord, PacketRecord, Role, Stats, Trigger};

pub const FORMAT: &str = "pktpath-timeline";
pub const VERSION: u32 = 1;

#[derive(Serialize)]
pub struct HopView {
    pub stage: &'static str,
    pub t_ns: u64,
}

#[derive(Serialize)]
pub struct OutcomeView {
    pub kind: &'static str,
    pub stage: &'static str,
    /// Why it was dropped, or how the stack handled it; null when there is nothing to say.
    pub reason: Option<String>,
    /// A stable identifier for drop reasons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

#[derive(Serialize)]
pub struct TriggerView {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn: Option<u64>,
}

#[derive(Serialize)]
pub struct StateChangeView<'a> {
    pub conn: u64,
    pub from: &'a str,
    pub to: &'a str,
}

#[derive(Serialize)]
pub struct PacketView<'a> {
    pub id: u64,
    pub dir: &'static str,
    pub len: usize,
    pub summary: String,
    pub flow: Option<u64>,
    pub trigger: TriggerView,
    pub hops: Vec<HopView>,
    pub outcome: OutcomeView,
    pub caused: &'a [u64],
    pub payload_of: &'a [u64],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<[u64; 2]>,
    /// The frame's number in the replayed capture (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_frame: Option<u64>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub state_changes: Vec<StateChangeView<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub stack_log: &'a [LogLine],
}

impl<'a> PacketView<'a> {
    pub fn of(p: &'a PacketRecord) -> Self {
        let outcome = match &p.outcome {
            Some(o) => OutcomeView {
                kind: o.kind.name(),
                stage: o.stage.name(),
                reason: o
                    .reason
                    .as_ref()
                    .map(|r| r.to_string())
                    .or_else(|| o.note.clone()),
                code: o.reason.as_ref().map(|r| r.code()),
            },
            None => OutcomeView {
                kind: OutcomeKind::InFlight.name(),
                stage: p.last_stage().map_or("wire", |s| s.name()),
                reason: None,
                code: None,
            },
        };
        let trigger = match p.trigger {
            Trigger::Wire => TriggerView {
                kind: "wire",
                packet: None,
                conn: None,
            },
            Trigger::Frame(id) => TriggerView {
                kind: "frame",
                packet: Some(id),
                conn: None,
            },
            Trigger::Timer => TriggerView {
                kind: "timer",
                packet: None,
                conn: None,
            },
            Trigger::App(c) => TriggerView {
                kind: "app",
                packet: None,
                conn: Some(c),
            },
        };
        PacketView {
            id: p.id,
            dir: p.dir.name(),
            len: p.frame.len(),
            summary: p.summary(),
            flow: p.flow,
            trigger,
            hops: p
                .hops
                .iter()
                .map(|h| HopView {
                    stage: h.stage.name(),
                    t_ns: h.t_ns,
                })
                .collect(),
            outcome,
            caused: &p.caused,
            payload_of: &p.payload_of,
            stream: p.stream.map(|(a, b)| [a, b]),
            capture_frame: p.capture_frame,
            state_changes: p
                .state_changes
                .iter()
                .map(|s| StateChangeView {
                    conn: s.conn,
                    from: &s.from,
                    to: &s.to,
                })
                .collect(),
            stack_log: &p.stack_log,
        }
    }
}

#[derive(Serialize)]
pub struct DigestView {
    pub bytes: u64,
    pub crc32: String,
}

#[derive(Serialize)]
pub struct ConnEventView<'a> {
    pub t_ns: u64,
    pub kind: &'static str,
    pub detail: &'a str,
}

#[derive(Serialize)]
pub struct ConnectionView<'a> {
    pub id: u64,
    pub proto: &'static str,
    pub local: String,
    pub remote: String,
    pub role: &'static str,
    pub app: &'a str,
    pub app_read: DigestView,
    pub app_written: DigestView,
    pub events: Vec<ConnEventView<'a>>,
    /// App wait/wake events counted but not kept (a long transfer's), when there were any.
    #[serde(skip_serializing_if = "is_zero")]
    pub events_elided: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl<'a> ConnectionView<'a> {
    pub fn of(c: &'a ConnectionRecord) -> Self {
        let digest = |d: &crate::pipeline::trace::StreamDigest| DigestView {
            bytes: d.bytes,
            crc32: format!("{:08x}", d.crc32),
        };
        ConnectionView {
            id: c.id,
            proto: c.proto.name(),
            local: c.local.to_string(),
            remote: c.remote.to_string(),
            role: match c.role {
                Role::Accepted => "accepted",
                Role::Connected => "connected",
            },
            app: &c.app,
            app_read: digest(&c.app_read),
            app_written: digest(&c.app_written),
            events: c
                .events
                .iter()
                .map(|e| ConnEventView {
                    t_ns: e.t_ns,
                    kind: e.kind.name(),
                    detail: &e.detail,
                })
                .collect(),
            events_elided: c.events_elided,
        }
    }
}

#[derive(Serialize)]
pub struct DropView {
    pub stage: &'static str,
    pub code: &'static str,
    pub count: u64,
}

#[derive(Serialize)]
pub struct LatencyView {
    pub dir: &'static str,
    pub from: &'static str,
    pub to: &'static str,
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
}

#[derive(Serialize)]
pub struct StatsView {
    pub frames_in: u64,
    pub frames_out: u64,
    pub packets: u64,
    pub outcomes: serde_json::Map<String, Value>,
    pub drops: Vec<DropView>,
    pub hop_latency: Vec<LatencyView>,
    pub events_lost: u64,
}

impl StatsView {
    pub fn of(s: &Stats) -> Self {
        let mut outcomes = serde_json::Map::new();
        for k in OutcomeKind::ALL {
            outcomes.insert(
                k.name().into(),
                s.outcomes.get(k.name()).copied().unwrap_or(0).into(),
            );
        }
        StatsView {
            frames_in: s.frames_in,
            frames_out: s.frames_out,
            packets: s.outcomes.values().sum(),
            outcomes,
            drops: s
                .drops
                .iter()
                .map(|(&(stage, code), &count)| DropView {
                    stage: stage.name(),
                    code,
                    count,
                })
                .collect(),
            hop_latency: s
                .hop_latency
                .iter()
                .map(|(&(dir, from, to), h)| LatencyView {
                    dir: dir.name(),
                    from: from.name(),
                    to: to.name(),
                    count: h.count(),
                    p50_ns: h.percentile(50.0).unwrap_or(0),
                    p99_ns: h.percentile(99.0).unwrap_or(0),
                })
                .collect(),
            events_lost: s.events_lost,
        }
    }
}
