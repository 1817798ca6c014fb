//! The `recorded` app: serves one replayed connection by writing back the recorded server's byte stream, each
//! part only once the client bytes the server had received before sending it have been read, so the replay
//! keeps the recorded turns (request, then response). It closes when the recorded server closed. Bytes the
//! capture lost are written as zeros where the peer's recorded ACKs prove them sent; at a gap nothing proves it
//! stops.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::pipeline::apps::{App, AppIo, AppSource, DatagramApp};

use super::script::Scripts;

const READ_CHUNK: usize = 16 * 1024;

pub struct RecordedApp {
    scripts: Scripts,
    key: (SocketAddr, SocketAddr),
    buf: Vec<u8>,
    read: u64,
    written: u64,
    peer_eof: bool,
    shut: bool,
}

impl RecordedApp {
    pub fn new(scripts: Scripts, local: SocketAddr, remote: SocketAddr) -> Self {
        RecordedApp {
            scripts,
            key: (local, remote),
            buf: vec![0; READ_CHUNK],
            read: 0,
            written: 0,
            peer_eof: false,
            shut: false,
        }
    }

    /// The client's sequence space received so far, as the recorded server's ack counted it: the bytes read,
    /// plus one for the client's FIN once the app has seen it (an ack after a FIN covers the FIN too).
    fn received(&self) -> u64 {
        self.read + u64::from(self.peer_eof)
    }

    /// Write what the script allows now; false when the socket would take no more.
    fn write_turns(&mut self, io: &mut dyn AppIo) -> bool {
        loop {
            let scripts = self.scripts.borrow();
            let Some(script) = scripts.get(&self.key) else {
                return true;
            };
            // Bytes the capture lost are in the script as zeros once the peer's ACKs prove them sent
            // (`FlowScript::prove_sent`); a gap nothing proves is where the app stops.
            let Some(data) = script.next_at(self.written, self.received()) else {
                return true;
            };
            let wrote = io.write(data);
            drop(scripts);
            match wrote {
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    self.written += n as u64;
                    if let Some(script) = self.scripts.borrow_mut().get_mut(&self.key) {
                        script.played_until(self.written);
                    }
                }
            }
        }
    }
}

impl App for RecordedApp {
    fn service(&mut self, io: &mut dyn AppIo) {
        while !self.peer_eof {
            match io.read(&mut self.buf) {
                Ok(0) => self.peer_eof = true,
                Ok(n) => self.read += n as u64,
                Err(_) => break,
            }
        }
        if self.shut || !self.write_turns(io) {
            return;
        }
        let scripts = self.scripts.borrow();
        let Some(script) = scripts.get(&self.key) else {
            return;
        };
        // The recorded server reset the connection at this point of its turns: so does the app.
        if let Some((at, after)) = script.reset
            && script.fin.is_none()
            && self.written >= at
            && self.received() >= after
        {
            drop(scripts);
            io.abort();
            self.shut = true;
            return;
        }
        let close = match script.fin {
            Some((at, after)) => self.written >= at && self.received() >= after,
            // No FIN recorded (the capture ended first, or the server reset): close once the client did.
            None => {
                self.peer_eof
                    && script.complete
                    && self.written >= script.covered_until(script.played)
            }
        };
        if close {
            drop(scripts);
            io.shutdown_write();
            self.shut = true;
        }
    }
}

/// Answers a UDP flow with the recorded server's datagrams, each once the client datagrams it followed in
/// the capture have been read.
pub struct RecordedDatagrams {
    scripts: Scripts,
    key: (SocketAddr, SocketAddr),
    received: u64,
    sent: usize,
}

impl DatagramApp for RecordedDatagrams {
    fn received(&mut self, _datagram: &[u8]) {
        self.received += 1;
    }

    fn next_reply(&mut self) -> Option<Vec<u8>> {
        let scripts = self.scripts.borrow();
        let next = scripts.get(&self.key)?.datagrams.get(self.sent)?;
        if next.after_peer_datagrams > self.received {
            return None;
        }
        self.sent += 1;
        Some(next.data.clone())
    }
}

/// Hands each accepted connection its recorded app, if the capture holds that flow.
pub struct RecordedSource {
    pub scripts: Scripts,
    /// Flows a recorded app was made for, so the wire can tell which ones were played.
    pub played: BTreeMap<(SocketAddr, SocketAddr), u32>,
}

impl AppSource for RecordedSource {
    fn accepted(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<Box<dyn App>> {
        if !self.scripts.borrow().contains_key(&(local, remote)) {
            return None;
        }
        *self.played.entry((local, remote)).or_default() += 1;
        Some(Box::new(RecordedApp::new(
            self.scripts.clone(),
            local,
            remote,
        )))
    }

    fn connecting(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<Box<dyn App>> {
        self.accepted(local, remote)
    }

    fn datagrams(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<Box<dyn DatagramApp>> {
        if !self.scripts.borrow().contains_key(&(local, remote)) {
            return None;
        }
        *self.played.entry((local, remote)).or_default() += 1;
        Some(Box::new(RecordedDatagrams {
            scripts: self.scripts.clone(),
            key: (local, remote),
            received: 0,
            sent: 0,
        }))
    }
}
