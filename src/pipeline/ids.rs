//! The numbers the trace knows packets and connections by: each counts up from 1 in a run.

pub type PacketId = u64;
pub type ConnId = u64;
