use super::*;
use crate::replay::{ReplaySpec, Source};
use crate::session::{self, Spec};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn demo() -> App {
    replay_app(ReplaySpec::of(Source::demo()))
}

/// The app over a replay, as the session hands it to the TUI.
fn replay_app(spec: ReplaySpec) -> App {
    let (debugger, mode, speed) =
        session::debugger(&Spec::Replay(spec)).expect("the capture replays");
    App::new(debugger, mode, speed)
}

pub(super) fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// Press each key in turn (characters of `keys`; `\n` is Enter, `\x1b` Esc).
pub(super) fn press(app: &mut App, keys: &str) -> Control {
    let mut last = Control::Continue;
    for c in keys.chars() {
        let code = match c {
            '\n' => KeyCode::Enter,
            '\x1b' => KeyCode::Esc,
            '\t' => KeyCode::Tab,
            c => KeyCode::Char(c),
        };
        last = app.handle(key(code));
    }
    last
}

/// The text of every line of the screen, styles ignored.
pub(super) fn screen(app: &App, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| app.render(f)).unwrap();
    let buf = terminal.backend().buffer().clone();
    (0..height)
        .map(|y| (0..width).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect()
}

/// The first diagram line (the rx lane's box tops) after each of three `s` presses from the start: the first
/// packet (the peer's ARP request) goes wire → frame_buffer → stack, one hop per press.
const RX_TOPS_100: [&str; 3] = [
    "     ╔▶wire════════╗┌frame_buffer─┐┌stack────────┐┌socket_buffer┐┌conn_buffer──┐┌app──────────┐     ",
    "     ┌wire─────────┐╔▶frame_buffer╗┌stack────────┐┌socket_buffer┐┌conn_buffer──┐┌app──────────┐     ",
    "     ┌wire─────────┐┌frame_buffer─┐╔▶stack═══════╗┌socket_buffer┐┌conn_buffer──┐┌app──────────┐     ",
];
const RX_LANE_80: [&str; 3] = [
    "rx → ▶wire 1/0/0  fbuf 0/0/0  stack 0/0/0 sock 0/0/0  conn 0/0/0  app 0/0/0     ",
    "rx →  wire 0/1/0 ▶fbuf 1/0/0  stack 0/0/0 sock 0/0/0  conn 0/0/0  app 0/0/0     ",
    "rx →  wire 0/1/0  fbuf 0/1/0 ▶stack 0/1/0 sock 0/0/0  conn 0/0/0  app 0/0/0     ",
];

#[test]
fn each_step_moves_the_highlight_one_hop_and_the_status_bar_says_paused() {
    let mut app = demo();
    assert!(!app.paused, "starts running at the replay's pace");
    for (i, t) in ["0.000001", "0.000002", "0.000003"].iter().enumerate() {
        press(&mut app, "s");
        let wide = screen(&app, 100, 30);
        assert_eq!(
            wide[0].trim_end(),
            format!("REPLAY demo (built in: cap…  PAUSED  t {t}  x1  in 1 out 0  drops 0  lost 0")
        );
        assert_eq!(wide[1], RX_TOPS_100[i], "press {}", i + 1);
        let narrow = screen(&app, 80, 24);
        assert_eq!(narrow[1], RX_LANE_80[i], "press {}", i + 1);
    }
    // The selection followed the first packet that moved; the detail pane shows its hops and what it caused.
    let lines = screen(&app, 100, 30);
    assert_eq!(
        lines[13].trim_end(),
        "▶   0.000000 rx  ARP who-has 10.77.0.2 tell 10.77.0.1              ●●●○○○ consumed"
    );
    assert_eq!(lines[20].trim_end(), "  detail: #1");
    assert_eq!(
        lines[22].trim_end(),
        "hops: wire 0.000000 → frame_buffer +1.0µs → stack +1.0µs"
    );
    assert_eq!(
        lines[23].trim_end(),
        "outcome: consumed at stack: ARP request for 10.77.0.2 answered"
    );
    assert_eq!(lines[24].trim_end(), "caused: #2");
    // Then the layers, then the bytes (scrolled to with j once the detail pane has the focus).
    assert_eq!(
        lines[26].trim_end(),
        "Ethernet 02:77:00:00:00:01 > ff:ff:ff:ff:ff:ff type ARP"
    );
    assert_eq!(
        lines[29].trim_end(),
        "step: #1 → stack, #2 → stack, #2 → frame_buffer"
    );
}

