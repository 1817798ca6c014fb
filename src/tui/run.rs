//! The TUI's event loop on a real terminal: keys and the mouse wheel go to the `App`, and the screen is drawn
//! at a steady rate (every `FRAME`) however fast events arrive, advancing the run by the real time elapsed times
//! the speed between frames. Drawing reads the app's snapshot; nothing is shared across threads, so no lock.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, MouseEventKind};

use super::app::{App, Control};
use crate::debug::debugger::Debugger;
use crate::debug::live::{LiveDriver, LiveLink, Publisher};
use crate::debug::snapshot::Mode;
use super::term::{TermGuard, quit_signals};
use crate::export::sinks::ExportPlan;
use crate::live::LiveSpec;
use crate::live::run::{LiveResult, LiveRun};
use crate::live::stack_thread::Observer;
use crate::replay::run::ReplaySpec;
use crate::sim::SimSpec;

/// Real time between two frames.
pub const FRAME: Duration = Duration::from_millis(50);

/// Open the TUI on a replay.
pub fn run_replay(spec: &ReplaySpec) -> anyhow::Result<()> {
    let app = App::replay(spec)?;
    run_app(app)
}

/// Open the TUI on a simulated run, virtual time passing at the pace of real time.
pub fn run_sim(spec: &SimSpec) -> anyhow::Result<()> {
    let build_spec = spec.clone();
    let debugger = Debugger::new(Box::new(move || crate::sim::build(&build_spec).pipeline));
    let app =
        App::new(debugger, Mode::Sim, Some(1.0)).with_export_header(crate::headless::header(spec));
    run_app(app)
}

/// Open the TUI on a live run: the stack and tap threads run on their own; the TUI shows what the stack
/// thread publishes and holds it with space, `s` and breakpoints. Quitting (or SIGINT/SIGTERM) restores the
/// terminal, then stops the run, which closes the export complete.
pub fn run_live(spec: &LiveSpec, plan: &ExportPlan) -> anyhow::Result<LiveResult> {
    let link = LiveLink::new();
    let publisher_link = link.clone();
    let run = LiveRun::start(
        spec,
        plan,
        move |frames| Some(Box::new(Publisher::new(publisher_link, frames.clone())) as Observer),
        false,
    )?;
    let driver = LiveDriver::new(link, run.controller());
    let app = App::driving(Box::new(driver), Mode::Live, None);
    let shown = run_app(app);
    let result = run.stop();
    shown?;
    result
}

/// Whether the environment asks for no colour (`NO_COLOR` set and not empty, see no-color.org).
pub fn no_color_requested() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Run `app` on the terminal until `q`, Ctrl-C, SIGINT or SIGTERM. The terminal is restored on every way out.
pub fn run_app(mut app: App) -> anyhow::Result<()> {
    app.no_color = no_color_requested();
    let quit = quit_signals()?;
    let mut guard = TermGuard::enter()?;
    let mut last_tick = Instant::now();
    while !quit.load(Ordering::SeqCst) {
        let frame_start = Instant::now();
        guard.terminal.draw(|f| app.render(f))?;
        // Take events until the next frame is due; a flood of events never delays the next draw.
        let next_frame = frame_start + FRAME;
        loop {
            let now = Instant::now();
            if now >= next_frame || quit.load(Ordering::SeqCst) {
                break;
            }
            if !event::poll(next_frame - now)? {
                break;
            }
            match event::read()? {
                Event::Key(key) if app.handle(key) == Control::Quit => return Ok(()),
                Event::Mouse(mouse) => match mouse.kind {
                    MouseEventKind::ScrollDown => app.wheel(true),
                    MouseEventKind::ScrollUp => app.wheel(false),
                    _ => {}
                },
                _ => {}
            }
        }
        let now = Instant::now();
        let elapsed = now - last_tick;
        last_tick = now;
        app.tick(virtual_elapsed(elapsed, app.speed));
    }
    Ok(())
}

/// Virtual time for `real` elapsed at `speed`; `None` (as fast as possible) is unbounded, and the app's own
/// per-tick move limit keeps a frame short.
pub fn virtual_elapsed(real: Duration, speed: Option<f64>) -> u64 {
    match speed {
        Some(speed) => (real.as_nanos() as f64 * speed).min(u64::MAX as f64) as u64,
        None => u64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_time_is_real_time_times_the_speed() {
        assert_eq!(
            virtual_elapsed(Duration::from_millis(50), Some(1.0)),
            50_000_000
        );
        assert_eq!(
            virtual_elapsed(Duration::from_millis(50), Some(0.5)),
            25_000_000
        );
        assert_eq!(virtual_elapsed(Duration::from_millis(50), None), u64::MAX);
    }
}
