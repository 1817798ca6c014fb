//! The connections view: one block of four lines per TCP connection, open or closed:
//!
//! ```text
//! #1 tcp 10.77.0.2:80 ⇄ 10.77.0.1:49392 echo ESTABLISHED
//!   LISTEN → SYN-RECEIVED → ESTABLISHED
//!   rx [█░░░░░░░░░░] 1460/65536  tx [░░░░░░░░░░░] 0/65536
//!   read 1460 B  written 1460 B
//! ```
//!
//! The history is cut from the left (`…`) so the newest states stay visible. The gauges carry their numbers,
//! so `no_color` loses nothing but the colour.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::style::styled;
use crate::debug::snapshot::{ConnRow, Snapshot};

const INDENT: &str = "  ";
const GAUGE_FULL: char = '█';
const GAUGE_EMPTY: char = '░';

pub struct ConnectionsView<'a> {
    pub snapshot: &'a Snapshot,
    pub no_color: bool,
    /// Lines scrolled past (clamped to the content).
    pub scroll: u16,
}

/// `text` cut to `width` cells from the left, marked with `…`.
pub fn fit_left(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut cut = String::from("…");
    cut.extend(text.chars().skip(n - (width - 1)));
    cut
}

/// `rx [███░░░] 1460/65536` in `width` cells (the bar takes what the label and numbers leave, at least 1).
/// A level above zero always shows at least one full cell.
pub fn gauge(label: &str, level: usize, capacity: usize, width: usize) -> (String, String, String) {
    let numbers = format!("{level}/{capacity}");
    let bar_w = width
        .saturating_sub(label.chars().count() + numbers.len() + 4)
        .max(1);
    let filled = if capacity == 0 {
        0
    } else {
        (level.min(capacity) * bar_w).div_ceil(capacity)
    };
    let full: String = std::iter::repeat_n(GAUGE_FULL, filled).collect();
    let empty: String = std::iter::repeat_n(GAUGE_EMPTY, bar_w - filled).collect();
    (format!("{label} ["), full, format!("{empty}] {numbers}"))
}

impl ConnectionsView<'_> {
    fn state_style(&self, c: &ConnRow) -> Style {
        let color = match (c.open, c.state.as_str()) {
            (true, "ESTABLISHED") => Color::Green,
            (true, _) => Color::Yellow,
            (false, _) => Color::DarkGray,
        };
        styled(self.no_color, color).add_modifier(Modifier::BOLD)
    }

    fn gauge_spans(
        &self,
        label: &str,
        level: usize,
        capacity: usize,
        width: usize,
    ) -> Vec<Span<'static>> {
        let (head, full, tail) = gauge(label, level, capacity, width);
        let color = if level * 10 >= capacity * 9 {
            Color::Red
        } else {
            Color::Cyan
        };
        vec![
            Span::raw(head),
            Span::styled(full, styled(self.no_color, color)),
            Span::raw(tail),
        ]
    }

    /// The four lines of one connection, for `width` cells.
    pub fn lines(&self, c: &ConnRow, width: usize) -> Vec<Line<'static>> {
        // A closed connection whose last state is not CLOSED (TIME-WAIT) says so.
        let closed = if c.open || c.state == "CLOSED" {
            ""
        } else {
            " (closed)"
        };
        let head = Line::from(vec![
            Span::raw(format!(
                "#{} {} {} ⇄ {} {} ",
                c.id, c.proto, c.local, c.remote, c.app
            )),
            Span::styled(c.state.clone(), self.state_style(c)),
            Span::raw(closed),
        ]);
        let inner = width.saturating_sub(INDENT.len());
        let history = if c.proto == "udp" {
            "datagrams: UDP has no connection states".to_string()
        } else if c.history.is_empty() {
            "(no state changes yet)".to_string()
        } else {
            c.history.join(" → ")
        };
        let history = Line::raw(format!("{INDENT}{}", fit_left(&history, inner)));
        // Two gauges side by side, two cells apart.
        let half = inner.saturating_sub(2) / 2;
        let mut gauges = vec![Span::raw(INDENT)];
        gauges.extend(self.gauge_spans("rx", c.rx_buffered, c.capacity, half));
        gauges.push(Span::raw("  "));
        gauges.extend(self.gauge_spans("tx", c.tx_buffered, c.capacity, half));
        let bytes = Line::raw(format!(
            "{INDENT}read {} B  written {} B",
            c.app_read, c.app_written
        ));
        vec![head, history, Line::from(gauges), bytes]
    }
}

