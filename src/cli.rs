//! Command-line definitions (clap derive) and their validation. Every bad value becomes a one-line error that
//! names it and says what to do, with exit code 2.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::export::{ExportPlan, Format};
use crate::pipeline::{AppKind, AppSpec};
use crate::sim::SimSpec;

/// How a headless run ends and where its exports go, for `--help` (top level, sim and replay).
macro_rules! exits {
    () => {
        "Exit codes: 0 ok, 1 runtime error, 2 usage error. SIGINT or SIGTERM stops a headless sim or replay where it \
stands: its exports are finished complete, the summary says it was interrupted, and the exit code is 130 (SIGINT) \
or 143 (SIGTERM), 128 + the signal as shells report it; a second signal exits at once (128 + that signal), removing \
the unfinished temporary files. --export/--pcap-out: a regular file is written beside and renamed into place; a \
device or FIFO (/dev/null, a terminal) is written through; - is stdout (the summary then goes to stderr)."
    };
}

#[derive(Parser, Debug)]
#[command(
    name = "pktpath",
    version,
    about = "Trace every packet through a userspace network path: wire → frame buffer → smoltcp → connection → app",
    after_help = TOP_AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `pktpath --help` ends with: the no-command default and the exit status.
const TOP_AFTER_HELP: &str = "With no command, pktpath replays its built-in demo capture (an HTTP GET): in the TUI \
when stdout is a terminal, else as a headless summary.

Exit status: 0 the run ended (or help, version, completions, man); 1 a runtime error (a capture or export that \
cannot be read or written, a TAP that cannot be opened; one line on stderr says which and why); 2 a usage error \
(a bad option or value, named on one line); 130 or 143 a headless run stopped by SIGINT or SIGTERM (its exports \
are complete and its summary says so; a second signal exits at once, removing the unfinished temporary files).
--export/--pcap-out: a regular file is written beside and renamed into place (an existing one is overwritten, as \
tcpdump -w does); a device or FIFO (/dev/null, a terminal) is written through; - is stdout (the summary then goes \
to stderr).";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Drive the path with a simulated peer: a second smoltcp stack across an in-memory wire.
    Sim(SimArgs),
    /// Replay a pcap or pcapng capture through the path: the stack plays one host, the wire the others.
    Replay(ReplayArgs),
    /// Trace real traffic from a TAP device (created if missing; needs CAP_NET_ADMIN), with apps behind the stack.
    Live(LiveArgs),
    /// Print a shell completion script, as in `pktpath completions bash > /etc/bash_completion.d/pktpath`.
    Completions {
        /// The shell: bash, elvish, fish, powershell or zsh.
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff), as in `pktpath man | man -l -`; `pktpath man replay` is the replay command's.
    Man {
        /// sim, replay or live: that command's page instead of pktpath(1).
        #[arg(value_name = "COMMAND", value_parser = ["sim", "replay", "live"])]
        command: Option<String>,
    },
}

/// Write the completion script for `shell` to `out`.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "pktpath", out);
}

/// Write a manual page: pktpath(1), or with a command pktpath-sim(1), pktpath-replay(1) or pktpath-live(1).
pub fn write_man(command: Option<&str>, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let top = <Cli as clap::CommandFactory>::command();
    let page = match command {
        None => top,
        Some(name) => {
            let title = match name {
                "sim" => "pktpath-sim",
                "replay" => "pktpath-replay",
                _ => "pktpath-live",
            };
            top.find_subcommand(name)
                .cloned()
                .unwrap_or_else(|| top.clone())
                .name(title)
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    clap_mangen::Man::new(page).render(out)
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 1e6 => Ok(x),
        _ => Err(
            "give a factor above 0 and at most 1000000 (1 = as recorded), or use --max-speed"
                .into(),
        ),
    }
}

/// What a run writes and where it shows itself; shared by `sim` and `replay`.
#[derive(Args, Debug)]
pub struct OutputArgs {
    /// Run without the TUI and print a summary (needed when stdout is not a terminal; sim and replay need it for
    /// --export/--pcap-out too, while a live TUI writes them as it runs).
    #[arg(long)]
    pub headless: bool,
    /// Write the stage timeline to this file.
    #[arg(long, value_name = "PATH")]
    pub export: Option<PathBuf>,
    /// Timeline format: json, jsonl, or chrome (Trace Event Format for ui.perfetto.dev).
    #[arg(long, value_enum, default_value_t = Format::Json, requires = "export")]
    pub format: Format,
    /// Write every wire frame (both directions) to this pcapng file, each with its hop timeline as a comment.
    #[arg(long, value_name = "PATH")]
    pub pcap_out: Option<PathBuf>,
    /// Write only the packets matching EXPR to --export and --pcap-out (the TUI's filter language, as in
    /// 'tcp and port 80'); the stats and the summary still count every packet.
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
}

impl OutputArgs {
    /// The plan without its filter: the filter language is the session's to parse (`session::filter`).
    pub fn exports(&self) -> ExportPlan {
        ExportPlan {
            timeline: self.export.clone().map(|p| (p, self.format)),
            pcap: self.pcap_out.clone(),
            filter: None,
        }
    }

    /// `--filter` chooses what the exports write: alone, it would do nothing.
    pub fn validate(&self) -> Result<(), String> {
        match &self.filter {
            Some(expr) if self.export.is_none() && self.pcap_out.is_none() => Err(format!(
                "--filter '{}' chooses the packets --export and --pcap-out write; add one of them",
                expr.escape_debug()
            )),
            _ => Ok(()),
        }
    }
}

/// Which command's `--app` rules apply (what a bare SPEC serves, whether `recorded` is allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppsFor {
    Sim,
    Replay,
    Live,
}

