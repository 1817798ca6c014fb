//! `App`: the TUI's state and what its keys do. It owns the `Debugger` and everything the screen shows
//! besides the run itself (selection, pause, speed, filter, input line, help, focus, status message). No
//! terminal I/O here: a caller feeds it keys and ticks and asks it to draw (see `view`).

use std::collections::VecDeque;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::debugger::{Debugger, Moved};
use super::filter::Filter;
use super::snapshot::{Mode, Snapshot};
use crate::pipeline::clock::Nanos;
use crate::pipeline::engine::StepReport;
use crate::pipeline::trace::{PacketId, PacketRecord};
use crate::replay::run::{self, ReplaySpec};

mod input;
mod view;

pub use input::{Input, InputError, InputKind, parse_breakpoint};

/// `n` gives up after this many moves (a packet stuck in a full buffer may never finish).
pub const NEXT_LIMIT: u64 = 100_000;
/// `c` gives up after this many moves without a breakpoint hit.
pub const CONTINUE_LIMIT: u64 = 1_000_000;
/// At most this many moves per tick, so one tick never freezes the screen.
pub const TICK_LIMIT: u64 = 10_000;
/// Finished packets the list looks at (the newest), so a long run does not make every frame slower.
pub const LIST_WINDOW: usize = 2_000;
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
    debugger: Debugger,
    mode: Mode,
    pub selected: Option<PacketId>,
    pub paused: bool,
    /// Replay speed factor; `None` is as fast as possible. The caller turns real time into virtual time with it.
    pub speed: Option<f64>,
    /// The list filter in force and the text it was parsed from.
    pub list_filter: Filter,
    pub list_filter_text: String,
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
        let target_ns = debugger.pipeline().now();
        App {
            debugger,
            mode,
            selected: None,
            paused: false,
            speed,
            list_filter: Filter::default(),
            list_filter_text: String::new(),
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

    /// An app over a replay. The replay is prepared once here so a bad capture is an error now, not a panic
    /// at the first step back (which rebuilds it).
    pub fn replay(spec: &ReplaySpec) -> anyhow::Result<App> {
        run::prepare(spec)?;
        let build_spec = spec.clone();
        let debugger = Debugger::new(Box::new(move || {
            run::prepare(&build_spec)
                .expect("the replay prepared once already")
                .pipeline
        }));
        let mode = Mode::Replay {
            file: spec.source.name(),
        };
        Ok(App::new(debugger, mode, spec.speed))
    }

    pub fn debugger(&self) -> &Debugger {
        &self.debugger
    }

    /// What the screen draws: the run's counters, the newest finished packets and those in flight, both
    /// through the list filter.
    pub fn snapshot(&self) -> Snapshot {
        let finished: Vec<&PacketRecord> = self.debugger.finished().collect();
        let window: Vec<PacketRecord> = finished[finished.len().saturating_sub(LIST_WINDOW)..]
            .iter()
            .filter(|p| self.list_filter.matches(p))
            .map(|p| (*p).clone())
            .collect();
        let mut snapshot = Snapshot::of(self.debugger.pipeline(), &window)
            .with_mode(self.mode.clone(), self.paused, self.speed)
            .select(self.selected);
        if !self.list_filter.is_match_all() {
            let debugger = &self.debugger;
            let filter = &self.list_filter;
            snapshot
                .rows
                .retain(|r| debugger.packet(r.id).is_none_or(|p| filter.matches(p)));
        }
        snapshot
    }

    /// Advance a running app by `elapsed_virtual_ns` of virtual time, stopping (paused) at a breakpoint.
    pub fn tick(&mut self, elapsed_virtual_ns: Nanos) {
        if self.paused {
            return;
        }
        self.target_ns = self.target_ns.saturating_add(elapsed_virtual_ns);
        let mut moves = 0;
        while self.debugger.pipeline().now() < self.target_ns && moves < TICK_LIMIT {
            let before = self.debugger.moves();
            // `cont(1)` is one move with the breakpoints checked.
            let hit = self.debugger.cont(1);
            if self.debugger.moves() == before {
                self.paused = true;
                self.status = "the run ended".into();
                break;
            }
            moves += 1;
            // Ticks are not undo points: `u` after running goes back one move at a time.
            self.undo.clear();
            if let Some(hit) = hit {
                self.paused = true;
                self.selected = hit.packet.or(self.selected);
                self.status = hit.why;
                break;
            }
        }
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
            KeyCode::Char(' ') => self.toggle_pause(),
            KeyCode::Char('s') => self.step(),
            KeyCode::Char('n') => self.next(),
            KeyCode::Char('c') => self.cont(),
            KeyCode::Char('u') | KeyCode::Backspace => self.step_back(),
            KeyCode::Char('b') => self.open_input(InputKind::Breakpoint, String::new()),
            KeyCode::Char('/') => {
                self.open_input(InputKind::ListFilter, self.list_filter_text.clone())
            }
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
                    self.list_filter = filter;
                    self.list_filter_text = input.text.trim().to_string();
                    self.input = None;
                }
                Err(e) => {
                    input.error = Some(InputError {
                        column: Some(e.offset),
                        message: e.message,
                    })
                }
            },
            InputKind::Breakpoint => match parse_breakpoint(&input.text) {
                Ok(bp) => {
                    self.status =
                        format!("breakpoint {}: {bp}", self.debugger.breakpoints.len() + 1);
                    self.debugger.breakpoints.push(bp);
                    self.input = None;
                }
                Err(e) => input.error = Some(e),
            },
        }
    }

    /// The ids of the rows the list shows, in order.
    fn row_ids(&self) -> Vec<PacketId> {
        self.snapshot().rows.iter().map(|r| r.id).collect()
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
        let ids = self.row_ids();
        self.selected = match self.selected {
            None => ids.first().copied(),
            Some(s) => ids.iter().find(|&&id| id > s).or(ids.last()).copied(),
        };
        self.detail_scroll = 0;
    }

    fn move_up(&mut self) {
        if let Some(scroll) = self.pane_scroll() {
            *scroll = scroll.saturating_sub(1);
            return;
        }
        let ids = self.row_ids();
        self.selected = match self.selected {
            None => ids.last().copied(),
            Some(s) => ids
                .iter()
                .rev()
                .find(|&&id| id < s)
                .or(ids.first())
                .copied(),
        };
        self.detail_scroll = 0;
    }

    fn move_to(&mut self, first: bool) {
        // `G` goes far down; the panes clamp the scroll to their text when drawing.
        if let Some(scroll) = self.pane_scroll() {
            *scroll = if first { 0 } else { u16::MAX };
            return;
        }
        let ids = self.row_ids();
        self.selected = if first { ids.first() } else { ids.last() }.copied();
        self.detail_scroll = 0;
    }

    fn toggle_pause(&mut self) {
        self.paused = !self.paused;
        // Resuming runs at the pace from now on, rather than catching up on the time spent paused.
        self.target_ns = self.debugger.pipeline().now();
    }

    fn change_speed(&mut self, factor: f64) {
        match &mut self.speed {
            Some(speed) => *speed = (*speed * factor).clamp(MIN_SPEED, MAX_SPEED),
            None => self.status = "running as fast as possible: no speed to change".into(),
        }
    }

    /// Every debugger move made from a key is paused afterwards and can be undone with `u`.
    fn save_undo_point(&mut self) {
        self.paused = true;
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
            None => format!("next: #{id} still in flight after {NEXT_LIMIT} moves"),
        };
    }

    fn cont(&mut self) {
        if self.debugger.breakpoints.is_empty() {
            self.status = "continue: no breakpoints (b adds one)".into();
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
        self.paused = true;
        match self.undo.pop_back() {
            Some(point) => {
                // One rebuild, however many moves the key made (a continue may have made a million).
                self.debugger.rewind_to(point.moves);
                self.selected = point.selected;
                self.status = point.status;
                self.detail_scroll = point.detail_scroll;
            }
            None if self.debugger.moves() > 0 => {
                self.debugger.step_back();
                self.status = format!("stepped back to move {}", self.debugger.moves());
            }
            None => self.status = "at the start: nothing to step back to".into(),
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
mod tests;
