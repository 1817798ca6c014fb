//! The session layer: the one place that turns a validated spec (sim, replay or live) into a run — the
//! pipeline, its export header and its export files — and runs it headless, or hands a front end a driver to
//! move it (`crate::debug`), and finishes it: connections closed, exports written, the source's own report
//! (the simulated peer's view, the replay's diff) gathered for the summary (`report`).
//!
//! Sim and replay are deterministic (`deterministic`): a run is a pure function of its spec, so the TUI's
//! step back and its `e` export make the run afresh from the same spec. Live (`live`) runs on threads of its
//! own against a real clock.

pub(crate) mod deterministic;
pub mod filter;
pub(crate) mod header;
pub mod live;
pub mod progress;
pub mod report;
pub mod signals;
pub mod watch;

pub use deterministic::{
    ReplayResult, SimResult, Spec, debugger, export_after_moves, run_replay, run_replay_watched,
    run_sim, run_sim_watched,
};