/// The path's own flags, shared by every command: the frame buffer's size and the apps behind the stack.
/// Each command says in its own `--app` help what a bare SPEC serves.
#[derive(Args, Debug)]
pub struct PathArgs {
    /// Capacity of the guarded frame buffer (and of the tx queue), in frames: 1 to 1000000.
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub frame_buffer: u32,
    /// App behind the stack, `[PORT=]SPEC`; repeatable.
    #[arg(long = "app", value_name = "[PORT=]SPEC", value_parser = parse_app)]
    pub apps: Vec<AppSpec>,
}

impl PathArgs {
    /// The checks `--app` needs whatever the command: `recorded` only where there is a recording, and one
    /// app per port.
    pub fn validate(&self, command: AppsFor) -> Result<(), String> {
        if command != AppsFor::Replay
            && let Some(spec) = self.apps.iter().find(|a| a.kind == AppKind::Recorded)
        {
            return Err(format!(
                "--app {spec}: the recorded app plays a capture's byte stream; use it with `pktpath replay FILE`"
            ));
        }
        for (i, a) in self.apps.iter().enumerate() {
            if let Some(b) = self.apps[..i].iter().find(|b| b.port == a.port) {
                let port = a
                    .port
                    .map_or("every port".to_string(), |p| format!("port {p}"));
                return Err(format!(
                    "--app {b} and --app {a} both serve {port}; give each port one app"
                ));
            }
        }
        Ok(())
    }
}

/// The flags of a deterministic run (sim and replay), which make it repeatable and set its virtual pace.
#[derive(Args, Debug)]
pub struct DeterministicArgs {
    /// Seed for the stacks' ISNs (and the simulated peer's payloads): same inputs and seed, same timeline. Any
    /// number from 0 to 2^64-1.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// Virtual time one engine step costs, in nanoseconds (hops recorded in the same step share a time): 0 to
    /// 1000000000.
    #[arg(long, default_value_t = 1000, value_name = "NS", value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
    pub hop_cost_ns: u64,
}

