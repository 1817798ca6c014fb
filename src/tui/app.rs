//! `App`: the TUI's state and what its keys do. It owns the run's driver and everything the screen shows
//! besides the run itself (selection, pause, speed, filter, input line, help, focus, status message). No
//! terminal I/O here: a caller feeds it keys and ticks and asks it to draw (see `view`).

use std::cell::Cell;
use std::collections::VecDeque;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::debug::debugger::Debugger;
use crate::debug::driver::{Advanced, Driver, Moved};
use crate::debug::filter::Filter;
use crate::debug::snapshot::{Mode, PacketRow, Snapshot};
use crate::export::sinks::ExportPlan;
use crate::pipeline::clock::Nanos;
use crate::pipeline::engine::StepReport;
use crate::pipeline::ids::PacketId;

mod input;
mod list;
mod view;

pub use list::ListModel;

pub use input::{Input, InputError, InputKind, parse_breakpoint, parse_export_target};

/// `n` gives up after this many moves (a packet stuck in a full buffer may never finish).
pub const NEXT_LIMIT: u64 = 100_000;
/// `c` gives up after this many moves without a breakpoint hit.
pub const CONTINUE_LIMIT: u64 = 1_000_000;
/// At most this many moves per tick, so one tick never freezes the screen.
pub const TICK_LIMIT: u64 = 10_000;
/// What the export input line offers first.
const DEFAULT_EXPORT: &str = "pktpath-timeline.json";
/// Rows the list shows until the first draw says how many fit.
const DEFAULT_LIST_ROWS: usize = 20;
/// Step-back points kept for `u`.
const UNDO_DEPTH: usize = 1_000;
const MIN_SPEED: f64 = 1.0 / 64.0;
const MAX_SPEED: f64 = 64.0;

/// What the caller should do after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Quit,
}

/// The pane that the movement keys act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    #[default]
    List,
    Detail,
    /// The TCP connections, drawn where the detail pane is while it has the focus.
    Connections,
}

/// What `u` goes back to: the debugger's move count and the screen state that went with it.
#[derive(Debug, Clone)]
struct UndoPoint {
    moves: u64,
    selected: Option<PacketId>,
    status: String,
    detail_scroll: u16,
}

pub struct App {
    debugger: Box<dyn Driver>,
    mode: Mode,
    pub selected: Option<PacketId>,
    pub paused: bool,
    /// Replay speed factor; `None` is as fast as possible. The caller turns real time into virtual time with it.
    pub speed: Option<f64>,
    /// The text of the list filter in force (the filter itself is the debugger history's).
    pub list_filter_text: String,
    /// The packet on the list's top line while the selection moves within the screen; `None` follows the
    /// newest packets.
    top: Option<PacketId>,
    /// How many rows the list showed at the last draw: what a page is, and where scrolling starts.
    list_rows: Cell<usize>,
    pub input: Option<Input>,
    pub help: bool,
    /// Draw without colour (NO_COLOR); every coloured meaning also has a character, see `widgets`.
    pub no_color: bool,
    pub focus: Pane,
    pub detail_scroll: u16,
    /// Lines the connections pane is scrolled past.
    pub conns_scroll: u16,
    /// One line: the last breakpoint hit and why, or what the last key did.
    pub status: String,
    /// The virtual time the run should have reached, advanced by ticks; the clock may run ahead of it when the
    /// run waits for its next event, and then ticks do nothing until it catches up.
    target_ns: Nanos,
    undo: VecDeque<UndoPoint>,
}

impl App {
    pub fn new(debugger: Debugger, mode: Mode, speed: Option<f64>) -> App {
        App::driving(Box::new(debugger), mode, speed)
    }

