//! What tracing every hop costs: the same recorded frames through bare smoltcp and through the full traced
//! pipeline, in one run, with the ratio printed (the goal is ≤ 1.3×). A benchmark, not a timed test:
//! `cargo bench --bench pipeline`. It asserts only that both sides did the whole job.
//!
//! Why the comparison is fair:
//! - Same input: the frames a live simulated run delivered to the pipeline, each with its virtual arrival
//!   time. The peer is not re-run, so its stack costs neither side anything.
//! - Same loop: one frame at a time over the same `StepDevice` — due timers, ingress, egress until quiet, the
//!   app, egress until quiet — with the same interface config and socket set (echo-port listeners from
//!   `Stack::new_tcp_socket`, so buffers and ACK delay match, plus the UDP socket the pipeline binds there).
//!   Both sides echo every byte. The bare side has no frame buffer, so it gets exactly the frames the
//!   pipeline's frame buffer admitted in the recorded run: smoltcp sees the same frames on both sides.
//! - Same apps: the pipeline's path has a real AF_UNIX pair per connection between stack and app (DESIGN.md),
//!   so the baseline the goal is measured against does too, with an echo app behind it that reads only when
//!   something was written (no system call that could only say "would block"). smoltcp alone, with the echo
//!   in-process, is measured and printed beside it, for the cost of the path as a whole.
//! - Logging: capture is off on this thread for the bare run, so smoltcp's log macros reach the installed
//!   logger and return at once, as in any program with a logger but no hook. The traced side captures.
//! - The traced side drops each finished packet record as it drains it: producing the trace is what is
//!   measured, serialising it (JSON) is not.
//! - Construction, copying the input and teardown are outside the timed region. Iterations alternate bare,
//!   traced, bare, … so both share the machine's noise; median and minimum are reported.
//!
//! `PKTPATH_BENCH_CLIENTS` and `PKTPATH_BENCH_BYTES` override the workload (8 clients × 256 KiB echoed).

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

use pktpath::pipeline::capture;
use pktpath::pipeline::clock::{Nanos, VirtualClock, to_smoltcp};
use pktpath::pipeline::device::StepDevice;
use pktpath::pipeline::stack::{Stack, UDP_PACKETS, UDP_PAYLOAD_BUFFER};
use pktpath::pipeline::{Dir, OutcomeKind, PacketRecord, Pipeline, Stage, Stats};
use pktpath::sim::script::{Recorder, ScriptedWire, TimedFrame};
use pktpath::sim::{self, SimSpec};

const ITERATIONS: usize = 7;
const BARE_ALONE: &str = "smoltcp alone (one-frame loop, in-process echo):";
const BARE_PAIRS: &str = "bare smoltcp + AF_UNIX echo apps (no hooks):    ";
const TRACED: &str = "traced pipeline (all hops, trace records):      ";