#[derive(Args, Debug)]
#[command(after_help = exits!())]
#[command(mut_arg("apps", |a| a.help(REPLAY_APP_HELP)))]
// A negative number is a bad value of its option (`--speed -1`), not an unknown option `-1`.
#[command(allow_negative_numbers = true)]
pub struct ReplayArgs {
    /// The capture to replay (pcap or pcapng, recognised by its content); `-` reads it from stdin.
    #[arg(
        value_name = "FILE",
        required_unless_present = "demo",
        conflicts_with = "demo"
    )]
    pub file: Option<PathBuf>,
    /// Replay the capture built into pktpath (captures/demo.pcapng: one HTTP GET) instead of a file.
    #[arg(long)]
    pub demo: bool,
    /// The host the stack plays. Default: the host receiving the most SYNs, else the most frequent destination.
    #[arg(long = "as", value_name = "IP")]
    pub as_ip: Option<std::net::IpAddr>,
    #[command(flatten)]
    pub path: PathArgs,
    #[command(flatten)]
    pub run: DeterministicArgs,
    /// Play at this multiple of the recorded pace: above 0, at most 1000000.
    #[arg(long, default_value_t = 1.0, value_name = "X", value_parser = parse_speed, conflicts_with = "max_speed")]
    pub speed: f64,
    /// Play as fast as the stack takes it (recorded gaps are not kept).
    #[arg(long)]
    pub max_speed: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Virtual time the stack gets after the last frame to finish (FIN handshakes, retransmissions), seconds: 0
    /// to 3600.
    #[arg(long, default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub tail: u64,
    /// Inject TCP/UDP and IPv4 header checksums that look offloaded (the partial sum or 0 a sending host's NIC
    /// was to fill) as recorded, so the stack drops them `bad_checksum`. Default: complete them, noted.
    #[arg(long)]
    pub keep_checksums: bool,
    /// Idle gaps in the capture longer than this are shortened to it (said in the summary), so a damaged or
    /// far-future timestamp cannot make the replay's work run away; seconds, 0.001 to 86400.
    #[arg(long, default_value_t = 10.0, value_name = "SECS", value_parser = parse_max_gap)]
    pub max_gap: f64,
}

/// `--max-gap SECS`: a number of seconds from 1 ms to a day.
fn parse_max_gap(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds; give one such as 10 or 0.5"))?;
    if !(0.001..=86_400.0).contains(&v) {
        return Err(format!(
            "{s} s is out of range; give 0.001 to 86400 seconds"
        ));
    }
    Ok(v)
}

impl ReplayArgs {
    /// Checks that span several options; the message names the values and says what to do.
    pub fn validate(&self) -> Result<(), String> {
        self.path.validate(AppsFor::Replay)?;
        self.output.validate()?;
        let stdin = self.file.as_deref() == Some(std::path::Path::new(crate::replay::input::STDIN));
        if stdin && std::io::stdin().is_terminal() {
            return Err(
                "replay -: stdin is a terminal; pipe a capture in, as in `cat x.pcap | pktpath replay - --headless`, or give its path"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn spec(&self) -> crate::replay::ReplaySpec {
        crate::replay::ReplaySpec {
            source: match &self.file {
                Some(file) => crate::replay::Source::File(file.clone()),
                None => crate::replay::Source::demo(),
            },
            as_ip: self.as_ip,
            apps: self.path.apps.clone(),
            speed: (!self.max_speed).then_some(self.speed),
            frame_buffer: self.path.frame_buffer as usize,
            seed: self.run.seed,
            hop_cost_ns: self.run.hop_cost_ns,
            tail_ns: self.tail * 1_000_000_000,
            keep_checksums: self.keep_checksums,
            max_gap_ns: (self.max_gap * 1e9) as u64,
        }
    }
}

/// `ADDR/PREFIX` of one address family: `family` and `example` name it in the error, `max` is its longest
/// prefix, and `not_a_host` refuses addresses no host can have.
fn parse_host_cidr<A: std::str::FromStr>(
    s: &str,
    (family, example, max): (&str, &str, u8),
    not_a_host: impl Fn(&A) -> bool,
) -> Result<(A, u8), String> {
    let bad = || format!("'{s}' is not an {family} address with a prefix length, as in {example}");
    let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
    let addr: A = addr.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    if !(1..=max).contains(&prefix) {
        return Err(format!("'{s}': the prefix length must be 1 to {max}"));
    }
    if not_a_host(&addr) {
        return Err(format!("'{s}' cannot be a host's address"));
    }
    Ok((addr, prefix))
}

/// `ADDR/PREFIX`, IPv4.
pub fn parse_cidr(s: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    parse_host_cidr(s, ("IPv4", "10.77.0.2/24", 32), |a: &std::net::Ipv4Addr| {
        a.is_unspecified() || a.is_multicast() || a.is_broadcast()
    })
}

/// `ADDR/PREFIX`, IPv6.
pub fn parse_cidr6(s: &str) -> Result<(std::net::Ipv6Addr, u8), String> {
    parse_host_cidr(s, ("IPv6", "fd77::2/64", 128), |a: &std::net::Ipv6Addr| {
        a.is_unspecified() || a.is_multicast() || a.is_loopback()
    })
}

/// `aa:bb:cc:dd:ee:ff` (or with `-`), a unicast MAC.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("'{s}' is not a MAC address, as in 02:00:00:77:00:02");
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(format!(
            "'{s}' is a multicast or zero MAC; a host needs a unicast one, as in 02:00:00:77:00:02"
        ));
    }
    Ok(mac)
}

/// A network interface name the kernel accepts: 1 to 15 bytes, no `/`, whitespace or `:`.
fn parse_ifname(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not an interface name: use 1 to 15 characters without '/', ':' or spaces"
        ))
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 31_536_000.0 => {
            Ok(std::time::Duration::from_secs_f64(x))
        }
        _ => Err(
            "give a number of seconds above 0 and at most 31536000 (a year), as in 10 or 0.5"
                .into(),
        ),
    }
}

