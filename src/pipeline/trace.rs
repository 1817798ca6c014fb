//! The trace model: what the pipeline records about every packet and connection. Exporters and the UI read
//! these types; the pipeline is the only writer. Invariants: a packet's hops are in path order with
//! non-decreasing times, and once it has an outcome it is final and no hop is added.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::capture::LogLine;
use super::clock::Nanos;
use super::dissect::{FrameInfo, dissect};
use super::ids::{ConnId, PacketId};
use super::reason::Reason;
use super::stage::{Dir, OutcomeKind, Stage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    pub stage: Stage,
    pub t_ns: Nanos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub kind: OutcomeKind,
    pub stage: Stage,
    pub reason: Option<Reason>,
    /// For outcomes other than `dropped`: how the stack handled it, in words.
    pub note: Option<String>,
}

/// What made the stack emit a tx packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// An rx frame arriving from the wire (rx packets only).
    Wire,
    /// Processing of that rx frame (its immediate reply, or socket output it enabled).
    Frame(PacketId),
    /// A stack timer: retransmission, delayed ACK, keep-alive, TIME-WAIT, zero-window probe.
    Timer,
    /// The app wrote, connected or closed on that connection.
    App(ConnId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub conn: ConnId,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketRecord {
    pub id: PacketId,
    pub dir: Dir,
    pub frame: Vec<u8>,
    /// The frame dissected, once, when the record is made: the engine, the export, the list and the filter
    /// all read it from here.
    pub info: FrameInfo,
    pub flow: Option<ConnId>,
    pub trigger: Trigger,
    pub hops: Vec<Hop>,
    pub outcome: Option<Outcome>,
    /// tx packets this one caused (emitted in its processing window).
    pub caused: Vec<PacketId>,
    /// For a tx packet: the rx packets whose reading by the app led to the bytes it carries.
    pub payload_of: Vec<PacketId>,
    /// smoltcp's own log lines from this packet's processing window, and pktpath's notes on it.
    pub stack_log: Vec<LogLine>,
    pub state_changes: Vec<StateChange>,
    /// Stream offsets `[start, end)` of the payload bytes the packet carries (TCP) once known.
    pub stream: Option<(u64, u64)>,
    /// Its frame number in the replayed capture, if it came from one.
    pub capture_frame: Option<u64>,
    /// A replayed capture's own record of a frame the stack's host sent (a response, or the SYN it opened a
    /// connection with): shown at the wire and kept for the diff, never injected. The pcapng puts these on an
    /// interface of their own.
    pub recorded: bool,
}

impl PacketRecord {
    pub fn new(id: PacketId, dir: Dir, frame: Vec<u8>, trigger: Trigger) -> Self {
        PacketRecord {
            id,
            dir,
            info: dissect(&frame),
            frame,
            flow: None,
            trigger,
            // Room for the longest path (six stages each way) without growing.
            hops: Vec::with_capacity(6),
            outcome: None,
            caused: Vec::new(),
            payload_of: Vec::new(),
            stack_log: Vec::new(),
            state_changes: Vec::new(),
            stream: None,
            capture_frame: None,
            recorded: false,
        }
    }

    /// The one-line description of the frame (`TCP 10.0.0.2:49152 → 10.0.0.1:7 [S] …`). Made on demand from
    /// the dissected frame: the hot path never formats text a viewer may not ask for.
    pub fn summary(&self) -> String {
        self.info.summary()
    }

    pub fn last_stage(&self) -> Option<Stage> {
        self.hops.last().map(|h| h.stage)
    }

    pub fn reached(&self, stage: Stage) -> bool {
        self.hops.iter().any(|h| h.stage == stage)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConnProto {
    Tcp,
    Udp,
}

impl ConnProto {
    pub fn name(self) -> &'static str {
        match self {
            ConnProto::Tcp => "tcp",
            ConnProto::Udp => "udp",
        }
    }
}

/// How a connection came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A peer connected to one of our listeners (or, for UDP, sent to a bound port).
    Accepted,
    /// Our app connected out.
    Connected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnEventKind {
    Listen,
    Accept,
    Connect,
    Established,
    State,
    AppWait,
    AppWake,
    AppEof,
    PeerEof,
    Close,
    Reset,
    Closed,
}

impl ConnEventKind {
    pub fn name(self) -> &'static str {
        match self {
            ConnEventKind::Listen => "listen",
            ConnEventKind::Accept => "accept",
            ConnEventKind::Connect => "connect",
            ConnEventKind::Established => "established",
            ConnEventKind::State => "state",
            ConnEventKind::AppWait => "app_wait",
            ConnEventKind::AppWake => "app_wake",
            ConnEventKind::AppEof => "app_eof",
            ConnEventKind::PeerEof => "peer_eof",
            ConnEventKind::Close => "close",
            ConnEventKind::Reset => "reset",
            ConnEventKind::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnEvent {
    pub t_ns: Nanos,
    pub kind: ConnEventKind,
    pub detail: String,
}

/// Count and CRC-32 (IEEE, as zlib and `crc32` compute it) of a byte stream, so two sides can be compared
/// exactly without keeping the bytes. CRC-32 because it runs at memory speed on every app read and write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamDigest {
    pub bytes: u64,
    pub crc32: u32,
}

impl StreamDigest {
    pub fn update(&mut self, data: &[u8]) {
        let mut hasher = crc32fast::Hasher::new_with_initial(self.crc32);
        hasher.update(data);
        self.crc32 = hasher.finalize();
        self.bytes += data.len() as u64;
    }

    pub fn of(data: &[u8]) -> Self {
        let mut d = StreamDigest::default();
        d.update(data);
        d
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub id: ConnId,
    pub proto: ConnProto,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub role: Role,
    pub app: String,
    pub events: Vec<ConnEvent>,
    /// What the app read from the connection, and what it wrote to it.
    pub app_read: StreamDigest,
    pub app_written: StreamDigest,
    /// App wait/wake events not kept once the connection had `MAX_CONN_EVENTS` (a long transfer has one per
    /// read); state changes and the other events are always kept.
    pub events_elided: u64,
}

/// Events a connection keeps before it keeps only the ones that are not app waits and wakes.
pub const MAX_CONN_EVENTS: usize = 1024;

impl ConnectionRecord {
    /// Record an event, in bounded memory: past `MAX_CONN_EVENTS`, app waits and wakes are only counted.
    pub fn push_event(&mut self, event: ConnEvent) {
        let frequent = matches!(event.kind, ConnEventKind::AppWait | ConnEventKind::AppWake);
        if frequent && self.events.len() >= MAX_CONN_EVENTS {
            self.events_elided += 1;
        } else {
            self.events.push(event);
        }
    }
}

/// Latency samples to three significant digits, so memory stays bounded (a thousand counters per decade
/// used) whatever the run's length, and virtual-time values stay exact. A sample is one array increment: this
/// runs for every hop of every packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// `decades[s][k]` counts the value `k · 10^s` (for `s > 0`, `k` is 100..=999); allocated on first use.
    decades: Vec<Option<Box<[u64; 1000]>>>,
    total: u64,
}

impl LatencyHistogram {
    pub fn record(&mut self, ns: u64) {
        let mut key = ns;
        let mut decade = 0;
        while key >= 1000 {
            key /= 10;
            decade += 1;
        }
        if self.decades.len() <= decade {
            self.decades.resize(decade + 1, None);
        }
        let counts = self.decades[decade].get_or_insert_with(|| Box::new([0; 1000]));
        counts[key as usize] += 1;
        self.total += 1;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Every recorded value with its count, ascending.
    fn values(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.decades
            .iter()
            .enumerate()
            .filter_map(|(decade, counts)| Some((10u64.pow(decade as u32), counts.as_ref()?)))
            .flat_map(|(scale, counts)| {
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .map(move |(k, n)| (k as u64 * scale, *n))
            })
    }

    /// The smallest recorded value such that at least `p` percent of samples are at or below it.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        let mut last = None;
        for (v, n) in self.values() {
            seen += n;
            if seen >= rank {
                return Some(v);
            }
            last = Some(v);
        }
        last
    }
}

/// Counters over the whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    /// (stage, reason code) → count.
    pub drops: BTreeMap<(Stage, &'static str), u64>,
    /// Per direction, per hop transition (from, to): latency.
    pub hop_latency: BTreeMap<(Dir, Stage, Stage), LatencyHistogram>,
    pub events_lost: u64,
    /// Half-open connections aborted past the SYN backlog (the oldest first).
    pub half_open_evicted: u64,
    /// Half-open connections aborted because their handshake did not complete in time.
    pub half_open_expired: u64,
}

impl Stats {
    pub fn record_outcome(&mut self, p: &PacketRecord) {
        let Some(o) = &p.outcome else { return };
        *self.outcomes.entry(o.kind.name()).or_default() += 1;
        if let Some(r) = &o.reason
            && o.kind == OutcomeKind::Dropped
        {
            *self.drops.entry((o.stage, r.code())).or_default() += 1;
        }
        for pair in p.hops.windows(2) {
            self.hop_latency
                .entry((p.dir, pair[0].stage, pair[1].stage))
                .or_default()
                .record(pair[1].t_ns - pair[0].t_ns);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.outcomes.get("dropped").copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_digest_is_the_standard_crc32_however_the_stream_is_cut() {
        // The check value of CRC-32/ISO-HDLC (zlib's crc32) for "123456789".
        assert_eq!(StreamDigest::of(b"123456789").crc32, 0xcbf4_3926);
        let mut pieces = StreamDigest::default();
        for piece in [&b"1234"[..], b"", b"56789"] {
            pieces.update(piece);
        }
        assert_eq!(pieces, StreamDigest::of(b"123456789"));
        assert_eq!(pieces.bytes, 9);
        assert_eq!(StreamDigest::default().crc32, 0);
    }

    #[test]
    fn histogram_is_exact_for_three_digit_values_and_bounded_otherwise() {
        let mut h = LatencyHistogram::default();
        for v in [0, 1000, 1000, 2000, 123_456] {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), Some(1000));
        assert_eq!(h.percentile(99.0), Some(123_000));
        assert_eq!(h.percentile(1.0), Some(0));
        assert_eq!(LatencyHistogram::default().percentile(50.0), None);
        // Decades apart, in order; the largest value is kept to three digits too.
        let mut h = LatencyHistogram::default();
        for v in [u64::MAX, 999, 12_345, 7] {
            h.record(v);
        }
        assert_eq!(h.count(), 4);
        assert_eq!(h.percentile(25.0), Some(7));
        assert_eq!(h.percentile(50.0), Some(999));
        assert_eq!(h.percentile(75.0), Some(12_300));
        assert_eq!(h.percentile(100.0), Some(184 * 10u64.pow(17)));
    }

    #[test]
    fn digest_is_order_sensitive() {
        assert_eq!(StreamDigest::of(b"ab").bytes, 2);
        assert_ne!(StreamDigest::of(b"ab"), StreamDigest::of(b"ba"));
        let mut d = StreamDigest::default();
        d.update(b"a");
        d.update(b"b");
        assert_eq!(d, StreamDigest::of(b"ab"));
    }
}
