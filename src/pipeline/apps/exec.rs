//! `exec:CMD`, inetd-style: each TCP connection runs `sh -c CMD` in its own process group; the connection's
//! bytes are the child's stdin, its stdout comes back. Stderr is captured (the last 4 KiB) so it never reaches
//! the terminal. A clean exit closes with FIN; a failed or unstartable command resets the connection.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::bridge::{Bridge, External};
use super::io::{App, AppIo};

/// How much of the child's stderr is kept.
pub const STDERR_TAIL: usize = 4 * 1024;
/// How much of the last stderr line the connection's events show (characters).
const STDERR_LINE: usize = 200;
/// After the child's stdout ends, how long to wait for its exit status before closing with FIN anyway.
const EXIT_GRACE: Duration = Duration::from_millis(200);

pub struct Exec {
    shell: String,
    cmd: String,
    state: State,
    bridge: Bridge,
    stderr_tail: VecDeque<u8>,
    /// How the child ended, once reaped, or why it could not start.
    exit: Option<Result<ExitStatus, String>>,
}

enum State {
    /// Not started yet: the first `service` starts it.
    Idle,
    Running(Running),
    /// The connection was closed or reset and the child reaped: nothing left to do.
    Done,
}

struct Running {
    child: Child,
    pipes: Pipes,
    stderr: Option<ChildStderr>,
    /// The exit status, and when it was seen.
    status: Option<(ExitStatus, Instant)>,
    stdout_eof_at: Option<Instant>,
    /// Readable once the child has exited (`pidfd_open`), so a waiting core wakes for its exit status; None
    /// where the kernel has no pidfds (the core then polls).
    pidfd: Option<OwnedFd>,
    /// We closed our sending side or reset the connection.
    closed: bool,
    /// We reset it: nothing more goes to the child. (After a FIN the peer may still send, and the child may
    /// still read: a command can close its stdout and go on reading its stdin.)
    reset: bool,
}

struct Pipes {
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
}

impl External for Pipes {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stdout.read(buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stdin {
            Some(s) => s.write(buf),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn close_write(&mut self) {
        self.stdin = None;
    }
}

fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with plain integer flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Exec {
    pub fn new(cmd: &str) -> Self {
        Self::with_shell("/bin/sh", cmd)
    }

    /// Run `cmd` with `shell -c` (tests use a missing shell to see a start that fails).
    pub fn with_shell(shell: &str, cmd: &str) -> Self {
        Exec {
            shell: shell.to_string(),
            cmd: cmd.to_string(),
            state: State::Idle,
            bridge: Bridge::default(),
            stderr_tail: VecDeque::new(),
            exit: None,
        }
    }

    /// The last `STDERR_TAIL` bytes the child wrote to stderr.
    pub fn stderr_tail(&self) -> Vec<u8> {
        self.stderr_tail.iter().copied().collect()
    }

    /// The child's process id while it runs (or has exited unreaped).
    pub fn pid(&self) -> Option<u32> {
        match &self.state {
            State::Running(r) => Some(r.child.id()),
            _ => None,
        }
    }

    fn start(&self) -> io::Result<Running> {
        let mut child = Command::new(&self.shell)
            .arg("-c")
            .arg(&self.cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill_and_reap(&mut child);
            return Err(io::ErrorKind::Other.into());
        };
        for r in [
            set_nonblocking(&stdin),
            set_nonblocking(&stdout),
            set_nonblocking(&stderr),
        ] {
            if let Err(e) = r {
                kill_and_reap(&mut child);
                return Err(e);
            }
        }
        let pidfd = pidfd_open(child.id());
        Ok(Running {
            child,
            pipes: Pipes {
                stdin: Some(stdin),
                stdout,
            },
            stderr: Some(stderr),
            pidfd,
            status: None,
            stdout_eof_at: None,
            closed: false,
            reset: false,
        })
    }

    fn drain_stderr(&mut self) {
        let State::Running(r) = &mut self.state else {
            return;
        };
        let Some(stderr) = &mut r.stderr else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) => {
                    r.stderr = None;
                    return;
                }
                Ok(n) => {
                    self.stderr_tail.extend(&buf[..n]);
                    let excess = self.stderr_tail.len().saturating_sub(STDERR_TAIL);
                    self.stderr_tail.drain(..excess);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    r.stderr = None;
                    return;
                }
            }
        }
    }
}

