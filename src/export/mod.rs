//! Run exports (docs/timeline-format.md): the `pktpath-timeline` JSON document and its JSON Lines stream, the Chrome
//! Trace Event Format for Perfetto, and the annotated pcapng of every wire frame.

pub(crate) mod chrome;
pub mod header;
pub(crate) mod occupancy;
pub(crate) mod pcapng;
pub(crate) mod sinks;
pub mod target;
pub(crate) mod thread;
pub(crate) mod timeline;
pub(crate) mod view;
pub(crate) mod writer;

pub use header::Header;
pub use sinks::{ExportError, ExportPlan, Exports, PacketFilter, Written};
pub use target::remove_unfinished;
pub use timeline::TimelineWriter;
pub use writer::{Format, create};
