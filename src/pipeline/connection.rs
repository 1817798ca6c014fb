//! One TCP connection between the stack and an app: its own rx and tx buffers (libzt's `conn->rxbuf`/`txbuf`),
//! one real AF_UNIX socket pair (the conn end here, the app end handed to the app), and the bookkeeping that
//! maps stream offsets to packets, so each packet's `conn_buffer` and `app` hops are the moments its own last
//! byte crossed them. Offsets count bytes from the start of each direction's stream.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::net::UnixStream;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use super::apps::{App, AppIo};
use super::clock::Nanos;
use super::ids::{ConnId, PacketId};
use super::trace::{ConnEvent, ConnEventKind, ConnProto, ConnectionRecord, Role, StreamDigest};

/// The connection's own buffers, per direction.
pub const CONN_BUFFER: usize = 64 * 1024;
/// At most this much goes into the smoltcp socket per `send_slice`, like `pico_socket_write` (one MSS).
pub const SEND_CHUNK: usize = 1460;

/// When each prefix of a stream crossed a stage: `(end offset, time)`, in offset order.
#[derive(Debug, Default)]
pub struct Marks(VecDeque<(u64, Nanos)>);

impl Marks {
    pub fn push(&mut self, end: u64, t: Nanos) {
        match self.0.back_mut() {
            Some(last) if last.1 == t => last.0 = last.0.max(end),
            _ => self.0.push_back((end, t)),
        }
    }

    /// When the byte at `offset` crossed.
    pub fn time_of(&self, offset: u64) -> Option<Nanos> {
        self.0
            .iter()
            .find(|(end, _)| *end > offset)
            .map(|(_, t)| *t)
    }

    /// Forget marks wholly below `offset` (those bytes can never be sent again).
    pub fn prune_below(&mut self, offset: u64) {
        while self.0.front().is_some_and(|(end, _)| *end <= offset) {
            self.0.pop_front();
        }
    }
}

/// An rx packet whose accepted payload ends at stream offset `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxSpan {
    pub packet: PacketId,
    pub end: u64,
}

pub struct TcpConn {
    pub handle: SocketHandle,
    pub record: ConnectionRecord,
    pub state: tcp::State,
    conn_end: UnixStream,
    app_end: UnixStream,
    app: Box<dyn App>,

    rx_buf: VecDeque<u8>,
    /// Bytes taken out of the smoltcp socket so far (== bytes that entered `rx_buf`).
    pub rx_taken: u64,
    rx_unix_written: u64,
    rx_app_read: u64,
    /// Packets whose bytes are in the socket's rx buffer, waiting to be copied into `rx_buf`.
    pub at_socket: Vec<RxSpan>,
    /// Packets whose bytes are in `rx_buf` or the AF_UNIX socket, waiting for the app to read them.
    pub at_conn: Vec<RxSpan>,
    peer_eof_forwarded: bool,

    tx_buf: VecDeque<u8>,
    /// Our initial sequence number, learned from the SYN or SYN-ACK the stack sent.
    pub iss: Option<u32>,
    pub tx_app_marks: Marks,
    pub tx_conn_marks: Marks,
    pub tx_sock_marks: Marks,
    tx_app_written: u64,
    tx_conn_taken: u64,
    pub tx_sock_sent: u64,
    /// Which rx packets the app had read before writing each stretch of the tx stream.
    tx_sources: VecDeque<(u64, Vec<PacketId>)>,
    read_since_write: Vec<PacketId>,
    app_eof: bool,
    /// The app shut its sending side: the connection's end reads end of stream next.
    app_shut_write: bool,
    /// The app called `abort`: the stack resets the connection once the app's bytes are acknowledged.
    app_aborted: bool,
    pub close_sent: bool,
    waiting_since: Option<Nanos>,
}

/// What one round of servicing achieved.
#[derive(Debug, Default)]
pub struct Progress {
    /// Packets whose payload is now wholly in the connection's buffer.
    pub to_conn: Vec<PacketId>,
    /// Packets whose payload the app has now wholly read.
    pub to_app: Vec<PacketId>,
    /// Bytes were handed to the socket, or it was closed: egress has work.
    pub egress_needed: bool,
    pub moved: bool,
}

