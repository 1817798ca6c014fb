//! What an app sees of its connection: the app's end of the AF_UNIX socket (`AppIo`), and what the core asks
//! of an app (`App`).

use std::io;
use std::os::fd::RawFd;

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
