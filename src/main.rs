//! The `pktpath` binary: parse arguments, open the session they ask for, show it in the TUI or run it
//! headless and print its summary, and map errors to exit codes (0 ok, 1 runtime error, 2 usage error; a
//! headless sim or replay stopped by SIGINT or SIGTERM: 130 or 143).

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use pktpath::cli::{self, Command};
use pktpath::debug::driver::Driver;
use pktpath::debug::snapshot::Mode;
use pktpath::export::ExportPlan;
use pktpath::session::progress::ProgressOnStderr;
use pktpath::session::{self, Spec, report, signals};
use pktpath::tui::app::App;
use pktpath::tui::run::run_app;

/// Every packet record allocates (its frame, hops, log lines) and most are freed soon after: mimalloc's
/// per-thread free lists cost far less here than glibc's malloc, which spent a quarter of a replay's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What a `sim` or `replay` without `--headless` says when stdout is not a terminal (exit 2).
const NOT_A_TERMINAL: &str =
    "pktpath: stdout is not a terminal; add --headless to print a summary instead";
/// What a TUI run with an export option says (exit 2): exports are written by headless runs.
/// What a live TUI run with an export to stdout says (exit 2): the screen is there.
const STDOUT_SHOWS_THE_TUI: &str =
    "pktpath: stdout shows the TUI; give --export/--pcap-out a file, or add --headless";
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
        Command::Completions { shell } => {
            cli::write_completions(shell, &mut std::io::stdout().lock());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { command } => {
            cli::write_man(command.as_deref(), &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(args) => {
            if let Err(usage) = args.validate() {
                eprintln!("pktpath: {usage}");
                return Ok(ExitCode::from(2));
            }
            let spec = args.spec();
            let Some(plan) = plan_of(&args.output, &[]) else {
                return Ok(ExitCode::from(2));
            };
            if !args.output.headless {
                return in_tui(terminal, &plan, || Ok(Spec::Sim(spec)));
            }
            let mut watch = (ProgressOnStderr::new(), signals::install()?);
            let result = session::run_sim_watched(&spec, &plan, &mut watch);
            // The progress display is dropped, and so cleared, before the summary (or an error) prints.
            let (progress, signals) = watch;
            drop(progress);
            let result = result?;
            print(
                plan.writes_stdout(),
                &report::sim(&spec, &result, plan.timeline.as_ref()),
            )?;
            Ok(signals.exit_code())
        }
        Command::Replay(args) => {
            if let Err(usage) = args.validate() {
                eprintln!("pktpath: {usage}");
                return Ok(ExitCode::from(2));
            }
            let mut spec = args.spec();
            let capture: Vec<&Path> = args.file.as_deref().into_iter().collect();
            let Some(plan) = plan_of(&args.output, &capture) else {
                return Ok(ExitCode::from(2));
            };
            if !(args.output.headless || (implicit && !terminal)) {
                return in_tui(terminal, &plan, || {
                    spec.source = spec.source.rereadable()?;
                    Ok(Spec::Replay(spec))
                });
            }
            // stdin (`-`), a FIFO or a device reads once, and a replay reads its capture twice: copy it aside.
            spec.source = spec.source.rereadable()?;
            let mut watch = (ProgressOnStderr::new(), signals::install()?);
            let result = session::run_replay_watched(&spec, &plan, &mut watch);
            let (progress, signals) = watch;
            drop(progress);
            let result = result?;
            print(
                plan.writes_stdout(),
                &report::replay(&spec, &result, plan.timeline.as_ref()),
            )?;
            Ok(signals.exit_code())
        }
        Command::Live(args) => {
            if let Err(usage) = args.validate() {
                eprintln!("pktpath: {usage}");
                return Ok(ExitCode::from(2));
            }
            let spec = args.spec();
            let Some(plan) = plan_of(&args.output, &[]) else {
                return Ok(ExitCode::from(2));
            };
            let to_stderr = plan.writes_stdout();
            if !args.output.headless && to_stderr {
                eprintln!("{STDOUT_SHOWS_THE_TUI}");
                return Ok(ExitCode::from(2));
            }
            let result = if args.output.headless {
                session::live::run_headless(&spec, &plan)?
            } else if terminal {
                // A live run writes its exports as it goes, so the TUI takes --export and --pcap-out too.
                session::live::run_shown(&spec, &plan, |driver| show(driver, Mode::Live, None))?
            } else {
                eprintln!("{NOT_A_TERMINAL}");
                return Ok(ExitCode::from(2));
            };
            print(
                to_stderr,
                &report::live(&spec, &result, plan.timeline.as_ref()),
            )?;
            Ok(match result.tap_error {
                Some(_) => ExitCode::from(1),
                None => ExitCode::SUCCESS,
            })
        }
    }
}

/// What `output` asks to write, its `--filter` parsed, checked against the run's `inputs`: a bad expression,
/// or outputs that cannot be written as asked (two on one file, one on the input, a pcapng to a terminal),
/// are said in one line (then exit 2) before anything runs.
fn plan_of(output: &cli::OutputArgs, inputs: &[&Path]) -> Option<ExportPlan> {
    let mut plan = output.exports();
    if let Err(usage) = plan.check(inputs) {
        eprintln!("pktpath: {usage}");
        return None;
    }
    if let Some(expr) = &output.filter {
        match session::filter::export_filter(expr) {
            Ok(filter) => plan.filter = Some(filter),
            Err(e) => {
                eprintln!("pktpath: {e}");
                return None;
            }
        }
    }
    Some(plan)
}

/// The TUI reads keys from stdin when it is a terminal, else from the controlling terminal, /dev/tty (so a
/// capture can come on stdin): without either it cannot run.
fn keys_terminal() -> Result<(), String> {
    if std::io::stdin().is_terminal() {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "the TUI reads keys from a terminal, but stdin is not one and /dev/tty cannot be opened ({e}); add --headless"
        )),
    }
}

/// Print a summary to stdout, or to stderr when an export is being written to stdout.
fn print(to_stderr: bool, text: &str) -> anyhow::Result<()> {
    if to_stderr {
        report::print(&mut std::io::stderr().lock(), text)?;
    } else {
        report::print(&mut std::io::stdout().lock(), text)?;
    }
    Ok(())
}

/// Show a driver in the TUI until the user quits.
fn show(driver: Box<dyn Driver>, mode: Mode, speed: Option<f64>) -> anyhow::Result<()> {
    run_app(App::driving(driver, mode, speed))
}

/// Run a deterministic session in the TUI, or say in one line why it cannot be (exit 2). `spec` makes the
/// run's spec once the TUI can run (a capture on stdin is read only then).
fn in_tui(
    terminal: bool,
    plan: &ExportPlan,
    spec: impl FnOnce() -> anyhow::Result<Spec>,
) -> anyhow::Result<ExitCode> {
    if !terminal {
        eprintln!("{NOT_A_TERMINAL}");
        return Ok(ExitCode::from(2));
    }
    if plan.timeline.is_some() || plan.pcap.is_some() {
        eprintln!("{EXPORT_NEEDS_HEADLESS}");
        return Ok(ExitCode::from(2));
    }
    if let Err(e) = keys_terminal() {
        eprintln!("pktpath: {e}");
        return Ok(ExitCode::from(2));
    }
    let (debugger, mode, speed) = session::debugger(&spec()?)?;
    show(Box::new(debugger), mode, speed)?;
    Ok(ExitCode::SUCCESS)
}
