//! Live mode with real traffic, only inside network namespaces these tests create. Each test makes its own
//! namespace (`ip netns add pktpath-t-PID-N`), runs `pktpath live --headless` inside it on a TAP whose kernel
//! side it addresses (10.77.0.1/24, the stack being 10.77.0.2/24), drives traffic from the kernel side of that
//! same namespace (client threads `setns()` into it; `curl` and `ping` run under `ip netns exec`), and deletes
//! it afterwards, whatever happens (a Drop guard, which also kills pktpath). No test sends to any address
//! outside its namespace.
//!
//! The harness is `common::netns`; real apps behind the live stack (`exec:`, `forward:`) are in
//! tests/live_apps.rs and tests/live_forward.rs.
//!
//! They need root (CAP_NET_ADMIN, `ip netns`). Without it they print why and pass, unless
//! `PKTPATH_NETNS_TESTS=1` (as `.ci/run` sets), where a skip is a failure.

mod common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::*;
use common::read_json;
use serde_json::Value;

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
    assert_eq!(
        common::hop_stages(request),
        common::STAGES.to_vec(),
        "{request}"
    );
    // The response: a tx frame from the app, sent on the wire, every hop timed.
    let response = packets
        .iter()
        .find(|p| {
            p["dir"] == "tx"
                && p["summary"].as_str().unwrap().starts_with("10.77.0.2:80 ")
                && common::hop_stages(p).first() == Some(&"app")
        })
        .expect("the response segment");
    assert_eq!(response["outcome"]["kind"], "sent", "{response}");
    assert_eq!(response["outcome"]["stage"], "wire");
    assert_eq!(common::hop_stages(response).last(), Some(&"wire"));
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
        assert_eq!(common::hop_stages(r), vec!["wire", "frame_buffer", "stack"]);
        assert_eq!(r["caused"].as_array().unwrap().len(), 1, "{r}");
    }
    for r in &replies {
        assert_eq!(r["outcome"]["kind"], "sent", "{r}");
        assert_eq!(common::hop_stages(r), vec!["stack", "frame_buffer", "wire"]);
    }
}

/// `--filter` on a live run: the exports (written on their own thread) hold only the matching packets —
/// the pings, not the HTTP exchange or ARP beside them — while the stats and the summary count every packet.
#[test]
fn a_live_filter_writes_only_the_matching_packets_and_the_stats_count_all() {
    if !netns_available("live_filter") {
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
        "--filter",
        "icmp and ip",
    ]);
    ns.exec_ok(&["ping", "-c", "3", "-i", "0.2", "-W", "2", STACK]);
    let page = ns.exec_ok(&["curl", "-s", "-m", "10", "http://10.77.0.2/"]);
    assert!(!page.stdout.is_empty(), "the http app's page");
    let summary = assert_clean_exit(&ns.stop(libc::SIGINT));
    let doc = read_json(&export);
    check_document(&doc);
    let summaries: Vec<&str> = common::packets(&doc)
        .iter()
        .map(|p| p["summary"].as_str().unwrap())
        .collect();
    let pings = |kind: &str| summaries.iter().filter(|s| s.ends_with(kind)).count();
    assert_eq!(summaries.len(), 6, "{summaries:?}");
    assert_eq!(
        (pings("ICMP echo request"), pings("ICMP echo reply")),
        (3, 3)
    );
    assert_eq!(doc["source"]["filter"], "icmp and ip");
    let stats = &doc["stats"];
    let traced = stats["frames_in"].as_u64().unwrap() + stats["frames_out"].as_u64().unwrap();
    assert!(traced > 6, "the HTTP exchange was traced too: {stats}");
    assert!(
        summary.contains(&format!(", {traced} packets traced\n")),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "\nexport: {} (json, 6 of {traced} packets)\n",
            export.display()
        )),
        "{summary}"
    );
    assert!(summary.contains(&format!("\npcapng: {} (6 wire frames)\n", pcap.display())));
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
        assert_eq!(common::hop_stages(p), vec!["wire", "frame_buffer"], "{p}");
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

