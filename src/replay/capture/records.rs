//! Decoding of parsed blocks into `CapturedFrame`s: per-section pcapng state (byte order, interfaces with
//! their link type, snaplen, timestamp resolution and offset), timestamps in ns, and the size of a pending
//! block for the streaming loop.
//!
//! pcap-parser's own `if_tsoffset` is read little-endian whatever the section's byte order, so the offset
//! is decoded here from the raw option.

use pcap_parser::pcapng::{
    Block, EnhancedPacketBlock, InterfaceDescriptionBlock, SectionHeaderBlock, SimplePacketBlock,
    UnknownBlock,
};
use pcap_parser::{LegacyPcapBlock, OptionCode, PcapBlockOwned, PcapNGOption};

use super::frame::{CapturedFrame, MAX_BLOCK, MAX_CAPLEN};
use super::header::Header;
use crate::replay::link;
use crate::replay::loopback::Renamer;

/// Default pcapng resolution: 10^-6 s.
const DEFAULT_TSRESOL: u8 = 6;
const SHB_TYPE: u32 = 0x0a0d_0d0a;
const PACKET_BLOCK_TYPE: u32 = 2;
const PCAP_RECORD_HEADER: usize = 16;
/// A modified pcap record adds ifindex (4), protocol (2), packet type (1) and a pad byte.
const MODIFIED_RECORD_HEADER: usize = 24;

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: u32,
    snaplen: u32,
    tsresol: u8,
    tsoffset: i64,
}

/// Everything needed to decode the next block.
pub struct State {
    header: Header,
    /// Byte order of the current pcapng section.
    big_endian: bool,
    interfaces: Vec<Interface>,
    /// Time of the latest packet, for blocks that carry none (SPB).
    last_t_ns: u64,
    /// Which end of each loopback flow is renamed (decided at the flow's first packet).
    renamer: Renamer,
}

/// A packet record before normalisation.
struct Raw<'a> {
    /// None: the block has no timestamp.
    t_ns: Option<u64>,
    interface: u32,
    /// None: the interface was never declared.
    linktype: Option<u32>,
    data: &'a [u8],
    orig_len: u32,
    comment: Option<String>,
}

type Decoded = Result<Option<CapturedFrame>, String>;

impl State {
    pub fn new(header: Header) -> Self {
        State {
            header,
            big_endian: false,
            interfaces: Vec::new(),
            last_t_ns: 0,
            renamer: Renamer::default(),
        }
    }

