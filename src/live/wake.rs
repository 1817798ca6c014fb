//! The wake pipes: a non-blocking pipe that a thread asleep in `poll` watches too, so that another thread wakes
//! it by writing one byte.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A non-blocking, close-on-exec pipe: (read end, write end).
pub fn wake_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors on success; we own them at once.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Write one byte to a non-blocking wake pipe; a full pipe already holds a wake-up, so errors are ignored.
pub fn poke(fd: &OwnedFd) {
    let byte = 1u8;
    // SAFETY: writing one byte from a valid buffer to a file descriptor we own.
    unsafe {
        libc::write(fd.as_raw_fd(), (&byte as *const u8).cast(), 1);
    }
}

/// Empty a wake-up pipe's read end (non-blocking).
pub(crate) fn drain(fd: &OwnedFd) {
    let mut sink = [0u8; 64];
    // SAFETY: reading into a valid buffer of its length from a descriptor we own.
    while unsafe { libc::read(fd.as_raw_fd(), sink.as_mut_ptr().cast(), sink.len()) } > 0 {}
}
