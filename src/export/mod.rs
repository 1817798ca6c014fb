//! Timeline exports (DESIGN.md §4): the `pktpath-timeline` JSON document and its JSON Lines stream.

pub mod view;
pub mod writer;

pub use writer::{Format, Header, TimelineWriter, create};
