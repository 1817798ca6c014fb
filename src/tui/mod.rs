//! The terminal UI (DESIGN.md §5): a `Snapshot` of the run, and the widgets that draw it.

pub mod snapshot;
pub mod widgets;