/// A descriptor that becomes readable when process `pid` exits.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: a plain syscall with integer arguments; on success the descriptor is ours at once.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Kill the child's whole process group (the shell and what it started) and wait for the child.
fn kill_and_reap(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signalling the process group the child leads; it is not reaped yet, so the id is still ours.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn failed(status: ExitStatus) -> bool {
    !status.success() || status.signal().is_some()
}

impl App for Exec {
    fn service(&mut self, io: &mut dyn AppIo) {
        if matches!(self.state, State::Idle) {
            match self.start() {
                Ok(r) => self.state = State::Running(r),
                Err(e) => {
                    // The command could not be started: the peer sees a reset.
                    self.exit = Some(Err(format!("could not start {}: {e}", self.shell)));
                    io.abort();
                    self.state = State::Done;
                    return;
                }
            }
        }
        self.drain_stderr();
        let State::Running(r) = &mut self.state else {
            // Finished: whatever else the peer sends is read and dropped.
            let mut buf = [0u8; 4096];
            while matches!(io.read(&mut buf), Ok(n) if n > 0) {}
            return;
        };
        if !r.reset {
            self.bridge.pump(io, &mut r.pipes);
        } else {
            let mut buf = [0u8; 4096];
            while matches!(io.read(&mut buf), Ok(n) if n > 0) {}
        }
        if r.status.is_none()
            && let Ok(Some(status)) = r.child.try_wait()
        {
            r.status = Some((status, Instant::now()));
            self.exit = Some(Ok(status));
        }
        if self.bridge.ext_eof && r.stdout_eof_at.is_none() {
            r.stdout_eof_at = Some(Instant::now());
        }
        let graced = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() >= EXIT_GRACE);
        if !r.closed {
            let flushed = self.bridge.flush_to_peer(io);
            let drained = flushed && self.bridge.ext_eof;
            // Some(true): reset; Some(false): FIN. Output held open by something the command left running in
            // the background is not waited for beyond the grace once the command itself has exited.
            let close = match r.status {
                // Failed, crashed or killed: what it wrote before it ended goes first, then the reset.
                Some((s, at)) if failed(s) => (drained || graced(Some(at))).then_some(true),
                Some((_, at)) => (drained || flushed && graced(Some(at))).then_some(false),
                // Stdout ended but the child lives on: close once the grace for its exit status is over.
                None => (drained && graced(r.stdout_eof_at)).then_some(false),
            };
            match close {
                Some(true) => io.abort(),
                Some(false) => io.shutdown_write(),
                None => {}
            }
            r.closed = close.is_some();
            r.reset = close == Some(true);
        }
        if r.closed && r.status.is_some() {
            // Reaped and the connection's side is settled: keep the last of its stderr, drop the pipes.
            self.drain_stderr();
            self.state = State::Done;
        }
    }

    fn wants_service(&self) -> bool {
        matches!(self.state, State::Idle | State::Running(_))
    }

    fn wake_fds(&self, fds: &mut Vec<(RawFd, i16)>) -> bool {
        let State::Running(r) = &self.state else {
            // Idle: started by the first service, which comes at once. Done: nothing to wait for.
            return matches!(self.state, State::Done);
        };
        // Once stdout has ended or the child has exited, closing waits on a grace period: polled.
        let Some(pidfd) = r
            .pidfd
            .as_ref()
            .filter(|_| r.status.is_none() && r.stdout_eof_at.is_none())
        else {
            return false;
        };
        fds.push((pidfd.as_raw_fd(), libc::POLLIN));
        if let Some(stderr) = &r.stderr {
            fds.push((stderr.as_raw_fd(), libc::POLLIN));
        }
        if !r.reset {
            let events = self.bridge.ext_events();
            if events & libc::POLLIN != 0 {
                fds.push((r.pipes.stdout.as_raw_fd(), libc::POLLIN));
            }
            if events & libc::POLLOUT != 0
                && let Some(stdin) = &r.pipes.stdin
            {
                fds.push((stdin.as_raw_fd(), libc::POLLOUT));
            }
        }
        true
    }

    fn outcome(&self) -> Option<String> {
        let mut s = match self.exit.as_ref()? {
            Err(e) => return Some(e.clone()),
            Ok(st) => match (st.code(), st.signal()) {
                (_, Some(sig)) => format!("command killed by signal {sig}"),
                (Some(code), _) => format!("command exited with status {code}"),
                (None, None) => format!("command ended: {st}"),
            },
        };
        let tail = String::from_utf8_lossy(&self.stderr_tail()).into_owned();
        if let Some(last) = tail.lines().rev().find(|l| !l.trim().is_empty()) {
            // A long line keeps its end, which is where messages say what went wrong.
            let chars: Vec<char> = last.trim().chars().collect();
            let cut = chars.len().saturating_sub(STDERR_LINE);
            let last: String = chars[cut..].iter().collect();
            let more = if cut > 0 { "…" } else { "" };
            s.push_str(&format!("; stderr: {more}{last}"));
        }
        Some(s)
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        if let State::Running(r) = &mut self.state
            && r.status.is_none()
        {
            kill_and_reap(&mut r.child);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::bridge;
    use super::super::test_io::{End, drive, drive_on, pair, pattern};
    use super::*;

    fn gone(pid: i32) -> bool {
        // SAFETY: signal 0 only checks whether the process (or group, for a negative id) exists.
        unsafe { libc::kill(pid, 0) == -1 && *libc::__errno_location() == libc::ESRCH }
    }

    #[test]
    fn exec_cat_echoes_exact_bytes_and_fins_after_the_peer_does() {
        let mut app = Exec::new("cat");
        let out = drive(&mut app, b"hello, exec\n", true);
        assert_eq!(out.end, End::Fin);
        assert_eq!(out.received, b"hello, exec\n");
    }

    #[test]
    fn exec_cat_echoes_a_mebibyte_through_backpressure() {
        let input = pattern(1 << 20);
        let mut app = Exec::new("cat");
        let out = drive(&mut app, &input, true);
        assert_eq!(out.end, End::Fin);
        assert_eq!(out.received.len(), input.len());
        assert!(out.received == input, "echoed bytes differ");
    }

    #[test]
    fn exec_holds_bounded_buffers_when_the_peer_does_not_read() {
        let input = pattern(1 << 20);
        let mut app = Exec::new("cat");
        let (mut io, mut peer) = pair();
        let mut sent = 0;
        for _ in 0..300 {
            while sent < input.len() {
                match peer.write(&input[sent..]) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            app.service(&mut io);
            let (to_child, to_peer) = app.bridge.pending();
            assert!(to_child <= bridge::PENDING_MAX && to_peer <= bridge::PENDING_MAX);
            std::thread::sleep(Duration::from_millis(1));
        }
        // Every buffer on the way is full and the peer's writes stall: nothing grows without bound.
        assert!(
            sent < input.len(),
            "all {sent} bytes went in with nobody reading"
        );
        assert_eq!(app.bridge.pending().1, bridge::PENDING_MAX);
        // Once the peer reads, everything comes through, in order.
        let out = drive_on(&mut app, &mut io, &mut peer, &input[sent..], true);
        assert_eq!(out.end, End::Fin);
        assert!(out.received == input, "echoed bytes differ");
    }

    /// A running command is slept on through its descriptors: its exit (pidfd), stdout and stderr; once its
    /// output has ended the grace for its exit status is polled; once done there is nothing to wait for.
    #[test]
    fn a_running_command_names_the_descriptors_that_bring_it_work() {
        let mut app = Exec::new("read line; echo \"$line\"");
        let (mut io, mut peer) = pair();
        let mut fds = Vec::new();
        assert!(!app.wake_fds(&mut fds), "not started yet: polled");
        app.service(&mut io);
        let State::Running(r) = &app.state else {
            panic!("started")
        };
        let (pidfd, stdout) = (
            r.pidfd.as_ref().unwrap().as_raw_fd(),
            r.pipes.stdout.as_raw_fd(),
        );
        let stderr = r.stderr.as_ref().unwrap().as_raw_fd();
        assert!(app.wake_fds(&mut fds));
        assert_eq!(
            fds,
            [
                (pidfd, libc::POLLIN),
                (stderr, libc::POLLIN),
                (stdout, libc::POLLIN)
            ]
        );
        // Its exit makes the pidfd readable.
        peer.write_all(b"bye\n").unwrap();
        let t = Instant::now();
        let mut received = Vec::new();
        while !matches!(app.state, State::Done) {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "the command never ended"
            );
            app.service(&mut io);
            let mut buf = [0u8; 64];
            if let Ok(n) = peer.read(&mut buf) {
                received.extend_from_slice(&buf[..n]);
            }
            let mut pfd = libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            if let State::Running(r) = &app.state
                && r.pidfd.is_some()
            {
                // SAFETY: one valid pollfd, no wait.
                unsafe { libc::poll(&mut pfd, 1, 0) };
                if r.status.is_some() {
                    assert_ne!(
                        pfd.revents & libc::POLLIN,
                        0,
                        "exited but the pidfd is not ready"
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(received, b"bye\n");
        fds.clear();
        assert!(app.wake_fds(&mut fds));
        assert!(fds.is_empty());
    }

    #[test]
    fn exec_output_arrives_without_input() {
        let mut app = Exec::new("printf 'hi\\n'");
        let out = drive(&mut app, b"", false);
        assert_eq!(out.end, End::Fin);
        assert_eq!(out.received, b"hi\n");
    }

    #[test]
    fn exec_head_closes_after_five_bytes() {
        let mut app = Exec::new("sh -c 'head -c 5'");
        let out = drive(&mut app, &pattern(300_000), false);
        assert_eq!(out.end, End::Fin);
        assert_eq!(out.received, pattern(5));
    }

    #[test]
    fn exec_failing_commands_reset_the_connection() {
        let cases: [(&str, &[u8], &str); 4] = [
            ("false", b"", "command exited with status 1"),
            (
                "/nonexistent-cmd",
                b"",
                "command exited with status 127; stderr: ",
            ),
            ("kill -9 $$", b"", "command killed by signal 9"),
            (
                "printf partial; exit 3",
                b"partial",
                "command exited with status 3",
            ),
        ];
        for (cmd, expect, outcome) in cases {
            let mut app = Exec::new(cmd);
            let out = drive(&mut app, b"some input", true);
            assert_eq!(out.end, End::Abort, "{cmd}");
            assert_eq!(out.received, expect, "{cmd}");
            assert!(!app.wants_service(), "{cmd}");
            let got = app.outcome().unwrap();
            if outcome.ends_with(": ") {
                assert!(
                    got.starts_with(outcome) && got.contains("/nonexistent-cmd"),
                    "{got}"
                );
            } else {
                assert_eq!(got, outcome);
            }
        }
    }

    #[test]
    fn exec_fins_after_exit_even_if_a_background_job_holds_stdout() {
        let mut app = Exec::new("sleep 2 & echo hi");
        let out = drive(&mut app, b"", false);
        assert_eq!(out.end, End::Fin);
        assert_eq!(out.received, b"hi\n");
    }

    #[test]
    fn exec_that_cannot_start_resets_the_connection() {
        let mut app = Exec::with_shell("/nonexistent-shell", "cat");
        let out = drive(&mut app, b"x", true);
        assert_eq!(out.end, End::Abort);
        assert_eq!(out.received, b"");
        assert_eq!(out.rounds, 1);
        let why = app.outcome().unwrap();
        assert!(
            why.starts_with("could not start /nonexistent-shell: No such file or directory"),
            "{why}"
        );
    }

    #[test]
    fn exec_keeps_the_tail_of_stderr() {
        let mut app = Exec::new(
            "printf 'oops' >&2; head -c 20000 /dev/zero | tr '\\0' e >&2; echo end >&2; exit 2",
        );
        let out = drive(&mut app, b"", false);
        assert_eq!(out.end, End::Abort);
        let tail = app.stderr_tail();
        assert_eq!(tail.len(), STDERR_TAIL);
        let mut expect = vec![b'e'; STDERR_TAIL - 4];
        expect.extend_from_slice(b"end\n");
        assert_eq!(tail, expect);
        assert_eq!(
            app.outcome().as_deref(),
            Some(
                format!(
                    "command exited with status 2; stderr: …{}end",
                    "e".repeat(197)
                )
                .as_str()
            )
        );
    }

    #[test]
    fn exec_feeds_the_command_its_input_after_it_closed_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("input");
        let mut app = Exec::new(&format!("exec >/dev/null; cat > '{}'", file.display()));
        let (mut io, mut peer) = pair();
        // The command's output ends first: the peer reads end of stream, nothing before it.
        let out = drive_on(&mut app, &mut io, &mut peer, b"", false);
        assert_eq!((out.end, out.received.len()), (End::Fin, 0));
        // What the peer sends afterwards still reaches the command, and so does its end of stream.
        let input = pattern(300_000);
        let (mut sent, start) = (0, Instant::now());
        while app.wants_service() {
            assert!(start.elapsed() < Duration::from_secs(10), "sent {sent}");
            while sent < input.len() {
                match peer.write(&input[sent..]) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            if sent == input.len() {
                let _ = peer.shutdown(std::net::Shutdown::Write);
            }
            app.service(&mut io);
            std::thread::sleep(Duration::from_micros(50));
        }
        assert!(!io.aborted);
        assert_eq!(
            app.outcome().as_deref(),
            Some("command exited with status 0")
        );
        assert!(
            std::fs::read(&file).unwrap() == input,
            "the command read it all"
        );
    }

    #[test]
    fn exec_reaps_its_child() {
        let mut app = Exec::new("cat");
        let (mut io, mut peer) = pair();
        app.service(&mut io);
        let pid = app.pid().expect("child started") as i32;
        let out = drive_on(&mut app, &mut io, &mut peer, b"abc", true);
        assert_eq!(
            (out.end, out.received.as_slice()),
            (End::Fin, b"abc".as_slice())
        );
        // Already reaped: not our child any more, and gone.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        assert_eq!(r, -1);
        assert!(gone(pid));
    }

    #[test]
    fn exec_kills_the_whole_child_group_on_drop() {
        // The shell forks `sleep` (a second command follows), so the group holds two processes.
        let mut app = Exec::new("sleep 30; true");
        let (mut io, _peer) = pair();
        app.service(&mut io);
        let pid = app.pid().expect("child started") as i32;
        assert!(!gone(pid));
        assert!(app.wants_service());
        drop(app);
        assert!(gone(pid), "child still there after drop");
        let start = Instant::now();
        while !gone(-pid) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "process group lives on"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
