//! Test helpers for the stack thread without a TAP (the test plays the tap thread): a stack at 10.77.0.2 with
//! the live default MAC, real ARP requests for it and their arrival, and the setup that builds it.

use crate::export::header::{SourceKind, StackInfo};
use smoltcp::wire::Ipv4Address;

use super::LiveSpec;
use super::buffer::{Shared, TapFrame};
use super::stack_thread::StackSetup;
use crate::export::{ExportPlan, Header};
use crate::pipeline::PipelineConfig;
use crate::pipeline::stack::StackConfig;

pub const MAC: [u8; 6] = [0x02, 0, 0, 0x77, 0, 0x02];

/// A live spec on TAP tp0 with the defaults (10.77.0.2/24, `MAC`, no kernel-side addresses) and `apps`.
pub fn spec(apps: &[&str]) -> LiveSpec {
    LiveSpec {
        tap: "tp0".into(),
        ip: (std::net::Ipv4Addr::new(10, 77, 0, 2), 24),
        mac: MAC,
        host_ip: None,
        ip6: None,
        host_ip6: None,
        apps: apps.iter().map(|a| a.parse().unwrap()).collect(),
        frame_buffer: 256,
        duration: None,
    }
}

/// An ARP request for 10.77.0.2 from host `n` (10.77.0.1n, MAC 02:00:00:77:00:1n).
pub fn arp_request(n: u8) -> Vec<u8> {
    let asker = [0x02, 0, 0, 0x77, 0, 0x10 + n];
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&asker);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&asker);
    f.extend_from_slice(&[10, 77, 0, 10 + n]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[10, 77, 0, 2]);
    f
}

/// ARP requests from hosts `hosts` arrive at once, as the tap thread would hand them over.
pub fn arrive(shared: &Shared, hosts: std::ops::Range<u8>) {
    let mut batch: Vec<TapFrame> = hosts
        .map(|n| TapFrame {
            at: shared.now(),
            frame: arp_request(n),
        })
        .collect();
    shared.push_batch(&mut batch);
}

/// The stack thread's setup: no export, `frame_buffer` frames, `history` finished packets kept.
pub fn setup(frame_buffer: usize, history: usize) -> StackSetup {
    let config = PipelineConfig {
        stack: StackConfig {
            mac: MAC,
            ipv4: (Ipv4Address::new(10, 77, 0, 2), 24),
            ipv6: None,
            ..StackConfig::default()
        },
        frame_buffer,
        ..PipelineConfig::default()
    };
    let source = SourceKind::Live {
        tap: "test".into(),
        apps: Vec::new(),
        host_ip: None,
        host_ip6: None,
        duration_s: None,
    };
    StackSetup {
        header: Header::new(source, StackInfo::of(&config)),
        config,
        plan: ExportPlan::default(),
        pcap_base_ns: 0,
        history,
        start_paused: false,
    }
}
