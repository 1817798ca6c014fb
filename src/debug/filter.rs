//! Filter expressions for the packet list and for breakpoints (issue 4, item 4): a small language in the
//! spirit of pcap-filter.
//!
//! ```text
//! expr      := or
//! or        := and { ("or" | "||") and }
//! and       := unary { ("and" | "&&") unary }
//! unary     := ("not" | "!") unary | "(" expr ")" | predicate
//! predicate := tcp | udp | icmp | arp | ip | ip6            -- from the frame's dissection
//!            | syn | fin | rst | ack | psh                   -- TCP flags (false for anything not TCP)
//!            | rx | tx                                       -- the packet's direction
//!            | delivered | consumed | sent | dropped | in_flight   -- its outcome (in_flight: or none yet)
//!            | [src | dst] host ADDR                         -- IPv4 or IPv6; ARP sender/target count too
//!            | [src | dst] port N                            -- TCP or UDP
//!            | stage NAME                                    -- it has a hop at that stage
//!            | flow N                                        -- its connection id
//! ```
//!
//! Precedence is `not` > `and` > `or`; keywords and stage names are case-insensitive; empty input matches
//! every packet. A bad expression is a [`FilterError`] naming the offending token, what was expected and
//! its byte offset, never a panic. [`Filter`]'s `Display` prints the normalised expression (lower-case
//! keywords, `and`/`or`/`not` words, only the parentheses precedence needs); parsing it again gives the
//! same filter.

use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

use crate::pipeline::dissect::{FrameInfo, Net, Transport};
use crate::pipeline::ids::ConnId;
use crate::pipeline::stage::{Dir, OutcomeKind, Stage};
use crate::pipeline::trace::PacketRecord;

/// Why an expression did not parse: where (a byte offset into the input; the input's length when the
/// problem is its end) and a one-line message naming the offending token and what was expected.
/// Everything before the offending token is ASCII (keywords, addresses, numbers, ASCII blanks), so the
/// offset is also the character column for a caret under the input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("at {offset}: {message}")]
pub struct FilterError {
    pub offset: usize,
    pub message: String,
}

impl FilterError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        FilterError {
            offset,
            message: message.into(),
        }
    }
}

/// Which address or port of a packet a `host`/`port` predicate looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Source or destination.
    Any,
    Src,
    Dst,
}

/// A protocol predicate, decided from the frame's dissection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP over IPv4 or ICMPv6.
    Icmp,
    Arp,
    /// IPv4.
    Ip,
    Ip6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Syn,
    Fin,
    Rst,
    Ack,
    Psh,
}

/// One atomic test on a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pred {
    Proto(Proto),
    Flag(Flag),
    Dir(Dir),
    /// `in_flight` also matches a packet that has no outcome yet.
    Outcome(OutcomeKind),
    Host(Side, IpAddr),
    Port(Side, u16),
    Stage(Stage),
    Flow(ConnId),
}

/// A parsed expression. `And`/`Or` hold two or more operands, never a directly nested node of the same
/// kind (`a or (b or c)` is flattened to `a or b or c`), so long chains are not deep trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Pred(Pred),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// A compiled filter. The default (and the empty expression) matches every packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    expr: Option<Expr>,
}

/// Parentheses plus `not`s deeper than this are refused rather than risking the stack.
pub const MAX_DEPTH: usize = 64;

impl Filter {
    /// Parse an expression; empty (or all-blank) input gives the match-everything filter.
    pub fn parse(input: &str) -> Result<Filter, FilterError> {
        let toks = lex(input);
        let mut p = Parser {
            toks,
            pos: 0,
            depth: 0,
        };
        if p.peek().kind == Kind::End {
            return Ok(Filter::default());
        }
        let expr = p.parse_or(None)?;
        let t = p.peek();
        match t.kind {
            Kind::End => Ok(Filter { expr: Some(expr) }),
            Kind::RParen => Err(t.error(|| "unbalanced parenthesis: unmatched ')'".into())),
            _ => Err(t.error(|| {
                format!(
                    "expected 'and', 'or' or end of input, found {}",
                    t.describe()
                )
            })),
        }
    }

    /// The expression, or `None` for the match-everything filter.
    pub fn expr(&self) -> Option<&Expr> {
        self.expr.as_ref()
    }

    /// True for the empty filter, which matches every packet.
    pub fn is_match_all(&self) -> bool {
        self.expr.is_none()
    }