fn env_or(name: &str, default: usize) -> usize {
    let value = std::env::var(name).ok();
    value
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Step a pipeline to the end of its run, dropping finished packet records as they come; returns how many.
fn run_to_end(pipeline: &mut Pipeline, deadline: Nanos) -> u64 {
    run_to_end_with(pipeline, deadline, |_| {})
}

/// The same, showing each finished record to `look` before dropping it.
fn run_to_end_with(
    pipeline: &mut Pipeline,
    deadline: Nanos,
    mut look: impl FnMut(&PacketRecord),
) -> u64 {
    let mut records = 0;
    loop {
        let over = pipeline.run_until(deadline, 4096);
        if over {
            pipeline.finish();
        }
        for p in pipeline.drain_finished() {
            look(&p);
            records += 1;
        }
        if over {
            return records;
        }
    }
}

/// The live simulated run: every frame the pipeline received, with its time; which of them its frame buffer
/// admitted (the rest it dropped there, before smoltcp); and the run's counters.
fn record(spec: &SimSpec) -> (Vec<TimedFrame>, Vec<bool>, Stats) {
    let mut received = None;
    let mut run = sim::build_with(spec, |peer| {
        let recorder = Recorder::new(peer);
        received = Some(recorder.received.clone());
        Box::new(recorder)
    });
    // Rx packet ids are handed out in arrival order, so sorted rx ids line up with the received frames.
    let mut rx_fates = Vec::new();
    run_to_end_with(&mut run.pipeline, spec.max_time_ns, |p| {
        if p.dir == Dir::Rx {
            let refused = p
                .outcome
                .as_ref()
                .is_some_and(|o| o.kind == OutcomeKind::Dropped && o.stage == Stage::FrameBuffer);
            rx_fates.push((p.id, !refused));
        }
    });
    rx_fates.sort();
    let admitted = rx_fates.into_iter().map(|(_, admitted)| admitted).collect();
    let clients = &run.report.borrow().clients;
    let complete = clients.len() == spec.clients && clients.iter().all(|c| c.completed);
    assert!(complete, "the recorded run must complete: {clients:?}");
    let frames = std::mem::take(&mut *received.expect("build_with wraps the peer").borrow_mut());
    (frames, admitted, run.pipeline.stats().clone())
}

/// The traced side: the full pipeline over a wire replaying the recording. Deterministic with the same frames
/// at the same virtual times, it must reproduce the recorded run's counters exactly.
fn traced(spec: &SimSpec, recorded: &[TimedFrame], expect: &Stats) -> Duration {
    let wire = Box::new(ScriptedWire::counting_output(recorded.to_vec()));
    let clock = Box::new(VirtualClock::new(spec.hop_cost_ns));
    let mut pipeline = Pipeline::new(spec.pipeline_config(), clock, wire);
    let start = Instant::now();
    let records = run_to_end(&mut pipeline, spec.max_time_ns);
    let elapsed = start.elapsed();
    let stats = pipeline.stats();
    assert_eq!(stats.frames_in, recorded.len() as u64, "replay lost frames");
    assert_eq!(stats, expect, "the replay diverged from the recorded run");
    assert_eq!(records, stats.frames_in + stats.frames_out, "a record each");
    elapsed
}

/// How the bare side's echo reaches the bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum EchoPath {
    /// The echo reads and writes the smoltcp socket in-process: smoltcp alone.
    InProcess,
    /// Each connection's bytes cross a real AF_UNIX pair to an echo app and back, as the pipeline's do
    /// (DESIGN.md's path has one per connection): the same system calls, none of the hooks.
    UnixPair,
}

/// One connection's AF_UNIX pair on the bare side: the stack's end and the app's.
struct Pair {
    stack_end: UnixStream,
    app_end: UnixStream,
    /// Bytes the app read but the socket pair has not taken back yet.
    app_pending: Vec<u8>,
    app_shut: bool,
    stack_eof: bool,
    /// Something was written toward the app (or the stack) that it has not read yet: only then is a read
    /// worth a system call, so the baseline makes none that would only say "would block".
    for_app: bool,
    for_stack: bool,
}

impl Pair {
    fn new() -> Self {
        let (stack_end, app_end) = UnixStream::pair().expect("AF_UNIX pair");
        stack_end.set_nonblocking(true).expect("non-blocking");
        app_end.set_nonblocking(true).expect("non-blocking");
        Pair {
            stack_end,
            app_end,
            app_pending: Vec::new(),
            app_shut: false,
            stack_eof: false,
            for_app: false,
            for_stack: false,
        }
    }
}

/// The bare side: smoltcp, the step device and the sockets, and the echo; nothing else.
struct Bare {
    iface: Interface,
    device: StepDevice,
    sockets: SocketSet<'static>,
    tcp: Vec<SocketHandle>,
    path: EchoPath,
    pairs: Vec<Option<Pair>>,
    buf: Vec<u8>,
    /// Bytes echoed and frames emitted, to check the work was done.
    echoed: usize,
    emitted: usize,
}

