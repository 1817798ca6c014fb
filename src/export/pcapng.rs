//! `--pcap-out`: every wire frame of a run, both directions, as pcapng (written by hand: the blocks are few and
//! well specified). One section; interface 0 is `pktpath`, Ethernet, `if_tsresol` 9 (ns). Each frame is an
//! Enhanced Packet Block with the exact frame bytes, `epb_flags` inbound (rx) or outbound (tx), timestamp
//! `base_ns` + its wire time, and an `opt_comment` with its hop timeline and outcome.
//!
//! A wire frame is a packet record with a `wire` hop: every rx frame (injected, refused, and a replay's
//! recorded frames of the stack, which arrive at the wire and are kept for the diff — marked inbound, their
//! comment says so) and every tx frame that left the tx queue. A replay's file has a second interface,
//! `recorded`, which holds those recorded frames (`PacketRecord::recorded`), so that interface 0 is one clean
//! conversation: the peer's frames and what the stack really sent. Its link type is LINKTYPE_USER0, not
//! Ethernet, because Wireshark keys its TCP analysis by addresses and ports, not by interface: recorded
//! SYN-ACKs on a second Ethernet interface would still show as duplicates and retransmissions. The bytes are
//! Ethernet frames all the same (Wireshark's DLT_USER table, User 0 → eth, dissects them; README). A sim or
//! live run has no recorded frames and one interface.
//!
//! Records reach the writer when they finish, not when they crossed the wire, so frames wait in a reorder
//! window until the pipeline says no earlier wire time can come (`settle`), and are written in (wire time,
//! packet id) order. The window is bounded (`MAX_PENDING`): if a frame stays in flight while more than that
//! many frames pass it, the oldest waiting frames are written anyway and the straggler comes later, out of
//! time order but with its own timestamp. Written through `target::Output` (to a regular file by way of a
//! temporary file renamed into place at the end).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use super::target::Output;
use super::view::PacketView;
use crate::pipeline::clock::Nanos;
use crate::pipeline::ids::PacketId;
use crate::pipeline::stage::{Dir, Stage};
use crate::pipeline::trace::PacketRecord;

/// Frames that may wait for an earlier one before they are written regardless.
pub const MAX_PENDING: usize = 1 << 16;
pub const INTERFACE_NAME: &str = "pktpath";
/// The second interface of a replay's file: the capture's own frames of the stack's host.
pub const RECORDED_INTERFACE_NAME: &str = "recorded";
const RECORDED_INTERFACE_DESCRIPTION: &str = "the replayed capture's frames of the stack's host, kept for the diff and not injected: Ethernet frames (dissect User 0 as eth)";
const LINKTYPE_ETHERNET: u16 = 1;
/// LINKTYPE_USER0 (DLT_USER0): private use, which Wireshark leaves undissected unless told what it holds.
const LINKTYPE_USER0: u16 = 147;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;
const FLAG_INBOUND: u32 = 0b01;
const FLAG_OUTBOUND: u32 = 0b10;

struct Pending {
    interface: u32,
    inbound: bool,
    frame: Vec<u8>,
    comment: String,
}

pub struct PcapngWriter {
    out: Output,
    base_ns: u64,
    /// Interface 1 (`recorded`) is described, and a replay's recorded frames go there.
    recorded_interface: bool,
    pending: BTreeMap<(Nanos, PacketId), Pending>,
    frames: u64,
    block: Vec<u8>,
}

fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
    buf.extend_from_slice(value);
    pad(buf);
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// Frame a block body: type, total length, body, total length.
fn write_block(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = (body.len() + 12) as u32;
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_le_bytes())
}

/// `#12 rx wire@0ns → frame_buffer@1000ns → stack@2000ns; outcome delivered app` — for a drop, `: reason`
/// follows; for another outcome with a note (how the stack handled it), the note in parentheses.
pub fn comment(p: &PacketRecord) -> String {
    let v = PacketView::of(p);
    let mut s = format!("#{} {} ", p.id, v.dir);
    for (i, h) in p.hops.iter().enumerate() {
        if i > 0 {
            s.push_str(" → ");
        }
        let _ = write!(s, "{}@{}ns", h.stage.name(), h.t_ns);
    }
    let o = &v.outcome;
    let _ = write!(s, "; outcome {} {}", o.kind, o.stage);
    match (&o.reason, o.kind) {
        (Some(r), "dropped") => {
            let _ = write!(s, ": {r}");
        }
        (Some(r), _) => {
            let _ = write!(s, " ({r})");
        }
        _ => {}
    }
    s
}

