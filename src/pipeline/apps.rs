//! Applications behind the AF_UNIX boundary. Each connection hands its app one end of a real socket pair; the
//! app only ever sees that end, through `AppIo`, exactly as a process would. In deterministic runs the core
//! calls `service` in step order and the app does what it can without blocking.

mod bridge;
pub mod exec;
pub mod forward;
mod spec;
#[cfg(test)]
mod test_io;

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

pub use spec::{AppSpec, AppSpecError, ForwardTarget};

/// Non-blocking I/O on the app's end of the AF_UNIX socket. Reads and writes return `WouldBlock` when they
/// would wait; a read of 0 bytes is end of stream (the peer closed).
pub trait AppIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Close our sending direction: the stack will send FIN once what was written has gone.
    fn shutdown_write(&mut self);
    /// Give the connection up: once what was written has been sent and acknowledged, the stack resets it
    /// (RST) instead of closing it, as a process that closes a socket with unread data makes its kernel do.
    fn abort(&mut self);
}

/// A stream application.
pub trait App {
    /// Do one round of work that can be done without blocking.
    fn service(&mut self, io: &mut dyn AppIo);
    /// The app waits on something outside the pipeline (a child process, a real socket) that may give it work
    /// while the connection is quiet: the core keeps servicing it. Apps that only react to their socket say no.
    fn wants_service(&self) -> bool {
        false
    }
    /// For an app that wants service: add the descriptors whose readiness brings it work (`poll(2)` events),
    /// so a core with nothing else to do can sleep on them. False when its next work cannot be told by a
    /// descriptor (a grace period, a name being resolved): the core then polls it.
    fn wake_fds(&self, _fds: &mut Vec<(RawFd, i16)>) -> bool {
        false
    }
    /// How the app's outside end went, once it has ended (an `exec:` child's exit status and last stderr
    /// line, a `forward:` service that refused or reset), for the connection's close and reset events.
    fn outcome(&self) -> Option<String> {
        None
    }
}

/// Which application serves a port, as given by `--app [PORT=]SPEC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppKind {
    /// Writes back every byte it reads (TCP and UDP).
    Echo,
    /// Reads and drops everything (TCP and UDP).
    Discard,
    /// Answers any GET with a small 200 page, then closes (TCP only).
    Http,
    /// Accepts and never reads: shows what full buffers and a zero window look like.
    Stall,
    /// Replay: answers each connection with the recorded peer's byte stream, from the pipeline's app source;
    /// a connection the capture does not hold is refused.
    Recorded,
    /// inetd-style: each TCP connection runs `sh -c CMD`; the connection is the command's stdin and stdout.
    Exec(String),
    /// Each TCP connection is bridged to a real TCP service (pktpath as a userspace proxy).
    Forward(ForwardTarget),
}

impl AppKind {
    pub fn name(&self) -> &'static str {
        match self {
            AppKind::Echo => "echo",
            AppKind::Discard => "discard",
            AppKind::Http => "http",
            AppKind::Stall => "stall",
            AppKind::Recorded => "recorded",
            AppKind::Exec(_) => "exec",
            AppKind::Forward(_) => "forward",
        }
    }

    pub fn serves_udp(&self) -> bool {
        !matches!(self, AppKind::Http | AppKind::Exec(_) | AppKind::Forward(_))
    }

    /// A fresh instance; `None` for `Recorded`, whose instances come from an `AppSource` that knows the flow.
    pub fn instantiate(&self) -> Option<Box<dyn App>> {
        Some(match self {
            AppKind::Echo => Box::new(Echo::default()),
            AppKind::Discard => Box::new(Discard::default()),
            AppKind::Http => Box::new(Http::default()),
            AppKind::Stall => Box::new(Stall),
            AppKind::Exec(cmd) => Box::new(exec::Exec::new(cmd)),
            AppKind::Forward(target) => Box::new(forward::Forward::new(target.clone())),
            AppKind::Recorded => return None,
        })
    }
}

/// Makes the apps that need to know which connection they serve (replay's `recorded`).
pub trait AppSource {
    /// The app for a connection the stack accepted from `remote` on `local`, or `None` to refuse it.
    fn accepted(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<Box<dyn App>>;
    /// The app for a connection the stack opens from `local` to `remote` (a replayed client), if any.
    fn connecting(&mut self, _local: SocketAddr, _remote: SocketAddr) -> Option<Box<dyn App>> {
        None
    }
    /// The app answering the datagrams of a UDP flow from `remote` to `local`, if the source has one.
    fn datagrams(
        &mut self,
        _local: SocketAddr,
        _remote: SocketAddr,
    ) -> Option<Box<dyn DatagramApp>> {
        None
    }
}

/// A datagram application that needs to know its flow: told of each datagram it read, it hands back the
/// datagrams it would send now.
pub trait DatagramApp {
    fn received(&mut self, datagram: &[u8]);
    /// The next datagram to send, if one is due.
    fn next_reply(&mut self) -> Option<Vec<u8>>;
}

const CHUNK: usize = 16 * 1024;

/// An app's read buffer, allocated on first use and kept: a round reads into it without zeroing 16 KiB anew.
fn read_buffer(buf: &mut Vec<u8>) -> &mut [u8] {
    if buf.len() < CHUNK {
        buf.resize(CHUNK, 0);
    }
    buf
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Writes `pending` out as far as the socket takes it; true when all of it went.
fn flush(io: &mut dyn AppIo, pending: &mut Vec<u8>) -> bool {
    while !pending.is_empty() {
        match io.write(pending) {
            Ok(0) => return false,
            Ok(n) => {
                pending.drain(..n);
            }
            Err(_) => return false,
        }
    }
    true
}

#[derive(Default)]
pub struct Echo {
    buf: Vec<u8>,
    pending: Vec<u8>,
    eof: bool,
    shut: bool,
}

impl App for Echo {
    fn service(&mut self, io: &mut dyn AppIo) {
        if !flush(io, &mut self.pending) {
            return;
        }
        if !self.eof {
            let buf = read_buffer(&mut self.buf);
            match io.read(buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    // Write straight from the read buffer; only what the socket refuses waits in `pending`.
                    let mut sent = 0;
                    while sent < n {
                        match io.write(&buf[sent..n]) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => sent += k,
                        }
                    }
                    self.pending.extend_from_slice(&buf[sent..n]);
                }
                Err(e) if would_block(&e) => {}
                Err(_) => self.eof = true,
            }
        }
        if self.eof && self.pending.is_empty() && !self.shut {
            io.shutdown_write();
            self.shut = true;
        }
    }
}