impl Bare {
    /// From the `StackConfig` the pipeline gets; a listener per client plus the pipeline's two spares.
    fn new(spec: &SimSpec, path: EchoPath) -> Self {
        let config = spec.pipeline_config().stack;
        let mut device = StepDevice::new();
        let mut iface_config = Config::new(HardwareAddress::Ethernet(EthernetAddress(config.mac)));
        iface_config.random_seed = config.random_seed;
        let mut iface = Interface::new(iface_config, &mut device, to_smoltcp(0));
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(config.ipv4.0.into(), config.ipv4.1));
            if let Some((v6, len)) = config.ipv6 {
                let _ = addrs.push(IpCidr::new(v6.into(), len));
            }
        });
        let mut sockets = SocketSet::new(vec![]);
        let mut listener = |_| {
            let mut s = Stack::new_tcp_socket();
            s.listen(spec.port).expect("fresh socket");
            sockets.add(s)
        };
        let tcp: Vec<SocketHandle> = (0..spec.clients + 2).map(&mut listener).collect();
        // The UDP socket the pipeline binds on an echo port, as `Stack::bind_udp` builds it; idle here.
        let meta = || vec![udp::PacketMetadata::EMPTY; UDP_PACKETS];
        let rx = udp::PacketBuffer::new(meta(), vec![0; UDP_PAYLOAD_BUFFER]);
        let tx = udp::PacketBuffer::new(meta(), vec![0; UDP_PAYLOAD_BUFFER]);
        let mut udp = udp::Socket::new(rx, tx);
        udp.bind(spec.port).expect("fresh socket");
        sockets.add(udp);
        let buf = vec![0; 64 * 1024];
        Bare {
            iface,
            device,
            sockets,
            pairs: tcp.iter().map(|_| None).collect(),
            tcp,
            path,
            buf,
            echoed: 0,
            emitted: 0,
        }
    }

    fn drain_egress(&mut self, t: SmolInstant) {
        let (iface, device, sockets) = (&mut self.iface, &mut self.device, &mut self.sockets);
        while iface.poll_egress(t, device, sockets) != PollResult::None {}
        self.emitted += self.device.take_emitted().len();
    }

    /// The echo app, on the sockets directly: take what the send buffer has room for and send it back; once
    /// the peer has closed and all it sent was handed back, close (the FIN follows the data, as in the
    /// pipeline, whose echo app shuts down when it has written everything).
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

    /// The echo app behind an AF_UNIX pair per connection: socket → pair → app → pair → socket, each step
    /// as far as the buffers allow, then the close once the app has shut its side and everything was sent.
    fn echo_over_pairs(&mut self) {
        for (&h, pair) in self.tcp.iter().zip(&mut self.pairs) {
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            if pair.is_none() && s.is_active() {
                *pair = Some(Pair::new());
            }
            let Some(pair) = pair else { continue };
            // Socket → the stack's end.
            while s.can_recv() {
                let stack_end = &pair.stack_end;
                let moved = s
                    .recv(|ring| match (&*stack_end).write(ring) {
                        Ok(n) => (n, n),
                        Err(_) => (0, 0),
                    })
                    .unwrap_or(0);
                if moved == 0 {
                    break;
                }
                pair.for_app = true;
            }
            // The peer's FIN arrived and every byte before it went to the app: pass the end of stream on.
            let peer_closed = matches!(
                s.state(),
                tcp::State::CloseWait
                    | tcp::State::LastAck
                    | tcp::State::Closing
                    | tcp::State::TimeWait
            );
            if peer_closed && s.recv_queue() == 0 && !pair.stack_eof {
                let _ = pair.stack_end.shutdown(Shutdown::Write);
                pair.stack_eof = true;
                pair.for_app = true;
            }
            // The app: read, write back what it read.
            if !pair.app_pending.is_empty()
                && let Ok(n) = (&pair.app_end).write(&pair.app_pending)
            {
                pair.app_pending.drain(..n);
                pair.for_stack = true;
            }
            while pair.for_app && pair.app_pending.is_empty() && !pair.app_shut {
                match (&pair.app_end).read(&mut self.buf) {
                    Ok(0) => {
                        let _ = pair.app_end.shutdown(Shutdown::Write);
                        pair.app_shut = true;
                        pair.for_stack = true;
                    }
                    Ok(n) => {
                        let sent = (&pair.app_end).write(&self.buf[..n]).unwrap_or(0);
                        pair.app_pending.extend_from_slice(&self.buf[sent..n]);
                        pair.for_stack = true;
                    }
                    Err(_) => pair.for_app = false,
                }
            }
            // The stack's end → socket.
            while pair.for_stack && s.can_send() {
                let room = (s.send_capacity() - s.send_queue()).min(self.buf.len());
                if room == 0 {
                    break;
                }
                match (&pair.stack_end).read(&mut self.buf[..room]) {
                    Ok(0) => {
                        if s.state() == tcp::State::CloseWait {
                            s.close();
                        }
                        break;
                    }
                    Ok(n) => self.echoed += s.send_slice(&self.buf[..n]).unwrap_or(0),
                    Err(_) => pair.for_stack = false,
                }
            }
        }
    }

    /// The one-frame loop over the whole recording. Returns the elapsed time.
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
            match self.path {
                EchoPath::InProcess => self.echo(),
                EchoPath::UnixPair => self.echo_over_pairs(),
            }
            self.drain_egress(t);
        }
        start.elapsed()
    }
}

