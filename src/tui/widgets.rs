//! The TUI widgets: the pipeline diagram and the packet list, drawn from a `Snapshot`.
//! Everything that carries meaning in colour also carries it in a character (a marker, a glyph, a double
//! border), so `no_color` (NO_COLOR) loses nothing but the colour.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Paragraph, Widget};

use crate::debug::snapshot::{PacketRow, Snapshot, StageCounts};

mod connections;
mod style;

use crate::pipeline::stage::{Dir, OutcomeKind, Stage};
pub use connections::ConnectionsView;
use style::styled;

/// Marks the selected packet's stage in the diagram and the selected row in the list.
pub const SELECTED_MARKER: &str = "▶";
pub const GLYPH_REACHED: &str = "●";
pub const GLYPH_NOT_REACHED: &str = "○";
pub const GLYPH_DROPPED: &str = "✗";

/// Width of the lane labels left of the diagram (`rx →`).
const GUTTER: u16 = 5;
/// A lane drawn as boxes takes this many rows: border, three counters, border.
const BOX_HEIGHT: u16 = 5;

/// Short stage names for boxes too narrow for the full ones (an 80-column terminal).
fn short_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Wire => "wire",
        Stage::FrameBuffer => "frame_buf",
        Stage::Stack => "stack",
        Stage::SocketBuffer => "sock_buf",
        Stage::ConnBuffer => "conn_buf",
        Stage::App => "app",
    }
}

/// The shortest names, for the one-line-per-lane layout of a very short terminal.
fn tiny_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Wire => "wire",
        Stage::FrameBuffer => "fbuf",
        Stage::Stack => "stack",
        Stage::SocketBuffer => "sock",
        Stage::ConnBuffer => "conn",
        Stage::App => "app",
    }
}

/// The longest name that fits `width` cells.
fn stage_label(stage: Stage, width: usize) -> &'static str {
    if stage.name().len() <= width {
        stage.name()
    } else {
        short_name(stage)
    }
}

/// Counts in at most five characters, so a box's line never overflows on a long run.
fn compact(n: u64) -> String {
    match n {
        0..100_000 => n.to_string(),
        100_000..100_000_000 => format!("{}k", n / 1000),
        _ => format!("{}M", n / 1_000_000),
    }
}

/// Both lanes, each stage a box with its queue depth, passed count and drops. The rx lane reads left to right
/// (wire → app), the tx lane below it right to left; a stage keeps its column in both lanes.
pub struct PipelineDiagram<'a> {
    pub snapshot: &'a Snapshot,
    pub no_color: bool,
}

impl PipelineDiagram<'_> {
    /// Rows it needs to draw boxes; with fewer it draws one line per lane.
    pub const FULL_HEIGHT: u16 = 2 * BOX_HEIGHT;

    fn is_selected(&self, dir: Dir, stage: Stage) -> bool {
        self.snapshot.selected_stage() == Some((dir, stage))
    }

    fn draw_box(&self, dir: Dir, stage: Stage, c: StageCounts, area: Rect, buf: &mut Buffer) {
        let selected = self.is_selected(dir, stage);
        let inner_width = usize::from(area.width.saturating_sub(2));
        let (marker, border_type, border_style) = if selected {
            let style = styled(self.no_color, Color::Yellow).add_modifier(Modifier::BOLD);
            (SELECTED_MARKER, BorderType::Double, style)
        } else {
            ("", BorderType::Plain, Style::new())
        };
        let name = stage_label(stage, inner_width.saturating_sub(marker.chars().count()));
        let block = Block::bordered()
            .border_type(border_type)
            .border_style(border_style)
            .title(format!("{marker}{name}"));
        let drop_style = if c.drops > 0 {
            styled(self.no_color, Color::Red)
        } else {
            Style::new()
        };
        let lines = vec![
            Line::from(format!("q {}", compact(c.queued))),
            Line::from(format!("pass {}", compact(c.passed))),
            Line::styled(format!("drop {}", compact(c.drops)), drop_style),
        ];
        Paragraph::new(lines).block(block).render(area, buf);
    }

    /// One line per lane: `▶stack 1/3/0` (queued/passed/drops) per stage.
    fn draw_compact_lane(&self, dir: Dir, y: u16, area: Rect, cell_width: u16, buf: &mut Buffer) {
        for stage in Stage::ALL {
            let x = area.x + GUTTER + stage as u16 * cell_width;
            let c = self.snapshot.counts(dir, stage);
            let selected = self.is_selected(dir, stage);
            let marker = if selected { SELECTED_MARKER } else { " " };
            let style = if selected {
                styled(self.no_color, Color::Yellow).add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            let text = format!(
                "{marker}{} {}/{}/{}",
                tiny_name(stage),
                compact(c.queued),
                compact(c.passed),
                compact(c.drops)
            );
            // The marker column doubles as the gap between cells, so columns line up in both lanes.
            buf.set_stringn(x, y, text, usize::from(cell_width), style);
        }
    }
}

