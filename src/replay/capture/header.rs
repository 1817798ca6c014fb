//! Capture detection by magic and validation of the file header, before any record is parsed, so a
//! file that is not a capture gets one precise `CaptureError` instead of a parser error.

use std::io::{ErrorKind, Read};

use super::frame::{CaptureError, MAX_BLOCK};

/// What the file header says about the records that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Pcap {
        big_endian: bool,
        nanos: bool,
        /// Kuznetzov's modified pcap (magic a1b2cd34): 24-byte record headers (the classic 16 bytes, then
        /// ifindex, protocol, packet type and a pad byte).
        modified: bool,
        linktype: u32,
        snaplen: u32,
    },
    /// Byte order and interfaces are per section: they come with the blocks.
    Pcapng,
}

/// pcap's header is fixed; pcapng's first block (the SHB) is at least this long.
const PCAP_HEADER: usize = 24;
const SHB_MIN: usize = 28;
/// How much of the file is read up front (the SHB grows this when its options are longer).
const PREFIX: usize = 64 * 1024;
/// A header snaplen beyond this is not a real capture setting but damage.
const MAX_SNAPLEN: u32 = 0x1000_0000;

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// File bytes of the pcap magics: (bytes, big endian, nanosecond).
const PCAP_MAGICS: [([u8; 4], bool, bool); 4] = [
    ([0xd4, 0xc3, 0xb2, 0xa1], false, false),
    ([0xa1, 0xb2, 0xc3, 0xd4], true, false),
    ([0x4d, 0x3c, 0xb2, 0xa1], false, true),
    ([0xa1, 0xb2, 0x3c, 0x4d], true, true),
];
/// The modified pcap's magic in little-endian files, the only byte order pcap-parser reads it in.
const MODIFIED_MAGIC: [u8; 4] = [0x34, 0xcd, 0xb2, 0xa1];
/// The same magic big-endian: pcap-parser does not recognise it, so it is refused by name here.
const MODIFIED_MAGIC_BE: [u8; 4] = [0xa1, 0xb2, 0xcd, 0x34];

/// Reads the start of the file and validates its header; returns the header and every byte read.
pub fn read<R: Read>(reader: &mut R) -> Result<(Header, Vec<u8>), CaptureError> {
    let mut prefix = Vec::new();
    fill(reader, &mut prefix, PREFIX)?;
    if prefix.is_empty() {
        return Err(CaptureError::Empty);
    }
    let Some(magic) = prefix.get(..4).map(|m| [m[0], m[1], m[2], m[3]]) else {
        return Err(short_magic(&prefix));
    };
    if magic == PCAPNG_MAGIC {
        pcapng(reader, &mut prefix)?;
        return Ok((Header::Pcapng, prefix));
    }
    if magic == MODIFIED_MAGIC {
        return Ok((pcap(&prefix, false, false, true)?, prefix));
    }
    if magic == MODIFIED_MAGIC_BE {
        return Err(bad(
            "pcap",
            "big-endian modified pcap (magic a1b2cd34) is not supported".into(),
        ));
    }
    match PCAP_MAGICS.iter().find(|(m, _, _)| *m == magic) {
        Some(&(_, big_endian, nanos)) => Ok((pcap(&prefix, big_endian, nanos, false)?, prefix)),
        None => Err(bad_magic(&magic)),
    }
}

