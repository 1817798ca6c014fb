//! A `FrameInfo` as text: the tcpdump-like summary line made for every exported packet, and the detail pane's
//! layer-by-layer lines.

use std::net::{IpAddr, SocketAddr};

use super::frame::{FrameInfo, Net, Transport};
use super::headers::TcpFlags;

/// "02:00:00:00:00:01"
pub fn format_mac(mac: &[u8; 6]) -> String {
    // By hand rather than six `format!`s and a join: every exported packet's summary may need two of these.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(17);
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}
fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        _ => p.to_string(),
    }
}

fn icmp_name(v6: bool, t: u8, code: u8) -> String {
    let name = match (v6, t, code) {
        (false, 8, _) | (true, 128, _) => "echo request",
        (false, 0, _) | (true, 129, _) => "echo reply",
        (false, 3, 3) => "port unreachable",
        (true, 133, _) => "router solicitation",
        (true, 134, _) => "router advertisement",
        (true, 135, _) => "neighbor solicitation",
        (true, 136, _) => "neighbor advertisement",
        _ => return format!("type {t} code {code}"),
    };
    name.to_string()
}

impl TcpFlags {
    /// tcpdump order: S F R P U, then "." for ACK; "none" if no flag is set.
    pub fn letters(&self) -> String {
        let mut s = String::with_capacity(6);
        self.push_letters(&mut s);
        s
    }

    fn push_letters(&self, line: &mut String) {
        let all = [self.syn, self.fin, self.rst, self.psh, self.urg, self.ack];
        let start = line.len();
        for (_, letter) in all.iter().zip("SFRPU.".chars()).filter(|f| *f.0) {
            line.push(letter);
        }
        if line.len() == start {
            line.push_str("none");
        }
    }
}

/// Appends to a summary line without `format!`: the summary is made for every exported packet, and the
/// formatting machinery (an address is a dozen nested `Display` calls) was most of the export's cost per packet.
trait SummaryLine {
    fn num(&mut self, n: impl itoa::Integer) -> &mut Self;
    fn addr(&mut self, a: SocketAddr) -> &mut Self;
    fn text(&mut self, s: &str) -> &mut Self;
}

impl SummaryLine for String {
    fn num(&mut self, n: impl itoa::Integer) -> &mut Self {
        self.push_str(itoa::Buffer::new().format(n));
        self
    }

    fn addr(&mut self, a: SocketAddr) -> &mut Self {
        match a {
            SocketAddr::V4(v4) => {
                for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        self.push('.');
                    }
                    self.num(octet);
                }
                self.push(':');
                self.num(v4.port())
            }
            // IPv6 text (zero compression, embedded IPv4) is the standard library's to get right.
            SocketAddr::V6(_) => {
                use std::fmt::Write;
                let _ = write!(self, "{a}");
                self
            }
        }
    }

    fn text(&mut self, s: &str) -> &mut Self {
        self.push_str(s);
        self
    }
}

/// `describe`'s detail lines, formatted only when wanted.
struct Lines {
    lines: Vec<String>,
    on: bool,
}

impl Lines {
    fn push(&mut self, line: impl FnOnce() -> String) {
        if self.on {
            self.lines.push(line());
        }
    }
}