#[test]
fn continue_stops_at_a_stage_breakpoint_and_says_which_and_why() {
    let mut app = demo();
    press(&mut app, "bstage app\n");
    assert_eq!(
        screen(&app, 80, 24)[23].trim_end(),
        "breakpoint 1: stage app"
    );
    press(&mut app, "c");
    let lines = screen(&app, 100, 30);
    assert_eq!(lines[29].trim_end(), "stage app: #10 reached app");
    assert!(lines[0].contains("  PAUSED  t 0.000133  "), "{}", lines[0]);
    assert_eq!(
        lines[1],
        "     ┌wire─────────┐┌frame_buffer─┐┌stack────────┐┌socket_buffer┐┌conn_buffer──┐╔▶app═════════╗     "
    );
    // The list shows the newest packets, the hit one among them.
    assert_eq!(
        lines[18].trim_end(),
        "▶   0.000126 rx  10.77.0.1:49392 > 10.77.0.2:80 TCP [P.] seq=3248… ●●●●●● delivered"
    );
    assert_eq!(
        lines[19].trim_end(),
        "    0.000128 tx  10.77.0.2:80 > 10.77.0.1:49392 TCP [.] seq=42601… ○○○●●● sent"
    );
    assert_eq!(lines[20].trim_end(), "  detail: #10");
    assert_eq!(lines[24].trim_end(), "outcome: delivered at app");
}

#[test]
fn a_list_filter_lists_only_the_matching_rows() {
    let mut app = demo();
    press(&mut app, "bstage app\nc/tcp and syn\n");
    assert!(app.input.is_none());
    let lines = screen(&app, 100, 30);
    assert_eq!(lines[11].trim_end(), "» packets: 3 matching 'tcp and syn'");
    let rows: Vec<&str> = lines[13..20].iter().map(|l| l.trim_end()).collect();
    assert_eq!(
        rows,
        [
            "    0.000040 rx  10.77.0.1:49392 > 10.77.0.2:80 TCP [S] seq=32483… ●●●○○○ consumed",
            "    0.000044 tx  10.77.0.2:80 > 10.77.0.1:49392 TCP [S.] seq=4260… ○○○●●● sent",
            "    0.000053 rx  10.77.0.2:80 > 10.77.0.1:49392 TCP [S.] seq=3876… ●○○○○○ consumed",
            "",
            "",
            "",
            "",
        ]
    );
    // The selected packet (not a SYN) stays selected and detailed, though not listed.
    assert_eq!(lines[20].trim_end(), "  detail: #10");
    // An empty filter lists everything again.
    press(&mut app, "/");
    for _ in 0.."tcp and syn".len() {
        app.handle(key(KeyCode::Backspace));
    }
    press(&mut app, "\n");
    assert_eq!(screen(&app, 100, 30)[11].trim_end(), "» packets: 11");
}

#[test]
fn a_bad_filter_shows_the_error_under_the_input_and_the_app_carries_on() {
    let mut app = demo();
    assert_eq!(press(&mut app, "/port x\n"), Control::Continue);
    let lines = screen(&app, 80, 24);
    assert_eq!(lines[22].trim_end(), "filter: port x█");
    assert_eq!(
        lines[23],
        "             ^ expected a port number after 'port', found 'x'                   "
    );
    assert!(
        app.debugger().history().filter().is_match_all(),
        "the old filter stays"
    );
    // Typing clears the error; Esc closes the input without applying; the run goes on.
    press(&mut app, "\x1b");
    assert!(app.input.is_none());
    app.tick(1_000_000);
    assert!(app.debugger().now() >= 1_000_000);
}