impl TcpConn {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: ConnId,
        handle: SocketHandle,
        local: SocketAddr,
        remote: SocketAddr,
        role: Role,
        app_name: &str,
        app: Box<dyn App>,
        state: tcp::State,
    ) -> io::Result<Self> {
        let (conn_end, app_end) = UnixStream::pair()?;
        conn_end.set_nonblocking(true)?;
        app_end.set_nonblocking(true)?;
        Ok(TcpConn {
            handle,
            record: ConnectionRecord {
                id,
                proto: ConnProto::Tcp,
                local,
                remote,
                role,
                app: app_name.to_string(),
                events: Vec::new(),
                events_elided: 0,
                app_read: StreamDigest::default(),
                app_written: StreamDigest::default(),
            },
            state,
            conn_end,
            app_end,
            app,
            rx_buf: VecDeque::with_capacity(CONN_BUFFER),
            rx_taken: 0,
            rx_unix_written: 0,
            rx_app_read: 0,
            at_socket: Vec::new(),
            at_conn: Vec::new(),
            peer_eof_forwarded: false,
            tx_buf: VecDeque::with_capacity(CONN_BUFFER),
            iss: None,
            tx_app_marks: Marks::default(),
            tx_conn_marks: Marks::default(),
            tx_sock_marks: Marks::default(),
            tx_app_written: 0,
            tx_conn_taken: 0,
            tx_sock_sent: 0,
            tx_sources: VecDeque::new(),
            read_since_write: Vec::new(),
            app_eof: false,
            app_shut_write: false,
            app_aborted: false,
            close_sent: false,
            waiting_since: None,
        })
    }

    pub fn event(&mut self, t_ns: Nanos, kind: ConnEventKind, detail: impl Into<String>) {
        self.record.push_event(ConnEvent {
            t_ns,
            kind,
            detail: detail.into(),
        });
    }

    pub fn rx_buffered(&self) -> usize {
        self.rx_buf.len()
    }

    pub fn tx_buffered(&self) -> usize {
        self.tx_buf.len()
    }

    /// The rx packets behind the tx stream bytes `[start, end)`.
    pub fn sources_of(&self, start: u64, end: u64) -> Vec<PacketId> {
        let mut out = Vec::new();
        let mut prev_end = 0;
        for (stretch_end, ids) in &self.tx_sources {
            if *stretch_end > start && prev_end < end {
                out.extend(ids.iter().copied());
            }
            prev_end = *stretch_end;
        }
        out.dedup();
        out
    }

    /// Forget tx bookkeeping for bytes the peer has acknowledged.
    pub fn prune_acked(&mut self, acked: u64) {
        self.tx_app_marks.prune_below(acked);
        self.tx_conn_marks.prune_below(acked);
        self.tx_sock_marks.prune_below(acked);
        while self.tx_sources.len() > 1 && self.tx_sources[0].0 <= acked {
            self.tx_sources.pop_front();
        }
    }

    /// Socket rx buffer → our rx buffer → the AF_UNIX socket.
    pub fn pump_rx(&mut self, socket: &mut tcp::Socket, now: Nanos, p: &mut Progress) {
        let mut room = CONN_BUFFER - self.rx_buf.len();
        let mut n = 0;
        // Copied straight out of the socket's ring; two rounds when the readable bytes wrap around it.
        while room > 0 && socket.can_recv() {
            let rx_buf = &mut self.rx_buf;
            let took = socket
                .recv(|ring| {
                    let k = ring.len().min(room);
                    rx_buf.extend(&ring[..k]);
                    (k, k)
                })
                .unwrap_or(0);
            if took == 0 {
                break;
            }
            n += took;
            room -= took;
        }
        if n > 0 {
            self.rx_taken += n as u64;
            p.moved = true;
            // Room opened in the socket's rx buffer: the stack may owe the peer a window update.
            p.egress_needed = true;
            let (taken, at_conn) = (self.rx_taken, &mut self.at_conn);
            self.at_socket.retain(|span| {
                let copied = span.end <= taken;
                if copied {
                    p.to_conn.push(span.packet);
                    at_conn.push(*span);
                }
                !copied
            });
        }
        while !self.rx_buf.is_empty() {
            let (front, _) = self.rx_buf.as_slices();
            match self.conn_end.write(front) {
                Ok(n) if n > 0 => {
                    self.rx_buf.drain(..n);
                    self.rx_unix_written += n as u64;
                    p.moved = true;
                }
                _ => break,
            }
        }
        // The peer finished sending and everything it sent has been handed over: tell the app.
        if !self.peer_eof_forwarded
            && self.rx_buf.is_empty()
            && !socket.may_recv()
            && socket.recv_queue() == 0
            && self.state_has_received_fin()
        {
            let _ = self.conn_end.shutdown(Shutdown::Write);
            self.peer_eof_forwarded = true;
            self.event(
                now,
                ConnEventKind::PeerEof,
                "peer closed its side; app will read end of stream",
            );
            p.moved = true;
        }
    }

    fn state_has_received_fin(&self) -> bool {
        matches!(
            self.state,
            tcp::State::CloseWait
                | tcp::State::LastAck
                | tcp::State::Closing
                | tcp::State::TimeWait
                | tcp::State::Closed
        )
    }

    /// The app waits on something outside the pipeline (a child process, a real socket).
    pub fn app_wants_service(&self) -> bool {
        self.app.wants_service()
    }

    /// The descriptors that would bring the app work (see `App::wake_fds`).
    pub fn app_wake_fds(&self, fds: &mut Vec<(std::os::fd::RawFd, i16)>) -> bool {
        self.app.wake_fds(fds)
    }

    /// Whether a connection whose socket is in TIME-WAIT is finished too: every byte the peer sent has been
    /// read by the app, the peer's end of stream handed on, and the app is done with its outside end. Ending
    /// it sooner drops the app with bytes it still holds (a `forward:` service would get a clean but short
    /// stream; an `exec:` command would be killed before it read its end of input). An app that never
    /// finishes is ended when smoltcp's TIME-WAIT runs out and the socket closes.
    pub fn finished_in_time_wait(&self) -> bool {
        self.at_socket.is_empty()
            && self.at_conn.is_empty()
            && self.rx_buf.is_empty()
            && self.peer_eof_forwarded
            && !self.app.wants_service()
    }

    /// ` (how the app's outside end went)`, or nothing for apps that have no outside end.
    fn app_outcome(&self) -> String {
        self.app
            .outcome()
            .map_or(String::new(), |why| format!(" ({why})"))
    }

    /// Let the app run one round on its end of the AF_UNIX socket.
    pub fn run_app(&mut self, now: Nanos, p: &mut Progress) {
        let mut io = RecordingIo {
            stream: &self.app_end,
            // Only `pump_rx` writes the other end, on this thread: what it wrote and the app has not read yet
            // is exactly what a read can return, so an empty socket is known without asking the kernel.
            unread: self.rx_unix_written - self.rx_app_read,
            end_of_stream_sent: self.peer_eof_forwarded,
            read: 0,
            written: 0,
            would_block_read: false,
            read_digest: &mut self.record.app_read,
            write_digest: &mut self.record.app_written,
            shut: false,
            aborted: false,
        };
        self.app.service(&mut io);
        let (read, written, blocked, shut) = (io.read, io.written, io.would_block_read, io.shut);
        if io.aborted && !self.app_aborted {
            self.app_aborted = true;
            let why = self.app_outcome();
            self.event(
                now,
                ConnEventKind::Reset,
                format!("app gave the connection up: stack will reset it{why}"),
            );
            p.moved = true;
        }
        if read > 0 {
            if let Some(since) = self.waiting_since.take() {
                self.event(
                    now,
                    ConnEventKind::AppWake,
                    format!("read {read} bytes after waiting {} ns", now - since),
                );
            }
            self.rx_app_read += read as u64;
            let (done, read_since_write) = (self.rx_app_read, &mut self.read_since_write);
            self.at_conn.retain(|span| {
                let read = span.end <= done;
                if read {
                    p.to_app.push(span.packet);
                    read_since_write.push(span.packet);
                }
                !read
            });
            p.moved = true;
        } else if blocked && self.waiting_since.is_none() && !self.peer_eof_forwarded {
            self.waiting_since = Some(now);
            self.event(
                now,
                ConnEventKind::AppWait,
                "app asked for data; none buffered",
            );
        }
        if written > 0 {
            self.tx_app_written += written as u64;
            self.tx_app_marks.push(self.tx_app_written, now);
            let sources = std::mem::take(&mut self.read_since_write);
            let end = self.tx_app_written;
            match self.tx_sources.back_mut() {
                // Nothing new was read since the last write: this write continues the same stretch.
                Some(last) if sources.is_empty() => last.0 = end,
                _ => self.tx_sources.push_back((end, sources)),
            }
            p.moved = true;
        }
        if shut {
            self.app_shut_write = true;
            p.moved = true;
        }
    }

    /// The AF_UNIX socket → our tx buffer → the socket's tx buffer, one MSS per `send_slice`.
    /// `scratch` is the engine's read buffer (at least `CONN_BUFFER` bytes), shared by every connection.
    pub fn pump_tx(
        &mut self,
        socket: &mut tcp::Socket,
        now: Nanos,
        p: &mut Progress,
        scratch: &mut [u8],
    ) {
        let room = (CONN_BUFFER - self.tx_buf.len()).min(scratch.len());
        // Every byte the app writes goes through `RecordingIo` on this thread, so when it has written nothing
        // we have not read and has not shut its side, the read would only say "would block": skip it.
        let may_read =
            self.tx_app_written > self.tx_conn_taken || self.app_shut_write || self.app_aborted;
        if room > 0 && !self.app_eof && may_read {
            let chunk = &mut scratch[..room];
            match self.conn_end.read(chunk) {
                Ok(0) => {
                    self.app_eof = true;
                    let why = self.app_outcome();
                    self.event(
                        now,
                        ConnEventKind::AppEof,
                        format!("app closed its sending side{why}"),
                    );
                    p.moved = true;
                }
                Ok(n) => {
                    self.tx_buf.extend(&chunk[..n]);
                    self.tx_conn_taken += n as u64;
                    self.tx_conn_marks.push(self.tx_conn_taken, now);
                    p.moved = true;
                }
                Err(_) => {}
            }
        }
        while !self.tx_buf.is_empty() && socket.can_send() {
            let (front, _) = self.tx_buf.as_slices();
            let take = front.len().min(SEND_CHUNK);
            match socket.send_slice(&front[..take]) {
                Ok(n) if n > 0 => {
                    self.tx_buf.drain(..n);
                    self.tx_sock_sent += n as u64;
                    self.tx_sock_marks.push(self.tx_sock_sent, now);
                    p.moved = true;
                    p.egress_needed = true;
                }
                _ => break,
            }
        }
        // An app that gave up: once its bytes have gone and been acknowledged, reset instead of closing.
        if self.app_aborted
            && self.tx_buf.is_empty()
            && socket.send_queue() == 0
            && !self.close_sent
            && socket.is_open()
        {
            socket.abort();
            self.close_sent = true;
            p.moved = true;
            p.egress_needed = true;
            return;
        }
        if self.app_eof && self.tx_buf.is_empty() && !self.close_sent && socket.is_open() {
            socket.close();
            self.close_sent = true;
            self.event(
                now,
                ConnEventKind::Close,
                "app done sending: stack will send FIN",
            );
            p.moved = true;
            p.egress_needed = true;
        }
    }

    /// Packets still inside the connection when it ended.
    pub fn stranded(&mut self) -> Vec<PacketId> {
        let mut ids: Vec<PacketId> = self.at_socket.drain(..).map(|s| s.packet).collect();
        ids.extend(self.at_conn.drain(..).map(|s| s.packet));
        ids
    }
}

