//! The capture reader: streams pcap and pcapng files (detected by magic) as `CapturedFrame`s, each
//! normalised to Ethernet II by `link`.
//!
//! Invariants: constant memory (one bounded parse buffer, grown only for a single large block and never
//! beyond `MAX_BLOCK`); never panics and never loops on any input; a damaged or truncated record ends
//! iteration cleanly and `stopped()` says where and why. Per-packet oddities (unknown link type, an
//! undeclared interface) are reported on the frame, never fatal.

mod frame;
mod header;
mod records;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;

use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapError, create_reader};

pub use frame::{CaptureError, CapturedFrame, MAX_BLOCK, MAX_CAPLEN};
use header::Header;
use records::State;

/// The parse buffer's initial size (pcap-parser advises at least 64 KiB); it grows, doubling, for jumbo or
/// offloaded packets and big non-packet blocks. Unit tests use a tiny one so that growth and refills are
/// exercised by small files (and because the buffer is zero-filled byte by byte in debug builds).
const BUFFER: usize = if cfg!(test) { 4096 } else { 64 * 1024 };
/// Refills in a row that delivered no bytes without reaching end of file before giving up.
const MAX_STALLS: u32 = 8;

/// Streams the packet records of one capture.
pub struct CaptureReader {
    inner: Box<dyn PcapReaderIterator + Send>,
    state: State,
    capacity: usize,
    records: u64,
    blocks: u64,
    stalls: u32,
    stopped: Option<String>,
    done: bool,
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("format", &self.format())
            .field("records", &self.records)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl CaptureReader {
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        Self::from_reader(File::open(path)?)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<CaptureReader, CaptureError> {
        Self::from_reader(Cursor::new(bytes))
    }

    pub fn from_reader<R: Read + Send + 'static>(
        mut reader: R,
    ) -> Result<CaptureReader, CaptureError> {
        let (header, prefix) = header::read(&mut reader)?;
        // The prefix already read goes back in front, so the parser sees the file from byte 0.
        let capacity = BUFFER.max(prefix.len() + 1);
        let inner = create_reader(capacity, Cursor::new(prefix).chain(reader)).map_err(|e| {
            CaptureError::BadHeader {
                format: header.format(),
                why: format!("{e}").to_lowercase(),
            }
        })?;
        Ok(CaptureReader {
            inner,
            state: State::new(header),
            capacity,
            records: 0,
            blocks: 0,
            stalls: 0,
            stopped: None,
            done: false,
        })
    }

    /// "pcap" or "pcapng".
    pub fn format(&self) -> &'static str {
        self.state.format()
    }

    /// None while reading or after a clean end; otherwise where and why reading stopped.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// Packet records delivered so far.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    /// Bytes of the capture taken by the records and blocks read so far, from byte 0 (the file header
    /// included): at a clean end, the file's size. A progress display sets it against the size.
    pub fn bytes_read(&self) -> u64 {
        self.inner.consumed() as u64
    }

    /// Ends iteration, recording why. Records and blocks are counted from 1, as `capture_frame` and
    /// Wireshark count frames: the one that failed is the one after those read.
    fn stop(&mut self, why: String) {
        let what = match self.state.format() {
            "pcap" => format!("record {}", self.records + 1),
            _ => format!("block {}", self.blocks + 1),
        };
        self.stopped = Some(format!("{what} at byte {}: {why}", self.inner.consumed()));
        self.done = true;
    }

    /// Makes the next block fit (growing the buffer for one large block) and reads more of the file.
    fn make_room(&mut self) -> Result<(), String> {
        let have = self.inner.data().len();
        match self.state.pending_size(self.inner.data())? {
            // The whole block is here yet the parser wants more: its inner lengths disagree with it.
            Some(need) if have >= need => {
                return Err(format!("damaged block: its {need} bytes do not parse"));
            }
            // Grow only once the buffer is full of this block, doubling: a damaged length near the end of
            // a file then costs no allocation, and copying stays linear.
            Some(need) if need >= self.capacity && have >= self.capacity => {
                self.capacity = (self.capacity * 2).min(need + 4096);
                self.inner.grow(self.capacity);
            }
            _ => {}
        }
        self.inner
            .refill()
            .map_err(|e| format!("read error: {e}"))?;
        if self.inner.data().len() == have && !self.inner.reader_exhausted() {
            self.stalls += 1;
            if self.stalls > MAX_STALLS {
                return Err("reading made no progress".into());
            }
        } else {
            self.stalls = 0;
        }
        Ok(())
    }

    /// The file ended inside a block; fine only if nothing was pending.
    fn at_eof(&mut self) {
        let have = self.inner.data().len();
        if have == 0 {
            self.done = true;
            return;
        }
        let why = match self.state.pending_size(self.inner.data()) {
            Ok(Some(need)) => format!("truncated, the file ends after {have} of {need} bytes"),
            Ok(None) => format!("truncated, the file ends {have} bytes into a record header"),
            Err(e) => e,
        };
        self.stop(why);
    }

    /// One step of the parser: Some(frame), None to try again, or iteration ends (`done`).
    fn step(&mut self) -> Option<CapturedFrame> {
        let index = self.records;
        // pcap-parser 0.17 takes 12 from a pcapng block's length having checked it only against the block
        // type's own header size, 4 for a Process Information Block (pcapng/block.rs:162): a length of 4 to
        // 11 overflows, a panic in a debug build. Every block's length is checked here before it parses.
        if self.state.format() == "pcapng"
            && let Err(why) = self.state.pending_size(self.inner.data())
        {
            self.stop(format!("damaged block: {why}"));
            return None;
        }
        let outcome = match self.inner.next() {
            Ok((used, block)) => Ok((used, self.state.handle(block, index))),
            Err(e) => Err(classify(e)),
        };
        match outcome {
            Ok((used, decoded)) => {
                self.stalls = 0;
                match decoded {
                    Ok(frame) => {
                        self.inner.consume(used);
                        self.blocks += 1;
                        self.records += u64::from(frame.is_some());
                        frame
                    }
                    Err(why) => {
                        self.stop(why);
                        None
                    }
                }
            }
            Err(Failure::End) => {
                self.done = true;
                None
            }
            Err(Failure::NeedMore) => {
                if let Err(why) = self.make_room() {
                    self.stop(why);
                }
                None
            }
            Err(Failure::Eof) => {
                self.at_eof();
                None
            }
            Err(Failure::Damaged(why)) => {
                self.stop(why);
                None
            }
        }
    }
}

/// What a parser error means for the loop.
enum Failure {
    End,
    NeedMore,
    Eof,
    Damaged(String),
}

fn classify(e: PcapError<&[u8]>) -> Failure {
    match e {
        PcapError::Eof => Failure::End,
        PcapError::Incomplete(_) | PcapError::BufferTooSmall => Failure::NeedMore,
        PcapError::UnexpectedEof => Failure::Eof,
        PcapError::ReadError => Failure::Damaged("read error".into()),
        PcapError::HeaderNotRecognized => {
            Failure::Damaged("damaged block: unrecognised header".into())
        }
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            Failure::Damaged(format!("damaged block (parser: {kind:?})"))
        }
    }
}

impl Iterator for CaptureReader {
    type Item = CapturedFrame;

    fn next(&mut self) -> Option<CapturedFrame> {
        while !self.done {
            if let Some(frame) = self.step() {
                return Some(frame);
            }
        }
        None
    }
}

impl Header {
    fn format(&self) -> &'static str {
        match self {
            Header::Pcap { .. } => "pcap",
            Header::Pcapng => "pcapng",
        }
    }
}