    /// Does `packet` pass?
    pub fn matches(&self, packet: &(impl Subject + ?Sized)) -> bool {
        let Some(expr) = &self.expr else {
            return true;
        };
        let ctx = Ctx { packet };
        ctx.eval(expr)
    }
}

impl std::str::FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Filter, FilterError> {
        Filter::parse(s)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.expr {
            Some(e) => e.fmt(f),
            None => Ok(()),
        }
    }
}

// ---- matching ----

/// What a filter looks at: a whole packet record, or the compact entry the list keeps for every packet.
pub trait Subject {
    fn dir(&self) -> Dir;
    /// `None` while in flight.
    fn outcome(&self) -> Option<OutcomeKind>;
    fn reached(&self, stage: Stage) -> bool;
    fn flow(&self) -> Option<ConnId>;
    /// The frame's dissection, made when the packet was (filtering never parses a frame again).
    fn frame_info(&self) -> &FrameInfo;
}

impl Subject for PacketRecord {
    fn dir(&self) -> Dir {
        self.dir
    }
    fn outcome(&self) -> Option<OutcomeKind> {
        self.outcome.as_ref().map(|o| o.kind)
    }
    fn reached(&self, stage: Stage) -> bool {
        PacketRecord::reached(self, stage)
    }
    fn flow(&self) -> Option<ConnId> {
        self.flow
    }
    fn frame_info(&self) -> &FrameInfo {
        &self.info
    }
}

struct Ctx<'a, S: Subject + ?Sized> {
    packet: &'a S,
}

impl<S: Subject + ?Sized> Ctx<'_, S> {
    fn info(&self) -> &FrameInfo {
        self.packet.frame_info()
    }

    fn eval(&self, e: &Expr) -> bool {
        match e {
            Expr::Pred(p) => self.pred(p),
            Expr::Not(e) => !self.eval(e),
            Expr::And(es) => es.iter().all(|e| self.eval(e)),
            Expr::Or(es) => es.iter().any(|e| self.eval(e)),
        }
    }

    fn pred(&self, p: &Pred) -> bool {
        let pkt = self.packet;
        match *p {
            Pred::Dir(d) => pkt.dir() == d,
            Pred::Outcome(k) => match pkt.outcome() {
                Some(o) => o == k,
                None => k == OutcomeKind::InFlight,
            },
            Pred::Stage(s) => pkt.reached(s),
            Pred::Flow(id) => pkt.flow() == Some(id),
            Pred::Proto(proto) => {
                let i = self.info();
                match proto {
                    Proto::Tcp => matches!(i.transport, Transport::Tcp { .. }),
                    Proto::Udp => matches!(i.transport, Transport::Udp { .. }),
                    Proto::Icmp => matches!(
                        i.transport,
                        Transport::Icmpv4 { .. } | Transport::Icmpv6 { .. }
                    ),
                    Proto::Arp => matches!(i.net, Net::Arp { .. }),
                    Proto::Ip => matches!(i.net, Net::Ipv4 { .. }),
                    Proto::Ip6 => matches!(i.net, Net::Ipv6 { .. }),
                }
            }
            Pred::Flag(flag) => match &self.info().transport {
                Transport::Tcp { flags, .. } => match flag {
                    Flag::Syn => flags.syn,
                    Flag::Fin => flags.fin,
                    Flag::Rst => flags.rst,
                    Flag::Ack => flags.ack,
                    Flag::Psh => flags.psh,
                },
                _ => false,
            },
            Pred::Host(side, addr) => {
                let (src, dst): (IpAddr, IpAddr) = match self.info().net {
                    Net::Ipv4 { src, dst, .. } => (src.into(), dst.into()),
                    Net::Ipv6 { src, dst, .. } => (src.into(), dst.into()),
                    Net::Arp {
                        sender_ip,
                        target_ip,
                        ..
                    } => (sender_ip.into(), target_ip.into()),
                    _ => return false,
                };
                side_matches(side, src, dst, addr)
            }
            Pred::Port(side, port) => match self.info().transport {
                Transport::Tcp {
                    src_port, dst_port, ..
                }
                | Transport::Udp {
                    src_port, dst_port, ..
                } => side_matches(side, src_port, dst_port, port),
                _ => false,
            },
        }
    }
}

fn side_matches<T: PartialEq>(side: Side, src: T, dst: T, want: T) -> bool {
    match side {
        Side::Any => src == want || dst == want,
        Side::Src => src == want,
        Side::Dst => dst == want,
    }
}

