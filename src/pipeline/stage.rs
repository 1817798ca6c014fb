//! The fixed vocabulary of the path: stage names, directions and outcome kinds (docs/architecture.md, "The path").
//! These names appear verbatim in the exports, the UI and the tests; never rename them.

use std::fmt;

/// A hop on the path. The order of the variants is the receive order; the send path walks it backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Wire,
    FrameBuffer,
    Stack,
    SocketBuffer,
    ConnBuffer,
    App,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Wire,
        Stage::FrameBuffer,
        Stage::Stack,
        Stage::SocketBuffer,
        Stage::ConnBuffer,
        Stage::App,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Wire => "wire",
            Stage::FrameBuffer => "frame_buffer",
            Stage::Stack => "stack",
            Stage::SocketBuffer => "socket_buffer",
            Stage::ConnBuffer => "conn_buffer",
            Stage::App => "app",
        }
    }

    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Position along the path in the given direction: 0 is where a packet of that direction starts.
    pub fn position(self, dir: Dir) -> usize {
        let rx = self as usize;
        match dir {
            Dir::Rx => rx,
            Dir::Tx => Stage::ALL.len() - 1 - rx,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way a packet travels: `rx` from the wire to the app, `tx` from the app (or the stack) to the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dir {
    Rx,
    Tx,
}

impl Dir {
    pub fn name(self) -> &'static str {
        match self {
            Dir::Rx => "rx",
            Dir::Tx => "tx",
        }
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a packet's journey ended. Every packet has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutcomeKind {
    /// Its payload reached the app.
    Delivered,
    /// The stack handled it completely (handshake segment, pure ACK, ARP, echo request).
    Consumed,
    /// A tx frame reached the wire.
    Sent,
    /// Dropped at a named stage, with a reason.
    Dropped,
    /// The run ended first.
    InFlight,
}

impl OutcomeKind {
    pub const ALL: [OutcomeKind; 5] = [
        OutcomeKind::Delivered,
        OutcomeKind::Consumed,
        OutcomeKind::Sent,
        OutcomeKind::Dropped,
        OutcomeKind::InFlight,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OutcomeKind::Delivered => "delivered",
            OutcomeKind::Consumed => "consumed",
            OutcomeKind::Sent => "sent",
            OutcomeKind::Dropped => "dropped",
            OutcomeKind::InFlight => "in_flight",
        }
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_round_trip_and_order() {
        let names: Vec<_> = Stage::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "wire",
                "frame_buffer",
                "stack",
                "socket_buffer",
                "conn_buffer",
                "app"
            ]
        );
        for s in Stage::ALL {
            assert_eq!(Stage::from_name(s.name()), Some(s));
        }
        assert_eq!(Stage::Wire.position(Dir::Rx), 0);
        assert_eq!(Stage::App.position(Dir::Tx), 0);
        assert_eq!(Stage::Wire.position(Dir::Tx), 5);
    }
}
