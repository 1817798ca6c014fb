//! The tap-service thread: `poll()`s the TAP fd and a wake pipe. Readable TAP: read every frame that is there
//! (up to a batch), stamp each with the run's clock, and hand the batch to the guarded frame buffer (whose
//! overflow is a counted drop). Wake pipe: write what the stack queued for the TAP. It never blocks anywhere
//! but in `poll`, and it never waits for the stack thread: a paused or slow stack only fills the buffer.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::buffer::{Shared, TapFrame, TxQueue};
use super::tap::Tap;
use super::wake::{drain, poke};

/// Frames read per wake-up before the tap thread hands them over and looks at the tx queue again.
const READ_BATCH: usize = 256;
/// Larger than any frame a TAP without offloads delivers (its MTU is at most 65535).
const READ_BUFFER: usize = 65_536 + 64;

/// How the tap thread ended, if not by being stopped.
#[derive(Debug, Default)]
pub struct ServiceReport {
    pub error: Option<String>,
}

/// The running tap-service thread.
pub struct Service {
    handle: JoinHandle<ServiceReport>,
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
}

impl Service {
    /// Start the thread. `wake` is the pipe the tx queue pokes (`wake_pipe`).
    pub fn spawn(
        tap: Tap,
        shared: Arc<Shared>,
        tx: Arc<TxQueue>,
        wake: (OwnedFd, Arc<OwnedFd>),
    ) -> io::Result<Service> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_r, wake_w) = wake;
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("pktpath-tap".into())
            .spawn(move || serve(&tap, &shared, &tx, &wake_r, &flag))?;
        Ok(Service {
            handle,
            stop,
            wake: wake_w,
        })
    }

    /// Ask the thread to end, and wait for it (it flushes what the stack queued first).
    pub fn stop(self) -> ServiceReport {
        self.stop.store(true, Ordering::SeqCst);
        poke(&self.wake);
        self.handle.join().unwrap_or_else(|_| ServiceReport {
            error: Some("the tap thread panicked".into()),
        })
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

fn serve(
    tap: &Tap,
    shared: &Shared,
    tx: &TxQueue,
    wake: &OwnedFd,
    stop: &AtomicBool,
) -> ServiceReport {
    let mut buf = vec![0u8; READ_BUFFER];
    let mut batch: Vec<TapFrame> = Vec::with_capacity(READ_BATCH);
    loop {
        let mut fds = [
            libc::pollfd {
                fd: tap.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return ServiceReport {
                error: Some(format!("poll: {e}")),
            };
        }
        if fds[1].revents & libc::POLLIN != 0 {
            drain(wake);
        }
        write_out(tap, tx);
        if stop.load(Ordering::SeqCst) {
            return ServiceReport::default();
        }
        if fds[0].revents & libc::POLLIN != 0 {
            while batch.len() < READ_BATCH {
                match tap.recv(&mut buf) {
                    Ok(n) => batch.push(TapFrame {
                        at: shared.now(),
                        frame: buf[..n].to_vec(),
                    }),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        shared.push_batch(&mut batch);
                        return ServiceReport {
                            error: Some(format!("reading {}: {e}", tap.name())),
                        };
                    }
                }
            }
            shared.push_batch(&mut batch);
        } else if fds[0].revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return ServiceReport {
                error: Some(format!("{} went away", tap.name())),
            };
        }
    }
}

/// Write everything the stack queued. A TAP write does not block for long (the kernel takes the frame or
/// drops it), so a `WouldBlock` is retried once, then counted as an error like any other refusal.
fn write_out(tap: &Tap, tx: &TxQueue) {
    for frame in tx.take_all() {
        let mut result = tap.send(&frame);
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            std::thread::yield_now();
            result = tap.send(&frame);
        }
        tx.wrote(result.map(|_| ()).map_err(|e| e.to_string()));
    }
}
