//! The network-namespace harness of the live tests: a namespace of the test's own with `pktpath live
//! --headless` running in it on a TAP whose kernel side is 10.77.0.1/24 (the stack being 10.77.0.2/24),
//! client threads that `setns()` into it, and a Drop guard that kills pktpath and deletes the namespace;
//! then client helpers and readers of the export's connections.
//! Nothing here sends to an address outside the namespace.
#![allow(dead_code)]

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const STACK: &str = "10.77.0.2";
pub const TAP: &str = "tp0";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Can the namespace tests run here? If not: a printed reason and false, or a panic when they must run.
pub fn netns_available(test: &str) -> bool {
    let must = std::env::var("PKTPATH_NETNS_TESTS").is_ok_and(|v| v == "1");
    // SAFETY: geteuid has no preconditions.
    let reason = if unsafe { libc::geteuid() } != 0 {
        Some("not root (the live tests need CAP_NET_ADMIN and `ip netns`)".to_string())
    } else if !Path::new("/dev/net/tun").exists() {
        Some("/dev/net/tun is missing".to_string())
    } else {
        match Command::new("ip").arg("netns").arg("list").output() {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(format!(
                "`ip netns list` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Some(format!("no `ip` command (iproute2): {e}")),
        }
    };
    match reason {
        None => true,
        Some(r) if must => panic!("{test}: PKTPATH_NETNS_TESTS=1 but {r}"),
        Some(r) => {
            eprintln!("{test}: skipped: {r}");
            false
        }
    }
}

pub fn ip(args: &[&str]) -> Output {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A namespace of our own with pktpath live running in it; deleted (and pktpath killed) on drop.
pub struct Netns {
    pub name: String,
    dir: tempfile::TempDir,
    pub child: Option<Child>,
}

impl Netns {
    pub fn new() -> Netns {
        let name = format!(
            "pktpath-t-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        ip(&["netns", "add", &name]);
        let ns = Netns {
            name,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Run a command inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .expect("ip netns exec")
    }

    pub fn exec_ok(&self, argv: &[&str]) -> Output {
        let out = self.exec(argv);
        assert!(
            out.status.success(),
            "{argv:?} in {}: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Start `pktpath live --headless` on the namespace's TAP, with `extra` arguments, and wait until the
    /// kernel side is up with its route to the stack's subnet.
    pub fn start(&mut self, extra: &[&str]) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_pktpath")])
            .args(["live", "--headless", "--tap", TAP, "--ip", "10.77.0.2/24"])
            .args(["--host-ip", "10.77.0.1/24"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.child = Some(cmd.spawn().expect("start pktpath live"));
        let t = Instant::now();
        loop {
            // The address is set before the link goes up: only the subnet's route says a client can
            // connect now (before it, connect fails with "Network is unreachable").
            let route = self.exec(&["ip", "-o", "-4", "route", "show", "dev", TAP]);
            if String::from_utf8_lossy(&route.stdout).contains("10.77.0.0/24") {
                break;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let out = self.child.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "pktpath live exited early ({status}): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(t.elapsed() < Duration::from_secs(10), "TAP never came up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run `f` on a thread inside the namespace (network namespaces are per thread).
    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn_in(f).join().expect("client thread")
    }

    pub fn spawn_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).expect("open the namespace");
            // SAFETY: setns on a valid namespace fd; it only affects this thread.
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }

    /// End pktpath with `signal` and collect its output (it must end within 20 s).
    pub fn stop(&mut self, signal: i32) -> Output {
        let mut child = self.child.take().expect("pktpath running");
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        let t = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if t.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("pktpath did not end within 20 s of the signal");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

pub fn assert_clean_exit(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pktpath live: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The export's structure is complete and every packet has an outcome and non-decreasing hop times.
pub fn check_document(doc: &Value) {
    assert_eq!(doc["format"], "pktpath-timeline");
    assert_eq!(doc["source"]["kind"], "live");
    assert!(doc["connections"].is_array());
    assert!(doc["stats"]["events_lost"].is_u64());
    for p in super::packets(doc) {
        assert!(
            super::OUTCOMES.contains(&p["outcome"]["kind"].as_str().unwrap()),
            "{p}"
        );
        let times: Vec<u64> = p["hops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["t_ns"].as_u64().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{p}");
    }
}

/// Bytes that are not all alike, so a reordering or a lost segment shows.
pub fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Send `data` to `port` and read back as many bytes; true if they are identical.
pub fn echo_roundtrip(port: u16, data: Vec<u8>) -> Result<bool, String> {
    let s = TcpStream::connect((STACK, port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let n = data.len();
    let to_send = data.clone();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        for chunk in to_send.chunks(16 * 1024) {
            w.write_all(chunk)?;
        }
        w.shutdown(Shutdown::Write)
    });
    let mut back = Vec::with_capacity(n);
    let mut r = s;
    let mut buf = vec![0u8; 64 * 1024];
    while back.len() < n {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => back.extend_from_slice(&buf[..k]),
            Err(e) => return Err(format!("read after {} bytes: {e}", back.len())),
        }
    }
    writer.join().unwrap().map_err(|e| format!("write: {e}"))?;
    Ok(back == data)
}

/// The export's TCP connections served by `app`.
pub fn conns_of<'a>(doc: &'a Value, app: &str) -> Vec<&'a Value> {
    doc["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["proto"] == "tcp" && c["app"] == app)
        .collect()
}

/// The details of a connection's events of `kind`.
pub fn events<'a>(conn: &'a Value, kind: &str) -> Vec<&'a str> {
    conn["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["detail"].as_str().unwrap())
        .collect()
}

/// The TCP flag letters of a packet's summary (`F.` in `… TCP [F.] seq=…`), if it is TCP.
pub fn tcp_flags(p: &Value) -> Option<&str> {
    let s = p["summary"].as_str()?;
    let rest = &s[s.find(" TCP [")? + 6..];
    Some(&rest[..rest.find(']')?])
}

/// Let the last ACKs of a finished exchange reach the stack before the run is stopped, so the export
/// shows the connections closed rather than `still LAST-ACK when the run ended`.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(200));
}

/// A client connection to the stack with timeouts, so a hang fails the test instead of stalling it.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect((STACK, port))
        .unwrap_or_else(|e| panic!("connect to the stack's port {port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Read until end of stream or an error: the bytes, and the error if the stream did not end cleanly.
pub fn read_all(s: &mut TcpStream) -> (Vec<u8>, Option<ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (got, Some(e.kind())),
        }
    }
}
