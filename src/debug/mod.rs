//! What a front end drives: a run it can look at and move. The `Driver` trait, the deterministic `Debugger`
//! (sim and replay: step, continue to a breakpoint, step back by re-running), the live run's driver (the stack
//! thread publishes, the UI takes), and the model both hand the screen — counters (`snapshot`), every finished
//! packet's list entry (`history`), breakpoints and the filter language they share with the packet list.
//! Nothing here draws; the TUI (`crate::tui`) does, from what a driver gives it.

pub(crate) mod breakpoints;
pub(crate) mod debugger;
pub mod driver;
pub mod filter;
pub mod history;
pub(crate) mod live;
pub mod snapshot;
