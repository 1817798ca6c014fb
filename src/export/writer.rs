//! Timeline writers. Both stream: packets are written as they reach their outcome, so memory stays constant
//! whatever the run's length. Both go through `target::Output`: to a regular file by way of a temporary file
//! renamed into place at the end (a reader sees the whole document or none), to a device or FIFO straight
//! through (where every complete JSON line is usable as it comes).

use std::io::{self, Write};
use std::path::Path;

use serde_json::Value;

use super::header::Header;
use super::target::Output;
use super::timeline::TimelineWriter;
use super::view::{ConnectionView, FORMAT, PacketView, StatsView, VERSION};
use crate::pipeline::trace::{ConnectionRecord, PacketRecord, Stats};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Jsonl,
    /// The Trace Event Format, for ui.perfetto.dev and chrome://tracing.
    Chrome,
}

pub fn create(path: &Path, format: Format, header: &Header) -> io::Result<Box<dyn TimelineWriter>> {
    Ok(match format {
        Format::Json => Box::new(JsonWriter::create(path, header)?),
        Format::Jsonl => Box::new(JsonlWriter::create(path, header)?),
        Format::Chrome => Box::new(super::chrome::ChromeWriter::create(path, header)?),
    })
}

pub struct JsonWriter {
    out: Output,
    first: bool,
}

impl JsonWriter {
    pub fn create(path: &Path, header: &Header) -> io::Result<Self> {
        let mut out = Output::open(path)?;
        write!(
            out,
            "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"source\":"
        )?;
        serde_json::to_writer(&mut out, &header.source_json())?;
        out.write_all(b",\"stack\":")?;
        serde_json::to_writer(&mut out, &header.stack_json())?;
        out.write_all(b",\"packets\":[")?;
        Ok(JsonWriter { out, first: true })
    }
}

impl TimelineWriter for JsonWriter {
    fn packet(&mut self, p: &PacketRecord) -> io::Result<()> {
        self.out
            .write_all(if self.first { b"\n" } else { b",\n" })?;
        self.first = false;
        serde_json::to_writer(&mut self.out, &PacketView::of(p))?;
        Ok(())
    }

    fn finish(
        mut self: Box<Self>,
        conns: &[ConnectionRecord],
        stats: &Stats,
        extra: Option<&Value>,
    ) -> io::Result<()> {
        self.out.write_all(b"\n],\"connections\":[")?;
        for (i, c) in conns.iter().enumerate() {
            self.out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
            serde_json::to_writer(&mut self.out, &ConnectionView::of(c))?;
        }
        self.out.write_all(b"\n],\"stats\":")?;
        serde_json::to_writer(&mut self.out, &StatsView::of(stats))?;
        if let Some(extra) = extra {
            self.out.write_all(b",\"replay\":")?;
            serde_json::to_writer(&mut self.out, extra)?;
        }
        self.out.write_all(b"}\n")?;
        self.out.finish()
    }
}

pub struct JsonlWriter {
    out: Output,
}

fn line(out: &mut impl Write, kind: &str, data: &impl serde::Serialize) -> io::Result<()> {
    write!(out, "{{\"type\":\"{kind}\",\"data\":")?;
    serde_json::to_writer(&mut *out, data)?;
    out.write_all(b"}\n")
}

impl JsonlWriter {
    pub fn create(path: &Path, header: &Header) -> io::Result<Self> {
        let mut out = Output::open(path)?;
        let head = serde_json::json!({
            "format": FORMAT, "version": VERSION, "source": header.source_json(), "stack": header.stack_json(),
        });
        line(&mut out, "header", &head)?;
        Ok(JsonlWriter { out })
    }
}

impl TimelineWriter for JsonlWriter {
    fn packet(&mut self, p: &PacketRecord) -> io::Result<()> {
        line(&mut self.out, "packet", &PacketView::of(p))
    }

    fn finish(
        mut self: Box<Self>,
        conns: &[ConnectionRecord],
        stats: &Stats,
        extra: Option<&Value>,
    ) -> io::Result<()> {
        for c in conns {
            line(&mut self.out, "connection", &ConnectionView::of(c))?;
        }
        line(&mut self.out, "stats", &StatsView::of(stats))?;
        if let Some(extra) = extra {
            line(&mut self.out, "replay", extra)?;
        }
        self.out.finish()
    }
}
