//! `forward:` behind the live stack, to services the tests run inside the namespace they create and delete
//! (the harness is `common::netns`): bytes and half-closes cross both ways, and nothing the client sent is
//! cut off when the service closed first. No test sends to any address outside its namespace.
//!
//! They need root (CAP_NET_ADMIN, `ip netns`). Without it they print why and pass, unless
//! `PKTPATH_NETNS_TESTS=1` (as `.ci/run` sets), where a skip is a failure.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::time::Duration;

use common::netns::*;
use common::read_json;

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
