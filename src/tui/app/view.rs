//! Drawing the whole screen from an `App`: status bar, pipeline diagram, packet list, detail pane for the
//! selected packet (or the connections, while they have the focus), the message or input line, and the help overlay.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::{App, Input, Pane};
use crate::debug::debugger::HISTORY;
use crate::debug::history::Entry;
use crate::debug::snapshot::{Mode, Snapshot};
use crate::pipeline::clock::Nanos;
use crate::pipeline::stage::Stage;
use crate::pipeline::trace::PacketRecord;
use crate::tui::widgets::{ConnectionsView, PacketList, PipelineDiagram, fit, format_time};

/// Below this height the diagram shrinks to one line per lane, leaving room for the list and the detail.
const FULL_DIAGRAM_MIN_HEIGHT: u16 = 30;
/// The diagram's one-line-per-lane form.
const COMPACT_DIAGRAM_HEIGHT: u16 = 2;
/// The source's name in the status bar is cut to this, so the counters after it stay on an 80-column screen.
const MODE_NAME_WIDTH: usize = 20;
const HEX_BYTES_PER_LINE: usize = 16;

/// Every key, for the help overlay; the key handler in `App::handle` is the other half of this table.
pub const KEYS: &[(&str, &str)] = &[
    ("↓ j  ↑ k", "move the selection (scroll in the detail pane)"),
    ("PgDn PgUp", "a page down / up the list"),
    ("g  G", "first / last packet"),
    ("wheel", "scroll: moves the selection, or the focused pane"),
    ("Tab", "next pane: list → detail → connections"),
    ("space", "pause / resume"),
    ("s", "step one hop"),
    ("n", "next: finish the selected packet's path"),
    ("c", "continue to a breakpoint"),
    ("b", "break on: stage NAME, drop, state, buffer N, filter"),
    ("B", "clear every breakpoint"),
    ("u  Bksp", "step back"),
    ("/", "filter the list (Enter applies, Esc cancels)"),
    (
        "e",
        "export the run so far (.json .jsonl .trace.json .pcapng)",
    ),
    ("+  -", "faster / slower"),
    ("?", "this help (any key closes it)"),
    ("q", "quit"),
];

/// A short latency: `800ns`, `1.5µs`, `2.0ms`, `1.250s`.
fn format_latency(ns: Nanos) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.3}s", ns as f64 / 1e9),
    }
}

fn status_bar(s: &Snapshot) -> String {
    let mode = match &s.mode {
        Mode::Live => "LIVE".to_string(),
        Mode::Sim => "SIM".to_string(),
        Mode::Replay { file } => format!("REPLAY {}", fit(file, MODE_NAME_WIDTH)),
    };
    let state = if s.paused { "PAUSED" } else { "RUNNING" };
    let speed = match (&s.mode, s.speed) {
        (Mode::Live, _) => "real time".to_string(),
        (_, Some(x)) => format!("x{x}"),
        (_, None) => "max".to_string(),
    };
    format!(
        "{mode}  {state}  t {}  {speed}  in {} out {}  drops {}  lost {}",
        format_time(s.now_ns),
        s.frames_in,
        s.frames_out,
        s.dropped,
        s.events_lost
    )
}

/// The selected packet, compactly: hops with per-hop latency, outcome, what it caused, smoltcp's lines, hex.
fn detail_lines(p: &PacketRecord) -> Vec<String> {
    let mut lines = vec![format!("#{} {} {}", p.id, p.dir.name(), p.summary())];
    let mut hops = Vec::new();
    let mut previous: Option<Nanos> = None;
    for h in &p.hops {
        hops.push(match previous {
            None => format!("{} {}", h.stage, format_time(h.t_ns)),
            Some(t) => format!("{} +{}", h.stage, format_latency(h.t_ns.saturating_sub(t))),
        });
        previous = Some(h.t_ns);
    }
    lines.push(format!("hops: {}", hops.join(" → ")));
    lines.push(match &p.outcome {
        None => "outcome: in flight".into(),
        Some(o) => {
            let why = o
                .reason
                .as_ref()
                .map(|r| r.to_string())
                .or(o.note.clone())
                .map_or(String::new(), |w| format!(": {w}"));
            format!("outcome: {} at {}{why}", o.kind.name(), o.stage)
        }
    });
    if !p.caused.is_empty() {
        let ids: Vec<String> = p.caused.iter().map(|id| format!("#{id}")).collect();
        lines.push(format!("caused: {}", ids.join(" ")));
    }
    for l in &p.stack_log {
        lines.push(format!("log: {}", l.message));
    }
    lines.extend(p.info.layers());
    for (i, chunk) in p.frame.chunks(HEX_BYTES_PER_LINE).enumerate() {
        let bytes: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        lines.push(format!(
            "{:04x}  {}",
            i * HEX_BYTES_PER_LINE,
            bytes.join(" ")
        ));
    }
    lines
}