    pub fn format(&self) -> &'static str {
        self.header.format()
    }

    /// Decodes one block: Ok(Some) for a packet, Ok(None) for a block to skip, Err when it is damaged.
    pub fn handle(&mut self, block: PcapBlockOwned<'_>, index: u64) -> Decoded {
        let mut raw = match block {
            PcapBlockOwned::LegacyHeader(_) => return Ok(None),
            PcapBlockOwned::Legacy(b) => self.legacy(&b)?,
            PcapBlockOwned::NG(b) => match self.ng(b)? {
                Some(raw) => raw,
                None => return Ok(None),
            },
        };
        let timestamped = raw.t_ns.is_some();
        let t_ns = *raw.t_ns.get_or_insert(self.last_t_ns);
        self.last_t_ns = t_ns;
        Ok(Some(finish(
            raw,
            index,
            t_ns,
            timestamped,
            &mut self.renamer,
        )))
    }

    fn legacy<'a>(&self, b: &LegacyPcapBlock<'a>) -> Result<Raw<'a>, String> {
        let Header::Pcap {
            nanos, linktype, ..
        } = self.header
        else {
            return Err("pcap record in a pcapng file".into());
        };
        check_caplen(b.caplen)?;
        let frac_ns = if nanos {
            u64::from(b.ts_usec)
        } else {
            u64::from(b.ts_usec) * 1000
        };
        Ok(Raw {
            t_ns: Some(u64::from(b.ts_sec) * 1_000_000_000 + frac_ns),
            interface: 0,
            linktype: Some(linktype),
            data: b.data,
            orig_len: b.origlen,
            comment: None,
        })
    }

    fn ng<'a>(&mut self, block: Block<'a>) -> Result<Option<Raw<'a>>, String> {
        match block {
            Block::SectionHeader(shb) => self.section(&shb).map(|()| None),
            Block::InterfaceDescription(idb) => {
                self.interface(&idb);
                Ok(None)
            }
            Block::EnhancedPacket(epb) => self.enhanced(epb).map(Some),
            Block::SimplePacket(spb) => Ok(Some(self.simple(spb))),
            Block::Unknown(u) => self.obsolete_packet(u),
            // NRB, ISB, DSB, custom, journal and process blocks carry nothing to replay.
            _ => Ok(None),
        }
    }

    /// A new section: its own byte order, and no interfaces yet.
    fn section(&mut self, shb: &SectionHeaderBlock<'_>) -> Result<(), String> {
        if shb.major_version != 1 {
            let (major, minor) = (shb.major_version, shb.minor_version);
            return Err(format!(
                "section header with unsupported version {major}.{minor}"
            ));
        }
        self.big_endian = shb.big_endian();
        self.interfaces.clear();
        Ok(())
    }

    fn interface(&mut self, idb: &InterfaceDescriptionBlock<'_>) {
        let tsoffset = idb
            .options
            .iter()
            .find(|o| o.code == OptionCode::IfTsoffset)
            .and_then(|o| option_i64(o, self.big_endian))
            .unwrap_or(0);
        self.interfaces.push(Interface {
            linktype: u32::from(idb.linktype.0 as u16),
            snaplen: idb.snaplen,
            tsresol: idb.if_tsresol,
            tsoffset,
        });
    }

    fn enhanced<'a>(&self, epb: EnhancedPacketBlock<'a>) -> Result<Raw<'a>, String> {
        check_caplen(epb.caplen)?;
        let ts = u64::from(epb.ts_high) << 32 | u64::from(epb.ts_low);
        let comment = comments(&epb.options);
        // The block's data is padded to 32 bits; the captured length says how much is packet.
        let padded: &'a [u8] = epb.data;
        let data = padded.get(..epb.caplen as usize).unwrap_or(padded);
        Ok(self.packet(epb.if_id, ts, data, epb.origlen, comment))
    }

    /// SPB: interface 0; only the orig_len is recorded, the captured part is limited by the snaplen.
    fn simple<'a>(&self, spb: SimplePacketBlock<'a>) -> Raw<'a> {
        let snaplen = self.interfaces.first().map_or(0, |i| i.snaplen);
        let mut caplen = spb.origlen as usize;
        if snaplen != 0 {
            caplen = caplen.min(snaplen as usize);
        }
        let data = spb.data.get(..caplen).unwrap_or(spb.data);
        // An SPB has no timestamp: it is taken as arriving with the previous packet.
        let mut raw = self.packet(0, 0, data, spb.origlen, None);
        raw.t_ns = None;
        raw
    }

    /// The obsolete Packet Block (type 2), which pcap-parser hands over as an unknown block.
    fn obsolete_packet<'a>(&self, u: UnknownBlock<'a>) -> Result<Option<Raw<'a>>, String> {
        let block_type = if self.big_endian {
            u.block_type.swap_bytes()
        } else {
            u.block_type
        };
        if block_type != PACKET_BLOCK_TYPE {
            return Ok(None);
        }
        let d = u.data;
        let field = |at: usize| {
            d.get(at..at + 4)
                .map(|b| self.u32([b[0], b[1], b[2], b[3]]))
        };
        let (Some(head), Some(ts_high), Some(ts_low), Some(caplen), Some(orig_len)) =
            (field(0), field(4), field(8), field(12), field(16))
        else {
            return Err("packet block too short for its header".into());
        };
        check_caplen(caplen)?;
        let Some(data) = d.get(20..20 + caplen as usize) else {
            return Err(format!(
                "packet block shorter than its captured length {caplen}"
            ));
        };
        // The first word holds the 16-bit interface id then the drop count, in section byte order.
        let interface = if self.big_endian {
            head >> 16
        } else {
            head & 0xffff
        };
        let ts = u64::from(ts_high) << 32 | u64::from(ts_low);
        Ok(Some(self.packet(interface, ts, data, orig_len, None)))
    }

    fn packet<'a>(
        &self,
        interface: u32,
        ts: u64,
        data: &'a [u8],
        orig_len: u32,
        comment: Option<String>,
    ) -> Raw<'a> {
        let iface = self.interfaces.get(interface as usize);
        let (tsresol, tsoffset) = iface.map_or((DEFAULT_TSRESOL, 0), |i| (i.tsresol, i.tsoffset));
        Raw {
            t_ns: Some(ng_ns(ts, tsresol, tsoffset)),
            interface,
            linktype: iface.map(|i| i.linktype),
            data,
            orig_len,
            comment,
        }
    }

    fn u32(&self, b: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    /// Total size of the block or record at the start of `data`: None until its header is in; Err when
    /// the header itself is absurd.
    pub fn pending_size(&self, data: &[u8]) -> Result<Option<usize>, String> {
        match self.header {
            Header::Pcap {
                big_endian,
                modified,
                ..
            } => {
                let Some(b) = data.get(8..12) else {
                    return Ok(None);
                };
                let b = [b[0], b[1], b[2], b[3]];
                let caplen = if big_endian {
                    u32::from_be_bytes(b)
                } else {
                    u32::from_le_bytes(b)
                };
                check_caplen(caplen)?;
                let header = if modified {
                    MODIFIED_RECORD_HEADER
                } else {
                    PCAP_RECORD_HEADER
                };
                Ok(Some(header + caplen as usize))
            }
            Header::Pcapng => self.pending_block(data),
        }
    }

    fn pending_block(&self, data: &[u8]) -> Result<Option<usize>, String> {
        let word = |at: usize| data.get(at..at + 4).map(|b| [b[0], b[1], b[2], b[3]]);
        let (Some(kind), Some(len)) = (word(0), word(4)) else {
            return Ok(None);
        };
        // A new section may switch the byte order: its byte-order magic decides how to read its length.
        let big_endian = if u32::from_le_bytes(kind) == SHB_TYPE {
            match word(8) {
                None => return Ok(None),
                Some([0x1a, 0x2b, 0x3c, 0x4d]) => true,
                Some([0x4d, 0x3c, 0x2b, 0x1a]) => false,
                Some(_) => return Err("section header with a bad byte-order magic".into()),
            }
        } else {
            self.big_endian
        };
        let len = if big_endian {
            u32::from_be_bytes(len)
        } else {
            u32::from_le_bytes(len)
        } as usize;
        if !(12..=MAX_BLOCK).contains(&len) {
            return Err(format!("block length {len} is outside 12..={MAX_BLOCK}"));
        }
        Ok(Some(len))
    }
}