/// An Interface Description Block's body: link type, no snaplen, the name, ns timestamps.
fn interface(body: &mut Vec<u8>, linktype: u16, name: &str, description: Option<&str>) {
    body.clear();
    body.extend_from_slice(&linktype.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes()); // snaplen: no limit
    option(body, IF_NAME, name.as_bytes());
    if let Some(d) = description {
        option(body, IF_DESCRIPTION, d.as_bytes());
    }
    option(body, IF_TSRESOL, &[9]);
    option(body, OPT_END, &[]);
}

impl PcapngWriter {
    /// Start the file: section header and the interfaces (`recorded_interface`: a replay's second one).
    /// `base_ns` is added to every virtual time.
    pub fn create(path: &Path, base_ns: u64, recorded_interface: bool) -> io::Result<Self> {
        let mut out = Output::open(path)?;
        let mut body = Vec::new();
        body.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&u64::MAX.to_le_bytes()); // section length: not given
        let app = concat!("pktpath ", env!("CARGO_PKG_VERSION"));
        option(&mut body, SHB_USERAPPL, app.as_bytes());
        option(&mut body, OPT_END, &[]);
        write_block(&mut out, SHB, &body)?;

        interface(&mut body, LINKTYPE_ETHERNET, INTERFACE_NAME, None);
        write_block(&mut out, IDB, &body)?;
        if recorded_interface {
            interface(
                &mut body,
                LINKTYPE_USER0,
                RECORDED_INTERFACE_NAME,
                Some(RECORDED_INTERFACE_DESCRIPTION),
            );
            write_block(&mut out, IDB, &body)?;
        }
        Ok(PcapngWriter {
            out,
            base_ns,
            recorded_interface,
            pending: BTreeMap::new(),
            frames: 0,
            block: Vec::new(),
        })
    }

    /// A finished packet: kept for writing if it crossed the wire.
    pub fn packet(&mut self, p: &PacketRecord) -> io::Result<()> {
        let Some(wire) = p.hops.iter().find(|h| h.stage == Stage::Wire) else {
            return Ok(());
        };
        let pending = Pending {
            interface: u32::from(p.recorded && self.recorded_interface),
            inbound: p.dir == Dir::Rx,
            frame: p.frame.clone(),
            comment: comment(p),
        };
        self.pending.insert((wire.t_ns, p.id), pending);
        while self.pending.len() > MAX_PENDING {
            self.write_first()?;
        }
        Ok(())
    }

    /// No frame still to come crossed the wire before `before`: write every waiting frame that did.
    pub fn settle(&mut self, before: Nanos) -> io::Result<()> {
        while self
            .pending
            .first_key_value()
            .is_some_and(|(&(t, _), _)| t < before)
        {
            self.write_first()?;
        }
        Ok(())
    }

    fn write_first(&mut self) -> io::Result<()> {
        let Some(((t, _), f)) = self.pending.pop_first() else {
            return Ok(());
        };
        let ts = self.base_ns.saturating_add(t);
        let b = &mut self.block;
        b.clear();
        b.extend_from_slice(&f.interface.to_le_bytes());
        b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(ts as u32).to_le_bytes());
        b.extend_from_slice(&(f.frame.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.frame.len() as u32).to_le_bytes());
        b.extend_from_slice(&f.frame);
        pad(b);
        // An option value is at most 65535 bytes; a longer comment is cut at a character boundary.
        let mut end = f.comment.len().min(u16::MAX as usize);
        while !f.comment.is_char_boundary(end) {
            end -= 1;
        }
        option(b, OPT_COMMENT, &f.comment.as_bytes()[..end]);
        let flags = if f.inbound {
            FLAG_INBOUND
        } else {
            FLAG_OUTBOUND
        };
        option(b, EPB_FLAGS, &flags.to_le_bytes());
        option(b, OPT_END, &[]);
        write_block(&mut self.out, EPB, b)?;
        self.frames += 1;
        Ok(())
    }

    /// Write what still waits, and put the file in place. Returns how many frames it holds.
    pub fn finish(mut self) -> io::Result<u64> {
        self.settle(Nanos::MAX)?;
        while !self.pending.is_empty() {
            self.write_first()?;
        }
        self.out.finish()?;
        Ok(self.frames)
    }
}
