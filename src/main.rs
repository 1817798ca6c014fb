//! The `pktpath` binary: parse arguments, run the chosen front end, map errors to exit codes
//! (0 ok, 1 runtime error, 2 usage error).

use std::process::ExitCode;

use pktpath::cli::{self, Command};
use pktpath::headless;
use pktpath::replay::run as replay;

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pktpath: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<()> {
    // No command: the built-in demo (the TUI takes this over when it arrives).
    let command = cli.command.unwrap_or_else(cli::demo_command);
    match command {
        Command::Sim(args) => {
            if let Err(usage) = args.validate() {
                eprintln!("pktpath: {usage}");
                std::process::exit(2);
            }
            let spec = args.spec();
            let plan = args.exports();
            // The TUI arrives with its own issue; until then every sim run is headless.
            let result = headless::run_sim_with(&spec, &plan)?;
            let text = headless::summary(&spec, &result, plan.timeline.as_ref());
            headless::print(&mut std::io::stdout().lock(), &text)?;
            Ok(())
        }
        Command::Replay(args) => {
            let spec = args.spec();
            let plan = args.exports();
            let result = replay::run_with(&spec, &plan)?;
            let text = replay::summary(&spec, &result, plan.timeline.as_ref());
            headless::print(&mut std::io::stdout().lock(), &text)?;
            Ok(())
        }
    }
}
