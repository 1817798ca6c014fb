//! Real apps behind the live stack: `exec:` (and how `exec:` and `forward:` fail, share a run, and refuse
//! UDP), only inside network namespaces these tests create and delete (the harness is `common::netns`;
//! `forward:` to a working service is in tests/live_forward.rs). No test sends to any address outside its
//! namespace.
//!
//! They need root (CAP_NET_ADMIN, `ip netns`). Without it they print why and pass, unless
//! `PKTPATH_NETNS_TESTS=1` (as `.ci/run` sets), where a skip is a failure.

mod common;

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::netns::*;
use common::read_json;
use serde_json::Value;

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
                // A reset that arrives before this write is reported by the write (and then the read sees
                // only the end): where the client learns of it depends on timing, not on pktpath.
                if let Err(e) = c.write_all(send) {
                    return (Vec::new(), Some(e.kind()));
                }
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

#[test]
fn ten_clients_at_once_each_get_their_own_command_and_service_connection() {
    if !netns_available("concurrent_apps") {
        return;
    }
    let mut ns = Netns::new();
    // An echo service inside the namespace, one thread for each of the five connections it takes.
    let listener = ns.run_in(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().take(5) {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
                let _ = s.shutdown(Shutdown::Write);
            });
        }
    });
    let export = ns.path("t.jsonl");
    let fwd = format!("8080=forward:127.0.0.1:{port}");
    ns.start(&[
        "--app",
        "7=exec:cat",
        "--app",
        &fwd,
        "--export",
        export.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    let clients: Vec<_> = (0..10u32)
        .map(|i| {
            let port = if i % 2 == 0 { 7 } else { 8080 };
            ns.spawn_in(move || echo_roundtrip(port, pattern(48 * 1024, 100 + i)))
        })
        .collect();
    let results: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(results.iter().all(|r| r == &Ok(true)), "{results:?}");
    settle();
    let summary = assert_clean_exit(&ns.stop(libc::SIGINT));
    assert!(summary.contains("events lost: 0"), "{summary}");
    let text = std::fs::read_to_string(&export).unwrap();
    let conns: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("every line is JSON"))
        .filter(|l| l["type"] == "connection" && l["data"]["proto"] == "tcp")
        .map(|l| l["data"].clone())
        .collect();
    for app in ["exec:cat", &fwd[5..]] {
        let of_app: Vec<&Value> = conns.iter().filter(|c| c["app"] == app).collect();
        assert_eq!(of_app.len(), 5, "{app}");
        for c in of_app {
            assert_eq!(c["app_read"], c["app_written"], "{c}");
            assert!(events(c, "reset").is_empty(), "{c}");
        }
    }
}

/// Close `s` with a reset (SO_LINGER with a zero timeout) instead of a FIN.
fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: SO_LINGER on our own socket with a value of the right type and size.
    let r = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    drop(s);
}

#[test]
fn a_client_reset_ends_its_command_and_its_service_connection_only() {
    if !netns_available("client_reset") {
        return;
    }
    let mut ns = Netns::new();
    let listener = ns.run_in(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    // The service waits for what comes and reports how its connection ended.
    let service = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        read_all(&mut s)
    });
    let pid_file = ns.path("pid");
    let exec = format!("5000=exec:echo $$ > {}; exec sleep 30", pid_file.display());
    let fwd = format!("5001=forward:127.0.0.1:{port}");
    let export = ns.path("t.json");
    ns.start(&[
        "--app",
        &exec,
        "--app",
        &fwd,
        "--app",
        "7=echo",
        "--export",
        export.to_str().unwrap(),
    ]);
    let pid_path = pid_file.clone();
    let echoed = ns.run_in(move || {
        let c = connect(5000);
        let t = std::time::Instant::now();
        while std::fs::read_to_string(&pid_path).map_or(true, |p| !p.ends_with('\n')) {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "the command never started"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        reset(c);
        let mut c = connect(5001);
        c.write_all(b"hello, then a reset").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        reset(c);
        echo_roundtrip(7, pattern(16 * 1024, 4))
    });
    assert_eq!(echoed, Ok(true), "the run goes on");
    // The service's connection ends (a reset or an end of stream), with the bytes sent before.
    let (got, _how) = service.join().unwrap();
    assert_eq!(got, b"hello, then a reset");
    // The command's process is gone (killed with its connection, and reaped).
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t = std::time::Instant::now();
    // SAFETY: signal 0 only asks whether the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "command {pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    settle();
    assert_clean_exit(&ns.stop(libc::SIGINT));
    let doc = read_json(&export);
    check_document(&doc);
    for app in [&exec[5..], &fwd[5..]] {
        let c = conns_of(&doc, app);
        assert_eq!(c.len(), 1, "{app}: {}", doc["connections"]);
        assert_eq!(
            events(c[0], "reset"),
            vec!["connection ended abruptly in ESTABLISHED"],
            "{}",
            c[0]
        );
    }
    assert!(events(conns_of(&doc, "echo")[0], "reset").is_empty());
}
