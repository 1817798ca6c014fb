//! Real apps behind the live stack (`exec:` and `forward:`), only inside network namespaces these tests
//! create and delete (the harness is `common::netns`; see tests/live_netns.rs for the rest of live mode).
//! The services `forward:` reaches are run by the tests themselves, inside the same namespace. No test sends
//! to any address outside its namespace.
//!
//! They need root (CAP_NET_ADMIN, `ip netns`). Without it they print why and pass, unless
//! `PKTPATH_NETNS_TESTS=1` (as `.ci/run` sets), where a skip is a failure.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::netns::*;
use serde_json::Value;

/// The export's TCP connections served by `app`.
fn conns_of<'a>(doc: &'a Value, app: &str) -> Vec<&'a Value> {
    doc["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["proto"] == "tcp" && c["app"] == app)
        .collect()
}

/// The details of a connection's events of `kind`.
fn events<'a>(conn: &'a Value, kind: &str) -> Vec<&'a str> {
    conn["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["detail"].as_str().unwrap())
        .collect()
}

/// The TCP flag letters of a packet's summary (`F.` in `… TCP [F.] seq=…`), if it is TCP.
fn tcp_flags(p: &Value) -> Option<&str> {
    let s = p["summary"].as_str()?;
    let rest = &s[s.find(" TCP [")? + 6..];
    Some(&rest[..rest.find(']')?])
}

/// Let the last ACKs of a finished exchange reach the stack before the run is stopped, so the export
/// shows the connections closed rather than `still LAST-ACK when the run ended`.
fn settle() {
    std::thread::sleep(Duration::from_millis(200));
}

/// A client connection to the stack with timeouts, so a hang fails the test instead of stalling it.
fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect((STACK, port))
        .unwrap_or_else(|e| panic!("connect to the stack's port {port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Read until end of stream or an error: the bytes, and the error if the stream did not end cleanly.
fn read_all(s: &mut TcpStream) -> (Vec<u8>, Option<ErrorKind>) {
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

#[test]
fn exec_cat_echoes_256_kib_and_the_export_shows_its_fin_exchange() {
    if !netns_available("exec_cat") {
        return;
    }
    let mut ns = Netns::new();
    let export = ns.path("t.json");
    ns.start(&["--app", "7=exec:cat", "--export", export.to_str().unwrap()]);
    let same = ns.run_in(|| echo_roundtrip(7, pattern(256 * 1024, 11)));
    assert_eq!(same, Ok(true));
    settle();
    let summary = assert_clean_exit(&ns.stop(libc::SIGINT));
    assert!(summary.contains("apps 7=exec:cat"), "{summary}");
    assert!(summary.contains("events lost: 0"), "{summary}");

    let doc = read_json(&export);
    check_document(&doc);
    let conns = conns_of(&doc, "exec:cat");
    assert_eq!(conns.len(), 1, "{}", doc["connections"]);
    let c = conns[0];
    assert_eq!(c["local"], "10.77.0.2:7");
    assert_eq!(c["app_read"]["bytes"], 256 * 1024, "{c}");
    assert_eq!(
        c["app_read"], c["app_written"],
        "cat wrote back what it read"
    );
    // The client's FIN reached cat as end of stream; cat exited, and only then did the stack send its FIN.
    assert_eq!(events(c, "peer_eof").len(), 1, "{c}");
    assert_eq!(
        events(c, "app_eof"),
        vec!["app closed its sending side (command exited with status 0)"],
        "{c}"
    );
    assert_eq!(
        events(c, "close"),
        vec!["app done sending: stack will send FIN"]
    );
    assert!(events(c, "reset").is_empty(), "{c}");
    assert_eq!(events(c, "closed").len(), 1, "{c}");
    let packets = common::packets(&doc);
    let fin = |dir: &str, from_stack: bool| {
        packets.iter().any(|p| {
            p["dir"] == dir
                && tcp_flags(p).is_some_and(|f| f.contains('F'))
                && p["summary"].as_str().unwrap().starts_with("10.77.0.2:7 ") == from_stack
        })
    };
    assert!(fin("rx", false), "the client's FIN is traced");
    assert!(fin("tx", true), "the stack's FIN is traced");
    for p in packets.iter().filter(|p| p["dir"] == "tx") {
        assert_eq!(p["outcome"]["kind"], "sent", "{p}");
    }
}

/// A service inside the namespace for `forward:`: it greets, closes its sending side, and reads until the
/// client's end of stream (the first connection); then it reads a request to its end and answers with it
/// reversed (the second). Returns what it read on each.
fn half_closing_service(listener: TcpListener) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"hello from the service\n").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        seen.push(got);
        let (mut s, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        let mut answer = got.clone();
        answer.reverse();
        s.write_all(&answer).unwrap();
        seen.push(got);
        seen
    })
}

