//! The live benchmark's untraced baseline: the path `pktpath live` runs, built the plain way with none of
//! pktpath's hooks. The bench re-executes itself as `BIN --untraced-path TAP HOST_CIDR batch|one-frame`
//! inside its namespace, so this runs in a process of its own, started and stopped (SIGINT) like pktpath.
//!
//! Shape, as pktpath's: the TAP is opened and its kernel side addressed with pktpath's own `live::tap::Tap`;
//! a tap thread `poll()`s the TAP and a wake pipe, reads frames (up to 256 per wake-up) into a bounded rx
//! queue (256 frames, pktpath's `--frame-buffer` default; a frame finding it full is dropped and counted) and
//! writes the frames the stack queued (bounded tx queue of 1024, as pktpath's). The stack thread takes every
//! queued frame and polls a smoltcp 0.14 `Interface` normally (`iface.poll` over the batch, `Medium::Ethernet`,
//! pktpath's default IP and MAC) — or, for context, one frame per window as DESIGN.md makes pktpath do
//! (`Polling::OneFrame`) — with TCP sockets from `Stack::new_tcp_socket` (64 KiB per direction, the live stack's ACK delay),
//! two spare listeners on the echo port replenished as connections are accepted, and the idle UDP socket
//! pktpath binds there. Each connection gets a real AF_UNIX pair; the echo app reads its end and writes back,
//! non-blocking, on the stack thread (as pktpath's core services its echo app). No trace records, no
//! per-connection buffer (the AF_UNIX pair's kernel buffers stand in for it), no log capture: no logger is
//! installed, so smoltcp's log macros stop at the max-level check.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

use pktpath::live::tap::Tap;
use pktpath::live::wake::{poke, wake_pipe};
use pktpath::pipeline::device::ETHERNET_MTU;
use pktpath::pipeline::stack::{Stack, UDP_PACKETS, UDP_PAYLOAD_BUFFER};

/// The argument that makes the bench binary run this path instead of the benchmark.
pub const ARG: &str = "--untraced-path";
/// `pktpath live`'s defaults: `--ip 10.77.0.2/24 --mac 02:00:00:77:00:02`.
const IP: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 77, 0, 2), 24);
const MAC: [u8; 6] = [2, 0, 0, 0x77, 0, 2];
const ECHO_PORT: u16 = 7;
/// pktpath's `--frame-buffer` default, its tx queue (`max(frame_buffer, 1024)`), its read batch and buffer.
const RX_QUEUE: usize = 256;
const TX_QUEUE: usize = 1024;
const READ_BATCH: usize = 256;
const READ_BUFFER: usize = 65_536 + 64;
/// pktpath's `StackConfig::spare_listeners` default.
const SPARE_LISTENERS: usize = 2;
/// How long the stack thread waits for room in a full tx queue before dropping the frame (pktpath's wait).
const TX_WAIT: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Rx {
    frames: VecDeque<Vec<u8>>,
    read: u64,
    full: u64,
    stop: bool,
}

/// The two bounded queues between the tap thread and the stack thread.
struct Queues {
    rx: Mutex<Rx>,
    rx_ready: Condvar,
    tx: Mutex<VecDeque<Vec<u8>>>,
    tx_room: Condvar,
    wake: OwnedFd,
    written: AtomicU64,
    write_errors: AtomicU64,
    tx_dropped: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Frames in and out of smoltcp, by the batch.
struct QueueDevice {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct RxTok(Vec<u8>);
struct TxTok<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for RxTok {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.push(frame);
        r
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok<'a>;

    fn receive(&mut self, _t: SmolInstant) -> Option<(RxTok, TxTok<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxTok(frame), TxTok(&mut self.tx)))
    }

