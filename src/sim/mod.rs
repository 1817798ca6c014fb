//! `pktpath sim`: a simulated peer across an in-memory wire, driving the pipeline with real TCP and UDP from a
//! real second stack. Used as the demo and by the tests.

pub(crate) mod peer;
pub(crate) mod report;
pub mod script;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use smoltcp::wire::Ipv4Address;

use crate::pipeline::apps::{self, AppKind, AppSpec, Client, PortRule};
use crate::pipeline::clock::{Nanos, VirtualClock};
use crate::pipeline::config::PipelineConfig;
use crate::pipeline::engine::Pipeline;
use crate::pipeline::stack::StackConfig;

pub use peer::{CLIENT_PORT_BASE, PeerConfig, SimPeer, seeded_bytes};
pub use report::SimReport;

/// Everything that defines a simulated run. Two runs of the same spec produce the same timeline.
#[derive(Debug, Clone)]
pub struct SimSpec {
    pub clients: usize,
    pub bytes: usize,
    pub port: u16,
    pub udp: usize,
    pub outbound: bool,
    pub seed: u64,
    pub frame_buffer: usize,
    pub apps: Vec<AppSpec>,
    /// Virtual cost of one hop.
    pub hop_cost_ns: Nanos,
    pub link_delay_ns: Nanos,
    /// Virtual time after which the run stops, finished or not.
    pub max_time_ns: Nanos,
}

impl Default for SimSpec {
    fn default() -> Self {
        SimSpec {
            clients: 2,
            bytes: 65536,
            port: 7,
            udp: 4,
            outbound: false,
            seed: 0,
            frame_buffer: 256,
            apps: Vec::new(),
            hop_cost_ns: 1_000,
            link_delay_ns: 50_000,
            max_time_ns: 120_000_000_000,
        }
    }
}

pub const STACK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const STACK_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
pub const PEER_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

impl SimSpec {
    /// Which app serves each port: `--app` entries (a bare SPEC serves `--port`), echo on `--port` by default.
    pub fn app_map(&self) -> BTreeMap<u16, AppKind> {
        // Every app has a port under this rule: nothing to refuse.
        apps::app_map(&self.apps, &PortRule::Port(self.port)).unwrap_or_default()
    }

    pub fn pipeline_config(&self) -> PipelineConfig {
        let stack = StackConfig {
            mac: STACK_MAC,
            ipv4: (STACK_IP, 24),
            random_seed: self.seed,
            ..StackConfig::default()
        };
        PipelineConfig::serving(stack, self.frame_buffer, self.app_map())
    }
}

pub struct SimRun {
    pub pipeline: Pipeline,
    pub report: Rc<RefCell<SimReport>>,
}

/// Build the pipeline and the peer for a spec; in outbound mode the app behind pktpath opens the connections.
pub fn build(spec: &SimSpec) -> SimRun {
    build_with(spec, |peer| Box::new(peer))
}

/// Like `build`, with the peer wrapped (for example in a `script::Recorder`) before the pipeline takes it.
pub fn build_with(
    spec: &SimSpec,
    wrap: impl FnOnce(SimPeer) -> Box<dyn crate::pipeline::Wire>,
) -> SimRun {
    let apps = spec.app_map();
    let port_app = apps.get(&spec.port).cloned();
    let peer_config = PeerConfig {
        clients: spec.clients,
        bytes: spec.bytes,
        port: spec.port,
        udp: if port_app.as_ref().is_some_and(|k| k.serves_udp()) {
            spec.udp
        } else {
            0
        },
        outbound: spec.outbound,
        seed: spec.seed,
        link_delay: spec.link_delay_ns,
        peer_mac: PEER_MAC,
        peer_ip: PEER_IP,
        stack_ip: STACK_IP,
        http: !spec.outbound && port_app == Some(AppKind::Http),
        expect_echo: spec.outbound || port_app == Some(AppKind::Echo),
        udp_echo: port_app == Some(AppKind::Echo),
    };
    let report = Rc::new(RefCell::new(SimReport::default()));
    let peer = SimPeer::new(peer_config, report.clone());
    let server = peer.server_endpoint();
    let mut config = spec.pipeline_config();
    if spec.outbound {
        // The app behind pktpath is the client; nothing listens on the stack side of the port.
        config.tcp_apps.remove(&spec.port);
    }
    let clock = Box::new(VirtualClock::new(spec.hop_cost_ns));
    let mut pipeline = Pipeline::new(config, clock, wrap(peer));
    if spec.outbound {
        for i in 0..spec.clients {
            let payload = seeded_bytes(spec.seed.wrapping_add(i as u64 + 1), spec.bytes);
            pipeline.connect(server, "client", Box::new(Client::new(payload)));
        }
    }
    SimRun { pipeline, report }
}