#[test]
fn a_bad_breakpoint_shows_its_error_too() {
    let mut app = demo();
    press(&mut app, "bstage nowhere\n");
    let lines = screen(&app, 100, 30);
    assert_eq!(lines[28].trim_end(), "break on: stage nowhere█");
    assert_eq!(
        lines[29].trim_end(),
        "          no stage 'nowhere' (one of: wire, frame_buffer, stack, socket_buffer, conn_buffer, app)"
    );
    assert!(app.debugger().breakpoints().is_empty());
}

#[test]
fn breakpoint_inputs_parse_to_every_kind() {
    let parse = |t: &str| parse_breakpoint(t).map(|b| b.to_string());
    assert_eq!(parse("stage app").unwrap(), "stage app");
    assert_eq!(parse("drop").unwrap(), "any drop");
    assert_eq!(parse(" state ").unwrap(), "TCP state change");
    assert_eq!(parse("buffer 4096").unwrap(), "buffer above 4096 bytes");
    assert_eq!(parse("tcp and syn").unwrap(), "filter 'tcp and syn'");
    assert!(parse("").is_err());
    assert!(parse("buffer lots").unwrap_err().message.contains("'lots'"));
    assert!(parse("stage").is_err());
    assert_eq!(parse("port x").unwrap_err().column, Some(5));
}

#[test]
fn help_lists_every_key_and_any_key_closes_it() {
    let mut app = demo();
    press(&mut app, "s");
    let before = screen(&app, 80, 24);
    press(&mut app, "?");
    // The overlay is centred: its top line, then one line per key in the table's order, then its bottom.
    for (width, height, top, left) in [(80, 24, 2, 4), (120, 40, 10, 24)] {
        let lines = screen(&app, width, height);
        let boxed = |y: usize| -> String { lines[y].chars().skip(left).take(71).collect() };
        assert_eq!(
            boxed(top),
            format!("┌ keys {}┐", "─".repeat(63)),
            "{width}x{height}"
        );
        for (i, (keys, what)) in view::KEYS.iter().enumerate() {
            let text = format!("{keys:<9}  {what}");
            assert_eq!(
                boxed(top + 1 + i),
                format!("│{text:<69}│"),
                "{width}x{height}"
            );
        }
        assert_eq!(
            boxed(top + 1 + view::KEYS.len()),
            format!("└{}┘", "─".repeat(69))
        );
    }
    let keys: Vec<&str> = view::KEYS.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "↓ j  ↑ k",
            "PgDn PgUp",
            "g  G",
            "wheel",
            "Tab",
            "space",
            "s",
            "n",
            "c",
            "b",
            "B",
            "u  Bksp",
            "/",
            "e",
            "+  -",
            "?",
            "q"
        ],
        "every key the issue names, and the page keys"
    );
    press(&mut app, "x");
    assert_eq!(screen(&app, 80, 24), before);
}

#[test]
fn step_back_restores_the_previous_screen_exactly() {
    let mut app = demo();
    press(&mut app, "ss");
    let (wide, narrow) = (screen(&app, 100, 30), screen(&app, 80, 24));
    press(&mut app, "s");
    assert_ne!(screen(&app, 100, 30), wide);
    press(&mut app, "u");
    assert_eq!(screen(&app, 100, 30), wide);
    assert_eq!(screen(&app, 80, 24), narrow);

    // A continue is one step back too, and Backspace is the same key.
    press(&mut app, "bstage app\n");
    let before_continue = screen(&app, 100, 30);
    press(&mut app, "c");
    app.handle(key(KeyCode::Backspace));
    assert_eq!(screen(&app, 100, 30), before_continue);
}

