//! The export header of each kind of run: what the source is and the stack it met, from the configuration the
//! pipeline was really built with.

use serde_json::json;

use crate::export::Header;
use crate::live::LiveSpec;
use crate::pipeline::PipelineConfig;
use crate::pipeline::dissect::format_mac;
use crate::replay::{Prepared, ReplaySpec};
use crate::sim::SimSpec;

/// The smoltcp release the stack is built on (Cargo.toml pins its minor version).
pub const SMOLTCP_VERSION: &str = "0.14";

/// `PORT=SPEC` for every app of a port map, in full (`7=exec:cat`, not `7=exec`).
fn app_list(apps: &std::collections::BTreeMap<u16, crate::pipeline::AppKind>) -> Vec<String> {
    apps.iter().map(|(p, k)| format!("{p}={k}")).collect()
}

/// The stack as sim and live describe it: addresses and every buffer's size.
fn stack_with_buffers(config: &PipelineConfig) -> serde_json::Value {
    let (v4, prefix) = config.stack.ipv4;
    json!({
        "mac": format_mac(&config.stack.mac), "ipv4": format!("{v4}/{prefix}"),
        "ipv6": config.stack.ipv6.map(|(a, p)| format!("{a}/{p}")),
        "frame_buffer": config.frame_buffer,
        "tcp_socket_buffer": crate::pipeline::stack::TCP_BUFFER,
        "conn_buffer": crate::pipeline::connection::CONN_BUFFER,
        "udp_socket_buffer": crate::pipeline::stack::UDP_PAYLOAD_BUFFER,
        "smoltcp": SMOLTCP_VERSION,
    })
}

/// A simulated run's header. `config` is the pipeline's (the spec's apps, every port, even in outbound mode).
pub fn sim(spec: &SimSpec, config: &PipelineConfig) -> Header {
    Header {
        source: json!({
            "kind": "sim", "clients": spec.clients, "bytes": spec.bytes, "port": spec.port, "udp": spec.udp,
            "outbound": spec.outbound, "seed": spec.seed, "apps": app_list(&spec.app_map()),
            "hop_cost_ns": spec.hop_cost_ns, "link_delay_ns": spec.link_delay_ns,
        }),
        stack: stack_with_buffers(config),
    }
}

/// A replay's header: the capture, and the host the stack plays in it.
pub fn replay(spec: &ReplaySpec, prepared: &Prepared) -> Header {
    let id = &prepared.identity;
    let speed = spec.speed.map_or(json!("max"), |s| json!(s));
    let apps: Vec<String> = spec.apps.iter().map(|a| a.to_string()).collect();
    Header {
        source: json!({
            "kind": "replay", "file": spec.source.name(), "capture_format": prepared.format, "speed": speed,
            "as": id.ip.to_string(), "seed": spec.seed, "apps": apps, "hop_cost_ns": spec.hop_cost_ns,
        }),
        stack: json!({
            "mac": format_mac(&prepared.config.stack.mac),
            // A stack that plays no IPv4 host of the capture holds a documentation address no frame is
            // for: the header says it plays none.
            "ipv4": id.ipv4.map(|_| {
                let (a, p) = prepared.config.stack.ipv4;
                format!("{a}/{p}")
            }),
            "ipv6": prepared.config.stack.ipv6.map(|(a, p)| format!("{a}/{p}")),
            "frame_buffer": prepared.config.frame_buffer,
            "tcp_ports": id.tcp_ports, "udp_ports": id.udp_ports,
            "smoltcp": SMOLTCP_VERSION,
        }),
    }
}

/// A live run's header, once the TAP is open under `tap_name`.
pub fn live(spec: &LiveSpec, config: &PipelineConfig, tap_name: &str) -> Header {
    Header {
        source: json!({
            "kind": "live", "tap": tap_name, "apps": app_list(&config.tcp_apps),
            "host_ip": spec.host_ip.map(|(a, p)| format!("{a}/{p}")),
            "host_ip6": spec.host_ip6.map(|(a, p)| format!("{a}/{p}")),
            "duration_s": spec.duration.map(|d| d.as_secs_f64()),
        }),
        stack: stack_with_buffers(config),
    }
}

/// Mark a header as the TUI's export of the run up to move `moves`.
pub fn exported_from_tui(header: &mut Header, moves: u64) {
    if let Some(source) = header.source.as_object_mut() {
        source.insert("exported_from".into(), "tui".into());
        source.insert("tui_move".into(), moves.into());
    }
}
