//! `forward:HOST:PORT`, pktpath as a userspace proxy: each connection is bridged to a real TCP service. The
//! first round resolves the host (a name on a helper thread) and starts a non-blocking connect; then bytes and
//! half-closes cross both ways. A refused, unreachable or reset service resets the connection.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::mem;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::mpsc;

use super::bridge::{Bridge, External};
use super::io::{App, AppIo};
use super::spec::ForwardTarget;

pub struct Forward {
    target: ForwardTarget,
    state: State,
    bridge: Bridge,
    /// We closed our sending side (FIN) towards the peer.
    shut: bool,
    /// Why the connection was reset: no address, the connect failed, the service reset.
    failure: Option<String>,
}

enum State {
    Idle,
    Resolving(mpsc::Receiver<io::Result<Vec<SocketAddr>>>),
    Connecting {
        stream: TcpStream,
        addr: SocketAddr,
        rest: VecDeque<SocketAddr>,
    },
    Connected(Upstream),
    /// Finished both ways, or reset.
    Done,
}

struct Upstream(TcpStream);

impl External for Upstream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn close_write(&mut self) {
        let _ = self.0.shutdown(Shutdown::Write);
    }
}

/// A non-blocking socket connecting to `addr`: connected already (true), or in progress (false).
fn connect_nonblocking(addr: SocketAddr) -> io::Result<(TcpStream, bool)> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2) call; the descriptor is owned by the TcpStream right after.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nobody else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: `storage` holds a valid address of `len` bytes for this socket's family.
    let r = unsafe {
        libc::connect(
            stream.as_raw_fd(),
            &storage as *const _ as *const libc::sockaddr,
            len as libc::socklen_t,
        )
    };
    if r == 0 {
        return Ok((stream, true));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok((stream, false))
    } else {
        Err(e)
    }
}

/// Whether a connect in progress has finished: `None` still going, `Some(Ok)` connected, `Some(Err)` failed.
fn connect_result(stream: &TcpStream) -> Option<io::Result<()>> {
    let mut pfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout: never blocks.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n <= 0 || pfd.revents == 0 {
        return None;
    }
    match stream.take_error() {
        Ok(None) => Some(Ok(())),
        Ok(Some(e)) | Err(e) => Some(Err(e)),
    }
}

impl Forward {
    pub fn new(target: ForwardTarget) -> Self {
        Forward {
            target,
            state: State::Idle,
            bridge: Bridge::default(),
            shut: false,
            failure: None,
        }
    }

    /// Connect to the next address; the connection is reset when none is left.
    fn try_next(&mut self, mut rest: VecDeque<SocketAddr>, io: &mut dyn AppIo) {
        if rest.is_empty() && self.failure.is_none() {
            self.failure = Some(format!("{} has no address", self.target.host));
        }
        while let Some(addr) = rest.pop_front() {
            match connect_nonblocking(addr) {
                Ok((stream, true)) => {
                    self.state = State::Connected(Upstream(stream));
                    return;
                }
                Ok((stream, false)) => {
                    self.state = State::Connecting { stream, addr, rest };
                    return;
                }
                Err(e) => self.failure = Some(format!("connect to {addr}: {e}")),
            }
        }
        io.abort();
        self.state = State::Done;
    }
}