#[derive(Args, Debug)]
#[command(after_help = "\
Defaults: --tap pktpath0, --ip 10.77.0.2/24, --mac 02:00:00:77:00:02, no --host-ip (bring the kernel side \
up yourself), no IPv6 (--ip6 turns it on: smoltcp then answers neighbor solicitations and ping6), apps 7=echo 9=discard 80=http (TCP; echo and discard also serve UDP). smoltcp answers ARP \
and ping. Without --duration the run lasts until SIGINT (Ctrl-C) or SIGTERM; either ends it cleanly, with \
the export complete. Opening the TAP needs CAP_NET_ADMIN: run as root, or create the device once with \
`ip tuntap add NAME mode tap user USER`.
Example: pktpath live --headless --host-ip 10.77.0.1/24 --export t.json   (then: curl http://10.77.0.2/)")]
#[command(mut_arg("apps", |a| a.help(LIVE_APP_HELP)))]
// A negative number is a bad value of its option (`--speed -1`), not an unknown option `-1`.
#[command(allow_negative_numbers = true)]
pub struct LiveArgs {
    /// The TAP device to open; created if missing.
    #[arg(long, default_value = "pktpath0", value_name = "NAME", value_parser = parse_ifname)]
    pub tap: String,
    /// The stack's own IPv4 address and prefix.
    #[arg(long, default_value = "10.77.0.2/24", value_name = "CIDR", value_parser = parse_cidr)]
    pub ip: (std::net::Ipv4Addr, u8),
    /// The stack's MAC address.
    #[arg(long, default_value = "02:00:00:77:00:02", value_name = "MAC", value_parser = parse_mac)]
    pub mac: [u8; 6],
    /// Give the kernel side of the TAP this address and bring it up (default: leave it as it is).
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub host_ip: Option<(std::net::Ipv4Addr, u8)>,
    /// The stack's own IPv6 address and prefix, as in fd77::2/64 (default: no IPv6; the kernel's IPv6
    /// frames are then dropped at the stack, each with its reason).
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr6)]
    pub ip6: Option<(std::net::Ipv6Addr, u8)>,
    /// Give the kernel side of the TAP this IPv6 address too, as in fd77::1/64, and bring it up.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr6, requires = "ip6")]
    pub host_ip6: Option<(std::net::Ipv6Addr, u8)>,
    #[command(flatten)]
    pub path: PathArgs,
    /// End the run after this many seconds, above 0 and at most a year, as in 10 or 0.5 (default: run until
    /// SIGINT or SIGTERM).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl LiveArgs {
    /// Checks that span several options; the message names the values and says what to do.
    pub fn validate(&self) -> Result<(), String> {
        self.path.validate(AppsFor::Live)?;
        self.output.validate()?;
        self.spec().validate()
    }

    pub fn spec(&self) -> crate::live::LiveSpec {
        crate::live::LiveSpec {
            tap: self.tap.clone(),
            ip: self.ip,
            mac: self.mac,
            host_ip: self.host_ip,
            ip6: self.ip6,
            host_ip6: self.host_ip6,
            apps: self.path.apps.clone(),
            frame_buffer: self.path.frame_buffer as usize,
            duration: self.duration,
        }
    }
}

/// `--app` of `pktpath replay`.
const REPLAY_APP_HELP: &str = "App behind the stack, `[PORT=]SPEC` (recorded, echo, discard, http, stall, exec:CMD, \
forward:HOST:PORT); repeatable. A bare SPEC serves every port. Default: recorded, which answers with the recorded \
server's bytes. `exec:CMD` runs `sh -c CMD` per TCP connection (its stdin/stdout are the connection, stderr is \
captured, not shown); `forward:HOST:PORT` (`[v6]:PORT` for IPv6) bridges each TCP connection to a real service. \
Both serve TCP only; UDP to their port is read and dropped.";