/// A packet the history remembers only by its list entry: what it was, how far it got, how it ended.
fn entry_lines(e: &Entry) -> Vec<String> {
    let mut lines = vec![format!("#{} {} {}", e.id, e.dir.name(), e.info.summary())];
    let reached: Vec<&str> = Stage::ALL
        .into_iter()
        .filter(|s| e.has_reached(*s))
        .map(|s| s.name())
        .collect();
    lines.push(format!(
        "reached: {} (first hop {})",
        reached.join(" "),
        format_time(e.t_ns)
    ));
    let why = e.reason.map_or(String::new(), |r| format!(": {r}"));
    lines.push(format!("outcome: {} at {}{why}", e.outcome.name(), e.stage));
    lines.push(format!(
        "hops, log and bytes are kept for the newest {HISTORY} finished packets only"
    ));
    lines.extend(e.info.layers());
    lines
}

/// A pane's title line; the focused pane's is marked and bold.
fn title(text: String, focused: bool) -> Line<'static> {
    if focused {
        Line::styled(
            format!("» {text}"),
            Style::new().add_modifier(Modifier::BOLD),
        )
    } else {
        Line::raw(format!("  {text}"))
    }
}

impl App {
    pub fn render(&self, frame: &mut Frame) {
        let area = frame.area();
        let diagram_h = if area.height >= FULL_DIAGRAM_MIN_HEIGHT {
            PipelineDiagram::FULL_HEIGHT
        } else {
            COMPACT_DIAGRAM_HEIGHT
        };
        let error_rows = self
            .input
            .as_ref()
            .and_then(|i| i.error.as_ref().map(|e| (i.kind.prompt().len(), e)))
            .map_or(0, |(indent, e)| {
                error_lines(indent, e.column, &e.message, area.width).len()
            });
        let bottom_h = 1 + error_rows as u16;
        let [bar, diagram, list, detail, bottom] = area.layout(&Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(diagram_h),
            Constraint::Fill(1),
            Constraint::Fill(1),
            Constraint::Length(bottom_h),
        ]));
        // The list's title line and its column header take two lines; the rest are rows.
        self.set_list_rows(usize::from(list.height.saturating_sub(2)));
        let snapshot = self.snapshot();
        let bar_style = Style::new().add_modifier(Modifier::REVERSED);
        frame.render_widget(Paragraph::new(status_bar(&snapshot)).style(bar_style), bar);
        let no_color = self.no_color;
        let snapshot_ref = &snapshot;
        frame.render_widget(
            PipelineDiagram {
                snapshot: snapshot_ref,
                no_color,
            },
            diagram,
        );
        self.render_list(frame, &snapshot, list);
        if self.focus == Pane::Connections {
            self.render_connections(frame, &snapshot, detail);
        } else {
            self.render_detail(frame, detail);
        }
        match &self.input {
            Some(input) => render_input(frame, input, bottom),
            None => {
                let message = if self.status.is_empty() {
                    "? help  q quit"
                } else {
                    &self.status
                };
                frame.render_widget(Paragraph::new(message), bottom);
            }
        }
        if self.help {
            render_help(frame, area);
        }
    }

    fn render_list(&self, frame: &mut Frame, snapshot: &Snapshot, area: Rect) {
        let [head, rows] = area.layout(&Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
        ]));
        let filter = if self.list_filter_text.is_empty() {
            String::new()
        } else {
            format!(" matching '{}'", self.list_filter_text)
        };
        let forgotten = self.debugger.history().forgotten();
        let forgotten = if forgotten > 0 {
            format!(" ({forgotten} older forgotten)")
        } else {
            String::new()
        };
        let text = format!("packets: {}{filter}{forgotten}", snapshot.listed);
        frame.render_widget(Paragraph::new(title(text, self.focus == Pane::List)), head);
        frame.render_widget(
            PacketList {
                snapshot,
                no_color: self.no_color,
            },
            rows,
        );
    }

    fn render_connections(&self, frame: &mut Frame, snapshot: &Snapshot, area: Rect) {
        let [head, body] = area.layout(&Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
        ]));
        let n = snapshot.connections.len();
        let open = snapshot.connections.iter().filter(|c| c.open).count();
        let text = format!("connections: {n} ({open} open)");
        frame.render_widget(Paragraph::new(title(text, true)), head);
        frame.render_widget(
            ConnectionsView {
                snapshot,
                no_color: self.no_color,
                scroll: self.conns_scroll,
            },
            body,
        );
    }

    fn render_detail(&self, frame: &mut Frame, area: Rect) {
        let [head, body] = area.layout(&Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
        ]));
        let focused = self.focus == Pane::Detail;
        let text = match self.selected {
            Some(id) => {
                if let Some(p) = self.debugger.packet(id) {
                    Some(detail_lines(p))
                } else {
                    self.debugger.history().entry(id).map(entry_lines)
                }
            }
            None => None,
        };
        let Some(text) = text else {
            let text = match self.selected {
                Some(id) => format!("detail: #{id} is not kept (or not made yet)"),
                None => "detail: no packet selected (j/k select, s steps)".into(),
            };
            frame.render_widget(Paragraph::new(title(text, focused)), head);
            return;
        };
        let id = self.selected.unwrap_or_default();
        frame.render_widget(
            Paragraph::new(title(format!("detail: #{id}"), focused)),
            head,
        );
        let lines: Vec<Line> = text.into_iter().map(Line::raw).collect();
        // Clamp so `G` (scroll to the end) leaves the last lines on screen rather than an empty pane.
        let max_scroll = (lines.len() as u16).saturating_sub(body.height);
        let scroll = self.detail_scroll.min(max_scroll);
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .scroll((scroll, 0)),
            body,
        );
    }
}

