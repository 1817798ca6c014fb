//! Exports written on a thread of their own. A live run's stack thread hands the packets finished since its
//! last drain over a bounded channel, as one batch (one wake-up of this thread per batch, not per packet), and
//! goes on with the next frame while this thread formats and writes them (formatting JSON is the largest part
//! of what tracing costs). A full channel makes the stack thread wait: it slows down rather than lose a
//! packet.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::sinks::{ExportError, Exports, Written, settled_time};
use crate::pipeline::Pipeline;
use crate::pipeline::clock::Nanos;
use crate::pipeline::trace::{ConnectionRecord, PacketRecord, Stats};

/// Messages in flight to the writer thread at most. A batch holds what a drain found: the packets finished in
/// at most `DRAIN_EVERY` steps of the stack thread.
pub const CHANNEL: usize = 256;

enum Message {
    Packets(Vec<PacketRecord>),
    Settle(Nanos),
    Occupancy {
        t: Nanos,
        frame_buffer: (usize, usize),
        conns: Vec<(u64, usize, usize)>,
    },
    Finish {
        conns: Vec<ConnectionRecord>,
        stats: Box<Stats>,
        extra: Option<serde_json::Value>,
    },
}

pub struct ExportThread {
    to_writer: Option<SyncSender<Message>>,
    handle: Option<JoinHandle<Result<Written, ExportError>>>,
    wants_occupancy: bool,
    writes_pcap: bool,
    /// Nothing to write (no --export, no --pcap-out): packets are not handed over at all.
    idle: bool,
}

impl ExportThread {
    /// Move `exports` to a new writer thread.
    pub fn spawn(exports: Exports) -> std::io::Result<ExportThread> {
        let wants_occupancy = exports.wants_occupancy();
        let writes_pcap = exports.writes_pcap();
        let idle = !exports.writes_anything();
        let (to_writer, inbox) = sync_channel(CHANNEL);
        let handle = std::thread::Builder::new()
            .name("pktpath-export".into())
            .spawn(move || write(exports, inbox))?;
        Ok(ExportThread {
            to_writer: Some(to_writer),
            handle: Some(handle),
            wants_occupancy,
            writes_pcap,
            idle,
        })
    }

    /// Hand a message over; if the writer has stopped (a write failed), its error.
    fn send(&mut self, message: Message) -> Result<(), ExportError> {
        let sent = self
            .to_writer
            .as_ref()
            .is_some_and(|w| w.send(message).is_ok());
        if sent {
            return Ok(());
        }
        self.to_writer = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => Err(e),
            _ => Err(ExportError {
                path: Default::default(),
                source: std::io::Error::other("the export writer thread stopped"),
            }),
        }
    }

    /// After a step at `at`: the buffer levels, if the timeline wants them.
    pub fn after_step(&mut self, pipeline: &Pipeline, at: Nanos) -> Result<(), ExportError> {
        if !self.wants_occupancy {
            return Ok(());
        }
        self.send(Message::Occupancy {
            t: at,
            frame_buffer: pipeline.frame_buffer_depth(),
            conns: pipeline.conn_buffer_levels().collect(),
        })
    }

    /// Hand every finished packet to the writer, each one first shown to `keep`; returns how many.
    pub fn drain_with(
        &mut self,
        pipeline: &mut Pipeline,
        mut keep: impl FnMut(&PacketRecord),
    ) -> Result<u64, ExportError> {
        let finished: Vec<PacketRecord> = pipeline.drain_finished().collect();
        let n = finished.len() as u64;
        finished.iter().for_each(&mut keep);
        if !self.idle && !finished.is_empty() {
            self.send(Message::Packets(finished))?;
        }
        if self.writes_pcap {
            self.send(Message::Settle(settled_time(pipeline)))?;
        }
        Ok(n)
    }

    /// Close the files once everything sent before is written.
    pub fn finish(
        mut self,
        conns: &[ConnectionRecord],
        stats: &Stats,
        extra: Option<&serde_json::Value>,
    ) -> Result<Written, ExportError> {
        self.send(Message::Finish {
            conns: conns.to_vec(),
            stats: Box::new(stats.clone()),
            extra: extra.cloned(),
        })?;
        self.to_writer = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(ExportError {
                path: Default::default(),
                source: std::io::Error::other("the export writer thread panicked"),
            }),
        }
    }
}