/// `--app` of `pktpath live`.
const LIVE_APP_HELP: &str = "App behind the stack, `[PORT=]SPEC` (echo, discard, http, stall, …); repeatable. A bare \
echo, discard or http serves its well-known port (7, 9, 80). Default: 7=echo 9=discard 80=http.";

/// `--app` of `pktpath sim`.
const SIM_APP_HELP: &str = "App behind the stack, `[PORT=]SPEC` with SPEC one of echo, discard, http, stall, \
exec:CMD, forward:HOST:PORT; repeatable. A bare SPEC serves --port. Default: echo. `exec:CMD` runs `sh -c CMD` per \
TCP connection (its stdin/stdout are the connection, stderr is captured, not shown), so `7=exec:cat` echoes; \
`forward:HOST:PORT` (`[v6]:PORT` for IPv6) bridges each TCP connection to a real service, as a userspace proxy. \
Both serve TCP only: the peer sends no UDP to their port.";

fn parse_app(s: &str) -> Result<AppSpec, String> {
    s.parse::<AppSpec>().map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
#[command(after_help = exits!())]
#[command(mut_arg("apps", |a| a.help(SIM_APP_HELP)))]
// A negative number is a bad value of its option (`--speed -1`), not an unknown option `-1`.
#[command(allow_negative_numbers = true)]
pub struct SimArgs {
    /// TCP clients on the peer, each with its own connection: 0 to 1000.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub clients: u16,
    /// Bytes each client sends: 0 to 1073741824 (1 GiB), and at most 1 GiB for all clients together.
    #[arg(long, default_value_t = 65536, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=(1u64 << 30)))]
    pub bytes: u64,
    /// Port the clients connect to: 1 to 65535.
    #[arg(long, default_value_t = 7, value_name = "P", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// UDP datagrams the peer sends to the port: 0 to 10000.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=10000))]
    pub udp: u16,
    /// Swap roles: the app behind pktpath connects to servers on the peer (traces the connect path).
    #[arg(long)]
    pub outbound: bool,
    #[command(flatten)]
    pub path: PathArgs,
    #[command(flatten)]
    pub run: DeterministicArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// One-way delay of the simulated wire, in microseconds: 0 to 10000000.
    #[arg(long, default_value_t = 50, value_name = "US", value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub link_delay_us: u64,
    /// Stop after this much virtual time, finished or not, in seconds: 1 to 86400.
    #[arg(long, default_value_t = 120, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_time: u64,
}

/// The peer holds every client's payload in memory; beyond this the run is refused as a usage error.
pub const MAX_TOTAL_PAYLOAD: u64 = 1 << 30;

impl SimArgs {
    /// Checks that span several options; the message names the values and says what to do.
    pub fn validate(&self) -> Result<(), String> {
        self.path.validate(AppsFor::Sim)?;
        self.output.validate()?;
        let total = self.clients as u64 * self.bytes;
        if total > MAX_TOTAL_PAYLOAD {
            return Err(format!(
                "--clients {} × --bytes {} is {total} bytes of payload, more than the 1 GiB the simulated peer holds; lower one of them",
                self.clients, self.bytes
            ));
        }
        Ok(())
    }

    pub fn spec(&self) -> SimSpec {
        SimSpec {
            clients: self.clients as usize,
            bytes: self.bytes as usize,
            port: self.port,
            udp: self.udp as usize,
            outbound: self.outbound,
            seed: self.run.seed,
            frame_buffer: self.path.frame_buffer as usize,
            apps: self.path.apps.clone(),
            hop_cost_ns: self.run.hop_cost_ns,
            link_delay_ns: self.link_delay_us * 1000,
            max_time_ns: self.max_time * 1_000_000_000,
        }
    }
}

/// Parse the command line. Help and version print and exit 0; any other error prints one line and exits 2.
/// What `pktpath` with no arguments runs: a replay of the built-in demo capture at its recorded pace.
pub fn demo_command() -> Command {
    Cli::try_parse_from(["pktpath", "replay", "--demo"])
        .ok()
        .and_then(|c| c.command)
        .expect("the demo's own arguments parse")
}

pub fn parse() -> Result<Cli, ExitCode> {
    parse_from(std::env::args_os())
}

pub fn parse_from<I, T>(args: I) -> Result<Cli, ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => Ok(cli),
        Err(e) => {
            use clap::error::ErrorKind::*;
            match e.kind() {
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    Err(if e.kind() == DisplayHelpOnMissingArgumentOrSubcommand {
                        ExitCode::from(2)
                    } else {
                        ExitCode::SUCCESS
                    })
                }
                _ => {
                    eprintln!("pktpath: {}", one_line(&e.to_string()));
                    Err(ExitCode::from(2))
                }
            }
        }
    }
}

