//! Replay of recorded captures through the pipeline: reading pcap/pcapng, choosing who the stack is, emulating
//! the other hosts at the wire, and diffing what smoltcp sent against what was recorded.

pub mod capture;
pub mod diff;
pub mod link;
pub mod prepare;
pub mod recorded_app;
pub mod retransmit;
pub mod role;
pub mod script;
pub mod segment;
#[doc(hidden)]
pub mod testgen;
pub mod wire;

pub use prepare::{DEMO_CAPTURE, NO_HOST, Prepared, ReplaySpec, Source, check_readable, prepare};
