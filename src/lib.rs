//! pktpath: a userspace network path (wire → frame buffer → smoltcp → connection → app, and back) traced hop by
//! hop. Layers, each using only those listed before it (docs/architecture.md):
//! `pipeline` the engine; `export` the timeline and pcapng writers; the sources that feed the wire — `sim` (a
//! simulated peer), `replay` (a capture), `live` (a TAP device); `debug` what a front end drives (the
//! debugger, breakpoints, the packet history); `session` the one place a run is built, run and finished;
//! `tui` and `cli` the front ends.

pub mod cli;
pub mod debug;
pub mod export;
pub mod live;
pub mod pipeline;
pub mod replay;
pub mod session;
pub mod sim;
pub mod tui;
