//! What a shell user expects of the command line: completions and a manual page, the exit codes in `--help`,
//! a negative number reported as a bad value of its option, and summaries that say `1 packet`, `2 packets`.

mod common;

use common::*;

#[test]
fn completions_are_a_script_the_shell_accepts() {
    for shell in ["bash", "zsh", "fish"] {
        let out = pktpath(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for command in ["sim", "replay", "live", "max-speed", "pcap-out"] {
            assert!(script.contains(command), "{shell}: no {command}");
        }
    }
    // bash itself parses the bash script without an error.
    let out = pktpath(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pktpath.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash runs");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let bad = pktpath(&["completions", "cmd"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("'cmd'"), "{}", stderr(&bad));
}

#[test]
fn man_pages_are_roff_for_pktpath_and_each_command() {
    let out = pktpath(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.starts_with(".ie"), "{}", &page[..page.len().min(200)]);
    assert!(page.contains(".TH pktpath 1"), "{page}");
    assert!(page.contains("Exit status: 0 the run ended"), "{page}");
    let out = pktpath(&["man", "replay"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH pktpath-replay 1"), "{page}");
    assert!(page.contains("max\\-speed"), "{page}");
    let bad = pktpath(&["man", "nothing"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn help_gives_the_exit_codes_and_the_value_ranges() {
    let top = stdout(&pktpath(&["--help"]));
    for code in [
        "Exit status: 0",
        "; 1 a runtime error",
        "; 2 a usage error",
        "130 or 143",
    ] {
        assert!(top.contains(code), "{code}: {top}");
    }
    let sim = stdout(&pktpath(&["sim", "--help"]));
    assert!(sim.contains("in frames: 1 to 1000000"), "{sim}");
    assert!(sim.contains("0 to 1000"), "{sim}");
    let replay = stdout(&pktpath(&["replay", "--help"]));
    assert!(replay.contains("above 0, at most 1000000"), "{replay}");
}

#[test]
fn a_negative_number_is_a_bad_value_of_its_option() {
    for (args, named) in [
        (
            &["replay", "--demo", "--headless", "--speed", "-1"][..],
            "'--speed <X>'",
        ),
        (&["sim", "--headless", "--clients", "-1"], "'--clients <N>'"),
        (&["sim", "--headless", "--seed", "-3"], "'--seed <N>'"),
        (
            &["live", "--headless", "--duration", "-2"],
            "'--duration <SECS>'",
        ),
    ] {
        let out = pktpath(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(named), "{args:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let out = pktpath(&["replay", "--demo", "--headless", "--speed", "-1"]);
    assert_eq!(
        stderr(&out).trim_end(),
        "pktpath: invalid value '-1' for '--speed <X>': give a factor above 0 and at most 1000000 (1 = as recorded), or use --max-speed (see `pktpath --help`)"
    );
}

#[test]
fn summaries_count_in_the_singular_and_the_plural_and_name_the_format_as_typed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let out = pktpath(&[
        "sim",
        "--headless",
        "--clients",
        "1",
        "--udp",
        "1",
        "--export",
        path.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("pktpath sim (inbound): 1 TCP client × 65536 bytes to port 7, 1 UDP datagram, apps 7=echo, seed 0\n"),
        "{text}"
    );
    assert!(
        text.contains("udp: 1 datagram sent, 1 reply (1 match a sent datagram)"),
        "{text}"
    );
    let packets = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("{\"type\":\"packet\""))
        .count();
    assert!(
        text.contains(&format!("(jsonl, {packets} packets)")),
        "{text}"
    );
    let demo = stdout(&pktpath(&["replay", "--demo", "--headless"]));
    assert!(
        demo.starts_with("replay demo (built in: captures/demo.pcapng) (pcapng, 14 records) as 10.77.0.2 (02:77:00:00:00:02), apps 80=recorded\n"),
        "{demo}"
    );
    assert!(demo.contains("replay: 1 recorded flow played;"), "{demo}");
    assert!(
        demo.contains("1 synthetic frame (ARP/ND, owed acks, 0 retransmissions by the peer)"),
        "{demo}"
    );
    assert!(demo.contains("(1 hop)"), "{demo}");
}
