//! Captures smoltcp's own `log` records so each can be attributed to the frame (or timer, or app call) whose
//! processing window produced it. smoltcp's lines carry no socket identity; attribution comes from feeding it
//! one frame at a time and draining this buffer around every window (docs/architecture.md,
//! "What smoltcp tells us").
//!
//! The logger is process-global (the `log` crate allows one), but the buffer is per thread, so pipelines on
//! different threads (tests run in parallel) never see each other's lines. Capture is off on a thread until
//! `begin()` is called, so other stacks on the same thread (the simulated peer) stay silent and cost nothing.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::Once;

/// One line smoltcp logged, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: log::Level,
    /// The smoltcp module, e.g. `smoltcp::socket::tcp`; borrowed from the binary whenever the macro's target
    /// is its module path, which is every smoltcp line, so capturing one costs a single allocation.
    pub target: Cow<'static, str>,
    pub message: String,
}

/// The target of pktpath's own notes among a packet's log lines.
const NOTE_TARGET: &str = "pktpath";

impl LogLine {
    /// A note pktpath adds to a packet's log lines, rendered as `pktpath: MESSAGE`.
    pub fn note(message: String) -> Self {
        LogLine {
            level: log::Level::Info,
            target: Cow::Borrowed(NOTE_TARGET),
            message,
        }
    }

    /// `debug smoltcp::socket::tcp: state=LISTEN=>SYN-RECEIVED`, or `pktpath: …` for a note.
    pub fn render(&self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.target == NOTE_TARGET {
            return write!(f, "{NOTE_TARGET}: {}", self.message);
        }
        let level = match self.level {
            log::Level::Error => "error",
            log::Level::Warn => "warn",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        write!(f, "{level} {}: {}", self.target, self.message)
    }
}

/// Serialized as its rendered line, written straight into the output (no string made first: a packet's
/// log lines are most of an export's text).
impl serde::Serialize for LogLine {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    static LINES: RefCell<Vec<LogLine>> = const { RefCell::new(Vec::new()) };
    static FORMAT: RefCell<String> = const { RefCell::new(String::new()) };
}

struct ThreadLocalLogger;

impl log::Log for ThreadLocalLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        ENABLED.with(Cell::get) && metadata.target().starts_with("smoltcp")
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Formatted into a reused buffer first: the RTT-estimator lines, noise for a path debugger
        // (docs/architecture.md, "What smoltcp tells us"), are dropped without ever allocating.
        let message = FORMAT.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            let _ = fmt::write(&mut *buf, *record.args());
            (!buf.starts_with("rtte:")).then(|| buf.as_str().to_owned())
        });
        let Some(message) = message else { return };
        let target = match record.module_path_static() {
            Some(module) if module == record.target() => Cow::Borrowed(module),
            _ => Cow::Owned(record.target().to_string()),
        };
        LINES.with(|l| {
            l.borrow_mut().push(LogLine {
                level: record.level(),
                target,
                message,
            })
        });
    }

    fn flush(&self) {}
}

static LOGGER: ThreadLocalLogger = ThreadLocalLogger;
static INSTALL: Once = Once::new();

/// Install the capturing logger (once per process) and start capturing on this thread.
/// If another logger was installed first, capture stays empty and attribution falls back to what the frames show.
pub fn begin() {
    INSTALL.call_once(|| {
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
    ENABLED.with(|e| e.set(true));
    LINES.with(|l| l.borrow_mut().clear());
}

/// Stop capturing on this thread.
pub fn end() {
    ENABLED.with(|e| e.set(false));
    LINES.with(|l| l.borrow_mut().clear());
}

/// Run `f` with capture off on this thread (for a stack whose lines belong to nobody on the path).
pub fn muted<R>(f: impl FnOnce() -> R) -> R {
    let was = ENABLED.with(|e| e.replace(false));
    let r = f();
    ENABLED.with(|e| e.set(was));
    r
}

/// Take every line captured on this thread since the last call.
pub fn take() -> Vec<LogLine> {
    LINES.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_only_smoltcp_lines_on_this_thread() {
        begin();
        log::trace!(target: "smoltcp::socket::tcp", "state={}=>{}", "LISTEN", "SYN-RECEIVED");
        log::debug!(target: "other", "not ours");
        log::trace!(target: "smoltcp::socket::tcp", "rtte: sampling");
        let lines = take();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].message, "state=LISTEN=>SYN-RECEIVED");
        assert_eq!(
            lines[0].render(),
            "trace smoltcp::socket::tcp: state=LISTEN=>SYN-RECEIVED"
        );
        assert_eq!(LogLine::note("why".into()).render(), "pktpath: why");
        muted(|| log::debug!(target: "smoltcp::iface", "muted"));
        assert!(take().is_empty());
        let other = std::thread::spawn(take).join().unwrap();
        assert!(other.is_empty());
        end();
    }
}
