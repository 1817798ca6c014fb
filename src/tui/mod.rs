//! The terminal UI (issue 4). So far: a snapshot of the run for drawing, the pipeline diagram and packet list
//! widgets, the debugger that drives a run step by step (breakpoints, step back), and the filter expression
//! language shared by the packet list and by breakpoints.

pub mod debugger;
pub mod filter;
pub mod snapshot;
pub mod widgets;