    fn transmit(&mut self, _t: SmolInstant) -> Option<TxTok<'_>> {
        Some(TxTok(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = ETHERNET_MTU;
        caps
    }
}

/// Run the untraced path until SIGINT/SIGTERM; print its counters. `args`: TAP name, host CIDR, and
/// `batch` or `one-frame` (`Polling::arg`).
pub fn serve(args: &[String]) {
    let (name, host) = (&args[0], &args[1]);
    let polling = match args[2].as_str() {
        "batch" => Polling::Batch,
        "one-frame" => Polling::OneFrame,
        other => panic!("polling {other:?}: give batch or one-frame"),
    };
    let (addr, prefix) = host.split_once('/').expect("HOST_CIDR as 10.77.0.1/24");
    let quit = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&quit)).expect("signal handler");
    }
    let tap = Tap::open(name).expect("open the TAP");
    tap.configure_host(addr.parse().unwrap(), prefix.parse().unwrap())
        .expect("address the TAP");
    let (wake_r, wake_w) = wake_pipe().expect("wake pipe");
    let q = Arc::new(Queues {
        rx: Mutex::new(Rx::default()),
        rx_ready: Condvar::new(),
        tx: Mutex::new(VecDeque::new()),
        tx_room: Condvar::new(),
        wake: wake_w,
        written: AtomicU64::new(0),
        write_errors: AtomicU64::new(0),
        tx_dropped: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stack = {
        let q = q.clone();
        std::thread::spawn(move || stack_thread(&q, polling))
    };
    let tap_thread = {
        let (q, stop) = (q.clone(), stop.clone());
        std::thread::spawn(move || tap_thread(&tap, &q, &wake_r, &stop))
    };
    while !quit.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
    lock(&q.rx).stop = true;
    q.rx_ready.notify_all();
    let (conns, echoed) = stack.join().expect("stack thread");
    stop.store(true, Ordering::SeqCst);
    poke(&q.wake);
    tap_thread.join().expect("tap thread");
    let rx = lock(&q.rx);
    println!(
        "untraced path: {} frames read, {} found the rx queue full (capacity {RX_QUEUE}), {} written, {} write errors, {} dropped at the full tx queue; {conns} connections, {echoed} bytes echoed",
        rx.read,
        rx.full,
        q.written.load(Ordering::SeqCst),
        q.write_errors.load(Ordering::SeqCst),
        q.tx_dropped.load(Ordering::SeqCst),
    );
}

/// Poll the TAP and the wake pipe; write what the stack queued; read frames into the rx queue.
fn tap_thread(tap: &Tap, q: &Queues, wake: &OwnedFd, stop: &AtomicBool) {
    let mut buf = vec![0u8; READ_BUFFER];
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(READ_BATCH);
    loop {
        let mut fds = [tap.fd(), wake.as_raw_fd()].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: `fds` is a valid array of two pollfd.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            continue; // EINTR
        }
        if fds[1].revents & libc::POLLIN != 0 {
            let mut sink = [0u8; 64];
            // SAFETY: reading into a valid local buffer from our non-blocking pipe.
            while unsafe { libc::read(wake.as_raw_fd(), sink.as_mut_ptr().cast(), sink.len()) } > 0
            {
            }
        }
        write_out(tap, q);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if fds[0].revents & libc::POLLIN == 0 {
            continue;
        }
        while batch.len() < READ_BATCH {
            match tap.recv(&mut buf) {
                Ok(n) => batch.push(buf[..n].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let mut rx = lock(&q.rx);
        rx.read += batch.len() as u64;
        for frame in batch.drain(..) {
            if rx.frames.len() < RX_QUEUE {
                rx.frames.push_back(frame);
            } else {
                rx.full += 1;
            }
        }
        drop(rx);
        q.rx_ready.notify_one();
    }
}

fn write_out(tap: &Tap, q: &Queues) {
    let frames = std::mem::take(&mut *lock(&q.tx));
    q.tx_room.notify_all();
    for frame in frames {
        let mut r = tap.send(&frame);
        if matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            std::thread::yield_now();
            r = tap.send(&frame);
        }
        let counter = if r.is_ok() {
            &q.written
        } else {
            &q.write_errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Queue the stack's frames for the tap thread; poke it when the queue was empty.
fn queue_tx(q: &Queues, frames: &mut Vec<Vec<u8>>) {
    if frames.is_empty() {
        return;
    }
    let mut tx = lock(&q.tx);
    let was_empty = tx.is_empty();
    for frame in frames.drain(..) {
        if tx.len() >= TX_QUEUE {
            poke(&q.wake);
            tx = q
                .tx_room
                .wait_timeout_while(tx, TX_WAIT, |t| t.len() >= TX_QUEUE)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if tx.len() >= TX_QUEUE {
                q.tx_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        tx.push_back(frame);
    }
    drop(tx);
    if was_empty {
        poke(&q.wake);
    }
}

/// One connection's AF_UNIX pair: the stack's end and the echo app's.
struct Conn {
    socket: SocketHandle,
    stack_end: UnixStream,
    app_end: UnixStream,
    /// Bytes the app read but could not write back yet.
    app_pending: Vec<u8>,
    stack_eof: bool,
    app_shut: bool,
    /// Bytes handed back to the socket.
    echoed: usize,
}

impl Conn {
    fn new(socket: SocketHandle) -> Conn {
        let (stack_end, app_end) = UnixStream::pair().expect("AF_UNIX pair");
        stack_end.set_nonblocking(true).expect("non-blocking");
        app_end.set_nonblocking(true).expect("non-blocking");
        Conn {
            socket,
            stack_end,
            app_end,
            app_pending: Vec::new(),
            stack_eof: false,
            app_shut: false,
            echoed: 0,
        }
    }

    /// socket → pair → echo app → pair → socket, as far as the buffers allow. Returns bytes moved.
    fn service(&mut self, s: &mut tcp::Socket, buf: &mut [u8]) -> usize {
        let mut moved = 0;
        while s.can_recv() {
            let end = &self.stack_end;
            let n = s
                .recv(|ring| match (&*end).write(ring) {
                    Ok(n) => (n, n),
                    Err(_) => (0, 0),
                })
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            moved += n;
        }
        let peer_closed = matches!(
            s.state(),
            tcp::State::CloseWait
                | tcp::State::LastAck
                | tcp::State::Closing
                | tcp::State::TimeWait
        );
        if peer_closed && s.recv_queue() == 0 && !self.stack_eof {
            let _ = self.stack_end.shutdown(Shutdown::Write);
            self.stack_eof = true;
        }
        // The echo app.
        if !self.app_pending.is_empty()
            && let Ok(n) = (&self.app_end).write(&self.app_pending)
        {
            self.app_pending.drain(..n);
            moved += n;
        }
        while self.app_pending.is_empty() && !self.app_shut {
            match (&self.app_end).read(buf) {
                Ok(0) => {
                    let _ = self.app_end.shutdown(Shutdown::Write);
                    self.app_shut = true;
                }
                Ok(n) => {
                    let sent = (&self.app_end).write(&buf[..n]).unwrap_or(0);
                    self.app_pending.extend_from_slice(&buf[sent..n]);
                    moved += n;
                }
                Err(_) => break,
            }
        }
        // The stack's end → socket.
        while s.can_send() {
            let room = (s.send_capacity() - s.send_queue()).min(buf.len());
            match (&self.stack_end).read(&mut buf[..room]) {
                Ok(0) => {
                    if s.state() == tcp::State::CloseWait {
                        s.close();
                    }
                    break;
                }
                Ok(n) => {
                    self.echoed += s.send_slice(&buf[..n]).unwrap_or(0);
                    moved += n;
                }
                Err(_) => break,
            }
        }
        moved
    }
}

fn listener(sockets: &mut SocketSet<'static>) -> SocketHandle {
    let mut s = Stack::new_tcp_socket();
    // The same delayed ACK as pktpath's live stack.
    s.set_ack_delay(Some(smoltcp::time::Duration::from_millis(
        pktpath::live::ACK_DELAY_MS,
    )));
    s.listen(ECHO_PORT).expect("fresh socket");
    sockets.add(s)
}

/// How the stack thread feeds smoltcp.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Polling {
    /// `iface.poll` over every frame queued: ingress of the whole batch, then egress (smoltcp's usual loop).
    Batch,
    /// DESIGN.md's discipline without its hooks: per frame, due timers, `poll_ingress_single`, egress until
    /// quiet, then the app — so every segment is answered in its own window, as pktpath does.
    OneFrame,
}

impl Polling {
    pub fn arg(self) -> &'static str {
        match self {
            Polling::Batch => "batch",
            Polling::OneFrame => "one-frame",
        }
    }
}

/// smoltcp, its sockets, and the connections' pairs: everything the stack thread owns.
struct Path {
    iface: Interface,
    device: QueueDevice,
    sockets: SocketSet<'static>,
    listeners: Vec<SocketHandle>,
    conns: Vec<Conn>,
    buf: Vec<u8>,
    accepted: usize,
    /// Bytes echoed by connections already closed.
    echoed: usize,
}

impl Path {
    fn new(now: SmolInstant) -> Path {
        let mut device = QueueDevice {
            rx: VecDeque::new(),
            tx: Vec::new(),
        };
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(MAC)));
        config.random_seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut iface = Interface::new(config, &mut device, now);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IP.0.into(), IP.1));
        });
        let mut sockets = SocketSet::new(vec![]);
        let listeners = (0..SPARE_LISTENERS)
            .map(|_| listener(&mut sockets))
            .collect();
        let udp_buffer = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_PAYLOAD_BUFFER],
            )
        };
        let mut udp = udp::Socket::new(udp_buffer(), udp_buffer());
        udp.bind(ECHO_PORT).expect("fresh socket");
        sockets.add(udp);
        Path {
            iface,
            device,
            sockets,
            listeners,
            conns: Vec::new(),
            buf: vec![0u8; 64 * 1024],
            accepted: 0,
            echoed: 0,
        }
    }

    fn egress(&mut self, t: SmolInstant) {
        let (iface, device, sockets) = (&mut self.iface, &mut self.device, &mut self.sockets);
        while iface.poll_egress(t, device, sockets) != PollResult::None {}
    }

    /// The frames queued in the device, into smoltcp, each followed (one-frame) or all followed (batch) by
    /// the accept and the echo.
    fn ingress(&mut self, t: SmolInstant, polling: Polling) {
        match polling {
            Polling::Batch => {
                self.iface.poll(t, &mut self.device, &mut self.sockets);
                self.serve(t);
            }
            Polling::OneFrame => {
                while !self.device.rx.is_empty() {
                    if self
                        .iface
                        .poll_at(t, &self.sockets)
                        .is_some_and(|at| at <= t)
                    {
                        self.egress(t);
                    }
                    self.iface
                        .poll_ingress_single(t, &mut self.device, &mut self.sockets);
                    self.egress(t);
                    self.serve(t);
                }
            }
        }
    }

    /// Accept, then echo until nothing moves, sending what that made room for or queued.
    fn serve(&mut self, t: SmolInstant) {
        // A listener that left Listen is a connection now; keep the spares topped up.
        let (sockets, conns) = (&mut self.sockets, &mut self.conns);
        self.listeners.retain(|&h| {
            let listening = sockets.get::<tcp::Socket>(h).state() == tcp::State::Listen;
            if !listening {
                conns.push(Conn::new(h));
            }
            listening
        });
        self.accepted += SPARE_LISTENERS - self.listeners.len();
        while self.listeners.len() < SPARE_LISTENERS {
            self.listeners.push(listener(&mut self.sockets));
        }
        loop {
            let mut moved = 0;
            for c in &mut self.conns {
                let s = self.sockets.get_mut::<tcp::Socket>(c.socket);
                moved += c.service(s, &mut self.buf);
            }
            self.egress(t);
            if moved == 0 {
                break;
            }
        }
        let (sockets, echoed) = (&mut self.sockets, &mut self.echoed);
        self.conns.retain(|c| {
            let closed = sockets.get::<tcp::Socket>(c.socket).state() == tcp::State::Closed;
            if closed {
                sockets.remove(c.socket);
                *echoed += c.echoed;
            }
            !closed
        });
    }

    /// Timers that came due while no frame arrived (retransmissions, TIME-WAIT).
    fn timers(&mut self, t: SmolInstant) {
        self.iface.poll(t, &mut self.device, &mut self.sockets);
    }
}