#[derive(Default)]
pub struct Discard {
    buf: Vec<u8>,
    shut: bool,
}

impl App for Discard {
    fn service(&mut self, io: &mut dyn AppIo) {
        if self.shut {
            return;
        }
        match io.read(read_buffer(&mut self.buf)) {
            Ok(0) => {
                io.shutdown_write();
                self.shut = true;
            }
            Ok(_) => {}
            Err(e) if would_block(&e) => {}
            Err(_) => {
                io.shutdown_write();
                self.shut = true;
            }
        }
    }
}

/// The page the `http` app serves.
pub const HTTP_BODY: &str = "<!doctype html>\n<html><head><title>pktpath</title></head>\n<body><h1>Hello from pktpath</h1>\n<p>This page crossed every hop: app, conn_buffer, socket_buffer, stack, frame_buffer, wire.</p></body></html>\n";

/// Requests longer than this without a blank line get a 431 and the connection is closed.
const HTTP_MAX_HEAD: usize = 16 * 1024;

#[derive(Default)]
pub struct Http {
    buf: Vec<u8>,
    head: Vec<u8>,
    response: Option<Vec<u8>>,
    shut: bool,
}

impl Http {
    fn respond(head: &[u8]) -> Vec<u8> {
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let (status, body) = if line.starts_with(b"GET ") {
            ("200 OK", HTTP_BODY.to_string())
        } else if head.len() >= HTTP_MAX_HEAD {
            (
                "431 Request Header Fields Too Large",
                "request head too large\n".to_string(),
            )
        } else {
            (
                "405 Method Not Allowed",
                "only GET is served here\n".to_string(),
            )
        };
        format!(
            "HTTP/1.1 {status}\r\nServer: pktpath\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

impl App for Http {
    fn service(&mut self, io: &mut dyn AppIo) {
        if let Some(resp) = &mut self.response
            && flush(io, resp)
            && !self.shut
        {
            io.shutdown_write();
            self.shut = true;
        }
        let buf = read_buffer(&mut self.buf);
        match io.read(buf) {
            Ok(0) => {
                if self.response.is_none() {
                    self.response = Some(Self::respond(&self.head));
                }
            }
            Ok(n) if self.response.is_none() => {
                self.head.extend_from_slice(&buf[..n]);
                let complete = self.head.windows(4).any(|w| w == b"\r\n\r\n")
                    || self.head.windows(2).any(|w| w == b"\n\n");
                if complete || self.head.len() >= HTTP_MAX_HEAD {
                    self.response = Some(Self::respond(&self.head));
                }
            }
            // After the response, whatever else the client sends is read and dropped.
            Ok(_) => {}
            Err(_) => {}
        }
        if let Some(resp) = &mut self.response
            && flush(io, resp)
            && !self.shut
        {
            io.shutdown_write();
            self.shut = true;
        }
    }
}

pub struct Stall;

impl App for Stall {
    fn service(&mut self, _io: &mut dyn AppIo) {}
}

/// The app behind an outbound connection in `sim --outbound`: it writes its payload, closes its sending side,
/// and reads the reply until the server closes.
pub struct Client {
    buf: Vec<u8>,
    payload: Vec<u8>,
    sent: usize,
    shut: bool,
    eof: bool,
}

impl Client {
    pub fn new(payload: Vec<u8>) -> Self {
        Client {
            buf: Vec::new(),
            payload,
            sent: 0,
            shut: false,
            eof: false,
        }
    }
}

impl App for Client {
    fn service(&mut self, io: &mut dyn AppIo) {
        if self.sent < self.payload.len() {
            let end = (self.sent + CHUNK).min(self.payload.len());
            if let Ok(n) = io.write(&self.payload[self.sent..end]) {
                self.sent += n;
            }
        }
        if self.sent == self.payload.len() && !self.shut {
            io.shutdown_write();
            self.shut = true;
        }
        if !self.eof {
            match io.read(read_buffer(&mut self.buf)) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if would_block(&e) => {}
                Err(_) => self.eof = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_get_with_the_page() {
        let resp = String::from_utf8(Http::respond(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(resp.ends_with(HTTP_BODY));
        assert!(resp.contains(&format!("Content-Length: {}\r\n", HTTP_BODY.len())));
        let resp = String::from_utf8(Http::respond(b"POST / HTTP/1.1\r\n\r\n")).unwrap();
        assert!(resp.starts_with("HTTP/1.1 405 "));
    }
}
