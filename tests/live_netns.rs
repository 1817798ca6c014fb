//! Live mode with real traffic, only inside network namespaces these tests create. Each test makes its own
//! namespace (`ip netns add pktpath-t-PID-N`), runs `pktpath live --headless` inside it on a TAP whose kernel
//! side it addresses (10.77.0.1/24, the stack being 10.77.0.2/24), drives traffic from the kernel side of that
//! same namespace (client threads `setns()` into it; `curl` and `ping` run under `ip netns exec`), and deletes
//! it afterwards, whatever happens (a Drop guard, which also kills pktpath). No test sends to any address
//! outside its namespace.
//!
//! They need root (CAP_NET_ADMIN, `ip netns`). Without it they print why and pass, unless
//! `PKTPATH_NETNS_TESTS=1` (as `.ci/run` sets), where a skip is a failure.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const STACK: &str = "10.77.0.2";
const TAP: &str = "tp0";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Can the namespace tests run here? If not: a printed reason and false, or a panic when they must run.
fn netns_available(test: &str) -> bool {
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

fn ip(args: &[&str]) -> Output {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A namespace of our own with pktpath live running in it; deleted (and pktpath killed) on drop.
struct Netns {
    name: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Netns {
    fn new() -> Netns {
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

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Run a command inside the namespace.
    fn exec(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .expect("ip netns exec")
    }

    fn exec_ok(&self, argv: &[&str]) -> Output {
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
    /// kernel side is up and the stack answers ARP.
    fn start(&mut self, extra: &[&str]) {
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
            let up = self.exec(&["ip", "-o", "-4", "addr", "show", "dev", TAP]);
            if String::from_utf8_lossy(&up.stdout).contains("10.77.0.1/24") {
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
    fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn_in(f).join().expect("client thread")
    }

    fn spawn_in<T: Send + 'static>(
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
    fn stop(&mut self, signal: i32) -> Output {
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

fn assert_clean_exit(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pktpath live: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("export written")).expect("valid JSON")
}

fn stages(p: &Value) -> Vec<&str> {
    p["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["stage"].as_str().unwrap())
        .collect()
}

/// The export's structure is complete and every packet has an outcome and non-decreasing hop times.
fn check_document(doc: &Value) {
    assert_eq!(doc["format"], "pktpath-timeline");
    assert_eq!(doc["source"]["kind"], "live");
    assert!(doc["connections"].is_array());
    assert!(doc["stats"]["events_lost"].is_u64());
    for p in common::packets(doc) {
        assert!(
            common::OUTCOMES.contains(&p["outcome"]["kind"].as_str().unwrap()),
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
fn pattern(n: usize, seed: u32) -> Vec<u8> {
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
fn echo_roundtrip(port: u16, data: Vec<u8>) -> Result<bool, String> {
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

#[test]
fn curl_gets_the_http_page_and_the_export_traces_request_and_response() {
    if !netns_available("curl_http") {
        return;
    }
    let mut ns = Netns::new();
    let export = ns.path("t.json");
    ns.start(&["--app", "80=http", "--export", export.to_str().unwrap()]);
    let out = ns.exec_ok(&["curl", "-sS", "-m", "10", &format!("http://{STACK}/")]);
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains("Hello from pktpath"), "{page}");
    let summary = assert_clean_exit(&ns.stop(libc::SIGINT));
    assert!(summary.contains("events lost: 0"), "{summary}");

    let doc = read_json(&export);
    check_document(&doc);
    let packets = common::packets(&doc);
    // The request: an rx frame with payload, delivered to the app through every rx stage, with times.
    let request = packets
        .iter()
        .find(|p| p["dir"] == "rx" && p["summary"].as_str().unwrap().contains(":80 TCP [P.]"))
        .expect("the request segment");
    assert_eq!(request["outcome"]["kind"], "delivered", "{request}");
    assert_eq!(request["outcome"]["stage"], "app");
    assert_eq!(stages(request), common::STAGES.to_vec(), "{request}");
    // The response: a tx frame from the app, sent on the wire, every hop timed.
    let response = packets
        .iter()
        .find(|p| {
            p["dir"] == "tx"
                && p["summary"].as_str().unwrap().starts_with("10.77.0.2:80 ")
                && stages(p).first() == Some(&"app")
        })
        .expect("the response segment");
    assert_eq!(response["outcome"]["kind"], "sent", "{response}");
    assert_eq!(response["outcome"]["stage"], "wire");
    assert_eq!(stages(response).last(), Some(&"wire"));
    assert!(
        response["payload_of"]
            .as_array()
            .unwrap()
            .contains(&request["id"])
    );
    // The rx wire time is when the tap thread read the frame; the wait to the stack is real.
    let hops = request["hops"].as_array().unwrap();
    assert!(hops[2]["t_ns"].as_u64() >= hops[1]["t_ns"].as_u64());
    assert!(hops.iter().all(|h| h["t_ns"].as_u64().unwrap() > 0));
}

#[test]
fn one_mib_through_echo_comes_back_byte_identical() {
    if !netns_available("echo_1mib") {
        return;
    }
    let mut ns = Netns::new();
    ns.start(&[]);
    let t = Instant::now();
    let same = ns.run_in(|| echo_roundtrip(7, pattern(1 << 20, 7)));
    let took = t.elapsed();
    assert_eq!(same, Ok(true));
    let summary = assert_clean_exit(&ns.stop(libc::SIGTERM));
    eprintln!(
        "1 MiB echoed in {took:?} ({:.1} MiB/s each way)",
        1.0 / took.as_secs_f64()
    );
    assert!(summary.contains("events lost: 0"), "{summary}");
}

#[test]
fn twenty_simultaneous_clients_all_complete() {
    if !netns_available("twenty_clients") {
        return;
    }
    let mut ns = Netns::new();
    let export = ns.path("t.jsonl");
    ns.start(&["--export", export.to_str().unwrap(), "--format", "jsonl"]);
    let clients: Vec<_> = (0..20u32)
        .map(|i| ns.spawn_in(move || echo_roundtrip(7, pattern(32 * 1024, i + 1))))
        .collect();
    let results: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(results.iter().all(|r| r == &Ok(true)), "{results:?}");
    let summary = assert_clean_exit(&ns.stop(libc::SIGINT));
    assert!(summary.contains("events lost: 0"), "{summary}");
    let text = std::fs::read_to_string(&export).unwrap();
    let conns = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("every line is JSON"))
        .filter(|l| l["type"] == "connection" && l["data"]["proto"] == "tcp")
        .count();
    assert!(conns >= 20, "{conns} TCP connections in the export");
}

#[test]
fn udp_echo_answers_every_datagram() {
    if !netns_available("udp_echo") {
        return;
    }
    let mut ns = Netns::new();
    ns.start(&[]);
    let replies = ns.run_in(|| {
        let s = UdpSocket::bind("10.77.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.connect((STACK, 7)).unwrap();
        let mut ok = 0;
        let mut buf = [0u8; 2048];
        for i in 0..10u32 {
            let d = pattern(100 + 100 * i as usize, i);
            s.send(&d).unwrap();
            match s.recv(&mut buf) {
                Ok(n) if buf[..n] == d[..] => ok += 1,
                other => eprintln!("datagram {i}: {other:?}"),
            }
        }
        ok
    });
    assert_eq!(replies, 10);
    assert_clean_exit(&ns.stop(libc::SIGINT));
}

#[test]
fn ping_is_answered_and_traced() {
    if !netns_available("ping") {
        return;
    }
    let mut ns = Netns::new();
    let export = ns.path("t.json");
    ns.start(&["--export", export.to_str().unwrap()]);
    ns.exec_ok(&["ping", "-c", "3", "-i", "0.2", "-W", "2", STACK]);
    assert_clean_exit(&ns.stop(libc::SIGINT));
    let doc = read_json(&export);
    check_document(&doc);
    let packets = common::packets(&doc);
    let requests: Vec<&Value> = packets
        .iter()
        .filter(|p| {
            p["summary"]
                .as_str()
                .unwrap()
                .ends_with("ICMP echo request")
        })
        .collect();
    let replies: Vec<&Value> = packets
        .iter()
        .filter(|p| p["summary"].as_str().unwrap().ends_with("ICMP echo reply"))
        .collect();
    assert_eq!(requests.len(), 3);
    assert_eq!(replies.len(), 3);
    for r in &requests {
        assert_eq!(r["outcome"]["kind"], "consumed", "{r}");
        assert_eq!(stages(r), vec!["wire", "frame_buffer", "stack"]);
        assert_eq!(r["caused"].as_array().unwrap().len(), 1, "{r}");
    }
    for r in &replies {
        assert_eq!(r["outcome"]["kind"], "sent", "{r}");
        assert_eq!(stages(r), vec!["stack", "frame_buffer", "wire"]);
    }
}

#[test]
fn sigint_during_a_bulk_transfer_ends_cleanly_with_a_valid_export() {
    if !netns_available("sigint_bulk") {
        return;
    }
    let mut ns = Netns::new();
    let export = ns.path("t.json");
    let pcap = ns.path("t.pcapng");
    ns.start(&[
        "--export",
        export.to_str().unwrap(),
        "--pcap-out",
        pcap.to_str().unwrap(),
    ]);
    // A client that keeps writing to discard until the stack goes away.
    let sender = ns.spawn_in(|| {
        let mut s = TcpStream::connect((STACK, 9)).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let chunk = pattern(64 * 1024, 3);
        let mut sent = 0usize;
        while s.write_all(&chunk).is_ok() {
            sent += chunk.len();
            if sent > (1 << 30) {
                break;
            }
        }
        sent
    });
    std::thread::sleep(Duration::from_millis(500));
    let out = ns.stop(libc::SIGINT);
    let summary = assert_clean_exit(&out);
    let sent = sender.join().unwrap();
    assert!(sent > 0, "traffic was flowing");
    let doc = read_json(&export);
    check_document(&doc);
    assert!(common::packets(&doc).len() > 10, "{summary}");
    assert!(doc["stats"]["frames_in"].as_u64().unwrap() > 10);
    assert!(pcap.exists(), "pcapng written");
    assert!(!ns.path(".t.json.partial").exists());
    // Where tshark is installed (CI installs it), it reads the whole pcapng.
    if let Ok(o) = Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.number",
        ])
        .output()
    {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).lines().count() > 10);
    }
}

#[test]
fn duration_ends_the_run_by_itself_with_a_complete_export() {
    if !netns_available("duration") {
        return;
    }
    let mut ns = Netns::new();
    let export = ns.path("t.jsonl");
    ns.start(&[
        "--duration",
        "1",
        "--export",
        export.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    ns.exec_ok(&["ping", "-c", "1", "-W", "2", STACK]);
    let mut child = ns.child.take().unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "--duration 1 did not end the run"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_clean_exit(&child.wait_with_output().unwrap());
    let text = std::fs::read_to_string(&export).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["type"], "stats",
        "the JSONL stream ends with its stats"
    );
}

#[test]
fn a_burst_that_overflows_the_frame_buffer_is_traced_as_drops_not_lost() {
    if !netns_available("overflow") {
        return;
    }
    let mut ns = Netns::new();
    let export = ns.path("t.json");
    ns.start(&["--frame-buffer", "1", "--export", export.to_str().unwrap()]);
    // 400 datagrams to discard as fast as the kernel sends them: far more than one frame of buffer holds.
    ns.run_in(|| {
        let s = UdpSocket::bind("10.77.0.1:0").unwrap();
        s.connect((STACK, 9)).unwrap();
        let d = pattern(1000, 9);
        for _ in 0..400 {
            let _ = s.send(&d);
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let summary = assert_clean_exit(&ns.stop(libc::SIGINT));
    let doc = read_json(&export);
    check_document(&doc);
    let dropped: Vec<&Value> = common::packets(&doc)
        .iter()
        .filter(|p| p["outcome"]["code"] == "frame_buffer_full")
        .collect();
    assert!(!dropped.is_empty(), "no overflow: {summary}");
    for p in &dropped {
        assert_eq!(p["outcome"]["stage"], "frame_buffer", "{p}");
        assert_eq!(stages(p), vec!["wire", "frame_buffer"], "{p}");
    }
    // Every frame the tap thread read has its record: the overflow is counted, traced, and nothing is lost.
    let read: u64 = summary
        .lines()
        .find_map(|l| l.strip_prefix("tap: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("tap line");
    assert_eq!(doc["stats"]["frames_in"].as_u64(), Some(read), "{summary}");
    assert!(
        summary.contains(&format!("{} found the frame buffer full", dropped.len())),
        "{summary}"
    );
    assert_eq!(doc["stats"]["events_lost"], 0);
}

#[test]
fn without_cap_net_admin_one_line_says_what_to_do() {
    if !netns_available("not_root") {
        return;
    }
    // Inside a namespace of our own, as an unprivileged user: opening the TAP is refused.
    let ns = Netns::new();
    let out = ns.exec(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_pktpath"),
        "live",
        "--headless",
        "--tap",
        "tpnr0",
        "--duration",
        "1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("run as root"), "{err}");
    assert!(err.contains("ip tuntap add tpnr0 mode tap user"), "{err}");
}

#[test]
fn a_bad_cidr_or_mac_is_one_line_and_exit_2() {
    // No TAP is opened: this runs anywhere.
    for (flag, value) in [
        ("--ip", "10.77.0.256/24"),
        ("--host-ip", "10.77.0.1/40"),
        ("--mac", "zz:00:00:00:00:01"),
    ] {
        let out = common::pktpath(&["live", "--headless", flag, value]);
        let err = common::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(value), "{err}");
    }
    let out = common::pktpath(&["live", "--headless", "--host-ip", "10.1.0.1/24"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("10.1.0.1/24"));
}

// TODO(live apps): once `exec:` and `forward:` are merged, add here:
// - `exec:cat` on a port: a client's bytes come back through the process, byte-identical;
// - `forward:10.77.0.1:PORT` to a TCP echo server this test runs inside the namespace (bound to 10.77.0.1):
//   a client's bytes reach it through pktpath and come back; an app that exits or refuses closes only its
//   connection (traced), never the run.
