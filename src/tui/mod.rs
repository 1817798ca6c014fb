//! The terminal UI (issue 4): a snapshot of the run for drawing, the pipeline diagram and packet list
//! widgets, the debugger that drives a run step by step (breakpoints, step back), the filter expression
//! language shared by the packet list and by breakpoints, and the app that ties them to keys and a screen.

pub mod app;
pub mod breakpoints;
pub mod debugger;
pub mod driver;
pub mod filter;
pub mod history;
pub mod live;
pub mod run;
pub mod snapshot;
pub mod term;
pub mod widgets;