fn ok_str(ok: bool) -> &'static str {
    if ok { "ok" } else { "BAD" }
}
impl FrameInfo {
    /// One pass over the layers: (summary line, detail lines). With `details` false the detail lines are
    /// left out (empty): the summary alone is made for every exported packet, and the detail lines' formatting
    /// was most of its cost.
    fn describe(&self, details: bool) -> (String, Vec<String>) {
        let macs = || (format_mac(&self.src_mac), format_mac(&self.dst_mac));
        let et = self.ethertype;
        let mut v = Lines {
            lines: Vec::new(),
            on: details,
        };
        if let Some(what) = &self.foreign {
            v.push(|| format!("Not Ethernet: {what} ({} bytes)", self.len));
            return (format!("{what}, len={}", self.len), v.lines);
        }
        if self.len >= 14 {
            let names = [(0x0800, "IPv4"), (0x86dd, "IPv6"), (0x0806, "ARP")];
            let name = names.iter().find(|n| n.0 == et).map(|n| n.1.to_string());
            let ty = name.unwrap_or_else(|| format!("0x{et:04x}"));
            v.push(|| {
                let (smac, dmac) = macs();
                format!("Ethernet {smac} > {dmac} type {ty}")
            });
        }
        let mut bad = false;
        let (s, d, proto): (IpAddr, IpAddr, u8) = match &self.net {
            Net::Ipv4 {
                src,
                dst,
                protocol: p,
                ttl,
                header_checksum_ok: ok,
                fragment,
            } => {
                let frag = if *fragment { " fragment" } else { "" };
                let (name, k) = (proto_name(*p), ok_str(*ok));
                v.push(|| format!("IPv4 {src} > {dst} proto {name} ttl {ttl} checksum {k}{frag}"));
                bad |= !ok;
                ((*src).into(), (*dst).into(), *p)
            }
            Net::Ipv6 {
                src,
                dst,
                next_header: p,
                hop_limit: h,
            } => {
                let name = proto_name(*p);
                v.push(|| format!("IPv6 {src} > {dst} next-header {name} hop-limit {h}"));
                ((*src).into(), (*dst).into(), *p)
            }
            Net::Arp {
                operation: op,
                sender_mac,
                sender_ip: si,
                target_mac,
                target_ip: ti,
            } => {
                let (sm, tm) = (format_mac(sender_mac), format_mac(target_mac));
                v.push(|| format!("ARP op {op} sender {sm} {si} target {tm} {ti}"));
                let line = match op {
                    1 => format!("ARP who-has {ti} tell {si}"),
                    2 => format!("ARP {si} is-at {sm}"),
                    _ => format!("ARP op {op} {si} > {ti}"),
                };
                return self.finish(line, v, false);
            }
            Net::Other { .. } | Net::None => {
                let (smac, dmac) = macs();
                let line = format!("{smac} > {dmac} ethertype 0x{et:04x} len={}", self.len);
                return self.finish(line, v, false);
            }
        };
        let line = match &self.transport {
            Transport::Tcp {
                src_port: a,
                dst_port: b,
                seq,
                ack,
                flags,
                window: w,
                payload_len: n,
                checksum_ok: ok,
            } => {
                let k = ok_str(*ok);
                v.push(|| {
                    let f = flags.letters();
                    format!(
                        "TCP {a} > {b} seq={seq} ack={ack} flags [{f}] win={w} payload {n} checksum {k}"
                    )
                });
                let (s, d) = (SocketAddr::new(s, *a), SocketAddr::new(d, *b));
                bad |= !ok;
                let mut line = String::with_capacity(96);
                line.addr(s).text(" > ").addr(d).text(" TCP [");
                flags.push_letters(&mut line);
                line.text("] seq=").num(*seq);
                if flags.ack {
                    line.text(" ack=").num(*ack);
                }
                line.text(" win=").num(*w).text(" len=").num(*n);
                line
            }
            Transport::Udp {
                src_port: a,
                dst_port: b,
                payload_len: n,
                checksum_ok: ok,
            } => {
                let k = ok_str(*ok);
                v.push(|| format!("UDP {a} > {b} payload {n} checksum {k}"));
                let (s, d) = (SocketAddr::new(s, *a), SocketAddr::new(d, *b));
                bad |= !ok;
                let mut line = String::with_capacity(64);
                line.addr(s).text(" > ").addr(d).text(" UDP len=").num(*n);
                line
            }
            Transport::Icmpv4 { icmp_type: t, code } => {
                v.push(|| format!("ICMP type {t} code {code}"));
                format!("{s} > {d} ICMP {}", icmp_name(false, *t, *code))
            }
            Transport::Icmpv6 { icmp_type: t, code } => {
                v.push(|| format!("ICMPv6 type {t} code {code}"));
                format!("{s} > {d} ICMP6 {}", icmp_name(true, *t, *code))
            }
            Transport::Other { protocol: p } => {
                v.push(|| format!("Payload protocol {}", proto_name(*p)));
                format!("{s} > {d} proto {}", proto_name(*p))
            }
            Transport::None => {
                let frag = matches!(self.net, Net::Ipv4 { fragment: true, .. });
                let frag = if frag { " fragment" } else { "" };
                format!("{s} > {d} proto {}{frag}", proto_name(proto))
            }
        };
        self.finish(line, v, bad)
    }

    fn finish(&self, mut line: String, mut v: Lines, bad: bool) -> (String, Vec<String>) {
        if bad {
            line.push_str(" bad-checksum");
        }
        if let Some(m) = &self.malformed {
            line.push_str(&format!(" (malformed: {m})"));
            v.push(|| format!("Malformed: {m}"));
        }
        (line, v.lines)
    }

    /// tcpdump-like one-liner, e.g. "10.0.0.2:40000 > 10.0.0.1:7 TCP [S] seq=1000 win=64240 len=0";
    /// " bad-checksum" marks a wrong IPv4/TCP/UDP checksum, " (malformed: …)" an early stop.
    pub fn summary(&self) -> String {
        self.describe(false).0
    }

    /// Layer-by-layer lines for a detail pane ("Ethernet …", "IPv4 …", "TCP …", "Malformed: …").
    pub fn layers(&self) -> Vec<String> {
        self.describe(true).1
    }
}
