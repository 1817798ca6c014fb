//! What tracing every hop costs: the same recorded frames through bare smoltcp and through the full traced
//! pipeline, in one run, with the ratio printed (the goal is ≤ 1.3×). A benchmark, not a timed test:
//! run it with `cargo bench --bench pipeline`; it only asserts that both sides did the same work.
//!
//! Why the comparison is fair:
//! - Both sides see the same input: the frames a simulated run delivered to the pipeline, with the virtual time
//!   each arrived. The peer is not re-run, so its stack costs nothing on either side.
//! - Both sides use the same one-frame loop over the same `StepDevice`, the same interface configuration and
//!   the same socket set (listeners on the echo port built by `Stack::new_tcp_socket`, so buffers and ACK
//!   delay match, plus the UDP socket the pipeline binds there), and both echo every byte back.
//! - The bare side runs with log capture off on this thread: smoltcp's log macros still reach the installed
//!   logger, which returns at once, as they would in any program with a logger but no hook.
//! - The traced side drops each finished packet record as it is drained: producing the trace is the cost
//!   measured; serialising it (JSON) is not.
//! - Construction, the clone of the input and teardown are outside the timed region; iterations alternate
//!   bare, traced, bare, … so both sides share the machine's noise. Median and minimum are reported.
//!
//! `PKTPATH_BENCH_CLIENTS` and `PKTPATH_BENCH_BYTES` override the workload (8 clients × 256 KiB echoed).

use std::time::{Duration, Instant};

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

use pktpath::pipeline::capture;
use pktpath::pipeline::clock::{Nanos, VirtualClock, to_smoltcp};
use pktpath::pipeline::device::StepDevice;
use pktpath::pipeline::stack::{Stack, UDP_PACKETS, UDP_PAYLOAD_BUFFER};
use pktpath::pipeline::{Pipeline, Stats};
use pktpath::sim::script::{Recorder, ScriptedWire, TimedFrame};
use pktpath::sim::{self, SimSpec};

const ITERATIONS: usize = 7;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Step a pipeline to the end of its run, dropping finished packet records as they come; returns how many.
fn run_to_end(pipeline: &mut Pipeline, deadline: Nanos) -> usize {
    let mut records = 0;
    while !pipeline.run_until(deadline, 4096) {
        records += pipeline.drain_finished().count();
    }
    pipeline.finish();
    records + pipeline.drain_finished().count()
}

fn delivered(stats: &Stats) -> u64 {
    stats.outcomes.get("delivered").copied().unwrap_or(0)
}

/// The live simulated run, recording every frame the pipeline received and when.
fn record(spec: &SimSpec) -> (Vec<TimedFrame>, u64) {
    let mut received = None;
    let mut run = sim::build_with(spec, |peer| {
        let recorder = Recorder::new(peer);
        received = Some(recorder.received.clone());
        Box::new(recorder)
    });
    run_to_end(&mut run.pipeline, spec.max_time_ns);
    let report = run.report.borrow();
    assert!(
        report.clients.len() == spec.clients && report.clients.iter().all(|c| c.completed),
        "the recorded run must complete every client: {:?}",
        report.clients
    );
    let frames = std::mem::take(&mut *received.expect("build_with wraps the peer").borrow_mut());
    (frames, delivered(run.pipeline.stats()))
}

/// The traced side: the full pipeline over a wire that replays the recording. Returns the elapsed time.
fn traced(spec: &SimSpec, recorded: &[TimedFrame], expect_delivered: u64) -> Duration {
    let wire = ScriptedWire::new(recorded.to_vec());
    let clock = VirtualClock::new(spec.hop_cost_ns);
    let mut pipeline = Pipeline::new(spec.pipeline_config(), Box::new(clock), Box::new(wire));
    let start = Instant::now();
    let records = run_to_end(&mut pipeline, spec.max_time_ns);
    let elapsed = start.elapsed();
    let stats = pipeline.stats();
    assert_eq!(stats.frames_in, recorded.len() as u64, "replay lost frames");
    assert_eq!(
        delivered(stats),
        expect_delivered,
        "replay diverged from the recording"
    );
    assert_eq!(
        records as u64,
        stats.frames_in + stats.frames_out,
        "every packet gets a record"
    );
    elapsed
}

/// The bare side: smoltcp, the step device and the sockets, nothing else.
struct Bare {
    iface: Interface,
    device: StepDevice,
    sockets: SocketSet<'static>,
    tcp: Vec<SocketHandle>,
    buf: Vec<u8>,
    /// Bytes echoed and frames emitted, to check the work matched.
    echoed: usize,
    emitted: usize,
}