impl Widget for PipelineDiagram<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width <= GUTTER || area.height == 0 {
            return;
        }
        let cell_width = (area.width - GUTTER) / 6;
        if area.height < Self::FULL_HEIGHT {
            buf.set_string(area.x, area.y, "rx →", Style::new());
            self.draw_compact_lane(Dir::Rx, area.y, area, cell_width, buf);
            if area.height > 1 {
                buf.set_string(area.x, area.y + 1, "tx ←", Style::new());
                self.draw_compact_lane(Dir::Tx, area.y + 1, area, cell_width, buf);
            }
            return;
        }
        for (lane, dir, label) in [(0, Dir::Rx, "rx →"), (1, Dir::Tx, "tx ←")] {
            let y = area.y + lane * BOX_HEIGHT;
            buf.set_string(area.x, y + BOX_HEIGHT / 2, label, Style::new());
            for stage in Stage::ALL {
                let x = area.x + GUTTER + stage as u16 * cell_width;
                let rect = Rect::new(x, y, cell_width, BOX_HEIGHT);
                self.draw_box(dir, stage, self.snapshot.counts(dir, stage), rect, buf);
            }
        }
    }
}

/// The packet rows: time, direction, summary, one glyph per stage of its path, outcome. The list scrolls so the
/// selected row is visible; with nothing selected it follows the newest rows.
pub struct PacketList<'a> {
    pub snapshot: &'a Snapshot,
    pub no_color: bool,
}

/// Column widths (the summary takes what is left).
const MARKER_W: usize = 2;
const TIME_W: usize = 10;
const DIR_W: usize = 3;
const PATH_W: usize = 6;
/// Below this width the outcome column shows the kind only; from it, the drop reason too.
const WIDE: u16 = 100;

/// `●●●○○○`: the stages a packet reached along its own path; `✗` where it was dropped.
pub fn path_glyphs(row: &PacketRow) -> String {
    let drop_at = match (row.outcome, row.stage) {
        (Some(OutcomeKind::Dropped), Some(stage)) => Some(stage.position(row.dir)),
        _ => None,
    };
    (0..6)
        .map(|i| match (drop_at == Some(i), row.stages_reached[i]) {
            (true, _) => GLYPH_DROPPED,
            (false, true) => GLYPH_REACHED,
            (false, false) => GLYPH_NOT_REACHED,
        })
        .collect()
}

fn outcome_text(row: &PacketRow, wide: bool) -> String {
    match (row.outcome, row.reason) {
        (None, _) => "in_flight".into(),
        (Some(kind), Some(code)) if wide => format!("{kind} {code}"),
        (Some(kind), _) => kind.name().into(),
    }
}

fn outcome_color(row: &PacketRow) -> Color {
    match row.outcome {
        None => Color::Yellow,
        Some(OutcomeKind::Dropped) => Color::Red,
        Some(OutcomeKind::Delivered | OutcomeKind::Sent) => Color::Green,
        Some(_) => Color::Reset,
    }
}

/// Seconds with microseconds: virtual times start at zero, so this stays short for a long while.
pub(crate) fn format_time(t_ns: u64) -> String {
    format!("{}.{:06}", t_ns / 1_000_000_000, (t_ns / 1000) % 1_000_000)
}

/// Cut to `width` characters, marking the cut with `…`.
pub(crate) fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

impl PacketList<'_> {
    /// The first row shown: keeps the selection on screen, else shows the tail.
    pub fn first_visible(&self, visible: usize) -> usize {
        let rows = self.snapshot.rows.len();
        match self.snapshot.selected_row() {
            Some((i, _)) if i >= visible => i + 1 - visible,
            Some(_) => 0,
            None => rows.saturating_sub(visible),
        }
    }
}