impl Widget for ConnectionsView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.height == 0 || area.width == 0 {
            return;
        }
        let width = usize::from(area.width);
        let mut lines: Vec<Line> = Vec::new();
        for c in &self.snapshot.connections {
            lines.extend(self.lines(c, width));
        }
        if lines.is_empty() {
            lines.push(Line::raw("no TCP connections yet"));
        }
        let max_scroll = lines.len().saturating_sub(usize::from(area.height));
        let skip = usize::from(self.scroll).min(max_scroll);
        for (i, line) in lines
            .iter()
            .skip(skip)
            .take(usize::from(area.height))
            .enumerate()
        {
            buf.set_line(area.x, area.y + i as u16, line, area.width);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(open: bool, state: &str, history: &[&str]) -> ConnRow {
        ConnRow {
            id: 3,
            proto: "tcp",
            local: "10.0.0.1:80".parse().unwrap(),
            remote: "10.0.0.2:5000".parse().unwrap(),
            app: "echo".into(),
            state: state.into(),
            history: history.iter().map(|s| s.to_string()).collect(),
            open,
            rx_buffered: 1460,
            tx_buffered: 65536,
            capacity: 65536,
            app_read: 100,
            app_written: 7,
        }
    }

    fn text(line: &Line) -> String {
        line.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn a_connection_is_four_lines_with_its_history_cut_from_the_left_and_its_gauges() {
        let snapshot = Snapshot::default();
        let view = ConnectionsView {
            snapshot: &snapshot,
            no_color: true,
            scroll: 0,
        };
        let c = row(
            false,
            "TIME-WAIT",
            &[
                "SYN-SENT",
                "ESTABLISHED",
                "FIN-WAIT-1",
                "FIN-WAIT-2",
                "TIME-WAIT",
            ],
        );
        let lines: Vec<String> = view.lines(&c, 50).iter().map(text).collect();
        assert_eq!(
            lines,
            [
                "#3 tcp 10.0.0.1:80 ⇄ 10.0.0.2:5000 echo TIME-WAIT (closed)",
                "  …TABLISHED → FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT",
                "  rx [█░░░░░░] 1460/65536  tx [██████] 65536/65536",
                "  read 100 B  written 7 B",
            ]
        );
        // Without colour nothing is styled but the state (bold).
        for line in view.lines(&c, 50) {
            assert!(line.spans.iter().all(|s| s.style.fg.is_none()));
        }
    }

    #[test]
    fn the_history_is_cut_from_the_left() {
        assert_eq!(fit_left("abcdef", 6), "abcdef");
        assert_eq!(fit_left("abcdef", 4), "…def");
        assert_eq!(fit_left("abcdef", 0), "");
    }

    #[test]
    fn a_gauge_shows_any_level_above_zero_and_its_numbers() {
        let (head, full, tail) = gauge("rx", 1460, 65536, 24);
        assert_eq!(format!("{head}{full}{tail}"), "rx [█░░░░░░░] 1460/65536");
        let (_, full, tail) = gauge("tx", 0, 65536, 24);
        assert_eq!((full.as_str(), tail.as_str()), ("", "░░░░░░░░░░░] 0/65536"));
        let (_, full, _) = gauge("tx", 65536, 65536, 20);
        assert_eq!(full.chars().count(), 3);
    }
}
