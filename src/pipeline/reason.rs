//! Why a packet was dropped: a typed reason with a stable code (for counting and filtering) and a sentence
//! that names the values involved (for people). Every `dropped` outcome carries one.

use std::fmt;

use super::ids::PacketId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The rx frame buffer was full when the frame arrived.
    FrameBufferFull { capacity: usize },
    /// The tx queue was full when the stack emitted the frame.
    TxQueueFull { capacity: usize },
    /// The destination MAC is neither ours nor broadcast/multicast; smoltcp ignores it without a log line.
    ForeignMac { dst: String, ours: String },
    /// A checksum did not verify (smoltcp logs only "malformed" for this).
    BadChecksum { layer: &'static str },
    /// smoltcp could not parse a layer (its `check!` line names which).
    Malformed { what: String },
    /// A TCP segment no socket accepted; smoltcp answered with an RST.
    NoListener { port: u16, reply: Option<PacketId> },
    /// A UDP datagram to a port with no socket; smoltcp answered with ICMP port unreachable.
    PortUnreachable { port: u16, reply: Option<PacketId> },
    /// An IP protocol smoltcp does not handle; it answered with ICMP protocol unreachable.
    ProtocolUnreachable {
        protocol: u8,
        reply: Option<PacketId>,
    },
    /// An IP packet not addressed to the stack (smoltcp's "Rejecting IPv4 packet" lines).
    NotForUs { detail: String },
    /// Payload that did not fit: the socket's rx buffer had no room (the app is not reading fast enough).
    SocketBufferFull { detail: String },
    /// A TCP segment outside the receive window, or otherwise refused by the socket (smoltcp's own words).
    TcpRejected { detail: String },
    /// An IPv6 next header smoltcp does not handle (a fragment header among them); it answered with ICMPv6
    /// Parameter Problem.
    ParameterProblem {
        next_header: u8,
        reply: Option<PacketId>,
    },
    /// A fragment whose datagram did not complete within the reassembly timeout of its first fragment.
    ReassemblyTimeout {
        datagram: String,
        have: String,
        secs: u64,
    },
    /// A fragment whose datagram was still incomplete when the run ended.
    ReassemblyIncomplete { datagram: String, have: String },
    /// A fragment the reassembly could not take (no buffer free, too large, smoltcp's assembler refused).
    ReassemblyFailed { datagram: String, detail: String },
    /// smoltcp found no route for the packet or for its answer ("no matching routes", `NoRoute`).
    NoRoute { src: String, dst: String },
    /// An EtherType smoltcp does not handle.
    UnknownEtherType { ethertype: u16 },
    /// A frame the stack legitimately ignores (ARP for another host, an ICMP type no socket wants, ...).
    Ignored { detail: String },
    /// The connection went away (reset, aborted, app closed) before the payload reached the app.
    ConnectionClosed { detail: String },
    /// Replay: the capture holds fewer bytes than the frame had on the wire, so it is not injected as if whole.
    Truncated { captured: usize, on_wire: u32 },
    /// Replay: the capture's record cannot become an Ethernet frame (an unsupported link type, a cut header).
    NotInjectable { detail: String },
    /// The frame left no trace at all in the stack: no log line, no reply, no state change, no bytes.
    Unexplained,
}

impl Reason {
    /// A stable snake_case identifier, used in stats and filters.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::FrameBufferFull { .. } => "frame_buffer_full",
            Reason::TxQueueFull { .. } => "tx_queue_full",
            Reason::ForeignMac { .. } => "foreign_mac",
            Reason::BadChecksum { .. } => "bad_checksum",
            Reason::Malformed { .. } => "malformed",
            Reason::NoListener { .. } => "no_listener",
            Reason::PortUnreachable { .. } => "port_unreachable",
            Reason::ProtocolUnreachable { .. } => "protocol_unreachable",
            Reason::NotForUs { .. } => "not_for_us",
            Reason::SocketBufferFull { .. } => "socket_buffer_full",
            Reason::TcpRejected { .. } => "tcp_rejected",
            Reason::ParameterProblem { .. } => "parameter_problem",
            Reason::ReassemblyTimeout { .. } => "reassembly_timeout",
            Reason::ReassemblyIncomplete { .. } => "reassembly_incomplete",
            Reason::ReassemblyFailed { .. } => "reassembly_failed",
            Reason::NoRoute { .. } => "no_route",
            Reason::UnknownEtherType { .. } => "unknown_ethertype",
            Reason::Ignored { .. } => "ignored",
            Reason::ConnectionClosed { .. } => "connection_closed",
            Reason::Truncated { .. } => "truncated",
            Reason::NotInjectable { .. } => "not_injectable",
            Reason::Unexplained => "unexplained",
        }
    }
}

