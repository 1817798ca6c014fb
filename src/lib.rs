//! pktpath: a userspace network path (wire → frame buffer → smoltcp → connection → app, and back) traced hop by
//! hop. `pipeline` is the engine, `sim` a simulated peer to drive it, `export` the timeline writers.

pub mod cli;
pub mod debug;
pub mod export;
pub mod headless;
pub mod live;
pub mod pipeline;
pub mod replay;
pub mod sim;
pub mod tui;