#[test]
fn forward_bridges_to_a_service_in_the_namespace_and_carries_half_closes_both_ways() {
    if !netns_available("forward") {
        return;
    }
    let mut ns = Netns::new();
    // Bound inside the namespace before pktpath starts (so its port can be named), on every address there:
    // the forward target is the kernel side of the TAP, which pktpath addresses as it starts.
    let listener = ns.run_in(|| TcpListener::bind("0.0.0.0:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    let service = half_closing_service(listener);
    let export = ns.path("t.json");
    let app = format!("8080=forward:10.77.0.1:{port}");
    ns.start(&["--app", &app, "--export", export.to_str().unwrap()]);
    let request = pattern(200 * 1024, 5);
    let sent = request.clone();
    let (first, second) = ns.run_in(move || {
        // The service's FIN reaches the client while the client's side stays open, and the client can
        // still send afterwards.
        let mut c = connect(8080);
        let first_back = read_all(&mut c);
        c.write_all(&sent[..1000]).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let first_after = read_all(&mut c);
        // The client's FIN reaches the service, which answers only then.
        let mut c = connect(8080);
        let writer = {
            let mut w = c.try_clone().unwrap();
            let sent = sent.clone();
            std::thread::spawn(move || {
                w.write_all(&sent).unwrap();
                w.shutdown(Shutdown::Write).unwrap();
            })
        };
        let second = read_all(&mut c);
        writer.join().unwrap();
        ((first_back, first_after), second)
    });
    let seen = service.join().expect("the service thread");
    assert_eq!(
        first.0,
        (b"hello from the service\n".to_vec(), None),
        "greeting, then end of stream"
    );
    assert_eq!(first.1, (Vec::new(), None), "nothing more after the FIN");
    assert!(
        seen[0] == request[..1000],
        "the service got the bytes sent after its FIN"
    );
    assert!(seen[1] == request, "the service got the whole request");
    let mut answer = request.clone();
    answer.reverse();
    assert_eq!(second.1, None);
    assert!(
        second.0 == answer,
        "the answer came back ({} bytes)",
        second.0.len()
    );
    settle();
    let summary = assert_clean_exit(&ns.stop(libc::SIGINT));
    assert!(summary.contains("events lost: 0"), "{summary}");

    let doc = read_json(&export);
    check_document(&doc);
    let conns = conns_of(&doc, &format!("forward:10.77.0.1:{port}"));
    assert_eq!(conns.len(), 2, "{}", doc["connections"]);
    for c in &conns {
        assert!(events(c, "reset").is_empty(), "{c}");
        assert_eq!(events(c, "peer_eof").len(), 1, "{c}");
        assert_eq!(events(c, "close").len(), 1, "{c}");
        assert_eq!(events(c, "closed").len(), 1, "{c}");
    }
    assert_eq!(conns[0]["app_read"]["bytes"], 1000);
    assert_eq!(conns[0]["app_written"]["bytes"], 23);
    assert_eq!(conns[1]["app_read"]["bytes"], 200 * 1024);
    assert_eq!(conns[1]["app_written"]["bytes"], 200 * 1024);
}

#[test]
fn an_app_that_fails_or_cannot_connect_resets_only_its_connection() {
    if !netns_available("failing_apps") {
        return;
    }
    let mut ns = Netns::new();
    // A port nobody listens on, inside the namespace.
    let dead = ns.run_in(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let export = ns.path("t.json");
    let fwd = format!("5001=forward:127.0.0.1:{dead}");
    ns.start(&[
        "--app",
        "7=echo",
        "--app",
        "5000=exec:head -c 5; exit 3",
        "--app",
        "5002=exec:false",
        "--app",
        &fwd,
        "--export",
        export.to_str().unwrap(),
    ]);
    let (head, failed, refused, echoed) = ns.run_in(|| {
        // The command answers five bytes of what it read, then fails: they arrive, then the reset.
        let mut c = connect(5000);
        c.write_all(&pattern(100, 1)).unwrap();
        let head = read_all(&mut c);
        // A command that fails at once, before the client sent anything; and a forward: where nothing listens.
        // The stack may reset these before the client's connect() has returned: that is the same answer.
        let reset_early = |port: u16, send: &[u8]| match TcpStream::connect((STACK, port)) {
            Ok(mut c) => {
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let _ = c.write_all(send);
                read_all(&mut c)
            }
            Err(e) => (Vec::new(), Some(e.kind())),
        };
        let failed = reset_early(5002, b"");
        let refused = reset_early(5001, b"anyone?");
        // The run goes on: another app on the same stack still serves.
        let echoed = echo_roundtrip(7, pattern(64 * 1024, 2));
        (head, failed, refused, echoed)
    });
    assert_eq!(
        head,
        (
            pattern(100, 1)[..5].to_vec(),
            Some(ErrorKind::ConnectionReset)
        )
    );
    assert_eq!(failed, (Vec::new(), Some(ErrorKind::ConnectionReset)));
    assert_eq!(refused, (Vec::new(), Some(ErrorKind::ConnectionReset)));
    assert_eq!(echoed, Ok(true));
    settle();
    let summary = assert_clean_exit(&ns.stop(libc::SIGINT));
    assert!(summary.contains("events lost: 0"), "{summary}");

    let doc = read_json(&export);
    check_document(&doc);
    let reset_of = |app: &str| -> Vec<String> {
        let conns = conns_of(&doc, app);
        assert_eq!(conns.len(), 1, "{app}: {}", doc["connections"]);
        assert!(events(conns[0], "close").is_empty(), "no FIN: {}", conns[0]);
        events(conns[0], "reset")
            .iter()
            .map(|d| d.to_string())
            .collect()
    };
    let gave_up = "app gave the connection up: stack will reset it";
    assert_eq!(
        reset_of("exec:head -c 5; exit 3")[0],
        format!("{gave_up} (command exited with status 3)")
    );
    assert_eq!(
        reset_of("exec:false")[0],
        format!("{gave_up} (command exited with status 1)")
    );
    assert_eq!(
        reset_of(&fwd[5..])[0],
        format!("{gave_up} (connect to 127.0.0.1:{dead}: Connection refused (os error 111))")
    );
    // The stack's resets are on the wire.
    let resets = common::packets(&doc)
        .iter()
        .filter(|p| p["dir"] == "tx" && tcp_flags(p).is_some_and(|f| f.contains('R')))
        .count();
    assert!(resets >= 3, "{resets} RSTs sent");
    let echo = conns_of(&doc, "echo");
    assert_eq!(echo.len(), 1);
    assert!(events(echo[0], "reset").is_empty(), "{}", echo[0]);
    assert_eq!(echo[0]["app_written"]["bytes"], 64 * 1024);
}

#[test]
fn udp_to_exec_and_forward_ports_is_not_served() {
    if !netns_available("udp_exec_forward") {
        return;
    }
    let mut ns = Netns::new();
    let export = ns.path("t.json");
    ns.start(&[
        "--app",
        "5000=exec:cat",
        "--app",
        "5001=forward:127.0.0.1:9",
        "--export",
        export.to_str().unwrap(),
    ]);
    let answers = ns.run_in(|| {
        [5000u16, 5001].map(|port| {
            let s = UdpSocket::bind("10.77.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            s.connect((STACK, port)).unwrap();
            s.send(b"is anyone there?").unwrap();
            let mut buf = [0u8; 64];
            // A port unreachable comes back to a connected UDP socket as a refused receive.
            s.recv(&mut buf).map_err(|e| e.kind())
        })
    });
    assert_eq!(
        answers,
        [
            Err(ErrorKind::ConnectionRefused),
            Err(ErrorKind::ConnectionRefused)
        ]
    );
    assert_clean_exit(&ns.stop(libc::SIGINT));
    let doc = read_json(&export);
    check_document(&doc);
    let unreachable = common::packets(&doc)
        .iter()
        .filter(|p| p["outcome"]["code"] == "port_unreachable")
        .count();
    assert_eq!(unreachable, 2, "both datagrams dropped as port unreachable");
    assert!(
        doc["connections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["proto"] != "udp"),
        "no UDP flow for exec:/forward: ports"
    );
}

/// Keep the kernel from buffering much for a slow service, so that pktpath has to hold what waits.
fn small_receive_buffer(listener: &TcpListener) {
    let size: libc::c_int = 4096;
    // SAFETY: SO_RCVBUF on our own socket, with an int of the right size; accepted sockets inherit it.
    let r = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(listener),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
}

#[test]
fn forward_hands_on_everything_sent_after_the_service_closed_its_side() {
    if !netns_available("forward_after_fin") {
        return;
    }
    let mut ns = Netns::new();
    // Small kernel socket buffers in this namespace (and on the service's socket): a slow service makes
    // pktpath hold what waits for it, instead of the kernel.
    ns.exec_ok(&[
        "sh",
        "-c",
        "echo 4096 8192 16384 > /proc/sys/net/ipv4/tcp_wmem",
    ]);
    let listener = ns.run_in(|| TcpListener::bind("0.0.0.0:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    small_receive_buffer(&listener);
    // The service says all it has to say and closes its side at once, then is slow to read what comes.
    let service = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"send me everything\n").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        // A slow reader: what the client sends waits in pktpath most of the time.
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            std::thread::sleep(Duration::from_millis(2));
            match s.read(&mut buf)? {
                0 => return Ok::<_, std::io::Error>(got),
                n => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    let export = ns.path("t.json");
    let app = format!("8080=forward:10.77.0.1:{port}");
    ns.start(&["--app", &app, "--export", export.to_str().unwrap()]);
    let data = pattern(1 << 20, 8);
    let sent = data.clone();
    let greeting = ns.run_in(move || {
        let mut c = connect(8080);
        let greeting = read_all(&mut c);
        c.write_all(&sent).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let _ = read_all(&mut c);
        greeting
    });
    assert_eq!(greeting, (b"send me everything\n".to_vec(), None));
    let got = service
        .join()
        .unwrap()
        .expect("the service reads a clean end of stream");
    assert_eq!(got.len(), data.len(), "bytes the service got");
    assert!(got == data, "the service got the client's bytes in order");
    settle();
    assert_clean_exit(&ns.stop(libc::SIGINT));
    let doc = read_json(&export);
    let c = conns_of(&doc, &app[5..]);
    assert_eq!(c.len(), 1);
    assert_eq!(events(c[0], "peer_eof").len(), 1, "{}", c[0]);
    assert!(events(c[0], "reset").is_empty(), "{}", c[0]);
}

#[test]
fn exec_reads_all_its_input_after_it_closed_its_output() {
    if !netns_available("exec_after_fin") {
        return;
    }
    let mut ns = Netns::new();
    let out = ns.path("input.bin");
    let export = ns.path("t.json");
    // The command closes its stdout at once (the stack sends FIN), then reads all of its stdin into a file.
    let app = format!("7=exec:exec >/dev/null; cat > {}", out.display());
    ns.start(&["--app", &app, "--export", export.to_str().unwrap()]);
    let data = pattern(512 * 1024, 9);
    let sent = data.clone();
    let answer = ns.run_in(move || {
        let mut c = connect(7);
        let answer = read_all(&mut c);
        c.write_all(&sent).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let _ = read_all(&mut c);
        answer
    });
    assert_eq!(answer, (Vec::new(), None), "end of stream, nothing else");
    // The client is done once its bytes are on their way: give them the time to reach the command.
    let t = std::time::Instant::now();
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < data.len() as u64
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    settle();
    assert_clean_exit(&ns.stop(libc::SIGINT));
    let got = std::fs::read(&out).expect("the command wrote its file");
    assert_eq!(got.len(), data.len(), "bytes the command read");
    assert!(got == data, "the command read the client's bytes in order");
    let doc = read_json(&export);
    let c = conns_of(&doc, &app[2..]);
    assert_eq!(c.len(), 1, "{}", doc["connections"]);
    assert_eq!(
        events(c[0], "closed"),
        vec!["closed (socket lingers in TIME-WAIT)"],
        "{}",
        c[0]
    );
    assert!(events(c[0], "reset").is_empty(), "{}", c[0]);
}
