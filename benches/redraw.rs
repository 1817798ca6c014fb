//! The TUI's redraw time with 1,000,000 packets in the history (issue 4; goal ≤ 10 ms), beside the same
//! redraw with 1,000 packets, measured in the same run. A benchmark, not a timed test:
//! `cargo bench --bench redraw`.
//!
//! - The app is the real one (`App` over `session::debugger`) over a real capture (`captures/parallel.pcap`, five HTTP
//!   connections) replayed to its end, so the counters, lanes and connections are real. Its history is then
//!   refilled with N packets: the capture's own finished records again and again, renumbered and shifted in
//!   time (the frames are the recorded ones), through the same `History::push` a run uses.
//! - A redraw is `App::render` into a ratatui `TestBackend` (the snapshot, the layout and every widget; not
//!   the terminal's own output, which does not depend on the history's size) at 120×40 and 200×60.
//! - Scenarios: following the newest packets; the selection in the middle of the list; a list filter in
//!   force; and scrolling (PageDown then a redraw, each time).
//!
//! `PKTPATH_BENCH_REDRAWS` (default 300) sets the redraws per scenario.

use std::time::{Duration, Instant};

use pktpath::debug::filter::Filter;
use pktpath::debug::history::Entry;
use pktpath::pipeline::trace::PacketRecord;
use pktpath::replay::{ReplaySpec, Source, prepare};
use pktpath::session::{self, Spec};
use pktpath::tui::app::App;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

const GOAL_MS: f64 = 10.0;
const FILTER: &str = "tcp and port 80 and not syn";

fn spec() -> ReplaySpec {
    ReplaySpec {
        speed: None,
        tail_ns: 1_000_000_000,
        ..ReplaySpec::of(Source::File(
            concat!(env!("CARGO_MANIFEST_DIR"), "/captures/parallel.pcap").into(),
        ))
    }
}

/// The capture's finished packet records, from a plain headless run of the same replay.
fn recorded_packets() -> Vec<PacketRecord> {
    let (mut pipeline, _) = prepare(&spec()).expect("captures/parallel.pcap replays");
    let pipeline = &mut pipeline;
    let mut packets = Vec::new();
    while !pipeline.run_until(u64::MAX / 4, 4096) {
        packets.extend(pipeline.drain_finished());
    }
    packets.extend(pipeline.drain_finished());
    packets
}

/// The real app at the end of the replay, its history refilled with `n` packets.
fn app_with(n: usize, packets: &[PacketRecord]) -> (App, Duration) {
    let (debugger, mode, speed) =
        session::debugger(&Spec::Replay(spec())).expect("the capture replays");
    let mut app = App::new(debugger, mode, speed);
    while !app.paused {
        app.tick(1_000_000_000);
    }
    let span = packets
        .iter()
        .filter_map(|p| p.hops.last())
        .map(|h| h.t_ns)
        .max()
        .unwrap_or(0)
        + 1;
    let history = app.debugger_mut().history_mut();
    history.clear();
    let start = Instant::now();
    for i in 0..n {
        let lap = (i / packets.len()) as u64;
        let mut p = packets[i % packets.len()].clone();
        p.id = i as u64 + 1;
        for h in &mut p.hops {
            h.t_ns += lap * span;
        }
        history.push(&p);
    }
    (app, start.elapsed())
}

fn press(app: &mut App, code: KeyCode) {
    app.handle(KeyEvent::new(code, KeyModifiers::NONE));
}

struct Times(Vec<Duration>);

impl Times {
    fn ms(&self, q: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort();
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v[i].as_secs_f64() * 1e3
    }
}

/// Redraw `runs` times, calling `before` ahead of each redraw (not timed).
fn redraws(
    app: &mut App,
    size: (u16, u16),
    runs: usize,
    mut before: impl FnMut(&mut App),
) -> Times {
    let mut terminal = Terminal::new(TestBackend::new(size.0, size.1)).expect("test backend");
    // One untimed draw: the app learns the list's height.
    terminal.draw(|f| app.render(f)).expect("draw");
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        before(app);
        let start = Instant::now();
        terminal.draw(|f| app.render(f)).expect("draw");
        times.push(start.elapsed());
    }
    Times(times)
}

fn main() {
    let runs: usize = std::env::var("PKTPATH_BENCH_REDRAWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let packets = recorded_packets();
    println!(
        "redraw benchmark: {} recorded packets from captures/parallel.pcap, {runs} redraws per scenario, \
         entry size {} bytes",
        packets.len(),
        std::mem::size_of::<Entry>()
    );
    let sizes = [(120u16, 40u16), (200, 60)];
    let mut results: Vec<(usize, String, f64, f64)> = Vec::new();
    for n in [1_000usize, 1_000_000] {
        let (mut app, fill) = app_with(n, &packets);
        println!(
            "history of {n}: filled in {:.0} ms ({} entries)",
            fill.as_secs_f64() * 1e3,
            app.debugger().history().total()
        );
        for size in sizes {
            let label = |what: &str| format!("{}x{} {what}", size.0, size.1);
            let tail = redraws(&mut app, size, runs, |_| {});
            results.push((n, label("follow newest"), tail.ms(0.5), tail.ms(0.99)));

            press(&mut app, KeyCode::Char('g'));
            let middle = {
                // Jump to the middle: the rank-addressed list makes each page move O(log n).
                let pages = n / 2 / 30;
                for _ in 0..pages {
                    press(&mut app, KeyCode::PageDown);
                }
                redraws(&mut app, size, runs, |_| {})
            };
            results.push((
                n,
                label("selection mid-list"),
                middle.ms(0.5),
                middle.ms(0.99),
            ));

            let scroll = redraws(&mut app, size, runs, |app| press(app, KeyCode::PageDown));
            results.push((
                n,
                label("PageDown + redraw"),
                scroll.ms(0.5),
                scroll.ms(0.99),
            ));

            let start = Instant::now();
            app.debugger_mut()
                .set_list_filter(Filter::parse(FILTER).expect("filter parses"));
            let apply = start.elapsed();
            let filtered = redraws(&mut app, size, runs, |_| {});
            results.push((
                n,
                label(&format!(
                    "filter '{FILTER}' (applied in {:.0} ms)",
                    apply.as_secs_f64() * 1e3
                )),
                filtered.ms(0.5),
                filtered.ms(0.99),
            ));
            app.debugger_mut().set_list_filter(Filter::default());
            press(&mut app, KeyCode::Char('G'));
        }
    }
    println!(
        "{:>9}  {:<62} {:>9} {:>9}",
        "history", "scenario", "median", "p99"
    );
    for (n, what, median, p99) in &results {
        println!("{n:>9}  {what:<62} {median:>7.3}ms {p99:>7.3}ms");
    }
    let worst_big = results
        .iter()
        .filter(|r| r.0 == 1_000_000)
        .map(|r| r.3)
        .fold(0.0, f64::max);
    let worst_small = results
        .iter()
        .filter(|r| r.0 == 1_000)
        .map(|r| r.3)
        .fold(0.0, f64::max);
    println!(
        "worst p99 with 1,000,000 packets: {worst_big:.3} ms ({:.2}x the worst with 1,000); goal <= {GOAL_MS} ms: {}",
        worst_big / worst_small,
        if worst_big <= GOAL_MS {
            "met"
        } else {
            "NOT met"
        }
    );
}