impl Widget for PacketList<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.height == 0 {
            return;
        }
        let width = usize::from(area.width);
        let outcome_w = if area.width >= WIDE { 26 } else { 9 };
        let fixed = MARKER_W + TIME_W + 1 + DIR_W + 1 + 1 + PATH_W + 1 + outcome_w;
        let summary_w = width.saturating_sub(fixed);
        let line = |marker: &str,
                    time: &str,
                    dir: &str,
                    summary: &str,
                    path: &str,
                    outcome: &str| {
            format!(
                "{marker:<MARKER_W$}{time:>TIME_W$} {dir:<DIR_W$} {summary:<summary_w$} {path:<PATH_W$} {outcome}",
                summary = fit(summary, summary_w)
            )
        };
        let header = line("", "time", "dir", "summary", "path", "outcome");
        let header_style = Style::new().add_modifier(Modifier::BOLD);
        buf.set_stringn(area.x, area.y, header, width, header_style);

        let visible = usize::from(area.height - 1);
        let selected = self.snapshot.selected_row().map(|(i, _)| i);
        let first = self.first_visible(visible);
        let shown = self
            .snapshot
            .rows
            .iter()
            .enumerate()
            .skip(first)
            .take(visible);
        for (y, (i, row)) in (area.y + 1..).zip(shown) {
            let is_selected = selected == Some(i);
            let marker = if is_selected { SELECTED_MARKER } else { "" };
            let outcome = fit(&outcome_text(row, area.width >= WIDE), outcome_w);
            let text = line(
                marker,
                &format_time(row.t_ns),
                row.dir.name(),
                &row.summary,
                &path_glyphs(row),
                &outcome,
            );
            let row_style = if is_selected {
                Style::new().add_modifier(Modifier::REVERSED)
            } else {
                Style::new()
            };
            buf.set_stringn(area.x, y, &text, width, row_style);
            // Colour only the outcome, so the rest of the row stays readable on any background.
            let outcome_at = fixed - outcome_w + summary_w;
            if outcome_at < width {
                let outcome_style = row_style.patch(styled(self.no_color, outcome_color(row)));
                let x = area.x + outcome_at as u16;
                buf.set_stringn(x, y, &outcome, width - outcome_at, outcome_style);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debug::snapshot::tests::step_until_at;
    use crate::sim::{self, SimSpec};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    /// The text of every line of the screen, styles ignored.
    fn screen(snapshot: &Snapshot, width: u16, height: u16, no_color: bool) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal
            .draw(|f| {
                let area = f.area();
                let diagram_h = PipelineDiagram::FULL_HEIGHT.min(area.height);
                let top = Rect::new(0, 0, area.width, diagram_h);
                let rest = Rect::new(0, diagram_h, area.width, area.height - diagram_h);
                f.render_widget(PipelineDiagram { snapshot, no_color }, top);
                f.render_widget(PacketList { snapshot, no_color }, rest);
            })
            .unwrap();
        let buf = terminal.backend().buffer().clone();
        (0..height)
            .map(|y| (0..width).map(|x| buf[(x, y)].symbol()).collect::<String>())
            .collect()
    }

    /// A small run stopped while packet 5 (the client's 1000 bytes) sits at `stage`.
    fn sim_at(stage: Stage) -> Snapshot {
        let spec = SimSpec {
            clients: 1,
            bytes: 1000,
            udp: 1,
            ..SimSpec::default()
        };
        let mut run = sim::build(&spec);
        step_until_at(&mut run.pipeline, 5, stage);
        let done: Vec<_> = run.pipeline.drain_finished().collect();
        Snapshot::of(&run.pipeline, &done).select(Some(5))
    }

    #[test]
    fn diagram_at_80x24_shows_every_stage_and_marks_the_selected_packets_stage() {
        let lines = screen(&sim_at(Stage::SocketBuffer), 80, 24, true);
        let rx_top =
            "     ┌wire──────┐┌frame_buf─┐┌stack─────┐╔▶sock_buf═╗┌conn_buf──┐┌app───────┐   ";
        assert_eq!(lines[0], rx_top);
        assert_eq!(
            lines[1],
            "     │q 0       ││q 0       ││q 0       │║q 1       ║│q 0       ││q 0       │   "
        );
        assert_eq!(
            lines[2],
            "rx → │pass 3    ││pass 3    ││pass 3    │║pass 0    ║│pass 0    ││pass 0    │   "
        );
        assert_eq!(
            lines[3],
            "     │drop 0    ││drop 0    ││drop 0    │║drop 0    ║│drop 0    ││drop 0    │   "
        );
        // The tx lane: same columns, no marker; the ACK for packet 5 waits in the tx queue.
        assert_eq!(
            lines[5],
            "     ┌wire──────┐┌frame_buf─┐┌stack─────┐┌sock_buf──┐┌conn_buf──┐┌app───────┐   "
        );
        assert_eq!(
            lines[6],
            "     │q 0       ││q 1       ││q 0       ││q 0       ││q 0       ││q 0       │   "
        );
        assert_eq!(
            lines[7],
            "tx ← │pass 2    ││pass 2    ││pass 3    ││pass 0    ││pass 0    ││pass 0    │   "
        );

        // One hop later the marker (and the double border) has moved to conn_buffer.
        let lines = screen(&sim_at(Stage::ConnBuffer), 80, 24, true);
        let moved =
            "     ┌wire──────┐┌frame_buf─┐┌stack─────┐┌sock_buf──┐╔▶conn_buf═╗┌app───────┐   ";
        assert_eq!(lines[0], moved);
        assert_eq!(
            lines[2],
            "rx → │pass 3    ││pass 3    ││pass 3    ││pass 1    │║pass 0    ║│pass 0    │   "
        );
    }

    #[test]
    fn packet_list_at_80x24_has_columns_glyphs_and_the_selected_row_marker() {
        let lines = screen(&sim_at(Stage::SocketBuffer), 80, 24, true);
        assert_eq!(
            lines[10],
            "        time dir summary                                        path   outcome  "
        );
        assert_eq!(
            lines[11],
            "    0.000050 rx  ARP who-has 10.0.0.1 tell 10.0.0.2             ●●●○○○ consumed "
        );
        assert_eq!(
            lines[12],
            "    0.000052 tx  ARP 10.0.0.1 is-at 02:00:00:00:00:01           ○○○●●● sent     "
        );
        assert_eq!(
            lines[15],
            "▶   0.000256 rx  10.0.0.2:40000 > 10.0.0.1:7 TCP [F.] seq=1831… ●●●●○○ in_flight"
        );
        assert_eq!(
            lines[16],
            "    0.000258 tx  10.0.0.1:7 > 10.0.0.2:40000 TCP [.] seq=42601… ○○○●●○ in_flight"
        );
        assert_eq!(lines[17].trim(), "");
    }

    #[test]
    fn at_120x40_full_stage_names_and_reasons_fit() {
        let lines = screen(&sim_at(Stage::ConnBuffer), 120, 40, true);
        assert_eq!(
            lines[0],
            "     ┌wire─────────────┐┌frame_buffer─────┐┌stack────────────┐┌socket_buffer────┐╔▶conn_buffer═════╗┌app──────────────┐ "
        );
        assert_eq!(
            lines[15].trim_end(),
            "▶   0.000256 rx  10.0.0.2:40000 > 10.0.0.1:7 TCP [F.] seq=1831443218 ack=4260165795 w… ●●●●●○ in_flight"
        );
        assert!(lines[10].contains(" path   outcome "), "{}", lines[10]);
    }

    #[test]
    fn selecting_a_tx_packet_marks_the_tx_lane() {
        let snapshot = sim_at(Stage::SocketBuffer).select(Some(6));
        let lines = screen(&snapshot, 80, 24, true);
        assert!(!lines[0].contains(SELECTED_MARKER), "{}", lines[0]);
        assert_eq!(
            lines[5],
            "     ┌wire──────┐╔▶frame_buf╗┌stack─────┐┌sock_buf──┐┌conn_buf──┐┌app───────┐   "
        );
        assert!(lines[16].starts_with("▶   0.000258 tx"), "{}", lines[16]);
    }

    fn row(id: u64, outcome: Option<OutcomeKind>, stage: Stage, reached: usize) -> PacketRow {
        let mut stages_reached = [false; 6];
        stages_reached[..reached].fill(true);
        PacketRow {
            id,
            t_ns: id * 1_000_000,
            dir: Dir::Rx,
            summary: format!("packet {id}"),
            stages_reached,
            stage: Some(stage),
            outcome,
            reason: (outcome == Some(OutcomeKind::Dropped)).then_some("frame_buffer_full"),
        }
    }

    #[test]
    fn glyphs_show_how_far_a_packet_got_and_where_it_was_dropped() {
        let delivered = row(1, Some(OutcomeKind::Delivered), Stage::App, 6);
        assert_eq!(path_glyphs(&delivered), "●●●●●●");
        let dropped = row(2, Some(OutcomeKind::Dropped), Stage::FrameBuffer, 2);
        assert_eq!(path_glyphs(&dropped), "●✗○○○○");
        let snapshot = Snapshot {
            rows: vec![dropped],
            ..Snapshot::default()
        };
        let wide = screen(&snapshot, 120, 40, true);
        assert!(
            wide[11].ends_with("●✗○○○○ dropped frame_buffer_full "),
            "{}",
            wide[11]
        );
        let narrow = screen(&snapshot, 80, 24, true);
        assert!(narrow[11].ends_with("●✗○○○○ dropped  "), "{}", narrow[11]);
    }

    #[test]
    fn list_scrolls_to_keep_the_selection_visible_and_otherwise_follows_the_tail() {
        let rows: Vec<_> = (1..=40)
            .map(|id| row(id, Some(OutcomeKind::Delivered), Stage::App, 6))
            .collect();
        let snapshot = Snapshot {
            rows,
            ..Snapshot::default()
        };
        // 24 rows - 10 for the diagram - 1 header = 13 packet rows.
        let tail = screen(&snapshot, 80, 24, true);
        assert!(tail[11].contains("packet 28 "), "{}", tail[11]);
        assert!(tail[23].contains("packet 40 "), "{}", tail[23]);
        let selected = screen(&snapshot.clone().select(Some(20)), 80, 24, true);
        assert!(
            selected[23].starts_with("▶   0.020000 rx  packet 20 "),
            "{}",
            selected[23]
        );
        let top = screen(&snapshot.select(Some(2)), 80, 24, true);
        assert!(
            top[11].contains("packet 1 ") && top[12].starts_with("▶"),
            "{}",
            top[12]
        );
    }

    #[test]
    fn short_terminal_gets_one_line_per_lane() {
        let lines = screen(&sim_at(Stage::SocketBuffer), 80, 6, true);
        assert_eq!(
            lines[0],
            "rx →  wire 0/3/0  fbuf 0/3/0  stack 0/3/0▶sock 1/0/0  conn 0/0/0  app 0/0/0     "
        );
        assert_eq!(
            lines[1],
            "tx ←  wire 0/2/0  fbuf 1/2/0  stack 0/3/0 sock 0/0/0  conn 0/0/0  app 0/0/0     "
        );
    }

    #[test]
    fn no_color_draws_without_colour_but_keeps_the_markers() {
        let snapshot = sim_at(Stage::SocketBuffer);
        let draw = |no_color| {
            let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
            terminal
                .draw(|f| {
                    let [top, rest] = f.area().layout(&ratatui::layout::Layout::vertical([
                        ratatui::layout::Constraint::Length(PipelineDiagram::FULL_HEIGHT),
                        ratatui::layout::Constraint::Fill(1),
                    ]));
                    let snapshot = &snapshot;
                    f.render_widget(PipelineDiagram { snapshot, no_color }, top);
                    f.render_widget(PacketList { snapshot, no_color }, rest);
                })
                .unwrap();
            terminal.backend().buffer().clone()
        };
        let plain = draw(true);
        assert!(
            plain
                .content()
                .iter()
                .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
        );
        // The selected box's corner: double border in both, yellow only with colour.
        assert_eq!(plain[(41, 0)].symbol(), "╔");
        let coloured = draw(false);
        assert_eq!(coloured[(41, 0)].fg, Color::Yellow);
        // The selected row is reversed either way (a modifier, not a colour).
        assert!(plain[(5, 15)].modifier.contains(Modifier::REVERSED));
        assert_eq!(coloured[(72, 15)].fg, Color::Yellow, "in_flight outcome");
    }

    #[test]
    fn tiny_terminals_draw_what_fits_without_panicking() {
        let snapshot = sim_at(Stage::SocketBuffer);
        for (w, h) in [(40, 12), (20, 4), (6, 2), (1, 1)] {
            let lines = screen(&snapshot, w, h, true);
            assert_eq!(lines.len(), usize::from(h));
        }
        let lines = screen(&snapshot, 40, 12, true);
        assert_eq!(lines[0], "     ┌wir┐┌fra┐┌sta┐╔▶so╗┌con┐┌app┐     ");
        // The summary gives way first; time, glyphs and outcome keep their columns.
        assert_eq!(lines[10], "        time dir summa… path   outcome  ");
        // Room for one row: the selected one.
        assert_eq!(lines[11], "▶   0.000256 rx  10.0.… ●●●●○○ in_flight");
    }
}
