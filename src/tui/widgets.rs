//! The TUI widgets: the pipeline diagram and the packet list, drawn from a `Snapshot`.