/// The stack thread: wait for frames or smoltcp's next timer, feed smoltcp, accept, echo, send.
/// Returns (connections accepted, bytes echoed).
fn stack_thread(q: &Queues, polling: Polling) -> (usize, usize) {
    let start = Instant::now();
    let now = || SmolInstant::from_micros(start.elapsed().as_micros() as i64);
    let mut path = Path::new(now());
    let mut wait: Option<Duration> = None;
    loop {
        {
            let mut rx = lock(&q.rx);
            if rx.frames.is_empty() && !rx.stop {
                rx = match wait {
                    Some(d) => {
                        q.rx_ready
                            .wait_timeout(rx, d)
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                    None => q.rx_ready.wait(rx).unwrap_or_else(|e| e.into_inner()),
                };
            }
            if rx.stop {
                let open: usize = path.conns.iter().map(|c| c.echoed).sum();
                return (path.accepted, path.echoed + open);
            }
            path.device.rx.extend(rx.frames.drain(..));
        }
        let t = now();
        if path.device.rx.is_empty() {
            path.timers(t);
        } else {
            path.ingress(t, polling);
        }
        queue_tx(q, &mut path.device.tx);
        wait = path
            .iface
            .poll_delay(now(), &path.sockets)
            .map(|d| Duration::from_micros(d.total_micros()));
    }
}
