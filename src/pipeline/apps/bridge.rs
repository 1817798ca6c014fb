//! The byte shuttle shared by `exec:` and `forward:`: moves bytes between the app's end of the AF_UNIX socket
//! and an external stream (a child's pipes, a real TCP socket), non-blocking, with a bounded buffer each way
//! and half-closes carried across.

use std::io;

use super::io::AppIo;

/// Bytes held in each direction before the bridge stops reading that direction's source (backpressure).
pub const PENDING_MAX: usize = 64 * 1024;
/// One read at most this much.
const READ_CHUNK: usize = 16 * 1024;
/// Rounds of reading and writing one `pump` does before giving the core back its turn.
const ROUNDS: usize = 8;

/// The far side of a bridge.
pub trait External {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Nothing more will be written: the far side reads end of stream.
    fn close_write(&mut self);
}

#[derive(Default)]
pub struct Bridge {
    buf: Vec<u8>,
    /// Read from the connection, not yet written to the external side.
    to_ext: Vec<u8>,
    /// Read from the external side, not yet written to the connection.
    from_ext: Vec<u8>,
    /// The peer closed its side (the app read end of stream).
    pub peer_eof: bool,
    /// We closed the external side's input.
    pub ext_write_closed: bool,
    /// Writing to the external side failed (a broken pipe, a reset); later input from the peer is dropped.
    pub ext_write_error: Option<io::ErrorKind>,
    /// The external side's output ended.
    pub ext_eof: bool,
    /// Reading from the external side failed (a reset).
    pub ext_read_error: Option<io::ErrorKind>,
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

impl Bridge {
    /// Everything the external side sent has been handed to the connection.
    pub fn drained(&self) -> bool {
        self.ext_eof && self.from_ext.is_empty()
    }

    /// The `poll(2)` events on the external side that would let this bridge move bytes: readable while it
    /// has room for what comes from there, writable while it holds bytes for it.
    pub fn ext_events(&self) -> i16 {
        let mut events = 0;
        if !self.ext_eof && self.from_ext.len() < PENDING_MAX {
            events |= libc::POLLIN;
        }
        if !self.to_ext.is_empty() && self.ext_write_error.is_none() {
            events |= libc::POLLOUT;
        }
        events
    }

    /// Bytes waiting in the bridge: towards the external side, towards the peer.
    #[cfg(test)]
    pub fn pending(&self) -> (usize, usize) {
        (self.to_ext.len(), self.from_ext.len())
    }

    /// Flush what the external side sent to the connection, as far as it takes it; true when nothing waits.
    pub fn flush_to_peer(&mut self, io: &mut dyn AppIo) -> bool {
        while !self.from_ext.is_empty() {
            match io.write(&self.from_ext) {
                Ok(0) => return false,
                Ok(n) => {
                    self.from_ext.drain(..n);
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Move what can move without blocking, both ways. True when any byte moved or a side closed.
    pub fn pump(&mut self, io: &mut dyn AppIo, ext: &mut dyn External) -> bool {
        let mut any = false;
        for _ in 0..ROUNDS {
            let moved = self.round(io, ext);
            any |= moved;
            if !moved {
                break;
            }
        }
        any
    }

    fn round(&mut self, io: &mut dyn AppIo, ext: &mut dyn External) -> bool {
        let mut moved = false;
        if self.buf.len() < READ_CHUNK {
            self.buf.resize(READ_CHUNK, 0);
        }
        // The peer → the external side.
        let room = PENDING_MAX
            .saturating_sub(self.to_ext.len())
            .min(READ_CHUNK);
        if !self.peer_eof && room > 0 {
            match io.read(&mut self.buf[..room]) {
                Ok(0) => {
                    self.peer_eof = true;
                    moved = true;
                }
                Ok(n) => {
                    if self.ext_write_error.is_none() {
                        self.to_ext.extend_from_slice(&self.buf[..n]);
                    }
                    moved = true;
                }
                Err(e) if would_block(&e) => {}
                Err(_) => {
                    self.peer_eof = true;
                    moved = true;
                }
            }
        }
        while !self.to_ext.is_empty() {
            match ext.write(&self.to_ext) {
                Ok(0) => break,
                Ok(n) => {
                    self.to_ext.drain(..n);
                    moved = true;
                }
                Err(e) if would_block(&e) => break,
                Err(e) => {
                    self.ext_write_error = Some(e.kind());
                    self.to_ext.clear();
                    moved = true;
                }
            }
        }
        if self.peer_eof && self.to_ext.is_empty() && !self.ext_write_closed {
            ext.close_write();
            self.ext_write_closed = true;
            moved = true;
        }
        // The external side → the peer.
        let room = PENDING_MAX
            .saturating_sub(self.from_ext.len())
            .min(READ_CHUNK);
        if !self.ext_eof && room > 0 {
            match ext.read(&mut self.buf[..room]) {
                Ok(0) => {
                    self.ext_eof = true;
                    moved = true;
                }
                Ok(n) => {
                    self.from_ext.extend_from_slice(&self.buf[..n]);
                    moved = true;
                }
                Err(e) if would_block(&e) => {}
                Err(e) => {
                    self.ext_eof = true;
                    self.ext_read_error = Some(e.kind());
                    moved = true;
                }
            }
        }
        let before = self.from_ext.len();
        self.flush_to_peer(io);
        moved | (self.from_ext.len() != before)
    }
}
