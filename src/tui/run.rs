//! The TUI's event loop on a real terminal: keys and the mouse wheel go to the `App`, and the screen is drawn
//! at a steady rate (every `FRAME`) however fast events arrive, advancing the run by the real time elapsed times
//! the speed between frames. Drawing reads the app's snapshot; nothing is shared across threads, so no lock.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, MouseEventKind};

use super::app::{App, Control};
use super::term::{TermGuard, quit_signals};

/// Real time between two frames.
pub const FRAME: Duration = Duration::from_millis(50);

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