/// clap's message on one line: its first paragraph (which can continue on indented lines, as in "required
/// arguments were not provided:\n  --export <PATH>"), without the "error: " prefix, plus where to look.
fn one_line(rendered: &str) -> String {
    let paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let text = paragraph.join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let text = if text.is_empty() {
        "invalid arguments"
    } else {
        text
    };
    format!("{text} (see `pktpath --help`)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn live_rejects_a_bad_cidr_or_mac_naming_the_value() {
        for (flag, value) in [
            ("--ip", "10.77.0.300/24"),
            ("--ip", "10.77.0.2"),
            ("--host-ip", "10.77.0.1/33"),
            ("--mac", "02:00:00:77:00"),
            ("--mac", "01:00:5e:00:00:01"),
            ("--tap", "a/b"),
            ("--ip6", "fd77::2"),
            ("--ip6", "fd77::2/129"),
            ("--ip6", "ff02::1/64"),
            ("--ip6", "10.77.0.2/24"),
        ] {
            let e = Cli::try_parse_from(["pktpath", "live", flag, value]).unwrap_err();
            let line = one_line(&e.to_string());
            assert!(line.contains(value), "{line}");
            assert!(!line.contains('\n'));
        }
        let cli = Cli::try_parse_from(["pktpath", "live"]).unwrap();
        let Some(Command::Live(args)) = cli.command else {
            panic!("live")
        };
        assert_eq!(args.tap, "pktpath0");
        assert_eq!(args.ip, (std::net::Ipv4Addr::new(10, 77, 0, 2), 24));
        assert_eq!(args.mac, [2, 0, 0, 0x77, 0, 2]);
        assert_eq!(args.host_ip, None);
        assert_eq!(args.ip6, None);
        // The kernel side's IPv6 address needs the stack's.
        let e = Cli::try_parse_from(["pktpath", "live", "--host-ip6", "fd77::1/64"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(one_line(&e.to_string()).contains("--ip6"), "{e}");
        let cli = Cli::try_parse_from(["pktpath", "live", "--ip6", "fd77::2/64"]).unwrap();
        let Some(Command::Live(args)) = cli.command else {
            panic!("live")
        };
        assert_eq!(args.ip6, Some(("fd77::2".parse().unwrap(), 64)));
    }

    #[test]
    fn the_shared_app_checks_hold_for_every_command() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Some(Command::Sim(a)) => a.validate(),
            Some(Command::Replay(a)) => a.validate(),
            Some(Command::Live(a)) => a.validate(),
            _ => panic!("a run command"),
        };
        for command in [
            &["pktpath", "sim"][..],
            &["pktpath", "replay", "--demo"],
            &["pktpath", "live"],
        ] {
            let twice = [command, &["--app", "80=http", "--app", "80=echo"]].concat();
            assert_eq!(
                parse(&twice).unwrap_err(),
                "--app 80=http and --app 80=echo both serve port 80; give each port one app"
            );
            let recorded = [command, &["--app", "recorded"]].concat();
            assert_eq!(
                parse(&recorded).is_ok(),
                command[1] == "replay",
                "{command:?}"
            );
        }
        let shared =
            Cli::try_parse_from(["pktpath", "sim", "--frame-buffer", "8", "--seed", "3"]).unwrap();
        let Some(Command::Sim(args)) = shared.command else {
            panic!("sim")
        };
        assert_eq!(
            (args.path.frame_buffer, args.run.seed, args.run.hop_cost_ns),
            (8, 3, 1000)
        );
    }

    #[test]
    fn one_line_keeps_the_value() {
        let e = Cli::try_parse_from(["pktpath", "sim", "--clients", "abc"]).unwrap_err();
        let line = one_line(&e.to_string());
        assert!(!line.contains('\n'));
        assert!(line.contains("'abc'"), "{line}");
    }
}