#[test]
fn next_finishes_the_selected_packets_path() {
    let mut app = demo();
    press(&mut app, "s");
    assert_eq!(app.selected, Some(1));
    press(&mut app, "n");
    assert_eq!(app.status, "next: #1 consumed at stack");
    press(&mut app, "n");
    assert_eq!(app.status, "next: #1 has already finished");
}

#[test]
fn movement_keys_walk_the_list_and_tab_switches_to_the_detail_pane() {
    let mut app = demo();
    press(&mut app, "bstage app\nc");
    assert_eq!(app.selected, Some(10));
    press(&mut app, "j");
    assert_eq!(app.selected, Some(11));
    app.handle(key(KeyCode::Up));
    press(&mut app, "k");
    assert_eq!(app.selected, Some(9));
    press(&mut app, "g");
    assert_eq!(app.selected, Some(1));
    press(&mut app, "G");
    assert_eq!(app.selected, Some(11));
    press(&mut app, "\t");
    assert_eq!(app.focus, Pane::Detail);
    press(&mut app, "jj");
    assert_eq!((app.selected, app.detail_scroll), (Some(11), 2));
    assert!(screen(&app, 80, 24)[13].starts_with("» detail: #11"));
}

#[test]
fn speed_keys_double_and_halve_within_bounds() {
    let mut app = demo();
    press(&mut app, "++");
    assert_eq!(app.speed, Some(4.0));
    press(&mut app, "---");
    assert_eq!(app.speed, Some(0.5));
    assert!(screen(&app, 80, 24)[0].contains("  x0.5  "));
    for _ in 0..20 {
        press(&mut app, "+");
    }
    assert_eq!(app.speed, Some(64.0));
}

#[test]
fn ticks_run_at_the_pace_and_stop_at_a_breakpoint() {
    let mut app = demo();
    press(&mut app, " ");
    assert!(app.paused);
    app.tick(1_000_000_000);
    assert_eq!(app.debugger().moves(), 0, "paused: nothing moves");
    press(&mut app, " ");
    app.tick(20_000);
    let now = app.debugger().now();
    assert!((20_000..133_000).contains(&now), "{now}");
    press(&mut app, "bstage app\n");
    app.tick(1_000_000_000);
    assert!(app.paused);
    assert_eq!(app.status, "stage app: #10 reached app");
    assert_eq!(app.selected, Some(10));
}

#[test]
fn q_quits_but_is_just_a_letter_in_the_input_line() {
    let mut app = demo();
    assert_eq!(press(&mut app, "/q"), Control::Continue);
    assert_eq!(app.input.as_ref().unwrap().text, "q");
    assert_eq!(press(&mut app, "\x1bq"), Control::Quit);
    let mut app = demo();
    assert_eq!(press(&mut app, "?q"), Control::Quit);
}

#[test]
fn no_color_draws_the_whole_screen_without_colour() {
    let mut app = demo();
    app.no_color = true;
    press(&mut app, "bstage app\nc?");
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    terminal.draw(|f| app.render(f)).unwrap();
    let buf = terminal.backend().buffer();
    assert!(
        buf.content()
            .iter()
            .all(|c| c.fg == ratatui::style::Color::Reset && c.bg == ratatui::style::Color::Reset)
    );
}

#[test]
fn the_wheel_moves_the_selection_like_the_arrows_but_not_while_help_is_open() {
    let mut app = demo();
    app.tick(1_000_000_000);
    let mut arrows = demo();
    arrows.tick(1_000_000_000);
    assert!(
        ListModel::new(app.debugger()).len() >= 3,
        "the demo has finished packets by 1 s"
    );
    for down in [true, true, true, false] {
        app.wheel(down);
        arrows.handle(key(if down { KeyCode::Down } else { KeyCode::Up }));
        assert_eq!(app.selected, arrows.selected);
    }
    assert!(app.selected.is_some());
    let before = app.selected;
    press(&mut app, "?");
    app.wheel(true);
    assert_eq!(app.selected, before);
    assert!(app.help, "the wheel does not close help");
}