// ---- display ----

impl Expr {
    /// Binding strength: a child weaker than its parent needs parentheses.
    fn strength(&self) -> u8 {
        match self {
            Expr::Or(_) => 1,
            Expr::And(_) => 2,
            Expr::Not(_) => 3,
            Expr::Pred(_) => 4,
        }
    }

    /// Write `self` as an operand that must bind tighter than `above`.
    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, above: u8) -> fmt::Result {
        if self.strength() <= above {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Pred(p) => p.fmt(f),
            Expr::Not(e) => {
                f.write_str("not ")?;
                // `not not x` needs no parentheses; `not (a and b)` does.
                e.fmt_operand(f, 2)
            }
            Expr::And(es) | Expr::Or(es) => {
                let (sep, strength) = match self {
                    Expr::And(_) => (" and ", 2),
                    _ => (" or ", 1),
                };
                for (i, e) in es.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    e.fmt_operand(f, strength)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Pred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |s: Side| match s {
            Side::Any => "",
            Side::Src => "src ",
            Side::Dst => "dst ",
        };
        match *self {
            Pred::Proto(p) => f.write_str(match p {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
                Proto::Icmp => "icmp",
                Proto::Arp => "arp",
                Proto::Ip => "ip",
                Proto::Ip6 => "ip6",
            }),
            Pred::Flag(fl) => f.write_str(match fl {
                Flag::Syn => "syn",
                Flag::Fin => "fin",
                Flag::Rst => "rst",
                Flag::Ack => "ack",
                Flag::Psh => "psh",
            }),
            Pred::Dir(d) => f.write_str(d.name()),
            Pred::Outcome(k) => f.write_str(k.name()),
            Pred::Host(s, a) => write!(f, "{}host {a}", side(s)),
            Pred::Port(s, p) => write!(f, "{}port {p}", side(s)),
            Pred::Stage(s) => write!(f, "stage {s}"),
            Pred::Flow(id) => write!(f, "flow {id}"),
        }
    }
}

// ---- lexer ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    LParen,
    RParen,
    And,
    Or,
    Not,
    /// A lone `&` or `|`. The tokens stop here, so the parser reports it where it reaches it, after
    /// any earlier problem.
    Bad,
    End,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    at: usize,
}

impl Token<'_> {
    /// An error at this token; `message` unless the token is itself a lexical error.
    fn error(&self, message: impl FnOnce() -> String) -> FilterError {
        let message = if self.kind == Kind::Bad {
            format!("unexpected '{0}', expected '{0}{0}'", self.text)
        } else {
            message()
        };
        FilterError::new(self.at, message)
    }

    /// How an error message names this token: `'text'` (shortened if long), or "end of input".
    fn describe(&self) -> String {
        if self.kind == Kind::End {
            return "end of input".into();
        }
        const MAX: usize = 24;
        let shown: String = self.text.chars().take(MAX).collect::<String>();
        let more = if self.text.chars().nth(MAX).is_some() {
            "…"
        } else {
            ""
        };
        format!("'{}{more}'", shown.escape_debug())
    }
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'(' | b')' | b'!' | b'&' | b'|')
}

/// The tokens, ending with `End`, or with `Bad` at the first lone `&`/`|`.
fn lex(input: &str) -> Vec<Token<'_>> {
    let b = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let (kind, len) = match c {
            b'(' => (Kind::LParen, 1),
            b')' => (Kind::RParen, 1),
            b'!' => (Kind::Not, 1),
            b'&' if b.get(i + 1) == Some(&b'&') => (Kind::And, 2),
            b'|' if b.get(i + 1) == Some(&b'|') => (Kind::Or, 2),
            b'&' | b'|' => {
                out.push(Token {
                    kind: Kind::Bad,
                    text: &input[i..i + 1],
                    at: i,
                });
                return out;
            }
            _ => {
                // Delimiters are ASCII, so the word ends on a char boundary.
                let len = b[i..].iter().position(|&c| is_delimiter(c));
                let len = len.unwrap_or(b.len() - i);
                let text = &input[i..i + len];
                let kind = if text.eq_ignore_ascii_case("and") {
                    Kind::And
                } else if text.eq_ignore_ascii_case("or") {
                    Kind::Or
                } else if text.eq_ignore_ascii_case("not") {
                    Kind::Not
                } else {
                    Kind::Word
                };
                (kind, len)
            }
        };
        out.push(Token {
            kind,
            text: &input[i..i + len],
            at: i,
        });
        i += len;
    }
    out.push(Token {
        kind: Kind::End,
        text: "",
        at: input.len(),
    });
    out
}

