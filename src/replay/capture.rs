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

// LOCAL SHIM, NOT COMMITTED: lets the engine compile until the reader branch merges.
pub struct CaptureReader;
#[derive(Debug, thiserror::Error)]
#[error("shim")]
pub struct CaptureError;
impl CaptureReader {
    pub fn open(_: &std::path::Path) -> Result<Self, CaptureError> {
        Err(CaptureError)
    }
    pub fn from_bytes(_: Vec<u8>) -> Result<Self, CaptureError> {
        Err(CaptureError)
    }
    pub fn format(&self) -> &'static str {
        "shim"
    }
    pub fn stopped(&self) -> Option<&str> {
        None
    }
    pub fn records_read(&self) -> u64 {
        0
    }
}
impl Iterator for CaptureReader {
    type Item = CapturedFrame;
    fn next(&mut self) -> Option<CapturedFrame> {
        None
    }
}