#[test]
fn tab_cycles_to_the_connections_pane_which_shows_the_open_connection_at_a_breakpoint() {
    let mut app = demo();
    press(&mut app, "bstage app\nc\t");
    assert_eq!(app.focus, Pane::Detail);
    press(&mut app, "\t");
    assert_eq!(app.focus, Pane::Connections);
    let lines = screen(&app, 80, 24);
    assert_eq!(
        lines[13..18],
        [
            "» connections: 1 (1 open)                                                       ",
            "#1 tcp 10.77.0.2:80 ⇄ 10.77.0.1:49392 recorded ESTABLISHED                      ",
            "  LISTEN → SYN-RECEIVED → ESTABLISHED                                           ",
            "  rx [░░░░░░░░░░░░░░░░░░░░░░░░░] 0/65536  tx [░░░░░░░░░░░░░░░░░░░░░░░░░] 0/65536",
            "  read 82 B  written 0 B                                                        ",
        ]
    );
    assert_eq!(lines[23].trim_end(), "stage app: #10 reached app");
    let wide = screen(&app, 120, 40);
    let wide: Vec<&str> = wide[25..30].iter().map(|l| l.trim_end()).collect();
    assert_eq!(
        wide,
        [
            "» connections: 1 (1 open)",
            "#1 tcp 10.77.0.2:80 ⇄ 10.77.0.1:49392 recorded ESTABLISHED",
            "  LISTEN → SYN-RECEIVED → ESTABLISHED",
            "  rx [░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░] 0/65536  tx [░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░] 0/65536",
            "  read 82 B  written 0 B",
        ]
    );
    // Tab once more goes back to the list, and the detail pane is back.
    press(&mut app, "\t");
    assert_eq!(app.focus, Pane::List);
    assert_eq!(screen(&app, 80, 24)[13].trim_end(), "  detail: #10");
}

#[test]
fn a_finished_run_shows_the_closed_connection_in_its_final_state() {
    let mut app = demo();
    app.tick(20_000_000_000);
    assert_eq!(app.status, "the run ended");
    press(&mut app, "\t\t");
    let lines = screen(&app, 80, 24);
    assert_eq!(
        lines[13..18],
        [
            "» connections: 1 (0 open)                                                       ",
            "#1 tcp 10.77.0.2:80 ⇄ 10.77.0.1:49392 recorded CLOSED                           ",
            "  LISTEN → SYN-RECEIVED → ESTABLISHED → CLOSE-WAIT → LAST-ACK → CLOSED          ",
            "  rx [░░░░░░░░░░░░░░░░░░░░░░░░░] 0/65536  tx [░░░░░░░░░░░░░░░░░░░░░░░░░] 0/65536",
            "  read 82 B  written 253 B                                                      ",
        ]
    );
    let c = &app.snapshot().connections[0];
    assert!(!c.open);
    // j scrolls the pane; drawing clamps the scroll to its text, which fits here.
    press(&mut app, "jjj");
    assert_eq!(app.conns_scroll, 3);
    assert_eq!(screen(&app, 80, 24)[13..18], lines[13..18]);
    press(&mut app, "g");
    assert_eq!(app.conns_scroll, 0);
}

/// A capture replayed to its end: every packet finished and in the history.
fn finished_replay(capture: &str) -> App {
    let spec = ReplaySpec {
        speed: None,
        tail_ns: 1_000_000_000,
        ..ReplaySpec::of(Source::File(
            format!("{}/captures/{capture}", env!("CARGO_MANIFEST_DIR")).into(),
        ))
    };
    let mut app = replay_app(spec);
    while !app.paused {
        app.tick(1_000_000_000);
    }
    assert_eq!(app.status, "the run ended");
    app
}