/// Print one side's line; returns its (median, min).
fn report(label: &str, times: &mut [Duration], frames: usize) -> (f64, f64) {
    times.sort();
    let (median, min) = (times[times.len() / 2], times[0]);
    let rate = grouped(frames as f64 / median.as_secs_f64());
    let (median, min) = (median.as_secs_f64() * 1e3, min.as_secs_f64() * 1e3);
    println!("{label} median {median:.1} ms  min {min:.1} ms  {rate:>7} frames/s");
    (median, min)
}

/// 823301.4 → "823_301".
fn grouped(x: f64) -> String {
    let digits = format!("{x:.0}");
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
    let (recorded, admitted, expect) = record(&spec);
    assert_eq!(
        admitted.len(),
        recorded.len(),
        "a fate for every received frame"
    );
    // The bare side has no frame buffer: it gets exactly the frames the pipeline's buffer let through.
    let admitted_frames: Vec<TimedFrame> = recorded
        .iter()
        .zip(&admitted)
        .filter(|(_, ok)| **ok)
        .map(|(f, _)| f.clone())
        .collect();
    let (n, total) = (recorded.len(), spec.clients * spec.bytes);
    let build = ["release", "debug"][usize::from(cfg!(debug_assertions))];
    println!(
        "pktpath pipeline benchmark: {} clients × {} bytes, {n} recorded frames ({build} build)",
        spec.clients, spec.bytes
    );

    let (mut alone_times, mut pair_times, mut traced_times) = (Vec::new(), Vec::new(), Vec::new());
    let mut bare_out = 0;
    for _ in 0..ITERATIONS {
        // The pipeline turns capture on in `Pipeline::new` and off in `finish`; be sure it is off here.
        capture::end();
        for (path, times) in [
            (EchoPath::InProcess, &mut alone_times),
            (EchoPath::UnixPair, &mut pair_times),
        ] {
            let mut bare = Bare::new(&spec, path);
            times.push(bare.run(admitted_frames.clone()));
            assert_eq!(bare.echoed, total, "bare smoltcp must echo every byte");
            bare_out = bare.emitted;
        }
        traced_times.push(traced(&spec, &recorded, &expect));
    }

    let alone = report(BARE_ALONE, &mut alone_times, n);
    let pair = report(BARE_PAIRS, &mut pair_times, n);
    let traced = report(TRACED, &mut traced_times, n);
    let ratio = |base: (f64, f64)| (traced.0 / base.0, traced.1 / base.1);
    let (r_med, r_min) = ratio(pair);
    println!(
        "ratio traced / bare with AF_UNIX apps: {r_med:.2}× median, {r_min:.2}× min (goal ≤ 1.3×: the cost of the hooks)"
    );
    let (r_med, r_min) = ratio(alone);
    println!(
        "ratio traced / smoltcp alone:          {r_med:.2}× median, {r_min:.2}× min (includes the AF_UNIX hop the design requires)"
    );
    println!(
        "check: every side echoed {total} bytes; frames out: bare {bare_out}, traced {}",
        expect.frames_out
    );
    let (outcomes, drops) = (&expect.outcomes, &expect.drops);
    println!("traced outcomes: {outcomes:?}, drops: {drops:?}");
}