/// The writer thread: write what comes, in order, until `Finish` (or the sender is gone).
fn write(mut exports: Exports, inbox: Receiver<Message>) -> Result<Written, ExportError> {
    while let Ok(message) = inbox.recv() {
        match message {
            Message::Packets(ps) => {
                for p in &ps {
                    exports.packet(p)?;
                }
            }
            Message::Settle(t) => exports.settle(t)?,
            Message::Occupancy {
                t,
                frame_buffer,
                conns,
            } => exports.occupancy(t, frame_buffer, &conns)?,
            Message::Finish {
                conns,
                stats,
                extra,
            } => return exports.finish(&conns, &stats, extra.as_ref()),
        }
    }
    // The stack thread went away without finishing (it failed): nothing is put in place; dropping the exports
    // removes their temporary files.
    Ok(Written::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::sinks::ExportPlan;
    use crate::export::writer::Format;
    use crate::sim::{self, SimSpec};

    /// The same sim run written by `Exports` on this thread and by an `ExportThread`.
    /// A run's timeline and pcapng bytes.
    type Files = (Vec<u8>, Vec<u8>);

    fn write_both(format: Format, filter: Option<crate::export::PacketFilter>) -> (Files, Files) {
        let spec = SimSpec {
            clients: 2,
            bytes: 20_000,
            udp: 1,
            ..SimSpec::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let header = crate::session::header::sim(&spec, &spec.pipeline_config());
        let mut outputs = Vec::new();
        for threaded in [false, true] {
            let path = dir.path().join(format!("t-{threaded}"));
            let pcap = dir.path().join(format!("p-{threaded}.pcapng"));
            let plan = ExportPlan {
                timeline: Some((path.clone(), format)),
                pcap: Some(pcap.clone()),
                filter: filter.clone(),
            };
            let mut run = sim::build(&spec);
            let exports = Exports::open(&plan, &header, 0).unwrap();
            let p = &mut run.pipeline;
            if threaded {
                let mut t = ExportThread::spawn(exports).unwrap();
                loop {
                    let at = p.now();
                    let over = p.run_until(spec.max_time_ns, 1);
                    t.after_step(p, at).unwrap();
                    t.drain_with(p, |_| {}).unwrap();
                    if over {
                        break;
                    }
                }
                let conns = p.finish();
                t.drain_with(p, |_| {}).unwrap();
                t.finish(&conns, p.stats(), None).unwrap();
            } else {
                let mut e = exports;
                loop {
                    let at = p.now();
                    let over = p.run_until(spec.max_time_ns, 1);
                    e.after_step(p, at).unwrap();
                    e.drain(p).unwrap();
                    if over {
                        break;
                    }
                }
                let conns = p.finish();
                e.drain(p).unwrap();
                e.finish(&conns, p.stats(), None).unwrap();
            }
            outputs.push((std::fs::read(&path).unwrap(), std::fs::read(&pcap).unwrap()));
        }
        let second = outputs.pop().unwrap();
        (outputs.pop().unwrap(), second)
    }

    #[test]
    fn a_threaded_export_writes_the_same_bytes_as_one_written_in_place() {
        for format in [Format::Jsonl, Format::Chrome] {
            let (in_place, threaded) = write_both(format, None);
            assert!(in_place.0.len() > 10_000, "{format:?}: a real export");
            assert!(in_place.1.len() > 10_000, "a real pcapng");
            assert!(in_place.0 == threaded.0, "{format:?}: the timelines differ");
            assert!(
                in_place.1 == threaded.1,
                "{format:?}: the pcapng files differ"
            );
        }
    }

    #[test]
    fn a_filtered_export_is_the_same_threaded_or_in_place_and_holds_fewer_packets() {
        use crate::pipeline::stage::Dir;
        let rx_only = crate::export::PacketFilter::new("rx", |p| p.dir == Dir::Rx);
        for format in [Format::Jsonl, Format::Chrome] {
            let (whole, _) = write_both(format, None);
            let (in_place, threaded) = write_both(format, Some(rx_only.clone()));
            assert!(in_place.0 == threaded.0, "{format:?}: the timelines differ");
            assert!(
                in_place.1 == threaded.1,
                "{format:?}: the pcapng files differ"
            );
            assert!(
                in_place.0.len() < whole.0.len(),
                "{format:?}: fewer packets"
            );
            assert!(in_place.1.len() < whole.1.len(), "fewer frames");
            let text = String::from_utf8(in_place.0).unwrap();
            assert!(
                text.contains(r#""filter":"rx""#),
                "{format:?}: the header names it"
            );
        }
    }
}
