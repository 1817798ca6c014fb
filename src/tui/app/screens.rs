//! Golden screens: the whole TUI drawn at 80×24 and 120×40 for every panel — status bar, pipeline diagram,
//! packet list, detail pane, connections view (TCP and UDP), input line with its error, breakpoint message —
//! on a deterministic simulated run, compared line for line with the files in `src/tui/app/snapshots/`.

use super::tests::{key, press, screen};
use super::*;
use crate::sim::{self, SimSpec};

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

/// A simulated run with one TCP echo client (2000 bytes) and one UDP exchange.
fn sim_app() -> App {
    let spec = SimSpec {
        clients: 1,
        bytes: 2000,
        udp: 1,
        ..SimSpec::default()
    };
    let build_spec = spec.clone();
    let debugger = Debugger::new(Box::new(move || sim::build(&build_spec).pipeline));
    App::new(debugger, Mode::Sim, Some(1.0))
}

fn assert_screens(app: &App, scene: &str) {
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("{scene}-{w}x{h}"), screen(app, w, h).join("\n"));
    }
}

#[test]
fn running_with_nothing_selected() {
    let mut app = sim_app();
    app.tick(300_000);
    assert_screens(&app, "running");
}

#[test]
fn a_breakpoint_hit_selects_its_packet_and_the_detail_pane_shows_it() {
    let mut app = sim_app();
    press(&mut app, "bdrop\nbstage app\nc");
    assert_screens(&app, "breakpoint");
    // Tab focuses the detail pane, whose end (the hex dump) `G` scrolls to.
    press(&mut app, "\tG");
    assert_screens(&app, "detail-end");
}

#[test]
fn the_connections_view_shows_tcp_connections_and_udp_flows() {
    let mut app = sim_app();
    app.tick(2_000_000);
    press(&mut app, "\t\t");
    assert_screens(&app, "connections");
}

#[test]
fn the_input_line_shows_a_filter_error_under_the_text() {
    let mut app = sim_app();
    press(&mut app, "s/port 7 and (tcp or\n");
    assert_screens(&app, "filter-error");
    app.handle(key(KeyCode::Esc));
    app.paused = false;
    app.tick(2_000_000);
    press(&mut app, "/udp or arp\n");
    assert_screens(&app, "filtered");
}