/// The app's view of its end: plain non-blocking I/O, counted and digested on the way.
struct RecordingIo<'a> {
    stream: &'a UnixStream,
    /// Bytes written into the other end that the app has not read yet.
    unread: u64,
    /// The other end was shut for writing: a read can return end of stream.
    end_of_stream_sent: bool,
    read: usize,
    written: usize,
    would_block_read: bool,
    read_digest: &'a mut StreamDigest,
    write_digest: &'a mut StreamDigest,
    shut: bool,
    aborted: bool,
}

impl AppIo for RecordingIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.unread == 0 && !self.end_of_stream_sent && !buf.is_empty() {
            self.would_block_read = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let r = (&*self.stream).read(buf);
        match &r {
            Ok(n) => {
                self.unread = self.unread.saturating_sub(*n as u64);
                self.read += n;
                self.read_digest.update(&buf[..*n]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.would_block_read = true,
            Err(_) => {}
        }
        r
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = (&*self.stream).write(buf);
        if let Ok(n) = &r {
            self.written += n;
            self.write_digest.update(&buf[..*n]);
        }
        r
    }

    fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        self.shut = true;
    }

    fn abort(&mut self) {
        self.aborted = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_find_the_time_each_byte_crossed() {
        let mut m = Marks::default();
        m.push(100, 10);
        m.push(150, 10);
        m.push(300, 20);
        assert_eq!(m.time_of(0), Some(10));
        assert_eq!(m.time_of(149), Some(10));
        assert_eq!(m.time_of(150), Some(20));
        assert_eq!(m.time_of(300), None);
        m.prune_below(150);
        assert_eq!(m.time_of(160), Some(20));
    }
}