fn render_input(frame: &mut Frame, input: &Input, area: Rect) {
    let prompt = input.kind.prompt();
    let line = format!("{prompt}{}█", input.text);
    let [text, error] = area.layout(&Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
    ]));
    frame.render_widget(Paragraph::new(line), text);
    if let Some(e) = &input.error {
        let lines = error_lines(prompt.len(), e.column, &e.message, error.width);
        frame.render_widget(Paragraph::new(lines.join("\n")), error);
    }
}

/// The lines under the input: a caret under the offending token (when the parser says where it is) and the
/// message after it; a message that would run off the screen goes before the caret if there is room, else on
/// a line of its own, so neither is cut (only a message wider than the whole screen is).
fn error_lines(indent: usize, column: Option<usize>, message: &str, width: u16) -> Vec<String> {
    let Some(c) = column else {
        return vec![format!("{}{message}", " ".repeat(indent))];
    };
    let caret = indent + c;
    let len = message.chars().count();
    if caret + 2 + len <= usize::from(width) {
        vec![format!("{}^ {message}", " ".repeat(caret))]
    } else if len < caret {
        vec![format!("{}{message} ^", " ".repeat(caret - len - 1))]
    } else {
        vec![format!("{}^", " ".repeat(caret)), message.to_string()]
    }
}

fn render_help(frame: &mut Frame, area: Rect) {
    let key_w = KEYS
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| Line::raw(format!("{k:<key_w$}  {what}")))
        .collect();
    let width = lines.iter().map(|l| l.width()).max().unwrap_or(0) as u16 + 4;
    let height = lines.len() as u16 + 2;
    let rect = Rect::new(
        area.x + area.width.saturating_sub(width) / 2,
        area.y + area.height.saturating_sub(height) / 2,
        width.min(area.width),
        height.min(area.height),
    );
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(" keys ")),
        rect,
    );
}

#[cfg(test)]
mod tests {
    use super::error_lines;

    #[test]
    fn an_error_message_is_never_cut_when_the_screen_can_hold_it() {
        // Fits after the caret.
        assert_eq!(error_lines(8, Some(2), "bad", 80), ["          ^ bad"]);
        // Runs off after the caret, fits before it.
        assert_eq!(
            error_lines(8, Some(60), "expected a port number", 80),
            [format!("{}expected a port number ^", " ".repeat(45))]
        );
        // Fits neither way: the caret, then the message on a line of its own.
        let long = "expected an expression after 'or', found end of input";
        assert_eq!(
            error_lines(8, Some(18), long, 80),
            [format!("{}^", " ".repeat(26)), long.to_string()]
        );
        // No position: the message under the text.
        assert_eq!(error_lines(8, None, "empty", 80), ["        empty"]);
    }
}
