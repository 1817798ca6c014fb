//! SIGINT and SIGTERM during a headless run. The first asks the run to stop at its next batch of steps
//! (`Watch`): it is finished as any run is, its exports closed complete, and the process exits 128 + the
//! signal's number (130, 143), as a shell reports a process the signal ended. A second one ends the process at
//! once (128 + that signal), after removing every export's unfinished temporary file, so none is left behind.
//!
//! The handlers only wake a thread of this module's (signal-hook's self-pipe), which does the rest outside
//! signal context. The TUI has its own flag (`tui::term::quit_signals`); this is for runs without it.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

use super::watch::{Keep, Progress, Watch};
use crate::export::remove_unfinished;

/// The two signals that stop a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

impl Signal {
    fn from_number(n: i32) -> Option<Signal> {
        match n {
            SIGINT => Some(Signal::Int),
            SIGTERM => Some(Signal::Term),
            _ => None,
        }
    }

    pub fn number(self) -> i32 {
        match self {
            Signal::Int => SIGINT,
            Signal::Term => SIGTERM,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    /// 128 + the signal's number, as shells report it: 130 for SIGINT, 143 for SIGTERM.
    pub fn exit_code(self) -> u8 {
        128 + self.number() as u8
    }
}

/// The signals received, watching a run: `batch` stops it once one has come.
pub struct Signals {
    /// The first signal's number, 0 until one comes; written by the signal thread.
    first: Arc<AtomicI32>,
    /// The signal that stopped the run, once a batch has acted on it.
    stopped: Option<Signal>,
}

/// Take SIGINT and SIGTERM for the rest of the process: the first is kept for the run to see, a second
/// exits at once.
pub fn install() -> std::io::Result<Signals> {
    let mut incoming = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let first = Arc::new(AtomicI32::new(0));
    let seen = Arc::clone(&first);
    std::thread::Builder::new()
        .name("pktpath-signals".into())
        .spawn(move || {
            for n in incoming.forever() {
                if seen
                    .compare_exchange(0, n, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
                {
                    second(n);
                }
            }
        })?;
    Ok(Signals {
        first,
        stopped: None,
    })
}

/// A second signal: remove the unfinished temporary files and exit now, without finishing anything.
fn second(n: i32) -> ! {
    remove_unfinished();
    let signal = Signal::from_number(n).unwrap_or(Signal::Int);
    // Not eprintln!: it panics if stderr is gone, and this thread must reach the exit.
    let _ = writeln!(
        std::io::stderr(),
        "pktpath: a second {}: stopped at once; unfinished exports removed",
        signal.name()
    );
    std::process::exit(i32::from(signal.exit_code()));
}

impl Signals {
    /// The first signal received so far, whether or not a run has acted on it.
    pub fn received(&self) -> Option<Signal> {
        Signal::from_number(self.first.load(Ordering::SeqCst))
    }

    /// The signal that stopped the watched run, if one did.
    pub fn stopped(&self) -> Option<Signal> {
        self.stopped
    }

    /// The process's exit code for a run that otherwise went well: 128 + the signal that stopped it, else 0.
    pub fn exit_code(&self) -> ExitCode {
        self.stopped
            .map_or(ExitCode::SUCCESS, |s| ExitCode::from(s.exit_code()))
    }
}

impl Watch for Signals {
    fn batch(&mut self, _progress: &Progress) -> Keep {
        match self.received() {
            Some(signal) => {
                self.stopped = Some(signal);
                Keep::Stop
            }
            None => Keep::Going,
        }
    }

    fn stopped_by(&self) -> Option<&'static str> {
        self.stopped.map(Signal::name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_128_plus_the_signal() {
        assert_eq!(Signal::Int.exit_code(), 130);
        assert_eq!(Signal::Term.exit_code(), 143);
        assert_eq!(Signal::from_number(SIGTERM), Some(Signal::Term));
    }
}
