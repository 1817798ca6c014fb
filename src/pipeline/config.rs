//! What a pipeline is built with: the stack's addresses and seed, the frame buffer's size, and the app serving
//! each port. Every source builds its configuration here, one way.

use std::collections::BTreeMap;

use super::apps::AppKind;
use super::stack::StackConfig;

/// Half-open TCP connections (SYN-RECEIVED) a pipeline keeps at once, like a kernel's SYN backlog: past it
/// the oldest is aborted.
pub const SYN_BACKLOG: usize = 128;
/// How long a half-open connection may wait for the handshake's last ACK before it is aborted (about what a
/// kernel's five SYN-ACK retries take).
pub const SYN_RECEIVED_TIMEOUT_NS: u64 = 60_000_000_000;

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub stack: StackConfig,
    /// Capacity of the rx frame buffer and of the tx queue, in frames.
    pub frame_buffer: usize,
    pub tcp_apps: BTreeMap<u16, AppKind>,
    pub udp_apps: BTreeMap<u16, AppKind>,
}

impl PipelineConfig {
    /// A pipeline whose apps serve their TCP port, and the same port over UDP where the app serves UDP too
    /// (echo and discard do; http, exec: and forward: do not).
    pub fn serving(
        stack: StackConfig,
        frame_buffer: usize,
        tcp_apps: BTreeMap<u16, AppKind>,
    ) -> PipelineConfig {
        let udp_apps = tcp_apps
            .iter()
            .filter(|(_, k)| k.serves_udp())
            .map(|(&p, k)| (p, k.clone()))
            .collect();
        PipelineConfig {
            stack,
            frame_buffer,
            tcp_apps,
            udp_apps,
        }
    }

    /// UDP served by an app map of its own, not by the TCP apps' (a replay: the ports the capture's datagrams
    /// went to).
    pub fn with_udp_apps(mut self, udp_apps: BTreeMap<u16, AppKind>) -> PipelineConfig {
        self.udp_apps = udp_apps;
        self
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig::serving(StackConfig::default(), 256, BTreeMap::new())
    }
}