impl App for Forward {
    fn service(&mut self, io: &mut dyn AppIo) {
        if matches!(self.state, State::Idle) {
            let (host, port) = (self.target.host.clone(), self.target.port);
            if let Ok(ip) = host.parse::<IpAddr>() {
                self.try_next(VecDeque::from([SocketAddr::new(ip, port)]), io);
            } else {
                // Name lookups block: one runs on its own thread and the answer is picked up in a later round.
                let (tx, rx) = mpsc::channel();
                std::thread::spawn(move || {
                    let _ = tx.send((host.as_str(), port).to_socket_addrs().map(Vec::from_iter));
                });
                self.state = State::Resolving(rx);
            }
        }
        if let State::Resolving(rx) = &self.state {
            match rx.try_recv() {
                Ok(Ok(addrs)) => self.try_next(addrs.into(), io),
                Ok(Err(e)) => {
                    self.failure = Some(format!("resolving {}: {e}", self.target.host));
                    io.abort();
                    self.state = State::Done;
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.failure = Some(format!("resolving {} failed", self.target.host));
                    io.abort();
                    self.state = State::Done;
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
        }
        if let State::Connecting { stream, .. } = &self.state {
            match connect_result(stream) {
                None => {}
                Some(Ok(())) => {
                    let State::Connecting { stream, .. } =
                        mem::replace(&mut self.state, State::Done)
                    else {
                        unreachable!("matched above");
                    };
                    self.state = State::Connected(Upstream(stream));
                }
                Some(Err(e)) => {
                    let State::Connecting { addr, rest, .. } =
                        mem::replace(&mut self.state, State::Done)
                    else {
                        unreachable!("matched above");
                    };
                    self.failure = Some(format!("connect to {addr}: {e}"));
                    self.try_next(rest, io);
                }
            }
        }
        match &mut self.state {
            State::Connected(up) => {
                self.bridge.pump(io, up);
                let reset =
                    self.bridge.ext_read_error.is_some() || self.bridge.ext_write_error.is_some();
                if reset {
                    // The service reset the connection (or vanished): pass the reset on.
                    let kind = self
                        .bridge
                        .ext_read_error
                        .or(self.bridge.ext_write_error)
                        .map(io::Error::from);
                    self.failure = Some(match kind {
                        Some(e) => format!("service at {}: {e}", self.target),
                        None => format!("service at {} failed", self.target),
                    });
                    self.bridge.flush_to_peer(io);
                    io.abort();
                    self.state = State::Done;
                    return;
                }
                if self.bridge.drained() && !self.shut {
                    io.shutdown_write();
                    self.shut = true;
                }
                if self.shut && self.bridge.ext_write_closed {
                    self.state = State::Done;
                }
            }
            State::Done => {
                let mut buf = [0u8; 4096];
                while matches!(io.read(&mut buf), Ok(n) if n > 0) {}
            }
            _ => {}
        }
    }

    fn wants_service(&self) -> bool {
        !matches!(self.state, State::Done)
    }

    fn wake_fds(&self, fds: &mut Vec<(RawFd, i16)>) -> bool {
        match &self.state {
            // Started by the first service, which comes at once; a name is resolved on another thread.
            State::Idle | State::Resolving(_) => false,
            State::Connecting { stream, .. } => {
                fds.push((stream.as_raw_fd(), libc::POLLOUT));
                true
            }
            State::Connected(up) => {
                let events = self.bridge.ext_events();
                if events != 0 {
                    fds.push((up.0.as_raw_fd(), events));
                }
                true
            }
            State::Done => true,
        }
    }

    fn outcome(&self) -> Option<String> {
        self.failure.clone()
    }
}

#[cfg(test)]
mod tests {
    //! Real TCP only inside a network namespace each test makes for itself (and that goes away with its
    //! thread): nothing here can reach an address outside it.

    use std::net::TcpListener;
    use std::thread;

    use super::super::test_io::{End, drive, pattern};
    use super::*;

    fn lo_up() -> Result<(), String> {
        // SAFETY: an ioctl on our own socket with a zeroed ifreq naming `lo`.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(format!("socket: {}", io::Error::last_os_error()));
            }
            let mut req: libc::ifreq = mem::zeroed();
            for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
                *d = *s as libc::c_char;
            }
            let mut r = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req);
            if r == 0 {
                req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
                r = libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &mut req);
            }
            let e = io::Error::last_os_error();
            libc::close(fd);
            if r != 0 {
                return Err(format!("bringing lo up: {e}"));
            }
        }
        Ok(())
    }

    /// Run `f` on a thread of its own inside a new network namespace with only `lo`, up. Without root (or
    /// without namespaces) the test is skipped with the reason, unless `PKTPATH_NETNS_TESTS=1` demands it.
    fn in_private_netns(f: impl FnOnce() + Send + 'static) {
        let ran = thread::spawn(move || -> Result<(), String> {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                return Err("not root, cannot make a network namespace".into());
            }
            // SAFETY: unshare only moves this thread into a fresh network namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "unshare(CLONE_NEWNET): {}",
                    io::Error::last_os_error()
                ));
            }
            lo_up()?;
            // Nothing but loopback here, so nothing the test does can leave the namespace.
            let dev = std::fs::read_to_string("/proc/thread-self/net/dev")
                .map_err(|e| format!("reading /proc/thread-self/net/dev: {e}"))?;
            let ifaces: Vec<&str> = dev
                .lines()
                .skip(2)
                .filter_map(|l| l.split(':').next())
                .map(str::trim)
                .collect();
            assert_eq!(ifaces, ["lo"], "the new namespace has only loopback");
            f();
            Ok(())
        })
        .join();
        match ran {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                if std::env::var("PKTPATH_NETNS_TESTS").as_deref() == Ok("1") {
                    panic!(
                        "PKTPATH_NETNS_TESTS=1 but the network namespace test was skipped: {why}"
                    );
                }
                println!("skipped: {why}");
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    fn target(host: &str, port: u16) -> ForwardTarget {
        ForwardTarget {
            host: host.into(),
            port,
        }
    }

    /// A service that reads until end of stream, then answers with `reply` and closes; returns what it read.
    fn serve_once(listener: TcpListener, reply: Vec<u8>) -> thread::JoinHandle<Vec<u8>> {
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(&reply).unwrap();
            got
        })
    }

    #[test]
    fn forward_bridges_exact_bytes_and_half_closes_both_ways() {
        in_private_netns(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let request = pattern(300_000);
            let mut reply = pattern(200_000);
            reply.reverse();
            let server = serve_once(listener, reply.clone());
            let mut app = Forward::new(target("127.0.0.1", port));
            // The service answers only after it read end of stream: the peer's FIN crossed as a half-close,
            // and the answer still came back the other way, ending in a FIN.
            let out = drive(&mut app, &request, true);
            assert_eq!(out.end, End::Fin);
            assert!(
                out.received == reply,
                "reply differs ({} bytes)",
                out.received.len()
            );
            assert!(server.join().unwrap() == request, "request differs");
        });
    }

    #[test]
    fn forward_resolves_a_host_name() {
        in_private_netns(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = serve_once(listener, b"pong".to_vec());
            let mut app = Forward::new(target("localhost", port));
            let out = drive(&mut app, b"ping", true);
            assert_eq!(
                (out.end, out.received.as_slice()),
                (End::Fin, b"pong".as_slice())
            );
            assert_eq!(server.join().unwrap(), b"ping");
        });
    }

    #[test]
    fn forward_to_a_closed_port_resets_the_connection() {
        in_private_netns(|| {
            let port = {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            };
            let mut app = Forward::new(target("127.0.0.1", port));
            let out = drive(&mut app, b"hello?", true);
            assert_eq!(out.end, End::Abort);
            assert_eq!(out.received, b"");
            assert!(!app.wants_service());
            assert_eq!(
                app.outcome().unwrap(),
                format!("connect to 127.0.0.1:{port}: Connection refused (os error 111)")
            );
        });
    }

    #[test]
    fn forward_passes_a_reset_from_the_service_on() {
        in_private_netns(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = thread::spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                let mut first = [0u8; 5];
                s.read_exact(&mut first).unwrap();
                s.write_all(b"bye").unwrap();
                let linger = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                // SAFETY: SO_LINGER with a zero timeout on our own socket: closing it sends RST.
                unsafe {
                    libc::setsockopt(
                        s.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        &linger as *const _ as *const libc::c_void,
                        mem::size_of::<libc::linger>() as libc::socklen_t,
                    );
                }
                first
            });
            let mut app = Forward::new(target("127.0.0.1", port));
            // No FIN from the peer: the service's reset is what ends it.
            let out = drive(&mut app, b"hello", false);
            assert_eq!(server.join().unwrap(), *b"hello");
            assert_eq!(out.end, End::Abort);
            let why = app.outcome().unwrap();
            assert!(
                why.starts_with(&format!("service at 127.0.0.1:{port}: ")),
                "{why}"
            );
            assert!(
                out.received.is_empty() || out.received == b"bye",
                "{:?}",
                out.received
            );
        });
    }

    #[test]
    fn sim_clients_get_their_bytes_back_through_forward_to_an_echo_service() {
        in_private_netns(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = thread::spawn(move || {
                let echoes: Vec<_> = (0..2)
                    .map(|_| {
                        let (mut s, _) = listener.accept().unwrap();
                        thread::spawn(move || {
                            let mut r = s.try_clone().unwrap();
                            std::io::copy(&mut r, &mut s).unwrap();
                        })
                    })
                    .collect();
                for e in echoes {
                    e.join().unwrap();
                }
            });
            let spec = crate::sim::SimSpec {
                clients: 2,
                bytes: 150_000,
                udp: 0,
                apps: vec![format!("7=forward:127.0.0.1:{port}").parse().unwrap()],
                ..Default::default()
            };
            let r = crate::session::run_sim(&spec, &Default::default()).unwrap();
            server.join().unwrap();
            assert_eq!(r.report.clients.len(), 2);
            for c in &r.report.clients {
                assert!(c.completed && !c.reset, "{c:?}");
                assert_eq!(c.sent.bytes, 150_000);
                assert_eq!(c.received, c.sent, "{c:?}");
            }
        });
    }
}