/// Reads until `buf` holds `want` bytes or the file ends.
fn fill<R: Read>(reader: &mut R, buf: &mut Vec<u8>, want: usize) -> Result<(), CaptureError> {
    let mut chunk = [0u8; 8192];
    while buf.len() < want {
        let n = want.saturating_sub(buf.len()).min(chunk.len());
        match reader.read(&mut chunk[..n]) {
            Ok(0) => break,
            Ok(got) => buf.extend_from_slice(&chunk[..got]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Fewer than 4 bytes: truncated if they start a known magic, else not a capture.
fn short_magic(prefix: &[u8]) -> CaptureError {
    let starts = |m: &[u8; 4]| m.starts_with(prefix);
    if starts(&PCAPNG_MAGIC) {
        return CaptureError::TruncatedHeader {
            format: "pcapng",
            got: prefix.len(),
            need: SHB_MIN,
        };
    }
    if PCAP_MAGICS.iter().any(|(m, _, _)| starts(m)) || starts(&MODIFIED_MAGIC) {
        return CaptureError::TruncatedHeader {
            format: "pcap",
            got: prefix.len(),
            need: PCAP_HEADER,
        };
    }
    bad_magic(prefix)
}

fn bad_magic(found: &[u8]) -> CaptureError {
    let hex: Vec<String> = found.iter().map(|b| format!("{b:02x}")).collect();
    CaptureError::BadMagic {
        found: hex.join(" "),
    }
}

fn bad(format: &'static str, why: String) -> CaptureError {
    CaptureError::BadHeader { format, why }
}

fn pcap(p: &[u8], big_endian: bool, nanos: bool, modified: bool) -> Result<Header, CaptureError> {
    if p.len() < PCAP_HEADER {
        return Err(CaptureError::TruncatedHeader {
            format: "pcap",
            got: p.len(),
            need: PCAP_HEADER,
        });
    }
    let u16_at = |at: usize| {
        let b = [p[at], p[at + 1]];
        if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |at: usize| {
        let b = [p[at], p[at + 1], p[at + 2], p[at + 3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let (major, minor) = (u16_at(4), u16_at(6));
    if major != 2 {
        return Err(bad(
            "pcap",
            format!("unsupported version {major}.{minor}, expected 2.x"),
        ));
    }
    let snaplen = u32_at(16);
    if snaplen > MAX_SNAPLEN {
        return Err(bad("pcap", format!("absurd snap length {snaplen}")));
    }
    // The upper bits of the link-type field carry FCS information, not the link type.
    let linktype = u32_at(20) & 0xffff;
    Ok(Header::Pcap {
        big_endian,
        nanos,
        modified,
        linktype,
        snaplen,
    })
}

/// Checks the first Section Header Block and makes sure all of it is in `prefix`.
fn pcapng<R: Read>(reader: &mut R, prefix: &mut Vec<u8>) -> Result<(), CaptureError> {
    let got = prefix.len();
    if got < SHB_MIN {
        return Err(CaptureError::TruncatedHeader {
            format: "pcapng",
            got,
            need: SHB_MIN,
        });
    }
    let big_endian = match prefix[8..12] {
        [0x4d, 0x3c, 0x2b, 0x1a] => false,
        [0x1a, 0x2b, 0x3c, 0x4d] => true,
        ref other => {
            let hex: Vec<String> = other.iter().map(|b| format!("{b:02x}")).collect();
            return Err(bad(
                "pcapng",
                format!(
                    "byte-order magic {} is neither 1a2b3c4d nor 4d3c2b1a",
                    hex.join(" ")
                ),
            ));
        }
    };
    let word = |at: usize| [prefix[at], prefix[at + 1], prefix[at + 2], prefix[at + 3]];
    let len_bytes = word(4);
    let block_len = if big_endian {
        u32::from_be_bytes(len_bytes)
    } else {
        u32::from_le_bytes(len_bytes)
    } as usize;
    let version = [prefix[12], prefix[13], prefix[14], prefix[15]];
    let (major, minor) = if big_endian {
        (
            u16::from_be_bytes([version[0], version[1]]),
            u16::from_be_bytes([version[2], version[3]]),
        )
    } else {
        (
            u16::from_le_bytes([version[0], version[1]]),
            u16::from_le_bytes([version[2], version[3]]),
        )
    };
    if major != 1 {
        return Err(bad(
            "pcapng",
            format!("unsupported version {major}.{minor}, expected 1.x"),
        ));
    }
    if block_len < SHB_MIN || !block_len.is_multiple_of(4) || block_len > MAX_BLOCK {
        return Err(bad(
            "pcapng",
            format!("section header block length {block_len} is invalid"),
        ));
    }
    if block_len > prefix.len() {
        fill(reader, prefix, block_len)?;
        if block_len > prefix.len() {
            let got = prefix.len();
            return Err(CaptureError::TruncatedHeader {
                format: "pcapng",
                got,
                need: block_len,
            });
        }
    }
    let shb = pcap_parser::parse_sectionheaderblock(&prefix[..block_len]);
    if shb.is_err() {
        return Err(bad(
            "pcapng",
            "the section header block does not parse".into(),
        ));
    }
    Ok(())
}