// ---- parser ----

struct Parser<'a> {
    toks: Vec<Token<'a>>,
    pos: usize,
    depth: usize,
}

const STAGE_NAMES: &str = "wire, frame_buffer, stack, socket_buffer, conn_buffer, app";

impl<'a> Parser<'a> {
    fn peek(&self) -> Token<'a> {
        self.toks[self.pos]
    }

    fn bump(&mut self) -> Token<'a> {
        let t = self.toks[self.pos];
        if !matches!(t.kind, Kind::End | Kind::Bad) {
            self.pos += 1;
        }
        t
    }

    /// `after` names what came before the expression, for "expected an expression after …".
    fn parse_or(&mut self, after: Option<Token<'a>>) -> Result<Expr, FilterError> {
        let first = self.parse_and(after)?;
        if self.peek().kind != Kind::Or {
            return Ok(first);
        }
        let mut all = Vec::new();
        push_flat(&mut all, first, Kind::Or);
        while self.peek().kind == Kind::Or {
            let op = self.bump();
            let e = self.parse_and(Some(op))?;
            push_flat(&mut all, e, Kind::Or);
        }
        Ok(Expr::Or(all))
    }

    fn parse_and(&mut self, after: Option<Token<'a>>) -> Result<Expr, FilterError> {
        let first = self.parse_unary(after)?;
        if self.peek().kind != Kind::And {
            return Ok(first);
        }
        let mut all = Vec::new();
        push_flat(&mut all, first, Kind::And);
        while self.peek().kind == Kind::And {
            let op = self.bump();
            let e = self.parse_unary(Some(op))?;
            push_flat(&mut all, e, Kind::And);
        }
        Ok(Expr::And(all))
    }

    fn parse_unary(&mut self, after: Option<Token<'a>>) -> Result<Expr, FilterError> {
        let t = self.peek();
        match t.kind {
            Kind::Not | Kind::LParen => {
                self.bump();
                if self.depth >= MAX_DEPTH {
                    return Err(FilterError::new(
                        t.at,
                        format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
                    ));
                }
                self.depth += 1;
                let e = if t.kind == Kind::Not {
                    self.parse_unary(Some(t)).map(|e| Expr::Not(Box::new(e)))
                } else {
                    self.parse_group(t)
                };
                self.depth -= 1;
                e
            }
            Kind::Word => {
                self.bump();
                self.parse_predicate(t)
            }
            Kind::RParen | Kind::And | Kind::Or | Kind::End | Kind::Bad => {
                Err(t.error(|| match after {
                    Some(a) if a.kind == Kind::LParen && t.kind == Kind::RParen => {
                        "empty parentheses, expected an expression between '(' and ')'".to_string()
                    }
                    Some(a) => format!(
                        "expected an expression after {}, found {}",
                        a.describe(),
                        t.describe()
                    ),
                    None => format!("expected an expression, found {}", t.describe()),
                }))
            }
        }
    }

    /// After an opening parenthesis `open`.
    fn parse_group(&mut self, open: Token<'a>) -> Result<Expr, FilterError> {
        let e = self.parse_or(Some(open))?;
        let t = self.bump();
        match t.kind {
            Kind::RParen => Ok(e),
            Kind::End => Err(t.error(|| {
                format!(
                    "unbalanced parenthesis: expected ')' to close '(' at {}, found end of input",
                    open.at
                )
            })),
            _ => Err(t.error(|| {
                format!(
                    "expected 'and', 'or' or ')' to close '(' at {}, found {}",
                    open.at,
                    t.describe()
                )
            })),
        }
    }

    fn parse_predicate(&mut self, word: Token<'a>) -> Result<Expr, FilterError> {
        let kw = word.text.to_ascii_lowercase();
        let pred = match kw.as_str() {
            "tcp" => Pred::Proto(Proto::Tcp),
            "udp" => Pred::Proto(Proto::Udp),
            "icmp" => Pred::Proto(Proto::Icmp),
            "arp" => Pred::Proto(Proto::Arp),
            "ip" => Pred::Proto(Proto::Ip),
            "ip6" => Pred::Proto(Proto::Ip6),
            "syn" => Pred::Flag(Flag::Syn),
            "fin" => Pred::Flag(Flag::Fin),
            "rst" => Pred::Flag(Flag::Rst),
            "ack" => Pred::Flag(Flag::Ack),
            "psh" => Pred::Flag(Flag::Psh),
            "rx" => Pred::Dir(Dir::Rx),
            "tx" => Pred::Dir(Dir::Tx),
            "host" => Pred::Host(Side::Any, self.address("host")?),
            "port" => Pred::Port(Side::Any, self.port("port")?),
            "src" | "dst" => {
                let side = if kw == "src" { Side::Src } else { Side::Dst };
                let t = self.bump();
                let what = t.text.to_ascii_lowercase();
                match (t.kind, what.as_str()) {
                    (Kind::Word, "host") => Pred::Host(side, self.address(&format!("{kw} host"))?),
                    (Kind::Word, "port") => Pred::Port(side, self.port(&format!("{kw} port"))?),
                    _ => {
                        return Err(t.error(|| {
                            format!(
                                "expected 'host' or 'port' after '{kw}', found {}",
                                t.describe()
                            )
                        }));
                    }
                }
            }
            "stage" => {
                let t = self.argument("a stage name", "stage")?;
                match Stage::ALL
                    .into_iter()
                    .find(|s| s.name().eq_ignore_ascii_case(t.text))
                {
                    Some(s) => Pred::Stage(s),
                    None => {
                        return Err(FilterError::new(
                            t.at,
                            format!(
                                "unknown stage {}, expected one of {STAGE_NAMES}",
                                t.describe()
                            ),
                        ));
                    }
                }
            }
            "flow" => {
                let t = self.argument("a connection id", "flow")?;
                match number(t.text) {
                    Some(Ok(n)) => Pred::Flow(n),
                    Some(Err(())) => {
                        return Err(FilterError::new(
                            t.at,
                            format!("connection id {} is out of range", t.describe()),
                        ));
                    }
                    None => return Err(expected_after(t, "a connection id", "flow")),
                }
            }
            _ => match OutcomeKind::ALL.into_iter().find(|k| k.name() == kw) {
                Some(k) => Pred::Outcome(k),
                None => {
                    return Err(FilterError::new(
                        word.at,
                        format!(
                            "unknown word {}, expected a predicate such as tcp, udp, icmp, arp, \
                             host, port, syn, rx, tx, dropped, stage or flow",
                            word.describe()
                        ),
                    ));
                }
            },
        };
        Ok(Expr::Pred(pred))
    }

    /// The word after `keyword`, or an error saying `what` was expected.
    fn argument(&mut self, what: &str, keyword: &str) -> Result<Token<'a>, FilterError> {
        let t = self.bump();
        if t.kind == Kind::Word {
            Ok(t)
        } else {
            Err(expected_after(t, what, keyword))
        }
    }

    fn address(&mut self, keyword: &str) -> Result<IpAddr, FilterError> {
        const WHAT: &str = "an IPv4 or IPv6 address";
        let t = self.argument(WHAT, keyword)?;
        t.text.parse().map_err(|_| expected_after(t, WHAT, keyword))
    }

    fn port(&mut self, keyword: &str) -> Result<u16, FilterError> {
        const WHAT: &str = "a port number";
        let t = self.argument(WHAT, keyword)?;
        match number(t.text) {
            Some(Ok(n)) if n <= u64::from(u16::MAX) => Ok(n as u16),
            Some(_) => Err(FilterError::new(
                t.at,
                format!(
                    "port number {} is out of range, expected 0 to 65535",
                    t.describe()
                ),
            )),
            None => Err(expected_after(t, WHAT, keyword)),
        }
    }
}

/// Append `e` to the operands of an `and`/`or` (`kind`), splicing in its operands if it is the same kind.
fn push_flat(all: &mut Vec<Expr>, e: Expr, kind: Kind) {
    match (e, kind) {
        (Expr::And(es), Kind::And) | (Expr::Or(es), Kind::Or) => all.extend(es),
        (e, _) => all.push(e),
    }
}

/// A decimal number: `None` if `s` is not all digits, `Some(Err)` if it overflows a u64.
fn number(s: &str) -> Option<Result<u64, ()>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().map_err(|_| ()))
}

fn expected_after(t: Token<'_>, what: &str, keyword: &str) -> FilterError {
    t.error(|| format!("expected {what} after '{keyword}', found {}", t.describe()))
}

#[cfg(test)]
mod tests;
