//! Run exports (docs/timeline-format.md): the `pktpath-timeline` JSON document and its JSON Lines stream, the Chrome
//! Trace Event Format for Perfetto, and the annotated pcapng of every wire frame.

pub mod chrome;
pub mod commit;
pub mod header;
pub mod occupancy;
pub mod pcapng;
pub mod sinks;
pub mod thread;
pub mod timeline;
pub mod view;
pub mod writer;

pub use header::Header;
pub use sinks::{ExportError, ExportPlan, Exports, Written};
pub use timeline::TimelineWriter;
pub use writer::{Format, create};