#[test]
fn the_list_pages_through_the_whole_history_keeping_the_selection_on_screen() {
    let mut app = finished_replay("parallel.pcap");
    let n = ListModel::new(app.debugger()).len();
    assert_eq!(n, app.debugger().history().total(), "every packet listed");
    assert_eq!(n, 95);
    let lines = screen(&app, 100, 30);
    assert_eq!(lines[11].trim_end(), format!("» packets: {n}"));
    // 30 lines: status, 2-line diagram, then list and detail share the rest; 7 rows fit.
    let rows = 7;
    assert_eq!(app.list_rows.get(), rows);
    let at = |app: &App| {
        let s = app.snapshot();
        let list = ListModel::new(app.debugger());
        let selected = app.selected.map(|id| list.rank(id).unwrap());
        (s.first_listed, selected, s.rows.len())
    };
    press(&mut app, "g");
    assert_eq!(at(&app), (0, Some(0), rows));
    app.handle(key(KeyCode::PageDown));
    assert_eq!(
        at(&app),
        (1, Some(rows), rows),
        "the selection at the bottom line"
    );
    // Up moves within the screen until the top line, then scrolls.
    for _ in 0..rows - 1 {
        press(&mut app, "k");
    }
    assert_eq!(at(&app), (1, Some(1), rows));
    press(&mut app, "k");
    assert_eq!(at(&app), (0, Some(0), rows));
    press(&mut app, "G");
    assert_eq!(at(&app), (n - rows, Some(n - 1), rows));
    let lines = screen(&app, 100, 30);
    assert!(
        lines[19].starts_with('▶'),
        "the last row is selected: {}",
        lines[19]
    );
    app.handle(key(KeyCode::PageUp));
    assert_eq!(at(&app), (n - rows - 1, Some(n - 1 - rows), rows));
    // A filter keeps ranks among the matching packets only.
    press(&mut app, "/syn\n");
    let list = ListModel::new(app.debugger());
    assert_eq!(
        list.len(),
        15,
        "five connections: SYN, SYN-ACK, and the recorded SYN-ACK each"
    );
    press(&mut app, "g");
    assert_eq!(at(&app).1, Some(0));
}

/// A JSON export, read back.
fn exported(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("export written")).expect("valid JSON")
}

/// Export the app's run with `e` to `path` (the input line's suggested name erased first).
fn export_with_e(app: &mut App, path: &std::path::Path) {
    press(app, "e");
    for _ in 0.."pktpath-timeline.json".len() {
        app.handle(key(KeyCode::Backspace));
    }
    press(app, &format!("{}\n", path.display()));
}

/// An export without what says the TUI wrote it (`exported_from`, `tui_move`), which a headless one lacks.
fn without_tui_marks(mut doc: serde_json::Value) -> serde_json::Value {
    let source = doc["source"].as_object_mut().expect("a source object");
    source.remove("exported_from");
    source.remove("tui_move");
    doc
}