fn check_caplen(caplen: u32) -> Result<(), String> {
    if caplen > MAX_CAPLEN {
        return Err(format!(
            "record length {caplen} exceeds the maximum {MAX_CAPLEN}"
        ));
    }
    Ok(())
}

/// An 8-byte integer option in the section's byte order.
fn option_i64(o: &PcapNGOption<'_>, big_endian: bool) -> Option<i64> {
    let b: [u8; 8] = o.as_bytes().ok()?.try_into().ok()?;
    Some(if big_endian {
        i64::from_be_bytes(b)
    } else {
        i64::from_le_bytes(b)
    })
}

/// The packet's opt_comment values, joined when there are several.
fn comments(options: &[PcapNGOption<'_>]) -> Option<String> {
    let all: Vec<String> = options
        .iter()
        .filter(|o| o.code == OptionCode::Comment)
        .filter_map(|o| o.as_bytes().ok())
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    (!all.is_empty()).then(|| all.join("; "))
}

/// pcapng timestamp units → ns since the epoch: `if_tsresol` is 10^-n, or 2^-n with bit 7 set;
/// `if_tsoffset` is in seconds. Out-of-range results saturate instead of wrapping.
pub fn ng_ns(ts: u64, tsresol: u8, tsoffset: i64) -> u64 {
    let ts = u128::from(ts);
    let ns: u128 = if tsresol & 0x80 == 0 {
        let exp = u32::from(tsresol);
        if exp <= 9 {
            ts * 10u128.pow(9 - exp)
        } else {
            10u128.checked_pow(exp - 9).map_or(0, |div| ts / div)
        }
    } else {
        // ts < 2^64 and 10^9 < 2^30, so the product fits; the shift is at most 127.
        (ts * 1_000_000_000) >> (tsresol & 0x7f)
    };
    let total = ns as i128 + i128::from(tsoffset) * 1_000_000_000;
    total.clamp(0, i128::from(u64::MAX)) as u64
}

/// Normalises the record's link layer and builds the frame.
fn finish(
    raw: Raw<'_>,
    index: u64,
    t_ns: u64,
    timestamped: bool,
    renamer: &mut Renamer,
) -> CapturedFrame {
    let n = match raw.linktype {
        Some(linktype) => link::normalise_renaming(linktype, raw.data, raw.orig_len, renamer),
        None => link::Normalised {
            frame: raw.data.to_vec(),
            orig_len: raw.orig_len,
            synthetic_l2: false,
            vlan: Vec::new(),
            renamed: None,
            problem: Some(format!(
                "packet on interface {}, which no interface block declared",
                raw.interface
            )),
        },
    };
    CapturedFrame {
        index,
        t_ns,
        timestamped,
        interface: raw.interface,
        linktype: raw.linktype.unwrap_or(u32::MAX),
        truncated: n.orig_len as usize > n.frame.len(),
        frame: n.frame,
        orig_len: n.orig_len,
        synthetic_l2: n.synthetic_l2,
        vlan: n.vlan,
        renamed: n.renamed,
        comment: raw.comment,
        problem: n.problem,
    }
}
