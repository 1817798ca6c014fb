//! `--format chrome`: the Trace Event Format (JSON object form) that Perfetto and chrome://tracing load.
//!
//! Layout: pid 1 holds one thread per packet (tid = packet id, named by a `thread_name` metadata event after
//! the packet's summary). On it, one complete ("X") slice spans the packet's whole path and one slice per hop
//! lies inside it: hop i runs from its time to the next hop's time, the last hop and the whole-path slice end
//! 1 ns after the last hop, so every child nests strictly inside its parent and a parent never starts with the
//! same duration as its first child. Flow events ("s" → "f", `bp: "e"`, id = the caused packet's id) go from
//! a packet's `stack` hop to the `stack` hop of each tx packet it caused (`PacketRecord::caused`, mirrored by
//! `Trigger::Frame` on the caused side, so each side writes its own end without remembering the other).
//! pid 2 holds counter ("C") tracks: frame-buffer occupancy (frames) and each TCP connection's buffered bytes.
//!
//! Times are µs with exactly three decimals, written from integer nanoseconds, so they convert back to ns
//! without rounding. Events are streamed as packets finish (the viewer sorts them), parents before children
//! and slices before flow events, so viewers that keep file order for equal times nest them correctly.
//! Written through `target::Output` (to a regular file by way of a temporary file renamed into place at the
//! end).

use std::io::{self, Write};
use std::path::Path;

use serde_json::{Value, json};

use super::header::Header;
use super::occupancy::{OccupancySampler, Sample, Track};
use super::target::Output;
use super::timeline::TimelineWriter;
use super::view::{ConnectionView, FORMAT, PacketView, StatsView, VERSION};
use crate::pipeline::clock::Nanos;
use crate::pipeline::stage::Stage;
use crate::pipeline::trace::{ConnectionRecord, PacketRecord, Stats, Trigger};

pub const PACKETS_PID: u32 = 1;
pub const BUFFERS_PID: u32 = 2;
/// How long the last hop of a packet (and so its whole-path slice) lasts beyond the last hop's time.
const END_NS: Nanos = 1;

/// Microseconds with three decimals, exact: 1500 ns → `1.500`.
pub struct Micros(pub Nanos);

impl std::fmt::Display for Micros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

pub struct ChromeWriter {
    out: Output,
    header: Header,
    sampler: OccupancySampler,
    samples: Vec<Sample>,
}

impl ChromeWriter {
    pub fn create(path: &Path, header: &Header) -> io::Result<Self> {
        let mut out = Output::open(path)?;
        out.write_all(b"{\"traceEvents\":[\n")?;
        writeln!(
            out,
            "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{PACKETS_PID},\"args\":{{\"name\":\"packets\"}}}},"
        )?;
        let mut w = ChromeWriter {
            out,
            header: header.clone(),
            sampler: OccupancySampler::default(),
            samples: Vec::new(),
        };
        // Every counter track starts at zero when the run begins.
        w.sample(0, (0, 0), std::iter::empty())?;
        Ok(w)
    }

    fn sample(
        &mut self,
        t_ns: Nanos,
        frame_buffer: (usize, usize),
        conns: impl Iterator<Item = (u64, usize, usize)>,
    ) -> io::Result<()> {
        self.samples.clear();
        self.sampler
            .observe(t_ns, frame_buffer, conns, &mut self.samples);
        for s in &self.samples {
            let name = match s.track {
                Track::FrameBuffer => "frame_buffer".to_string(),
                Track::Conn(id) => format!("conn {id} buffer"),
            };
            writeln!(
                self.out,
                "{{\"ph\":\"C\",\"name\":\"{name}\",\"pid\":{BUFFERS_PID},\"ts\":{},\"args\":{{\"rx\":{},\"tx\":{}}}}},",
                Micros(s.t_ns),
                s.rx,
                s.tx
            )?;
        }
        Ok(())
    }

    fn slice(
        &mut self,
        tid: u64,
        name: &str,
        cat: &str,
        start: Nanos,
        end: Nanos,
        args: &serde_json::Value,
    ) -> io::Result<()> {
        write!(self.out, "{{\"ph\":\"X\",\"name\":")?;
        serde_json::to_writer(&mut self.out, name)?;
        write!(
            self.out,
            ",\"cat\":\"{cat}\",\"pid\":{PACKETS_PID},\"tid\":{tid},\"ts\":{},\"dur\":{},\"args\":",
            Micros(start),
            Micros(end - start)
        )?;
        serde_json::to_writer(&mut self.out, args)?;
        self.out.write_all(b"},\n")
    }

