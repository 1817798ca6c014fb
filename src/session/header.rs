//! The export header of each kind of run: what the source is, and the stack it met described from the
//! configuration the pipeline was really built with.

use std::collections::BTreeMap;

use crate::export::Header;
use crate::export::header::{Ports, SourceKind, Speed, StackInfo};
use crate::live::LiveSpec;
use crate::pipeline::{AppKind, PipelineConfig};
use crate::replay::{Prepared, ReplaySpec};
use crate::sim::SimSpec;

/// `PORT=SPEC` for every app of a port map, in full (`7=exec:cat`, not `7=exec`).
fn app_list(apps: &BTreeMap<u16, AppKind>) -> Vec<String> {
    apps.iter().map(|(p, k)| format!("{p}={k}")).collect()
}

/// A simulated run's header. Its apps are the spec's, on every port, even in outbound mode.
pub fn sim(spec: &SimSpec, config: &PipelineConfig) -> Header {
    let source = SourceKind::Sim {
        clients: spec.clients,
        bytes: spec.bytes,
        port: spec.port,
        udp: spec.udp,
        outbound: spec.outbound,
        seed: spec.seed,
        apps: app_list(&spec.app_map()),
        hop_cost_ns: spec.hop_cost_ns,
        link_delay_ns: spec.link_delay_ns,
    };
    Header::new(source, StackInfo::of(config))
}

/// A replay's header: the capture, the host the stack plays in it, and the ports it was seen serving.
pub fn replay(spec: &ReplaySpec, prepared: &Prepared) -> Header {
    let id = &prepared.identity;
    let source = SourceKind::Replay {
        file: spec.source.name(),
        capture_format: prepared.format.to_string(),
        speed: spec.speed.map_or(Speed::Max, Speed::Times),
        as_host: id.ip.to_string(),
        seed: spec.seed,
        apps: spec.apps.iter().map(|a| a.to_string()).collect(),
        hop_cost_ns: spec.hop_cost_ns,
    };
    let mut stack = StackInfo::of(&prepared.config);
    // A stack that plays no IPv4 host of the capture holds a documentation address no frame is for: the
    // header says it plays none. A replay's header names the ports instead of the buffer sizes.
    if id.ipv4.is_none() {
        stack.ipv4 = None;
    }
    stack.buffers = None;
    stack.ports = Some(Ports {
        tcp_ports: id.tcp_ports.clone(),
        udp_ports: id.udp_ports.clone(),
    });
    Header::new(source, stack)
}

/// A live run's header, once the TAP is open under `tap_name`.
pub fn live(spec: &LiveSpec, config: &PipelineConfig, tap_name: &str) -> Header {
    let source = SourceKind::Live {
        tap: tap_name.to_string(),
        apps: app_list(&config.tcp_apps),
        host_ip: spec.host_ip.map(|(a, p)| format!("{a}/{p}")),
        host_ip6: spec.host_ip6.map(|(a, p)| format!("{a}/{p}")),
        duration_s: spec.duration.map(|d| d.as_secs_f64()),
    };
    Header::new(source, StackInfo::of(config))
}