    /// An app over any run it can drive (a live one included).
    pub fn driving(debugger: Box<dyn Driver>, mode: Mode, speed: Option<f64>) -> App {
        let target_ns = debugger.now();
        App {
            debugger,
            mode,
            selected: None,
            paused: false,
            speed,
            list_filter_text: String::new(),
            top: None,
            list_rows: Cell::new(DEFAULT_LIST_ROWS),
            input: None,
            help: false,
            no_color: false,
            focus: Pane::List,
            detail_scroll: 0,
            conns_scroll: 0,
            status: String::new(),
            target_ns,
            undo: VecDeque::new(),
        }
    }

    pub fn debugger(&self) -> &dyn Driver {
        self.debugger.as_ref()
    }

    /// The run itself, for benchmarks and tests that set up a run's history directly.
    pub fn debugger_mut(&mut self) -> &mut dyn Driver {
        self.debugger.as_mut()
    }

    /// What the screen draws: the run's counters, and the list rows on screen — the page holding the
    /// selection (from `top`), or the newest packets when nothing is selected.
    pub fn snapshot(&self) -> Snapshot {
        let list = ListModel::new(self.debugger.as_ref());
        let rows = self.list_rows.get().max(1);
        let start = self.first_row(&list, rows);
        let shown: Vec<PacketRow> = list
            .window(start, rows)
            .into_iter()
            .filter_map(|id| self.row(id))
            .collect();
        let mut snapshot = self
            .debugger
            .counters()
            .with_mode(self.mode.clone(), self.paused, self.speed)
            .select(self.selected);
        snapshot.rows = shown;
        snapshot.listed = list.len();
        snapshot.first_listed = start;
        snapshot
    }

    /// The rank of the list's top line: `top`, moved just enough to keep the selection on screen.
    fn first_row(&self, list: &ListModel, rows: usize) -> usize {
        let tail = list.len().saturating_sub(rows);
        let Some(selected) = self.selected else {
            return tail;
        };
        let s = list.rank(selected).unwrap_or_else(|r| r);
        let top = match self.top {
            Some(id) => list.rank(id).unwrap_or_else(|r| r),
            None => tail,
        };
        top.clamp(s.saturating_sub(rows - 1), s)
            .min(tail.max(s.saturating_sub(rows - 1)))
    }

    fn row(&self, id: PacketId) -> Option<PacketRow> {
        match self.debugger.packet(id) {
            Some(p) => Some(PacketRow::of(p)),
            None => self.debugger.history().entry(id).map(PacketRow::of_entry),
        }
    }

    /// The list's height at the last draw (the view sets it).
    pub(crate) fn set_list_rows(&self, rows: usize) {
        self.list_rows.set(rows.max(1));
    }

    /// Advance a running app by `elapsed_virtual_ns` of virtual time, stopping (paused) at a breakpoint.
    pub fn tick(&mut self, elapsed_virtual_ns: Nanos) {
        self.debugger.refresh();
        if self.paused {
            return;
        }
        self.target_ns = self.target_ns.saturating_add(elapsed_virtual_ns);
        let before = self.debugger.moves();
        let advanced = self.debugger.advance(self.target_ns, TICK_LIMIT);
        if self.debugger.moves() != before {
            // Ticks are not undo points: `u` after running goes back one move at a time.
            self.undo.clear();
        }
        match advanced {
            Advanced::Reached => {}
            Advanced::Ended => {
                self.paused = true;
                self.status = "the run ended".into();
            }
            Advanced::Hit(hit) => {
                self.set_paused(true);
                self.selected = hit.packet.or(self.selected);
                self.status = hit.why;
            }
        }
    }