    fn flow(&mut self, ph: &str, id: u64, tid: u64, t: Nanos) -> io::Result<()> {
        let bind = if ph == "f" { ",\"bp\":\"e\"" } else { "" };
        writeln!(
            self.out,
            "{{\"ph\":\"{ph}\",\"name\":\"caused\",\"cat\":\"caused\",\"id\":{id},\"pid\":{PACKETS_PID},\"tid\":{tid},\"ts\":{}{bind}}},",
            Micros(t)
        )
    }
}

/// A packet's hop times, clamped to be non-decreasing (the trace model promises it; the nesting depends on it).
fn hop_times(p: &PacketRecord) -> Vec<(Stage, Nanos)> {
    let mut last = 0;
    p.hops
        .iter()
        .map(|h| {
            last = last.max(h.t_ns);
            (h.stage, last)
        })
        .collect()
}

impl TimelineWriter for ChromeWriter {
    fn packet(&mut self, p: &PacketRecord) -> io::Result<()> {
        let view = PacketView::of(p);
        let tid = p.id;
        let label = format!("#{} {} {}", p.id, view.dir, view.summary);
        write!(
            self.out,
            "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{PACKETS_PID},\"tid\":{tid},\"args\":{{\"name\":"
        )?;
        serde_json::to_writer(&mut self.out, &label)?;
        self.out.write_all(b"}},\n")?;
        let hops = hop_times(p);
        let (Some(&(_, first)), Some(&(_, last))) = (hops.first(), hops.last()) else {
            return Ok(());
        };
        let end = last + END_NS;
        let o = &view.outcome;
        let parent = json!({
            "id": p.id, "dir": view.dir, "len": view.len, "summary": view.summary, "flow": view.flow,
            "stage": o.stage, "outcome": o.kind, "reason": o.reason, "code": o.code,
        });
        self.slice(
            tid,
            &format!("#{} {} {}", p.id, view.dir, o.kind),
            "packet",
            first,
            end,
            &parent,
        )?;
        for (i, &(stage, t)) in hops.iter().enumerate() {
            let is_last = i + 1 == hops.len();
            let until = hops.get(i + 1).map_or(end, |&(_, next)| next.min(end));
            let args = json!({
                "stage": stage.name(),
                "outcome": if is_last { o.kind } else { "passed" },
                "reason": if is_last { o.reason.as_deref() } else { None },
            });
            self.slice(tid, stage.name(), "hop", t, until.max(t), &args)?;
        }
        let at_stack = hops
            .iter()
            .find(|(s, _)| *s == Stage::Stack)
            .map_or(first, |&(_, t)| t);
        for &q in &p.caused {
            self.flow("s", q, tid, at_stack)?;
        }
        if let Trigger::Frame(_) = p.trigger {
            self.flow("f", p.id, tid, at_stack)?;
        }
        Ok(())
    }

    fn wants_occupancy(&self) -> bool {
        true
    }

    fn occupancy(
        &mut self,
        t_ns: Nanos,
        frame_buffer: (usize, usize),
        conns: &[(u64, usize, usize)],
    ) -> io::Result<()> {
        self.sample(t_ns, frame_buffer, conns.iter().copied())
    }

    fn finish(
        mut self: Box<Self>,
        conns: &[ConnectionRecord],
        stats: &Stats,
        extra: Option<&Value>,
    ) -> io::Result<()> {
        // Every event line ends with a comma; the last one, written here, needs none.
        writeln!(
            self.out,
            "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{BUFFERS_PID},\"args\":{{\"name\":\"buffers\"}}}}"
        )?;
        let connections: Vec<_> = conns
            .iter()
            .map(|c| {
                let v = ConnectionView::of(c);
                json!({"id": v.id, "proto": v.proto, "local": v.local, "remote": v.remote, "app": v.app})
            })
            .collect();
        let metadata = json!({
            "format": "pktpath-chrome-trace", "timeline_format": FORMAT, "timeline_version": VERSION,
            "source": self.header.source_json(), "stack": self.header.stack_json(),
            "connections": connections, "stats": StatsView::of(stats), "replay": extra,
        });
        self.out
            .write_all(b"],\n\"displayTimeUnit\":\"ns\",\n\"metadata\":")?;
        serde_json::to_writer(&mut self.out, &metadata)?;
        self.out.write_all(b"}\n")?;
        self.out.finish()
    }
}
