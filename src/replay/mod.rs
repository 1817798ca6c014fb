//! Replay of recorded captures through the pipeline: reading pcap/pcapng, choosing who the stack is, emulating
//! the other hosts at the wire, and diffing what smoltcp sent against what was recorded.

pub mod capture;
pub(crate) mod diff;
pub mod flows;
pub mod gaps;
pub mod input;
pub mod link;
pub mod loopback;
pub(crate) mod prepare;
pub(crate) mod recorded_app;
pub(crate) mod retransmit;
pub(crate) mod role;
pub(crate) mod script;
pub mod segment;
#[doc(hidden)]
pub mod testgen;
pub(crate) mod wire;

pub use prepare::{DEMO_CAPTURE, NO_HOST, Prepared, ReplaySpec, Source, check_readable, prepare};
