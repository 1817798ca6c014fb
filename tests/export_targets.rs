//! Where exports go, through the real binary: a device or FIFO at the path is written through and stays what
//! it was (a pty, /dev/null, a FIFO, with the exact bytes a regular file gets), a symlink planted beside the
//! target never redirects a write, `-` writes to stdout with the summary on stderr, outputs on one file or on
//! the input capture are refused, write errors (/dev/full, a full disk) fail in one line and leave no
//! temporary file, and a replay's pcapng keeps its recorded frames off the conversation tshark analyses.

mod common;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{pktpath, stderr, stdout};

/// The small sim run every test here exports.
const SIM: [&str; 6] = ["--clients", "2", "--bytes", "20000", "--udp", "2"];

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pktpath"))
}

/// `pktpath sim --headless SIM` with `args`.
fn sim(args: &[&str]) -> Output {
    let mut all = vec!["sim", "--headless"];
    all.extend_from_slice(&SIM);
    all.extend_from_slice(args);
    pktpath(&all)
}

/// The output options of one export kind: a timeline format, or the pcapng.
fn output_args(kind: &str, path: &str) -> Vec<String> {
    match kind {
        "pcapng" => vec!["--pcap-out".into(), path.into()],
        format => vec![
            "--export".into(),
            path.into(),
            "--format".into(),
            format.into(),
        ],
    }
}

fn sim_to(kind: &str, path: &str) -> Output {
    let args = output_args(kind, path);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sim(&args)
}

/// The bytes the sim run writes to a regular file, in `kind`, and its summary.
fn regular_export(kind: &str) -> (Vec<u8>, String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("regular.{kind}"));
    let out = sim_to(kind, path.to_str().unwrap());
    assert!(out.status.success(), "{}", stderr(&out));
    (std::fs::read(&path).unwrap(), stdout(&out), path, dir)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Wait for `fd` to be readable for up to `timeout`.
fn readable(fd: i32, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) > 0 }
}

/// A pty in raw mode (no newline translation, so bytes pass unchanged): master and slave, and the slave's path.
fn raw_pty() -> (OwnedFd, OwnedFd, PathBuf) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two fds; no name, termios or window size asked for.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just opened and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // SAFETY: termios is plain data, filled by tcgetattr before use.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t), 0);
    }
    let path = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd())).unwrap();
    (master, slave, path)
}

#[test]
fn a_pty_at_the_export_path_gets_the_exact_bytes_and_stays_a_terminal() {
    let (expected, _, _, _dir) = regular_export("json");
    let (master, _slave, path) = raw_pty();
    let before = std::fs::metadata(&path).unwrap();
    let want = expected.len();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut m = File::from(master);
        let mut buf = [0u8; 4096];
        // Read what comes until the whole document is here (or nothing more comes for a long while).
        while got.len() < want && readable(m.as_raw_fd(), Duration::from_secs(60)) {
            match m.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        // Then nothing more: the run wrote the document and only it.
        let extra = readable(m.as_raw_fd(), Duration::from_millis(300));
        // The master goes back with the bytes: closing it would remove the pty's node before it is looked at.
        (got, extra, m)
    });
    let out = sim_to("json", path.to_str().unwrap());
    assert!(out.status.success(), "{}", stderr(&out));
    let (got, extra, _master) = reader.join().unwrap();
    assert!(got == expected, "the pty got other bytes than the file did");
    assert!(!extra, "bytes after the document");
    let after = std::fs::metadata(&path).unwrap();
    assert!(after.file_type().is_char_device());
    assert_eq!(after.rdev(), before.rdev());
}

#[test]
fn dev_null_at_the_export_path_stays_dev_null() {
    let before = std::fs::metadata("/dev/null").unwrap();
    for kind in ["json", "jsonl", "chrome", "pcapng"] {
        let out = sim_to(kind, "/dev/null");
        assert!(out.status.success(), "{kind}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{kind}");
        let after = std::fs::metadata("/dev/null").unwrap();
        assert!(after.file_type().is_char_device(), "{kind}");
        assert_eq!((after.rdev(), after.ino()), (before.rdev(), before.ino()));
    }
}

#[test]
fn a_fifo_at_the_export_path_gets_the_exact_bytes_and_stays_a_fifo() {
    for kind in ["json", "jsonl", "chrome", "pcapng"] {
        let (expected, _, _, dir) = regular_export(kind);
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let at = fifo.clone();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            File::open(at).unwrap().read_to_end(&mut got).unwrap();
            got
        });
        let out = sim_to(kind, fifo.to_str().unwrap());
        assert!(out.status.success(), "{kind}: {}", stderr(&out));
        let got = reader.join().unwrap();
        assert!(
            got == expected,
            "{kind}: the FIFO got other bytes than the file did"
        );
        let m = std::fs::symlink_metadata(&fifo).unwrap();
        assert!(m.file_type().is_fifo(), "{kind}: still a FIFO");
        assert_eq!(names(dir.path()), ["fifo", &format!("regular.{kind}")]);
    }
}

