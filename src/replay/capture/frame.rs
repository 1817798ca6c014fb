//! What the capture reader hands on — a `CapturedFrame` per packet record — and why it may refuse a file
//! (`CaptureError`), with the size limits that tell a damaged record from a real one.

use crate::replay::loopback::Rename;

/// One packet record of a capture, normalised to an Ethernet frame smoltcp can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    /// 0-based number of this packet record in the capture (non-packet blocks are not counted).
    pub index: u64,
    /// Absolute time, ns since the Unix epoch; for a record without one (`timestamped` false), the previous
    /// packet's time, or 0 before any.
    pub t_ns: u64,
    /// False for a Simple Packet Block: it records no time, and is played with the previous packet (or at
    /// the capture's start), never at its `t_ns`.
    pub timestamped: bool,
    /// pcapng interface id (0 for pcap).
    pub interface: u32,
    /// Link type of the record's interface; `u32::MAX` if the interface was never declared.
    pub linktype: u32,
    /// An Ethernet II frame, or the raw captured bytes when `problem` is set.
    pub frame: Vec<u8>,
    /// On-wire length of `frame` (the record's length moved by the same header delta as the conversion).
    pub orig_len: u32,
    /// `orig_len > frame.len()`: the capture cut the packet short.
    pub truncated: bool,
    /// The Ethernet header (or a MAC in it) was made up from IP addresses.
    pub synthetic_l2: bool,
    /// VIDs of the stripped 802.1Q/QinQ tags, outermost first.
    pub vlan: Vec<u16>,
    /// A loopback recording's peer renamed in this packet (its note says so).
    pub renamed: Option<Rename>,
    /// The packet's pcapng comment(s).
    pub comment: Option<String>,
    /// Why the frame could not be normalised (it is then passed on raw).
    pub problem: Option<String>,
}

/// Why a capture cannot be read at all. Display is one line; the caller prefixes the file name.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("the file is empty, expected a pcap or pcapng capture")]
    Empty,
    #[error(
        "not a capture: the file starts with {found}, expected pcap (magic a1b2c3d4, a1b23c4d or a1b2cd34) or pcapng (0a0d0d0a)"
    )]
    BadMagic { found: String },
    #[error("truncated {format} header: the file ends after {got} of {need} bytes")]
    TruncatedHeader {
        format: &'static str,
        got: usize,
        need: usize,
    },
    #[error("bad {format} header: {why}")]
    BadHeader { format: &'static str, why: String },
    /// Not a `source`: the message already says it, and anyhow's `{:#}` would print it twice.
    #[error("cannot read: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for CaptureError {
    fn from(e: std::io::Error) -> Self {
        CaptureError::Io(e)
    }
}

/// Largest captured length accepted for one packet (libpcap's 262144 maximum snaplen plus headroom for
/// encapsulations); a larger record is taken as damage.
pub const MAX_CAPLEN: u32 = 262_144 + 65_536;
/// Largest pcapng block held in memory. Wireshark refuses blocks over 16 MiB as well; larger ones here are
/// damage, and the cap keeps a replay within its memory budget.
pub const MAX_BLOCK: usize = 16 * 1024 * 1024;
