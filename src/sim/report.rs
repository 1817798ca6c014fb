//! What the simulated peer saw, shared with the caller while the pipeline owns the peer itself.

use std::net::SocketAddr;

use crate::pipeline::trace::StreamDigest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOutcome {
    pub local_port: u16,
    pub remote: Option<SocketAddr>,
    /// What this end wrote, and what it read back.
    pub sent: StreamDigest,
    pub received: StreamDigest,
    pub state: String,
    pub completed: bool,
    pub reset: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpOutcome {
    pub sent: Vec<StreamDigest>,
    pub replies: Vec<StreamDigest>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    pub clients: Vec<ClientOutcome>,
    pub udp: Option<UdpOutcome>,
    pub peer_done: bool,
}