#[test]
fn symlinks_planted_beside_the_target_never_redirect_a_write() {
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim");
    std::fs::write(&victim, b"victim's own bytes").unwrap();
    for kind in ["json", "jsonl", "chrome", "pcapng"] {
        let (expected, _, _, _regular) = regular_export(kind);
        let dir = tempfile::tempdir().unwrap();
        let name = format!("t.{kind}");
        // The old predictable name, its neighbours, and names of the temporary files' shape.
        let mut planted: Vec<String> = [
            format!(".{name}.partial"),
            format!(".{name}"),
            format!(".{name}."),
            format!(".{name}.tmp"),
            format!("{name}.partial"),
        ]
        .into();
        let mut rng = common::Rng(0x5eed);
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        for _ in 0..200 {
            let random: String = (0..6)
                .map(|_| CHARS[rng.below(CHARS.len())] as char)
                .collect();
            planted.push(format!(".{name}.{random}.partial"));
        }
        for p in &planted {
            std::os::unix::fs::symlink(&victim, dir.path().join(p)).unwrap();
        }
        let target = dir.path().join(&name);
        let out = sim_to(kind, target.to_str().unwrap());
        assert!(out.status.success(), "{kind}: {}", stderr(&out));
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"victim's own bytes",
            "{kind}"
        );
        for p in &planted {
            assert_eq!(std::fs::read_link(dir.path().join(p)).unwrap(), victim);
        }
        let m = std::fs::symlink_metadata(&target).unwrap();
        assert!(m.file_type().is_file(), "{kind}: a regular file");
        assert!(std::fs::read(&target).unwrap() == expected, "{kind}: bytes");
        let mut want = planted.clone();
        want.push(name);
        want.sort();
        assert_eq!(names(dir.path()), want, "{kind}: nothing else left");
    }
}

#[test]
fn an_export_to_dash_writes_the_document_to_stdout_and_the_summary_to_stderr() {
    for kind in ["json", "jsonl", "chrome", "pcapng"] {
        let (expected, summary, path, _dir) = regular_export(kind);
        let out = sim_to(kind, "-");
        assert!(out.status.success(), "{kind}: {}", stderr(&out));
        assert!(out.stdout == expected, "{kind}: stdout is the document");
        assert_eq!(
            without_wall_time(&stderr(&out)),
            without_wall_time(&summary.replace(path.to_str().unwrap(), "-")),
            "{kind}: the summary, on stderr"
        );
    }
}

#[test]
fn two_outputs_on_one_path_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    let x_s = x.to_str().unwrap();
    let dot = format!("{}/./x", dir.path().display());
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--export", x_s, "--pcap-out", x_s],
            format!(
                "pktpath: --export {x_s} and --pcap-out {x_s} are the same file; give each output its own path\n"
            ),
        ),
        (
            vec!["--export", x_s, "--pcap-out", &dot],
            format!(
                "pktpath: --export {x_s} and --pcap-out {dot} are the same file; give each output its own path\n"
            ),
        ),
        (
            vec!["--export", "-", "--pcap-out", "-"],
            "pktpath: --export - and --pcap-out - both write to stdout; give one of them a file\n"
                .to_string(),
        ),
        (
            vec!["--export", "/dev/stdout", "--pcap-out", "-"],
            "pktpath: --export /dev/stdout and --pcap-out - both write to stdout; give one of them a file\n"
                .to_string(),
        ),
    ];
    for (args, message) in &cases {
        let out = sim(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(&stderr(&out), message);
        assert_eq!(stdout(&out), "");
    }
    // The same file existing, by another name (a symlink): still one file.
    std::fs::write(&x, b"").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&x, &link).unwrap();
    let out = sim(&["--export", x_s, "--pcap-out", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "pktpath: --export {x_s} and --pcap-out {} are the same file; give each output its own path\n",
            link.display()
        )
    );
    assert_eq!(names(dir.path()), ["link", "x"], "nothing written");
}

#[test]
fn an_output_on_the_input_capture_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("cap.pcap");
    let original = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/http-get.pcap");
    std::fs::copy(&original, &capture).unwrap();
    let bytes = std::fs::read(&capture).unwrap();
    let link = dir.path().join("link.pcap");
    std::os::unix::fs::symlink(&capture, &link).unwrap();
    let absolute = capture.to_str().unwrap().to_string();
    let link_s = link.to_str().unwrap().to_string();
    for (option, output) in [
        ("--export", absolute.as_str()),
        ("--pcap-out", absolute.as_str()),
        ("--export", link_s.as_str()),
    ] {
        // The capture named relatively, the output absolutely (or through the link).
        let out = bin()
            .current_dir(dir.path())
            .args(["replay", "cap.pcap", "--headless", option, output])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{option} {output}");
        assert_eq!(
            stderr(&out),
            format!(
                "pktpath: {option} {output} is the input capture cap.pcap; write the output to another path\n"
            )
        );
        assert_eq!(
            std::fs::read(&capture).unwrap(),
            bytes,
            "the capture is untouched"
        );
    }
}

