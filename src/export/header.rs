//! The run's description at the top of every export (docs/timeline-format.md, "source" and "stack"): what fed
//! the wire, and the stack it met, described from the configuration the pipeline was really built with.
//! Serialized through `serde_json::Value`, so its objects' keys come out in alphabetical order, as every
//! export has written them.

use std::collections::BTreeSet;

use serde::{Serialize, Serializer};

use crate::pipeline::PipelineConfig;
use crate::pipeline::connection::CONN_BUFFER;
use crate::pipeline::dissect::format_mac;
use crate::pipeline::stack::{TCP_BUFFER, UDP_PAYLOAD_BUFFER};

/// The smoltcp release the stack is built on (Cargo.toml pins its minor version).
pub const SMOLTCP_VERSION: &str = "0.14";

#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub source: Source,
    pub stack: StackInfo,
}

/// Where the frames came from, and who wrote the export if not a headless run.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    #[serde(flatten)]
    pub kind: SourceKind,
    /// "tui": written by the TUI's `e`, of the run as far as it had got…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exported_from: Option<&'static str>,
    /// …which was this many debugger moves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tui_move: Option<u64>,
    /// `--filter`: only the packets matching this expression were written (the stats count every packet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

impl From<SourceKind> for Source {
    fn from(kind: SourceKind) -> Source {
        Source {
            kind,
            exported_from: None,
            tui_move: None,
            filter: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceKind {
    /// A simulated peer across an in-memory wire.
    Sim {
        clients: usize,
        bytes: usize,
        port: u16,
        udp: usize,
        outbound: bool,
        seed: u64,
        /// `PORT=SPEC` of every app.
        apps: Vec<String>,
        hop_cost_ns: u64,
        link_delay_ns: u64,
    },
    /// A capture played through the path.
    Replay {
        /// The capture's path (or the name of frames built in or held in memory).
        file: String,
        /// pcap, pcapng, …
        capture_format: String,
        speed: Speed,
        /// The host the stack plays.
        #[serde(rename = "as")]
        as_host: String,
        seed: u64,
        /// The `--app` options as given.
        apps: Vec<String>,
        hop_cost_ns: u64,
    },
    /// Real traffic from a TAP device.
    Live {
        tap: String,
        /// `PORT=SPEC` of every app.
        apps: Vec<String>,
        host_ip: Option<String>,
        host_ip6: Option<String>,
        duration_s: Option<f64>,
    },
}

/// A replay's pace: a multiple of the recorded one, or as fast as the stack takes it ("max").
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    Max,
    Times(f64),
}

impl Serialize for Speed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Speed::Max => s.serialize_str("max"),
            Speed::Times(x) => s.serialize_f64(*x),
        }
    }
}

/// The stack the frames met.
#[derive(Debug, Clone, Serialize)]
pub struct StackInfo {
    pub mac: String,
    /// `ADDR/PREFIX`; none when a replay's stack plays no IPv4 host.
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub frame_buffer: usize,
    #[serde(flatten)]
    pub buffers: Option<Buffers>,
    #[serde(flatten)]
    pub ports: Option<Ports>,
    pub smoltcp: &'static str,
}

/// Each buffer's size, in bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Buffers {
    pub tcp_socket_buffer: usize,
    pub conn_buffer: usize,
    pub udp_socket_buffer: usize,
}

/// The ports a replayed host was seen serving.
#[derive(Debug, Clone, Serialize)]
pub struct Ports {
    pub tcp_ports: BTreeSet<u16>,
    pub udp_ports: BTreeSet<u16>,
}

impl StackInfo {
    /// The stack of a pipeline built with `config`, its buffers included.
    pub fn of(config: &PipelineConfig) -> StackInfo {
        let (v4, prefix) = config.stack.ipv4;
        StackInfo {
            mac: format_mac(&config.stack.mac),
            ipv4: Some(format!("{v4}/{prefix}")),
            ipv6: config.stack.ipv6.map(|(a, p)| format!("{a}/{p}")),
            frame_buffer: config.frame_buffer,
            buffers: Some(Buffers {
                tcp_socket_buffer: TCP_BUFFER,
                conn_buffer: CONN_BUFFER,
                udp_socket_buffer: UDP_PAYLOAD_BUFFER,
            }),
            ports: None,
            smoltcp: SMOLTCP_VERSION,
        }
    }
}

impl Header {
    pub fn new(source: SourceKind, stack: StackInfo) -> Header {
        Header {
            source: source.into(),
            stack,
        }
    }

    /// Mark the header as the TUI's export of the run up to move `moves`.
    pub fn exported_from_tui(&mut self, moves: u64) {
        self.source.exported_from = Some("tui");
        self.source.tui_move = Some(moves);
    }

    /// The source object as written (keys in alphabetical order).
    pub fn source_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.source).expect("a header is plain data")
    }

    /// The stack object as written (keys in alphabetical order).
    pub fn stack_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.stack).expect("a header is plain data")
    }
}
