//! End to end: the real binary in a pseudo-terminal with no arguments opens the TUI on the demo capture. The
//! test reads the screen through a vt100 parser, pauses, steps, quits, and checks that the terminal modes the
//! TUI turned on (alternate screen, hidden cursor, mouse capture) were turned off again at exit.

use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

mod common;
use common::netns::{Netns, netns_available};

const ROWS: u16 = 30;
const COLS: u16 = 100;
const WAIT: Duration = Duration::from_secs(10);

/// The terminal as the child left it: every byte it wrote, and the screen those bytes make.
struct Screen {
    bytes: Vec<u8>,
    parser: vt100::Parser,
    output: Receiver<Vec<u8>>,
}

impl Screen {
    fn contents(&self) -> String {
        self.parser.screen().contents()
    }

    /// Take whatever output has arrived, waiting at most `timeout` for the first piece.
    fn pump(&mut self, timeout: Duration) {
        if let Ok(chunk) = self.output.recv_timeout(timeout) {
            self.feed(&chunk);
            while let Ok(chunk) = self.output.try_recv() {
                self.feed(&chunk);
            }
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        self.parser.process(chunk);
    }

    /// Read output until the screen satisfies `ok`, or fail after `WAIT` showing the screen.
    fn wait_for(&mut self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let text = self.contents();
            if ok(&text) {
                return text;
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}; the screen:\n{text}"
            );
            self.pump(Duration::from_millis(100));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

type Child = Box<dyn portable_pty::Child + Send + Sync>;

/// Start the real binary with `args` in a 100×30 pty; its output feeds a `Screen`.
fn spawn(args: &[&str]) -> (Screen, Box<dyn Write + Send>, Child) {
    spawn_program(env!("CARGO_BIN_EXE_pktpath"), args)
}

/// Start `program` with `args` in a 100×30 pty.
fn spawn_program(program: &str, args: &[&str]) -> (Screen, Box<dyn Write + Send>, Child) {
    let pty = native_pty_system();
    let pair = pty
        .openpty(PtySize {
            rows: ROWS,
            cols: COLS,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("open a pty");
    let mut cmd = CommandBuilder::new(program);
    cmd.args(args);
    cmd.cwd(env!("CARGO_MANIFEST_DIR"));
    cmd.env("TERM", "xterm-256color");
    cmd.env_remove("NO_COLOR");
    let child = pair.slave.spawn_command(cmd).expect("spawn pktpath");
    drop(pair.slave);

    let mut reader = pair.master.try_clone_reader().expect("pty reader");
    let writer = pair.master.take_writer().expect("pty writer");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let screen = Screen {
        bytes: Vec::new(),
        parser: vt100::Parser::new(ROWS.try_into().unwrap(), COLS.try_into().unwrap(), 0),
        output: rx,
    };
    (screen, writer, child)
}

/// Wait (bounded) for the child to exit, still reading its output, then for the pty to hand over the last of it.
fn wait_exit(screen: &mut Screen, child: &mut Child) -> portable_pty::ExitStatus {
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for pktpath") {
            break status;
        }
        assert!(start.elapsed() < WAIT, "pktpath did not exit");
        screen.pump(Duration::from_millis(50));
    };
    let start = Instant::now();
    while find(&screen.bytes, b"\x1b[?1049l").is_none() && start.elapsed() < WAIT {
        screen.pump(Duration::from_millis(50));
    }
    status
}

/// Every mode the TUI turned on is off again in `tail` (the output after the last draw), and the parser agrees.
fn assert_restored(screen: &Screen, tail: &[u8]) {
    for (name, seq) in [
        ("leave the alternate screen", &b"\x1b[?1049l"[..]),
        ("show the cursor", b"\x1b[?25h"),
        ("stop mouse reporting", b"\x1b[?1000l"),
        ("stop SGR mouse reporting", b"\x1b[?1006l"),
    ] {
        assert!(
            find(tail, seq).is_some(),
            "after quitting, the output does not {name} ({seq:?}); it ends {:?}",
            String::from_utf8_lossy(&tail[tail.len().saturating_sub(200)..])
        );
    }
    let left = find(&screen.bytes, b"\x1b[?1049l").unwrap();
    assert!(find(&screen.bytes, b"\x1b[?1049h").unwrap() < left);
    assert!(!screen.parser.screen().alternate_screen());
    assert!(!screen.parser.screen().hide_cursor());
    assert_eq!(
        screen.parser.screen().mouse_protocol_mode(),
        vt100::MouseProtocolMode::None
    );
}

#[test]
fn the_tui_runs_the_demo_in_a_pty_and_restores_the_terminal() {
    let (mut screen, mut writer, mut child) = spawn(&[]);
    let mut press = |key: &[u8]| {
        writer.write_all(key).expect("write to the pty");
        writer.flush().unwrap();
    };

    // The pipeline diagram with its stages, and the demo named in the status bar.
    screen.wait_for("the stage names", |s| {
        s.contains("wire")
            && s.contains("frame_buffer")
            && s.contains("stack")
            && s.contains("demo")
    });

    press(b" ");
    let paused = screen.wait_for("PAUSED", |s| s.contains("PAUSED"));

    press(b"s");
    screen.wait_for("the screen to change after a step", |s| {
        s != paused && s.contains("PAUSED")
    });

    let drawn = screen.bytes.len();
    press(b"q");
    let status = wait_exit(&mut screen, &mut child);
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(status.exit_code(), 0);
    assert_restored(&screen, &screen.bytes[drawn..]);
}

/// SIGTERM (and SIGINT, the same handler) ends the loop normally: exit 0 and the terminal given back.
#[test]
fn sigterm_ends_the_sim_tui_and_restores_the_terminal() {
    let (mut screen, _writer, mut child) = spawn(&["sim", "--clients", "1"]);
    screen.wait_for("the sim stage names", |s| {
        s.contains("SIM ") && s.contains("frame_buffer") && s.contains("stack")
    });
    let pid = child.process_id().expect("a pid") as libc::pid_t;
    let drawn = screen.bytes.len();
    // SAFETY: kill(2) on the child this test spawned and has not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = wait_exit(&mut screen, &mut child);
    assert!(status.success(), "exit status {status:?}");
    assert_restored(&screen, &screen.bytes[drawn..]);
}

/// The live TUI in a pty, on a TAP inside a namespace of the test's own: curl from the kernel side shows up as
/// packets, a breakpoint at `app` holds the stack thread (a second curl waits) until space resumes it, and
/// SIGINT ends the run with the terminal restored and the export complete.
#[test]
fn the_live_tui_shows_real_traffic_and_holds_it_at_a_breakpoint() {
    if !netns_available("the_live_tui_shows_real_traffic_and_holds_it_at_a_breakpoint") {
        return;
    }
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("t.json");
    let export_arg = export.display().to_string();
    let (mut screen, mut writer, mut child) = spawn_program(
        "ip",
        &[
            "netns",
            "exec",
            &ns.name,
            env!("CARGO_BIN_EXE_pktpath"),
            "live",
            "--tap",
            "tp0",
            "--ip",
            "10.77.0.2/24",
            "--host-ip",
            "10.77.0.1/24",
            "--app",
            "80=http",
            "--export",
            &export_arg,
        ],
    );
    let mut press = |key: &[u8]| {
        writer.write_all(key).expect("write to the pty");
        writer.flush().unwrap();
    };
    screen.wait_for("the live TUI", |s| {
        s.contains("LIVE  RUNNING") && s.contains("real time") && s.contains("frame_buffer")
    });
    let curl = |ns: &Netns| ns.exec(&["curl", "-s", "-m", "10", "http://10.77.0.2/"]);
    let page = curl(&ns);
    assert!(page.status.success(), "curl: {page:?}");
    assert!(!page.stdout.is_empty(), "the http app's page");
    // The kernel's own IPv6 chatter fills the list's tail: a filter shows the request.
    press(b"/delivered\r");
    screen.wait_for("the request delivered in the list", |s| {
        s.contains("matching 'delivered'")
            && s.contains("10.77.0.1:")
            && s.contains("> 10.77.0.2:80 TCP [P.]")
    });

    // A breakpoint at the app: the next request stops the stack thread there, and curl waits.
    press(b"bstage app\r");
    screen.wait_for("the breakpoint set", |s| {
        s.contains("breakpoint 1: stage app")
    });
    let (done_tx, done_rx) = channel();
    let ns_name = ns.name.clone();
    std::thread::spawn(move || {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns_name,
                "curl",
                "-s",
                "-m",
                "20",
                "http://10.77.0.2/",
            ])
            .output()
            .expect("curl");
        let _ = done_tx.send(out);
    });
    screen.wait_for("the breakpoint hit", |s| {
        s.contains("stage app: #") && s.contains("reached app") && s.contains("PAUSED")
    });
    assert!(
        done_rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "held at the breakpoint: curl has no answer yet"
    );
    // The response starts at `app` too: clear the breakpoint (B), then resume (space).
    press(b"B");
    screen.wait_for("the breakpoints cleared", |s| {
        s.contains("cleared 1 breakpoints")
    });
    press(b" ");
    let out = done_rx
        .recv_timeout(WAIT)
        .expect("curl answered once resumed");
    assert!(out.status.success() && !out.stdout.is_empty(), "{out:?}");

