//! Placeholder for the capture reader being written on the `reader` branch: only the record type, so the
//! replay engine compiles against it until the branches merge (the merge takes the reader's file).

/// One packet record of a capture, normalised to an Ethernet frame smoltcp can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    pub index: u64,
    pub t_ns: u64,
    pub interface: u32,
    pub linktype: u32,
    pub frame: Vec<u8>,
    pub orig_len: u32,
    pub truncated: bool,
    pub synthetic_l2: bool,
    pub vlan: Vec<u16>,
    pub comment: Option<String>,
    pub problem: Option<String>,
}