#[test]
fn e_exports_the_run_so_far_and_at_the_end_it_is_the_headless_export() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = demo();
    let headless = dir.path().join("headless.json");
    let spec = ReplaySpec::of(Source::demo());
    let plan = ExportPlan::timeline(headless.clone(), crate::export::writer::Format::Json);
    session::run_replay(&spec, &plan).unwrap();
    let headless = exported(&headless);

    // Mid-run: after 12 steps, what has finished, and what is still on its way as in_flight.
    for _ in 0..12 {
        press(&mut app, "s");
    }
    let moves = app.debugger().moves();
    let mid = dir.path().join("mid.json");
    press(&mut app, "e");
    assert_eq!(
        screen(&app, 80, 24)[23].trim_end(),
        "export to: pktpath-timeline.json█"
    );
    app.handle(key(KeyCode::Char('u'))); // typed into the input, not a step back
    for _ in 0.."pktpath-timeline.jsonu".len() {
        app.handle(key(KeyCode::Backspace));
    }
    press(&mut app, &format!("{}\n", mid.display()));
    assert_eq!(app.debugger().moves(), moves, "exporting moves nothing");
    assert!(
        app.status.starts_with("exported ")
            && app
                .status
                .ends_with(&format!("(the run up to move {moves})")),
        "{}",
        app.status
    );
    let doc = exported(&mid);
    assert_eq!(doc["source"]["tui_move"], moves);
    assert_eq!(doc["source"]["exported_from"], "tui");
    let packets = doc["packets"].as_array().unwrap().clone();
    let in_flight: Vec<&serde_json::Value> = packets
        .iter()
        .filter(|p| p["outcome"]["kind"] == "in_flight")
        .collect();
    let finished = app.debugger().history().total();
    assert_eq!(packets.len(), finished + in_flight.len());
    assert_eq!(
        in_flight.len(),
        app.debugger().in_flight().len(),
        "the packets on their way after 12 steps"
    );
    // The same document as the headless export, as far as the run got: the same header, a `replay` object
    // with the same fields, every finished packet exactly as headless wrote it, and each in_flight one the
    // start of its path there.
    let doc = without_tui_marks(doc);
    for key in ["format", "version", "source", "stack"] {
        assert_eq!(doc[key], headless[key], "{key}");
    }
    let replay = doc["replay"].as_object().expect("the replay object");
    let keys: Vec<&String> = replay.keys().collect();
    let headless_keys: Vec<&String> = headless["replay"].as_object().unwrap().keys().collect();
    assert_eq!(keys, headless_keys);
    // The capture read so far: the wire reads it as the run needs its frames.
    let (read, all) = (
        doc["replay"]["capture_frames"].as_u64().unwrap(),
        headless["replay"]["capture_frames"].as_u64().unwrap(),
    );
    assert!(
        read > 0 && read < all,
        "{read} of {all} records read after 12 steps"
    );
    let full = headless["packets"].as_array().unwrap();
    for p in &packets {
        let whole = full
            .iter()
            .find(|h| h["id"] == p["id"])
            .unwrap_or_else(|| panic!("packet {} is in the headless export", p["id"]));
        if p["outcome"]["kind"] == "in_flight" {
            let (hops, all) = (
                p["hops"].as_array().unwrap(),
                whole["hops"].as_array().unwrap(),
            );
            assert!(!hops.is_empty() && hops.len() <= all.len(), "{p}");
            assert_eq!(
                hops[..],
                all[..hops.len()],
                "packet {}: its path so far",
                p["id"]
            );
            assert_eq!(p["frame"], whole["frame"]);
        } else {
            assert_eq!(p, whole, "packet {}: finished the same way", p["id"]);
        }
    }

    // At the end of the run the export is the headless export of the same spec, whole: header, packets,
    // connections, stats and the `replay` object with the diff.
    while !app.paused || app.status != "the run ended" {
        app.paused = false;
        app.tick(1_000_000_000);
    }
    let end = dir.path().join("end.json");
    export_with_e(&mut app, &end);
    let end = exported(&end);
    assert_eq!(end["source"]["exported_from"], "tui");
    assert!(
        headless["replay"]["diff"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    );
    assert_eq!(without_tui_marks(end), headless);
}

#[test]
fn an_export_to_a_bad_place_says_so_and_the_app_carries_on() {
    let mut app = demo();
    press(&mut app, "s");
    press(&mut app, "e");
    for _ in 0.."pktpath-timeline.json".len() {
        app.handle(key(KeyCode::Backspace));
    }
    press(&mut app, "\n");
    assert_eq!(
        app.input
            .as_ref()
            .and_then(|i| i.error.as_ref())
            .map(|e| e.message.as_str()),
        Some("type a file name: NAME.json, .jsonl, .trace.json or .pcapng")
    );
    press(&mut app, "/nonexistent-dir/t.json\n");
    assert!(app.input.is_none());
    assert!(
        app.status
            .starts_with("export failed: cannot write export /nonexistent-dir/t.json: "),
        "{}",
        app.status
    );
    let moves = app.debugger().moves();
    press(&mut app, "s");
    assert!(app.debugger().moves() > moves);
}