#[test]
fn ipv6_neighbor_discovery_ping6_and_http_over_ipv6_are_answered_and_traced() {
    if !netns_available("ipv6") {
        return;
    }
    let mut ns = Netns::new();
    let export = ns.path("t.json");
    ns.start(&[
        "--ip6",
        "fd77::2/64",
        "--host-ip6",
        "fd77::1/64",
        "--export",
        export.to_str().unwrap(),
    ]);
    // The kernel tries its new address out first (duplicate address detection): wait until it may use it.
    let t = Instant::now();
    loop {
        let out = ns.exec_ok(&["ip", "-6", "addr", "show", "dev", TAP]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("fd77::1/64") && !text.contains("tentative") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    ns.exec_ok(&["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "fd77::2"]);
    let out = ns.exec_ok(&["curl", "-sS", "-m", "10", "-g", "http://[fd77::2]/"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Hello from pktpath"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_clean_exit(&ns.stop(libc::SIGINT));

    let doc = read_json(&export);
    check_document(&doc);
    assert_eq!(doc["stack"]["ipv6"], "fd77::2/64");
    assert_eq!(doc["source"]["host_ip6"], "fd77::1/64");
    let packets = common::packets(&doc);
    let by_id = |id: &Value| packets.iter().find(|p| p["id"] == *id).unwrap();
    let summary = |p: &Value| p["summary"].as_str().unwrap().to_string();
    // The kernel's neighbor solicitation for the stack's address is answered in its own window.
    let solicitation = packets
        .iter()
        .find(|p| summary(p) == "fd77::1 > ff02::1:ff00:2 ICMP6 neighbor solicitation")
        .expect("the kernel asked for the stack's MAC");
    assert_eq!(
        solicitation["outcome"]["kind"], "consumed",
        "{solicitation}"
    );
    let answer = by_id(&solicitation["caused"][0]);
    assert_eq!(
        summary(answer),
        "fd77::2 > fd77::1 ICMP6 neighbor advertisement"
    );
    assert_eq!(answer["outcome"]["kind"], "sent", "{answer}");
    let requests: Vec<&Value> = packets
        .iter()
        .filter(|p| summary(p) == "fd77::1 > fd77::2 ICMP6 echo request")
        .collect();
    assert_eq!(requests.len(), 2);
    for r in requests {
        assert_eq!(r["outcome"]["kind"], "consumed", "{r}");
        let reply = by_id(&r["caused"][0]);
        assert_eq!(summary(reply), "fd77::2 > fd77::1 ICMP6 echo reply");
        assert_eq!(
            common::hop_stages(reply),
            vec!["stack", "frame_buffer", "wire"]
        );
    }
    let request = packets
        .iter()
        .find(|p| summary(p).contains(" > [fd77::2]:80 TCP [P.]"))
        .expect("the HTTP request over IPv6");
    assert_eq!(request["outcome"]["kind"], "delivered", "{request}");
    assert_eq!(common::hop_stages(request), common::STAGES);
}

/// One frame of the damaged traffic below: garbage, or an IPv4 frame (TCP, UDP or ICMP to the stack) with
/// bytes overwritten; to the stack's MAC, broadcast or someone else's.
fn damaged_frame(rng: &mut common::Rng) -> Vec<u8> {
    let dst = match rng.below(3) {
        0 => vec![2, 0, 0, 0x77, 0, 2],
        1 => vec![0xff; 6],
        _ => rng.bytes(6),
    };
    let mut frame = dst;
    frame.extend_from_slice(&[2, 0, 0, 0, 0, 0x99]);
    match rng.below(4) {
        0 => {
            let n = rng.below(1500);
            frame.extend(rng.bytes(n));
        }
        kind => {
            let proto = [6u8, 17, 1][kind - 1];
            let n = rng.below(1400);
            let payload = rng.bytes(20 + n);
            let total = (20 + payload.len()) as u16;
            frame.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            frame.extend_from_slice(&total.to_be_bytes());
            frame.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2]);
            frame.extend(payload);
            for _ in 0..1 + rng.below(6) {
                let i = 14 + rng.below(frame.len() - 14);
                frame[i] = rng.next() as u8;
            }
        }
    }
    frame
}

#[test]
fn damaged_frames_from_the_wire_each_get_a_record_and_the_run_goes_on() {
    if !netns_available("damaged_frames") {
        return;
    }
    let mut ns = Netns::new();
    let export = ns.path("t.json");
    ns.start(&["--app", "80=http", "--export", export.to_str().unwrap()]);
    let sent = ns.run_in(|| {
        // SAFETY: plain socket calls; the descriptor is closed before the closure returns.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        let name = std::ffi::CString::new(TAP).unwrap();
        // SAFETY: a valid NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(index > 0);
        let mut rng = common::Rng(0x5eed_f00d_dead_beef);
        let mut sent = 0u64;
        for i in 0..1500 {
            let frame = damaged_frame(&mut rng);
            // SAFETY: sockaddr_ll is plain old data; all zeroes, then the fields sendto reads.
            let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            to.sll_family = libc::AF_PACKET as u16;
            to.sll_ifindex = index as i32;
            to.sll_halen = 6;
            to.sll_addr[..6].copy_from_slice(&frame[..6]);
            // SAFETY: `frame` and `to` are valid for the lengths given.
            let n = unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&to as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if n == frame.len() as isize {
                sent += 1;
            }
            if i % 100 == 99 {
                // Paced below what the guarded frame buffer holds, so no frame is an overflow drop.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // SAFETY: closing the descriptor opened above.
        unsafe { libc::close(fd) };
        sent
    });
    assert!(sent >= 1400, "only {sent} damaged frames could be sent");
    // The stack still serves.
    let out = ns.exec_ok(&["curl", "-sS", "-m", "10", &format!("http://{STACK}/")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello from pktpath"));
    let summary = assert_clean_exit(&ns.stop(libc::SIGINT));
    assert!(summary.contains("events lost: 0"), "{summary}");

    let doc = read_json(&export);
    check_document(&doc);
    let packets = common::packets(&doc);
    let rx: Vec<&Value> = packets.iter().filter(|p| p["dir"] == "rx").collect();
    assert_eq!(doc["stats"]["frames_in"].as_u64(), Some(rx.len() as u64));
    assert!(
        rx.len() as u64 >= sent,
        "{} rx records for {sent} frames sent",
        rx.len()
    );
    let mut codes = std::collections::BTreeMap::new();
    for p in &rx {
        if p["outcome"]["kind"] == "dropped" {
            let code = p["outcome"]["code"]
                .as_str()
                .unwrap_or_else(|| panic!("{p}"));
            assert!(
                p["outcome"]["reason"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty()),
                "{p}"
            );
            *codes.entry(code.to_string()).or_insert(0u64) += 1;
        }
    }
    // Damage of every kind was seen and named.
    for code in [
        "malformed",
        "bad_checksum",
        "foreign_mac",
        "unknown_ethertype",
    ] {
        assert!(
            codes.get(code).is_some_and(|&n| n > 0),
            "no {code} drop: {codes:?}"
        );
    }
}