    // SIGINT ends the live TUI like `q`: terminal restored, run stopped, export complete.
    let pid = child.process_id().expect("a pid") as libc::pid_t;
    let drawn = screen.bytes.len();
    // SAFETY: kill(2) on the child this test spawned (`ip netns exec` execs pktpath: same pid), not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = wait_exit(&mut screen, &mut child);
    assert!(status.success(), "exit status {status:?}");
    assert_restored(&screen, &screen.bytes[drawn..]);
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&export).expect("the export is written"))
            .expect("valid JSON");
    let delivered = doc["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .filter(|p| p["outcome"]["kind"] == "delivered")
        .count();
    assert!(
        delivered >= 2,
        "both requests delivered to the app: {delivered}"
    );
}

/// Wait (bounded) for a child that draws no TUI to exit, then take the rest of its output.
fn wait_exit_plain(screen: &mut Screen, child: &mut Child) -> portable_pty::ExitStatus {
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for pktpath") {
            break status;
        }
        assert!(start.elapsed() < WAIT, "pktpath did not exit");
        screen.pump(Duration::from_millis(50));
    };
    // The pty may still hold its last output.
    screen.pump(Duration::from_millis(300));
    status
}

fn find_first(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A headless run with stderr on a terminal shows its progress there, clears it, then prints its summary.
#[test]
fn headless_progress_shows_on_a_terminal_and_is_cleared_before_the_summary() {
    let capture = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/bulk.pcap");
    for (args, progress, summary) in [
        (
            vec!["replay", "--headless", "--max-speed", capture],
            // bulk.pcap: 1072 records, 1.08 MiB.
            "replay 1.08 MiB/1.08 MiB, 1072 records, ",
            format!("replay {capture} (pcap, 1072 records)"),
        ),
        (
            vec!["sim", "--headless", "--clients", "20"],
            " of 120.000 s virtual, ",
            "pktpath sim (inbound): 20 TCP clients".to_string(),
        ),
    ] {
        let (mut screen, _writer, mut child) = spawn(&args);
        let status = wait_exit_plain(&mut screen, &mut child);
        assert_eq!(status.exit_code(), 0, "{args:?}");
        let bytes = &screen.bytes;
        let shown = find_first(bytes, progress.as_bytes()).unwrap_or_else(|| {
            panic!(
                "{args:?}: no progress in {:?}",
                String::from_utf8_lossy(bytes)
            )
        });
        assert!(
            find_first(&bytes[shown..], b" frames/s").is_some(),
            "{args:?}: the rate"
        );
        let printed = find_first(bytes, summary.as_bytes()).expect("the summary");
        assert!(shown < printed, "{args:?}: progress, then the summary");
        // The bar's line is erased before the summary starts.
        let last_bar = find(&bytes[..printed], b"frames/s").unwrap();
        assert!(
            find_first(&bytes[last_bar..printed], b"\x1b[2K").is_some(),
            "{args:?}: the bar is cleared"
        );
        let text = screen.contents();
        assert!(text.contains("wall time "), "{args:?}: {text}");
        assert!(!text.contains(progress), "{args:?}: no bar left: {text}");
    }
}

/// A capture piped into `replay -` opens the TUI, which reads its keys from the terminal (/dev/tty).
#[test]
fn a_capture_piped_into_replay_dash_opens_the_tui_with_keys_from_the_terminal() {
    let capture = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/http-get.pcap");
    let bin = env!("CARGO_BIN_EXE_pktpath");
    let (mut screen, mut writer, mut child) =
        spawn_program("sh", &["-c", "cat \"$1\" | \"$0\" replay -", bin, capture]);
    screen.wait_for("the replay of stdin", |s| {
        s.contains("REPLAY -") && s.contains("frame_buffer") && s.contains("packets: 29")
    });
    let drawn = screen.bytes.len();
    writer.write_all(b"q").unwrap();
    writer.flush().unwrap();
    let status = wait_exit(&mut screen, &mut child);
    assert_eq!(status.exit_code(), 0);
    assert_restored(&screen, &screen.bytes[drawn..]);

    // With no terminal to read keys from, it says so in one line (exit 2) and starts nothing.
    let (mut screen, _writer, mut child) = spawn_program(
        "sh",
        &["-c", "cat \"$1\" | setsid -w \"$0\" replay -", bin, capture],
    );
    let status = wait_exit_plain(&mut screen, &mut child);
    assert_eq!(status.exit_code(), 2);
    assert_eq!(
        String::from_utf8_lossy(&screen.bytes),
        "pktpath: the TUI reads keys from a terminal, but stdin is not one and /dev/tty cannot be opened \
         (No such device or address (os error 6)); add --headless\r\n"
    );
}