impl Bare {
    /// Built from the same `StackConfig` the pipeline gets, with a listener per client plus the two spares.
    fn new(spec: &SimSpec) -> Self {
        let config = spec.pipeline_config();
        let mut device = StepDevice::new();
        let mut iface_config =
            Config::new(HardwareAddress::Ethernet(EthernetAddress(config.stack.mac)));
        iface_config.random_seed = config.stack.random_seed;
        let mut iface = Interface::new(iface_config, &mut device, to_smoltcp(0));
        iface.update_ip_addrs(|addrs| {
            let (v4, len) = config.stack.ipv4;
            let _ = addrs.push(IpCidr::new(v4.into(), len));
            if let Some((v6, len)) = config.stack.ipv6 {
                let _ = addrs.push(IpCidr::new(v6.into(), len));
            }
        });
        let mut sockets = SocketSet::new(vec![]);
        let tcp = (0..spec.clients + 2)
            .map(|_| {
                let mut s = Stack::new_tcp_socket();
                s.listen(spec.port).expect("fresh socket");
                sockets.add(s)
            })
            .collect();
        // The UDP socket the pipeline binds on an echo port (as `Stack::bind_udp` builds it); idle here.
        let buffer = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_PAYLOAD_BUFFER],
            )
        };
        let mut s = udp::Socket::new(buffer(), buffer());
        s.bind(spec.port).expect("fresh socket");
        sockets.add(s);
        Bare {
            iface,
            device,
            sockets,
            tcp,
            buf: vec![0; 64 * 1024],
            echoed: 0,
            emitted: 0,
        }
    }

    fn drain_egress(&mut self, t: smoltcp::time::Instant) {
        while self
            .iface
            .poll_egress(t, &mut self.device, &mut self.sockets)
            != PollResult::None
        {}
        self.emitted += self.device.take_emitted().len();
    }

    /// The echo app, directly on the sockets: take what the send buffer has room for and send it back; close
    /// once the peer has closed and every byte it sent was handed back (the FIN follows the data, as in the
    /// pipeline's echo app).
    fn echo(&mut self) {
        for &h in &self.tcp {
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            while s.can_recv() && s.can_send() {
                let room = (s.send_capacity() - s.send_queue()).min(self.buf.len());
                let n = s.recv_slice(&mut self.buf[..room]).unwrap_or(0);
                if n == 0 {
                    break;
                }
                self.echoed += s.send_slice(&self.buf[..n]).unwrap_or(0);
            }
            if s.state() == tcp::State::CloseWait && s.recv_queue() == 0 {
                s.close();
            }
        }
    }

    /// The one-frame loop: due timers, one frame in, egress until quiet, the app, egress until quiet.
    fn run(&mut self, frames: Vec<TimedFrame>) -> Duration {
        let start = Instant::now();
        for (t_ns, frame) in frames {
            let t = to_smoltcp(t_ns);
            if self
                .iface
                .poll_at(t, &self.sockets)
                .is_some_and(|at| at <= t)
            {
                self.drain_egress(t);
            }
            self.device.offer(frame, 0);
            self.iface
                .poll_ingress_single(t, &mut self.device, &mut self.sockets);
            self.drain_egress(t);
            self.echo();
            self.drain_egress(t);
        }
        start.elapsed()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// (median, min) of a set of timings.
fn summary(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[0])
}

/// 123456.7 → "123_457".
fn grouped(x: f64) -> String {
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('_');
        }
        out.push(c);
    }
    out
}

fn main() {
    let spec = SimSpec {
        clients: env_or("PKTPATH_BENCH_CLIENTS", 8),
        bytes: env_or("PKTPATH_BENCH_BYTES", 256 * 1024),
        udp: 0,
        ..SimSpec::default()
    };
    let (recorded, expect_delivered) = record(&spec);
    let n = recorded.len();
    let build = if cfg!(debug_assertions) {
        "debug build"
    } else {
        "release build"
    };
    println!(
        "pktpath pipeline benchmark: {} clients × {} bytes, {n} recorded frames ({build})",
        spec.clients, spec.bytes
    );

    let (mut bare_times, mut traced_times) = (Vec::new(), Vec::new());
    for _ in 0..ITERATIONS {
        // The traced pipeline switches capture on in `Pipeline::new` and off in `finish`; make sure it is off.
        capture::end();
        let mut bare = Bare::new(&spec);
        let input = recorded.clone();
        bare_times.push(bare.run(input));
        assert_eq!(
            bare.echoed,
            spec.clients * spec.bytes,
            "bare smoltcp must echo every byte"
        );
        assert!(bare.emitted > 0);
        drop(bare);
        traced_times.push(traced(&spec, &recorded, expect_delivered));
    }

    let (bare_med, bare_min) = summary(&mut bare_times);
    let (traced_med, traced_min) = summary(&mut traced_times);
    let rate = |d: Duration| grouped(n as f64 / d.as_secs_f64());
    println!(
        "bare smoltcp (one-frame loop, no hooks):  median {:.1} ms  min {:.1} ms  {} frames/s",
        ms(bare_med),
        ms(bare_min),
        rate(bare_med)
    );
    println!(
        "traced pipeline (all hops, trace records): median {:.1} ms  min {:.1} ms  {} frames/s",
        ms(traced_med),
        ms(traced_min),
        rate(traced_med)
    );
    let (r_med, r_min) = (ms(traced_med) / ms(bare_med), ms(traced_min) / ms(bare_min));
    println!("ratio traced/bare: {r_med:.2}× median, {r_min:.2}× min (goal ≤ 1.3×)");
}