fn reply_note(f: &mut fmt::Formatter<'_>, what: &str, reply: &Option<PacketId>) -> fmt::Result {
    match reply {
        Some(id) => write!(f, "; smoltcp answered with {what} (packet {id})"),
        None => write!(f, "; smoltcp's {what} could not be sent"),
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::FrameBufferFull { capacity } => {
                write!(
                    f,
                    "frame buffer full ({capacity} frames waiting for the stack)"
                )
            }
            Reason::TxQueueFull { capacity } => {
                write!(f, "tx queue full ({capacity} frames waiting for the wire)")
            }
            Reason::ForeignMac { dst, ours } => write!(
                f,
                "destination MAC {dst} is not ours ({ours}) nor broadcast; smoltcp ignores it silently"
            ),
            Reason::BadChecksum { layer } => write!(f, "bad {layer} checksum"),
            Reason::Malformed { what } => write!(f, "malformed: {what}"),
            Reason::NoListener { port, reply } => {
                write!(f, "no socket accepts this segment for TCP port {port}")?;
                reply_note(f, "RST", reply)
            }
            Reason::PortUnreachable { port, reply } => {
                write!(f, "no socket bound to UDP port {port}")?;
                reply_note(f, "ICMP port unreachable", reply)
            }
            Reason::ProtocolUnreachable { protocol, reply } => {
                write!(f, "IP protocol {protocol} is not handled")?;
                reply_note(f, "ICMP protocol unreachable", reply)
            }
            Reason::NotForUs { detail } => write!(f, "not addressed to the stack: {detail}"),
            Reason::Truncated { captured, on_wire } => write!(
                f,
                "captured {captured} of its {on_wire} bytes (snaplen); a partial frame is not injected"
            ),
            Reason::NotInjectable { detail } => write!(f, "cannot be injected: {detail}"),
            Reason::SocketBufferFull { detail } => write!(f, "socket rx buffer full: {detail}"),
            Reason::TcpRejected { detail } => write!(f, "refused by the TCP socket: {detail}"),
            Reason::ParameterProblem { next_header, reply } => {
                let what = if *next_header == 44 {
                    " (a fragment header behind other extension headers: only one right after the fixed header is reassembled)"
                } else {
                    ""
                };
                write!(f, "IPv6 next header {next_header} is not handled{what}")?;
                reply_note(f, "ICMPv6 Parameter Problem", reply)
            }
            Reason::ReassemblyTimeout {
                datagram,
                have,
                secs,
            } => write!(
                f,
                "reassembly timed out: {datagram} did not complete within {secs} s of its first fragment ({have})"
            ),
            Reason::ReassemblyIncomplete { datagram, have } => write!(
                f,
                "reassembly incomplete: the run ended before {datagram} completed ({have})"
            ),
            Reason::ReassemblyFailed { datagram, detail } => {
                write!(
                    f,
                    "reassembly failed: a fragment of {datagram} was not taken: {detail}"
                )
            }
            Reason::NoRoute { src, dst } => write!(
                f,
                "no route between {src} and {dst}: smoltcp has no route to answer {src}"
            ),
            Reason::UnknownEtherType { ethertype } => {
                write!(f, "EtherType 0x{ethertype:04x} is not handled by the stack")
            }
            Reason::Ignored { detail } => write!(f, "ignored by the stack: {detail}"),
            Reason::ConnectionClosed { detail } => {
                write!(f, "connection closed before the app read it: {detail}")
            }
            Reason::Unexplained => f.write_str(
                "the stack left no trace of this frame (no log line, reply, state change or bytes)",
            ),
        }
    }
}
