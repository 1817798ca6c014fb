//! `forward:HOST:PORT`, pktpath as a userspace proxy: each connection is bridged to a real TCP service. The
//! first round resolves the host (a name on a helper thread) and starts a non-blocking connect; then bytes and
//! half-closes cross both ways. A refused, unreachable or reset service resets the connection.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::mem;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::mpsc;

use super::bridge::{Bridge, External};
use super::spec::ForwardTarget;
use super::{App, AppIo};

pub struct Forward {
    target: ForwardTarget,
    state: State,
    bridge: Bridge,
    /// We closed our sending side (FIN) towards the peer.
    shut: bool,
}

enum State {
    Idle,
    Resolving(mpsc::Receiver<io::Result<Vec<SocketAddr>>>),
    Connecting {
        stream: TcpStream,
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
        }
    }

    /// Connect to the next address; the connection is reset when none is left.
    fn try_next(&mut self, mut rest: VecDeque<SocketAddr>, io: &mut dyn AppIo) {
        while let Some(addr) = rest.pop_front() {
            match connect_nonblocking(addr) {
                Ok((stream, true)) => {
                    self.state = State::Connected(Upstream(stream));
                    return;
                }
                Ok((stream, false)) => {
                    self.state = State::Connecting { stream, rest };
                    return;
                }
                Err(_) => {}
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
                Ok(Err(_)) | Err(mpsc::TryRecvError::Disconnected) => {
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
                Some(Err(_)) => {
                    let State::Connecting { rest, .. } = mem::replace(&mut self.state, State::Done)
                    else {
                        unreachable!("matched above");
                    };
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
}
