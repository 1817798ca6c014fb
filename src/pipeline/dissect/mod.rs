//! Frame dissector: Ethernet frame bytes → layers, summary and flow key; never panics on any input.
//!
//! `frame` reads the layers into a `FrameInfo`; `summary` turns one into text (the one-line summary and the
//! detail pane's lines).

mod frame;
mod summary;
#[cfg(test)]
mod tests;

pub use frame::{FlowKey, FrameInfo, Net, Proto, TcpFlags, Transport, dissect};
pub use summary::format_mac;
