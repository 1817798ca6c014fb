//! The input line (`b` for a breakpoint, `/` for the list filter, `e` for an export): what it is for, its
//! text and its error, and how a breakpoint or an export target is read from what was typed.

use std::path::PathBuf;

use crate::debug::debugger::Breakpoint;
use crate::debug::filter::Filter;
use crate::export::sinks::ExportPlan;
use crate::export::writer::Format;
use crate::pipeline::stage::Stage;

/// What an open input line is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    ListFilter,
    Breakpoint,
    Export,
}

impl InputKind {
    pub fn prompt(self) -> &'static str {
        match self {
            InputKind::ListFilter => "filter: ",
            InputKind::Breakpoint => "break on: ",
            InputKind::Export => "export to: ",
        }
    }
}

/// A parse error under the input line; `column` (into the text) is where the caret goes, if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub column: Option<usize>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub kind: InputKind,
    pub text: String,
    pub error: Option<InputError>,
}

/// `stage NAME`, `drop`, `state`, `buffer N`, or else a filter expression.
pub fn parse_breakpoint(text: &str) -> Result<Breakpoint, InputError> {
    let plain = |message: String| InputError {
        column: None,
        message,
    };
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (None, ..) => Err(plain(
            "type stage NAME, drop, state, buffer N, or a filter expression".into(),
        )),
        (Some("stage"), Some(name), None) => Stage::from_name(name)
            .map(Breakpoint::Stage)
            .ok_or_else(|| {
                let names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
                plain(format!("no stage '{name}' (one of: {})", names.join(", ")))
            }),
        (Some("stage"), ..) => Err(plain("stage needs one name, e.g. stage app".into())),
        (Some("drop"), None, _) => Ok(Breakpoint::AnyDrop),
        (Some("state"), None, _) => Ok(Breakpoint::TcpStateChange),
        (Some("buffer"), Some(n), None) => n
            .parse()
            .map(Breakpoint::BufferAbove)
            .map_err(|_| plain(format!("buffer needs a byte count, not '{n}'"))),
        (Some("buffer"), ..) => Err(plain("buffer needs a byte count, e.g. buffer 4096".into())),
        _ => Filter::parse(text)
            .map(Breakpoint::Filter)
            .map_err(|e| InputError {
                column: Some(e.offset),
                message: e.message,
            }),
    }
}

/// The file an export goes to, its kind chosen by its name: `.jsonl` JSON Lines, `.trace.json` a Chrome /
/// Perfetto trace, `.pcapng` the annotated pcapng, anything else the JSON document.
pub fn parse_export_target(text: &str) -> Result<ExportPlan, InputError> {
    let path = text.trim();
    if path.is_empty() {
        return Err(InputError {
            column: None,
            message: "type a file name: NAME.json, .jsonl, .trace.json or .pcapng".into(),
        });
    }
    let target = PathBuf::from(path);
    Ok(if path.ends_with(".pcapng") {
        ExportPlan {
            timeline: None,
            pcap: Some(target),
            filter: None,
        }
    } else {
        let format = if path.ends_with(".jsonl") {
            Format::Jsonl
        } else if path.ends_with(".trace.json") {
            Format::Chrome
        } else {
            Format::Json
        };
        ExportPlan {
            timeline: Some((target, format)),
            pcap: None,
            filter: None,
        }
    })
}
