//! The real terminal: a guard that puts it in the TUI's modes (raw, alternate screen, mouse capture, hidden
//! cursor) and takes every one of them back on drop, a panic hook that does the same before the panic message
//! prints, and SIGINT/SIGTERM handlers that only raise a flag the event loop checks, so the loop ends normally
//! and the guard restores the terminal.

use std::io::{self, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};

/// Whether the terminal is in the TUI's modes now; restoring is done once, by whichever exit path comes first.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

/// Owns the terminal while the TUI runs. Dropping it (quit, error, unwinding panic) restores the terminal.
pub struct TermGuard {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TermGuard {
    /// Install the panic hook, then enter raw mode, the alternate screen and mouse capture, and hide the cursor.
    /// If any of that fails, whatever was already changed is undone before the error returns.
    pub fn enter() -> io::Result<TermGuard> {
        install_panic_hook();
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let entered = (|| {
            let mut out = io::stdout();
            // Cleared here rather than with `Terminal::clear`, which asks the terminal for the cursor position
            // (a query some terminals never answer).
            execute!(
                out,
                EnterAlternateScreen,
                EnableMouseCapture,
                Hide,
                Clear(ClearType::All)
            )?;
            let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
            Ok(TermGuard { terminal })
        })();
        if entered.is_err() {
            restore();
        }
        entered
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Take the terminal out of the TUI's modes: mouse capture off, cursor shown, main screen back, raw mode off.
/// Errors are ignored (there is nowhere left to report them); calling it when not active does nothing.
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    let _ = execute!(out, DisableMouseCapture, Show, LeaveAlternateScreen);
    let _ = disable_raw_mode();
    let _ = out.flush();
}

/// Chain a hook that restores the terminal before the previous hook prints the panic, so the message lands on
/// the normal screen and the shell is usable afterwards. Installed once per process.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// A flag raised by SIGINT or SIGTERM. The handlers only store to it; the event loop polls it.
pub fn quit_signals() -> io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    Ok(flag)
}
