//! Recorded vs actual: per flow, the first place where what smoltcp sent differs from what the recorded stack
//! sent — the control flags in order (SYN-ACK, FIN, RST), the payload byte stream, the window it opened with.
//! Segment boundaries and pure ACKs are expected to differ between two TCP stacks and are not compared.

use std::fmt;

use serde::Serialize;

use super::wire::{FlowId, Sent, WireReport};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowDiff {
    pub stack: String,
    pub peer: String,
    /// None when the flow matched on every point compared.
    pub first_divergence: Option<String>,
    pub recorded_bytes: usize,
    pub sent_bytes: usize,
}

impl fmt::Display for FlowDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ⇄ {}: ", self.stack, self.peer)?;
        match &self.first_divergence {
            None => write!(f, "same as recorded ({} payload bytes)", self.sent_bytes),
            Some(d) => f.write_str(d),
        }
    }
}

fn first_divergence(recorded: &Sent, live: &Sent) -> Option<String> {
    let n = recorded.flags.len().max(live.flags.len());
    for i in 0..n {
        let (r, l) = (recorded.flags.get(i), live.flags.get(i));
        if r != l {
            let say = |x: Option<&&str>| x.map_or("nothing".to_string(), |s| s.to_string());
            return Some(format!(
                "control segment {}: recorded {}, smoltcp sent {}",
                i + 1,
                say(r),
                say(l)
            ));
        }
    }
    if let Some(at) = recorded
        .payload
        .iter()
        .zip(&live.payload)
        .position(|(a, b)| a != b)
    {
        return Some(format!(
            "payload byte {at}: recorded 0x{:02x}, smoltcp sent 0x{:02x}",
            recorded.payload[at], live.payload[at]
        ));
    }
    if recorded.payload.len() != live.payload.len() {
        return Some(format!(
            "payload length: recorded {} bytes, smoltcp sent {}",
            recorded.payload.len(),
            live.payload.len()
        ));
    }
    if let (Some(r), Some(l)) = (recorded.first_window, live.first_window)
        && r != l
    {
        return Some(format!(
            "window on the SYN: recorded {r}, smoltcp opened with {l}"
        ));
    }
    None
}

/// Every flow either side sent on, in flow order.
pub fn diff(report: &WireReport) -> Vec<FlowDiff> {
    let mut flows: Vec<&FlowId> = report.recorded.keys().chain(report.live.keys()).collect();
    flows.sort();
    flows.dedup();
    let empty = Sent::default();
    flows
        .into_iter()
        .map(|flow| {
            let recorded = report.recorded.get(flow).unwrap_or(&empty);
            let live = report.live.get(flow).unwrap_or(&empty);
            FlowDiff {
                stack: flow.0.to_string(),
                peer: flow.1.to_string(),
                first_divergence: first_divergence(recorded, live),
                recorded_bytes: recorded.payload.len(),
                sent_bytes: live.payload.len(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(flags: &[&'static str], payload: &[u8], window: u16) -> Sent {
        Sent {
            flags: flags.to_vec(),
            payload: payload.to_vec(),
            first_window: Some(window),
        }
    }

    #[test]
    fn names_the_first_difference() {
        let rec = sent(&["SYN-ACK", "FIN"], b"hello", 65160);
        assert_eq!(
            first_divergence(&rec, &sent(&["SYN-ACK", "FIN"], b"hello", 65160)),
            None
        );
        assert_eq!(
            first_divergence(&rec, &sent(&["SYN-ACK", "RST"], b"hello", 65160)).unwrap(),
            "control segment 2: recorded FIN, smoltcp sent RST"
        );
        assert_eq!(
            first_divergence(&rec, &sent(&["SYN-ACK", "FIN"], b"help", 65160)).unwrap(),
            "payload byte 3: recorded 0x6c, smoltcp sent 0x70"
        );
        assert_eq!(
            first_divergence(&rec, &sent(&["SYN-ACK", "FIN"], b"hell", 65160)).unwrap(),
            "payload length: recorded 5 bytes, smoltcp sent 4"
        );
        assert_eq!(
            first_divergence(&rec, &sent(&["SYN-ACK", "FIN"], b"hello", 64240)).unwrap(),
            "window on the SYN: recorded 65160, smoltcp opened with 64240"
        );
    }
}
