//! The `pktpath` binary: parse arguments, run the chosen front end, map errors to exit codes
//! (0 ok, 1 runtime error, 2 usage error).

use std::io::IsTerminal;
use std::process::ExitCode;

use pktpath::cli::{self, Command};
use pktpath::headless;
use pktpath::live::run as live;
use pktpath::replay::run as replay;
use pktpath::tui::run as tui;

/// Every packet record allocates (its frame, hops, log lines) and most are freed soon after: mimalloc's
/// per-thread free lists cost far less here than glibc's malloc, which spent a quarter of a replay's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What a `sim` or `replay` without `--headless` says when stdout is not a terminal (exit 2).
const NOT_A_TERMINAL: &str =
    "pktpath: stdout is not a terminal; add --headless to print a summary instead";
/// What a TUI run with an export option says (exit 2): exports are written by headless runs.
const EXPORT_NEEDS_HEADLESS: &str = "pktpath: --export and --pcap-out are written by headless runs; add --headless (in the TUI, e exports)";

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pktpath: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    let terminal = std::io::stdout().is_terminal();
    // No command: the built-in demo, in the TUI on a terminal, else its headless summary.
    let (command, implicit) = match cli.command {
        Some(command) => (command, false),
        None => (cli::demo_command(), true),
    };
    match command {
        Command::Sim(args) => {
            if let Err(usage) = args.validate() {
                eprintln!("pktpath: {usage}");
                return Ok(ExitCode::from(2));
            }
            let spec = args.spec();
            let plan = args.output.exports();
            if !args.output.headless {
                return in_tui(terminal, &plan, || tui::run_sim(&spec));
            }
            let result = headless::run_sim_with(&spec, &plan)?;
            let text = headless::summary(&spec, &result, plan.timeline.as_ref());
            headless::print(&mut std::io::stdout().lock(), &text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay(args) => {
            let spec = args.spec();
            let plan = args.output.exports();
            if !(args.output.headless || (implicit && !terminal)) {
                return in_tui(terminal, &plan, || tui::run_replay(&spec));
            }
            let result = replay::run_with(&spec, &plan)?;
            let text = replay::summary(&spec, &result, plan.timeline.as_ref());
            headless::print(&mut std::io::stdout().lock(), &text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Live(args) => {
            let spec = args.spec();
            if let Err(usage) = spec.validate() {
                eprintln!("pktpath: {usage}");
                return Ok(ExitCode::from(2));
            }
            let plan = args.output.exports();
            let result = if args.output.headless {
                live::run_headless(&spec, &plan)?
            } else if terminal {
                // A live run writes its exports as it goes, so the TUI takes --export and --pcap-out too.
                tui::run_live(&spec, &plan)?
            } else {
                eprintln!("{NOT_A_TERMINAL}");
                return Ok(ExitCode::from(2));
            };
            let text = live::summary(&spec, &result, plan.timeline.as_ref());
            headless::print(&mut std::io::stdout().lock(), &text)?;
            Ok(match result.tap_error {
                Some(_) => ExitCode::from(1),
                None => ExitCode::SUCCESS,
            })
        }
    }
}

/// Run a front end in the TUI, or say in one line why it cannot be (exit 2).
fn in_tui(
    terminal: bool,
    plan: &pktpath::export::ExportPlan,
    run: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    if !terminal {
        eprintln!("{NOT_A_TERMINAL}");
        return Ok(ExitCode::from(2));
    }
    if plan.timeline.is_some() || plan.pcap.is_some() {
        eprintln!("{EXPORT_NEEDS_HEADLESS}");
        return Ok(ExitCode::from(2));
    }
    run()?;
    Ok(ExitCode::SUCCESS)
}