#[test]
fn a_pcapng_to_a_terminal_stdout_is_refused() {
    let (_master, slave, _path) = raw_pty();
    for path in ["-", "/dev/stdout"] {
        let out = bin()
            .args(["sim", "--headless", "--pcap-out", path])
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{path}");
        assert_eq!(
            stderr(&out),
            format!(
                "pktpath: --pcap-out {path}: stdout is a terminal; redirect it or give a file\n"
            )
        );
    }
}

#[test]
fn dev_full_is_a_write_error_in_one_line_and_stays_a_device() {
    let before = std::fs::metadata("/dev/full").unwrap();
    for kind in ["json", "jsonl", "chrome", "pcapng"] {
        let out = sim_to(kind, "/dev/full");
        assert_eq!(out.status.code(), Some(1), "{kind}");
        assert_eq!(
            stderr(&out),
            "pktpath: cannot write export /dev/full: No space left on device (os error 28)\n",
            "{kind}"
        );
        let after = std::fs::metadata("/dev/full").unwrap();
        assert!(after.file_type().is_char_device(), "{kind}");
        assert_eq!(after.rdev(), before.rdev());
    }
}

/// Can a test that needs root run here? If not: a printed reason and false, or a panic when it must run
/// (PKTPATH_NETNS_TESTS=1 or CI=true).
fn root_available(test: &str) -> bool {
    let must = std::env::var("PKTPATH_NETNS_TESTS").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        !must,
        "{test}: PKTPATH_NETNS_TESTS=1 or CI=true but not root (mounting a tmpfs needs it)"
    );
    eprintln!("{test}: skipped: not root (mounting a tmpfs needs it)");
    false
}

/// A small tmpfs mounted on a directory of its own, unmounted when dropped (even when the test fails).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount: {}", stderr(&out));
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).output();
    }
}

#[test]
fn a_full_disk_is_a_write_error_in_one_line_and_leaves_no_temporary_file() {
    if !root_available("a_full_disk_is_a_write_error_in_one_line_and_leaves_no_temporary_file") {
        return;
    }
    let disk = SmallDisk::mount("64k");
    for kind in ["json", "jsonl", "chrome", "pcapng"] {
        let path = disk.dir.path().join(format!("t.{kind}"));
        let out = sim_to(kind, path.to_str().unwrap());
        assert_eq!(out.status.code(), Some(1), "{kind}: {}", stdout(&out));
        assert_eq!(
            stderr(&out),
            format!(
                "pktpath: cannot write export {}: No space left on device (os error 28)\n",
                path.display()
            ),
            "{kind}"
        );
        assert_eq!(
            names(disk.dir.path()),
            Vec::<String>::new(),
            "{kind}: nothing left"
        );
    }
}

/// How often tshark's expert info lists a chat whose summary starts with `summary`.
fn expert_count(text: &str, summary: &str) -> u64 {
    text.lines()
        .filter(|l| l.contains(summary))
        .map(|l| l.split_whitespace().next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn tshark_sees_one_syn_ack_per_connection_of_a_clean_replay() {
    if !common::tshark_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("out.pcapng");
    let json = dir.path().join("t.json");
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/parallel.pcap");
    let out = pktpath(&[
        "replay",
        capture.to_str().unwrap(),
        "--headless",
        "--pcap-out",
        pcap.to_str().unwrap(),
        "--export",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = common::read_json(&json);
    let connections = doc["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["proto"] == "tcp")
        .count() as u64;
    assert_eq!(connections, 5, "the capture's five connections");
    let expert = |prefs: &[&str]| {
        let out = Command::new("tshark")
            .args(prefs)
            .args(["-r", pcap.to_str().unwrap(), "-q", "-z", "expert"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let text = expert(&[]);
    let syn_ack = "Connection establish acknowledge (SYN+ACK)";
    assert_eq!(expert_count(&text, syn_ack), connections, "{text}");
    assert_eq!(
        expert_count(&text, "Connection establish request (SYN)"),
        connections,
        "{text}"
    );
    for trouble in [
        "Retransmission",
        "Out-Of-Order",
        "Dup ACK",
        "Previous segment",
    ] {
        assert!(!text.contains(trouble), "{trouble}: {text}");
    }
    // Told that User 0 holds Ethernet (README), tshark dissects the recorded frames too: the capture's own
    // SYN-ACKs join the stack's.
    let text = expert(&[
        "-o",
        r#"uat:user_dlts:"User 0 (DLT=147)","eth_withoutfcs","0","","0","""#,
    ]);
    assert_eq!(expert_count(&text, syn_ack), 2 * connections, "{text}");
}

/// A summary without its wall-time line, which differs from one run to the next.
fn without_wall_time(summary: &str) -> String {
    summary
        .lines()
        .filter(|l| !l.starts_with("wall time "))
        .map(|l| format!("{l}\n"))
        .collect()
}
