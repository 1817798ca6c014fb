//! Test harness for apps: an `AppIo` over one end of a real `UnixStream::pair()`, the test holding the other
//! end as the peer, and a loop that feeds the peer's bytes in and collects what comes back.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::io::{App, AppIo};

/// The app's end, as the connection hands it over, with what the app asked for recorded.
pub struct PairIo {
    end: UnixStream,
    pub shut: bool,
    pub aborted: bool,
}

impl AppIo for PairIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.end.read(buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.end.write(buf)
    }

    fn shutdown_write(&mut self) {
        let _ = self.end.shutdown(Shutdown::Write);
        self.shut = true;
    }

    fn abort(&mut self) {
        self.aborted = true;
    }
}

/// The app's `PairIo` and the peer's end, both non-blocking.
pub fn pair() -> (PairIo, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socket pair");
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (
        PairIo {
            end: a,
            shut: false,
            aborted: false,
        },
        b,
    )
}

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The app closed its sending side and the peer read end of stream.
    Fin,
    /// The app reset the connection.
    Abort,
}

/// What the peer got back, and how the run ended.
#[derive(Debug)]
pub struct Outcome {
    pub received: Vec<u8>,
    pub end: End,
    /// Service rounds it took.
    pub rounds: u64,
}

/// Peer writes `input` (then FIN when `fin`), the app runs round after round, the peer reads until the app
/// closes or resets. Panics after 30 s.
pub fn drive(app: &mut dyn App, input: &[u8], fin: bool) -> Outcome {
    let (mut io, mut peer) = pair();
    drive_on(app, &mut io, &mut peer, input, fin)
}

pub fn drive_on(
    app: &mut dyn App,
    io: &mut PairIo,
    peer: &mut UnixStream,
    input: &[u8],
    fin: bool,
) -> Outcome {
    let start = Instant::now();
    let (mut sent, mut fin_sent, mut received, mut rounds) = (0, false, Vec::new(), 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "app did not finish: sent {sent} of {}, received {}, shut {}, aborted {}",
            input.len(),
            received.len(),
            io.shut,
            io.aborted
        );
        while sent < input.len() {
            match peer.write(&input[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        if fin && sent == input.len() && !fin_sent {
            peer.shutdown(Shutdown::Write).unwrap();
            fin_sent = true;
        }
        app.service(io);
        rounds += 1;
        let mut eof = false;
        loop {
            match peer.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        if io.aborted {
            return Outcome {
                received,
                end: End::Abort,
                rounds,
            };
        }
        if eof {
            return Outcome {
                received,
                end: End::Fin,
                rounds,
            };
        }
        if !app.wants_service() {
            std::thread::sleep(Duration::from_millis(1));
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// A deterministic byte pattern of `len` bytes that does not repeat with any short period.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}