    /// Pause or resume, holding a live run's stack thread too.
    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        self.debugger.set_paused(paused);
    }

    pub fn handle(&mut self, key: KeyEvent) -> Control {
        // Terminals that report releases would otherwise act twice per press.
        if key.kind == KeyEventKind::Release {
            return Control::Continue;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Control::Quit;
        }
        if self.input.is_some() {
            self.handle_input(key);
            return Control::Continue;
        }
        if self.help {
            match key.code {
                KeyCode::Char('q') => return Control::Quit,
                _ => self.help = false,
            }
            return Control::Continue;
        }
        match key.code {
            KeyCode::Char('q') => return Control::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Down | KeyCode::Char('j') => self.move_down(),
            KeyCode::Up | KeyCode::Char('k') => self.move_up(),
            KeyCode::Home | KeyCode::Char('g') => self.move_to(true),
            KeyCode::End | KeyCode::Char('G') => self.move_to(false),
            KeyCode::PageDown => self.move_by(self.list_rows.get() as isize),
            KeyCode::PageUp => self.move_by(-(self.list_rows.get() as isize)),
            KeyCode::Char(' ') => self.toggle_pause(),
            KeyCode::Char('s') => self.step(),
            KeyCode::Char('n') => self.next(),
            KeyCode::Char('c') => self.cont(),
            KeyCode::Char('u') | KeyCode::Backspace => self.step_back(),
            KeyCode::Char('b') => self.open_input(InputKind::Breakpoint, String::new()),
            KeyCode::Char('B') => {
                let n = self.debugger.breakpoints().len();
                self.debugger.clear_breakpoints();
                self.status = format!("cleared {n} breakpoints");
            }
            KeyCode::Char('/') => {
                self.open_input(InputKind::ListFilter, self.list_filter_text.clone())
            }
            KeyCode::Char('e') => self.open_input(InputKind::Export, DEFAULT_EXPORT.into()),
            KeyCode::Char('+') => self.change_speed(2.0),
            KeyCode::Char('-') => self.change_speed(0.5),
            KeyCode::Tab => {
                self.focus = match self.focus {
                    Pane::List => Pane::Detail,
                    Pane::Detail => Pane::Connections,
                    Pane::Connections => Pane::List,
                }
            }
            _ => {}
        }
        Control::Continue
    }

    /// The mouse wheel: moves the selection (or scrolls the detail pane when it has the focus), one row per
    /// notch. Ignored while the input line or the help overlay is open.
    pub fn wheel(&mut self, down: bool) {
        if self.input.is_some() || self.help {
            return;
        }
        if down {
            self.move_down()
        } else {
            self.move_up()
        }
    }

    fn open_input(&mut self, kind: InputKind, text: String) {
        self.input = Some(Input {
            kind,
            text,
            error: None,
        });
    }

    fn handle_input(&mut self, key: KeyEvent) {
        let Some(input) = &mut self.input else {
            return;
        };
        match key.code {
            KeyCode::Esc => self.input = None,
            KeyCode::Enter => self.submit_input(),
            KeyCode::Backspace => {
                input.text.pop();
                input.error = None;
            }
            KeyCode::Char(c) => {
                input.text.push(c);
                input.error = None;
            }
            _ => {}
        }
    }

    fn submit_input(&mut self) {
        let Some(input) = &mut self.input else {
            return;
        };
        match input.kind {
            InputKind::ListFilter => match Filter::parse(&input.text) {
                Ok(filter) => {
                    self.list_filter_text = input.text.trim().to_string();
                    self.input = None;
                    self.debugger.set_list_filter(filter);
                    self.top = None;
                }
                Err(e) => {
                    input.error = Some(InputError {
                        column: Some(e.offset),
                        message: e.message,
                    })
                }
            },
            InputKind::Export => match parse_export_target(&input.text) {
                Ok(plan) => {
                    self.input = None;
                    self.export(&plan);
                }
                Err(e) => input.error = Some(e),
            },
            InputKind::Breakpoint => match parse_breakpoint(&input.text) {
                Ok(bp) => {
                    self.status =
                        format!("breakpoint {}: {bp}", self.debugger.breakpoints().len() + 1);
                    self.debugger.add_breakpoint(bp);
                    self.input = None;
                }
                Err(e) => input.error = Some(e),
            },
        }
    }

    /// The focused pane's scroll, if it scrolls (the list moves the selection instead).
    fn pane_scroll(&mut self) -> Option<&mut u16> {
        match self.focus {
            Pane::List => None,
            Pane::Detail => Some(&mut self.detail_scroll),
            Pane::Connections => Some(&mut self.conns_scroll),
        }
    }

    fn move_down(&mut self) {
        if let Some(scroll) = self.pane_scroll() {
            *scroll = scroll.saturating_add(1);
            return;
        }
        self.move_by(1);
    }

    fn move_up(&mut self) {
        if let Some(scroll) = self.pane_scroll() {
            *scroll = scroll.saturating_sub(1);
            return;
        }
        self.move_by(-1);
    }

    /// Move the selection `by` rows (clamped to the list). With nothing selected, down selects the first
    /// row on screen and up the last.
    fn move_by(&mut self, by: isize) {
        let list = ListModel::new(self.debugger.as_ref());
        if list.is_empty() {
            return;
        }
        let rows = self.list_rows.get().max(1);
        let target = match self.selected {
            None => {
                let first = self.first_row(&list, rows);
                if by > 0 {
                    first
                } else {
                    (first + rows).min(list.len()) - 1
                }
            }
            Some(id) => {
                let at = match list.rank(id) {
                    Ok(r) => r as isize + by,
                    // Gone from the list (filtered out): the neighbour in that direction.
                    Err(r) if by > 0 => r as isize + by - 1,
                    Err(r) => r as isize + by,
                };
                at.clamp(0, list.len() as isize - 1) as usize
            }
        };
        self.select_rank(target);
    }

    /// Select the row at `rank`, scrolling as little as keeps it on screen.
    fn select_rank(&mut self, rank: usize) {
        let list = ListModel::new(self.debugger.as_ref());
        let rows = self.list_rows.get().max(1);
        let top = self.first_row(&list, rows);
        let top = top.clamp(rank.saturating_sub(rows - 1), rank);
        let (top, selected) = (list.id_at(top), list.id_at(rank));
        self.top = top;
        self.selected = selected;
        self.detail_scroll = 0;
    }

    fn move_to(&mut self, first: bool) {
        // `G` goes far down; the panes clamp the scroll to their text when drawing.
        if let Some(scroll) = self.pane_scroll() {
            *scroll = if first { 0 } else { u16::MAX };
            return;
        }
        match ListModel::new(self.debugger.as_ref()).len() {
            0 => {}
            n => self.select_rank(if first { 0 } else { n - 1 }),
        }
    }

    fn toggle_pause(&mut self) {
        self.set_paused(!self.paused);
        // Resuming runs at the pace from now on, rather than catching up on the time spent paused.
        self.target_ns = self.debugger.now();
    }

    /// Write the run as far as it has got; the status line says what was written, or why not.
    fn export(&mut self, plan: &ExportPlan) {
        let moves = self.debugger.moves();
        let target = plan
            .timeline
            .as_ref()
            .map(|(p, _)| p)
            .or(plan.pcap.as_ref())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        self.status = match self.debugger.export(plan) {
            Ok((packets, written)) => match written.pcap {
                Some((_, frames)) => {
                    format!("exported {frames} frames to {target} (the run up to move {moves})")
                }
                None => {
                    format!("exported {packets} packets to {target} (the run up to move {moves})")
                }
            },
            Err(e) => format!("export failed: {e}"),
        };
    }

    fn change_speed(&mut self, factor: f64) {
        if self.debugger.is_live() {
            self.status = "live: the run goes at the pace of real traffic".into();
            return;
        }
        match &mut self.speed {
            Some(speed) => *speed = (*speed * factor).clamp(MIN_SPEED, MAX_SPEED),
            None => self.status = "running as fast as possible: no speed to change".into(),
        }
    }

    /// Every debugger move made from a key is paused afterwards and can be undone with `u`.
    fn save_undo_point(&mut self) {
        self.set_paused(true);
        if self.undo.len() == UNDO_DEPTH {
            self.undo.pop_front();
        }
        self.undo.push_back(UndoPoint {
            moves: self.debugger.moves(),
            selected: self.selected,
            status: self.status.clone(),
            detail_scroll: self.detail_scroll,
        });
    }

    /// One hop: a move that did something (waits for the next event are passed through, they show nothing).
    fn step(&mut self) {
        self.save_undo_point();
        loop {
            match self.debugger.step() {
                Moved::Stepped(report) => {
                    if self.selected.is_none() {
                        self.selected = report
                            .hops
                            .first()
                            .map(|(id, _)| *id)
                            .or(report.finished.first().copied());
                    }
                    self.status = describe_step(&report);
                    return;
                }
                Moved::Waited { .. } => {}
                Moved::Ended => {
                    self.status = "the run ended".into();
                    return;
                }
                Moved::Pending => {
                    self.status =
                        "step: nothing to do yet; the step happens when traffic comes".into();
                    return;
                }
            }
        }
    }

    fn next(&mut self) {
        let Some(id) = self.selected else {
            self.status = "next: no packet selected".into();
            return;
        };
        if self
            .debugger
            .packet(id)
            .is_some_and(|p| p.outcome.is_some())
        {
            self.status = format!("next: #{id} has already finished");
            return;
        }
        self.save_undo_point();
        self.debugger.next(id, NEXT_LIMIT);
        self.status = match self.debugger.packet(id).and_then(|p| p.outcome.as_ref()) {
            Some(o) => format!("next: #{id} {} at {}", o.kind.name(), o.stage),
            None if self.debugger.is_live() => {
                format!(
                    "next: #{id} still in flight (a live run is stepped for 2 s at most); n goes on"
                )
            }
            None => format!("next: #{id} still in flight after {NEXT_LIMIT} moves"),
        };
    }

    fn cont(&mut self) {
        if self.debugger.breakpoints().is_empty() {
            self.status = "continue: no breakpoints (b adds one)".into();
            return;
        }
        if self.debugger.is_live() {
            // The stack thread checks every step and holds the run at a hit; `tick` brings the hit in.
            self.set_paused(false);
            self.debugger.cont(CONTINUE_LIMIT);
            self.status = "continue: running until a breakpoint hits".into();
            return;
        }
        self.save_undo_point();
        let before = self.debugger.moves();
        match self.debugger.cont(CONTINUE_LIMIT) {
            Some(hit) => {
                self.selected = hit.packet.or(self.selected);
                self.status = hit.why;
            }
            None if self.debugger.moves() - before >= CONTINUE_LIMIT => {
                self.status = format!("continue: no breakpoint hit in {CONTINUE_LIMIT} moves");
            }
            None => self.status = "continue: the run ended without a breakpoint hit".into(),
        }
    }

    fn step_back(&mut self) {
        self.set_paused(true);
        let (target, point) = match self.undo.pop_back() {
            // One rebuild, however many moves the key made (a continue may have made a million).
            Some(point) => (point.moves, Some(point)),
            None if self.debugger.moves() > 0 => (self.debugger.moves() - 1, None),
            None => {
                self.status = "at the start: nothing to step back to".into();
                return;
            }
        };
        if let Err(why) = self.debugger.rewind_to(target) {
            self.status = format!("step back: {why}");
            return;
        }
        match point {
            Some(point) => {
                self.selected = point.selected;
                self.status = point.status;
                self.detail_scroll = point.detail_scroll;
            }
            None => self.status = format!("stepped back to move {}", self.debugger.moves()),
        }
    }
}

/// `#3 → frame_buffer`, for each hop of a step (a step that only finishes packets says so).
fn describe_step(report: &StepReport) -> String {
    if report.hops.is_empty() {
        let ids: Vec<String> = report.finished.iter().map(|id| format!("#{id}")).collect();
        return format!("step: {} finished", ids.join(" "));
    }
    let hops: Vec<String> = report
        .hops
        .iter()
        .map(|(id, stage)| format!("#{id} → {stage}"))
        .collect();
    format!("step: {}", hops.join(", "))
}

#[cfg(test)]
mod screens;
#[cfg(test)]
mod tests;
