//! Frame dissector: Ethernet frame bytes → layers, summary and flow key; never panics on any input.
//!
//! `headers` reads a frame's header bytes, once, for the dissector and the replay alike; `frame` checks them (as
//! smoltcp does) into a `FrameInfo`, with the checksums and the ARP and ICMP layers; `summary` turns one into
//! text (the one-line summary and the detail pane's lines).

mod frame;
mod headers;
mod summary;
#[cfg(test)]
mod tests;

pub use frame::{FlowKey, FrameInfo, Net, Proto, Transport, dissect};
pub use headers::TcpFlags;
pub(crate) use headers::{ETHERNET_HEADER, Headers, L4Header};
pub use summary::format_mac;
