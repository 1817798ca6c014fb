//! `--app [PORT=]SPEC`: the app choices (`AppKind`), and parsing and printing them, including `exec:CMD` and
//! `forward:HOST:PORT`.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// Which application serves a port, as given by `--app [PORT=]SPEC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppKind {
    /// Writes back every byte it reads (TCP and UDP).
    Echo,
    /// Reads and drops everything (TCP and UDP).
    Discard,
    /// Answers any GET with a small 200 page, then closes (TCP only).
    Http,
    /// Accepts and never reads: shows what full buffers and a zero window look like.
    Stall,
    /// Replay: answers each connection with the recorded peer's byte stream, from the pipeline's app source;
    /// a connection the capture does not hold is refused.
    Recorded,
    /// inetd-style: each TCP connection runs `sh -c CMD`; the connection is the command's stdin and stdout.
    Exec(String),
    /// Each TCP connection is bridged to a real TCP service (pktpath as a userspace proxy).
    Forward(ForwardTarget),
}

impl AppKind {
    pub fn name(&self) -> &'static str {
        match self {
            AppKind::Echo => "echo",
            AppKind::Discard => "discard",
            AppKind::Http => "http",
            AppKind::Stall => "stall",
            AppKind::Recorded => "recorded",
            AppKind::Exec(_) => "exec",
            AppKind::Forward(_) => "forward",
        }
    }

    pub fn serves_udp(&self) -> bool {
        !matches!(self, AppKind::Http | AppKind::Exec(_) | AppKind::Forward(_))
    }
}

/// Where `forward:` bridges each connection: a host (IP literal or name, resolved per connection) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTarget {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for ForwardTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for ForwardTarget {
    type Err = AppSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| AppSpecError::BadForward(s.to_string(), why.to_string());
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("the '[' of an IPv6 address has no ']'"))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(bad("brackets hold an IPv6 address"));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad("the port is missing"))?;
            (host, port)
        } else {
            let (host, port) = s
                .rsplit_once(':')
                .ok_or_else(|| bad("the port is missing"))?;
            if host.contains(':') {
                return Err(bad("write an IPv6 address in brackets, as in [::1]:8080"));
            }
            let name_ok = host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if host.is_empty() {
                return Err(bad("the host is missing"));
            }
            if !name_ok {
                return Err(bad("the host is not an IP address or a host name"));
            }
            (host, port)
        };
        if port.is_empty() {
            return Err(bad("the port is missing"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?;
        Ok(ForwardTarget {
            host: host.to_string(),
            port,
        })
    }
}

/// `--app [PORT=]SPEC`: an app and, optionally, the port it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    pub port: Option<u16>,
    pub kind: AppKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppSpecError {
    #[error(
        "unknown app '{0}': use echo, discard, http, stall, exec:CMD (TCP only) or forward:HOST:PORT (TCP only)"
    )]
    UnknownApp(String),
    #[error("invalid port '{0}': use a number from 1 to 65535, as in 80=http")]
    BadPort(String),
    #[error("exec: needs a command, as in exec:cat (it runs with sh -c for each TCP connection)")]
    EmptyExec,
    #[error(
        "invalid forward target '{0}': {1}; use forward:HOST:PORT, as in forward:127.0.0.1:8080 or forward:[::1]:8080"
    )]
    BadForward(String, String),
}

impl FromStr for AppKind {
    type Err = AppSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(cmd) = s.strip_prefix("exec:") {
            if cmd.trim().is_empty() {
                return Err(AppSpecError::EmptyExec);
            }
            return Ok(AppKind::Exec(cmd.to_string()));
        }
        if let Some(target) = s.strip_prefix("forward:") {
            return Ok(AppKind::Forward(target.trim().parse()?));
        }
        Ok(match s.trim() {
            "echo" => AppKind::Echo,
            "discard" => AppKind::Discard,
            "http" => AppKind::Http,
            "stall" => AppKind::Stall,
            "recorded" => AppKind::Recorded,
            other => return Err(AppSpecError::UnknownApp(other.to_string())),
        })
    }
}

impl FromStr for AppSpec {
    type Err = AppSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // `PORT=` only before the app's name: an `exec:` command may hold '=' itself (`exec:env A=1 cat`).
        let (port, spec) = match s.split_once('=') {
            Some((p, rest)) if !p.contains(':') => {
                let port: u16 = p
                    .trim()
                    .parse()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| AppSpecError::BadPort(p.to_string()))?;
                (Some(port), rest)
            }
            _ => (None, s),
        };
        Ok(AppSpec {
            port,
            kind: spec.trim_start().parse()?,
        })
    }
}

impl fmt::Display for AppKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppKind::Exec(cmd) => write!(f, "exec:{cmd}"),
            AppKind::Forward(target) => write!(f, "forward:{target}"),
            other => f.write_str(other.name()),
        }
    }
}

impl fmt::Display for AppSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{p}={}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<AppSpec, String> {
        s.parse::<AppSpec>().map_err(|e| e.to_string())
    }

    fn spec(port: Option<u16>, kind: AppKind) -> Result<AppSpec, String> {
        Ok(AppSpec { port, kind })
    }

    fn fwd(host: &str, port: u16) -> AppKind {
        AppKind::Forward(ForwardTarget {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn parses_the_classic_apps() {
        assert_eq!(parse("echo"), spec(None, AppKind::Echo));
        assert_eq!(parse("80=http"), spec(Some(80), AppKind::Http));
        assert_eq!(
            parse("0=echo").unwrap_err(),
            "invalid port '0': use a number from 1 to 65535, as in 80=http"
        );
        assert_eq!(
            parse("x=echo").unwrap_err(),
            "invalid port 'x': use a number from 1 to 65535, as in 80=http"
        );
        assert_eq!(
            parse("7=ftp").unwrap_err(),
            "unknown app 'ftp': use echo, discard, http, stall, exec:CMD (TCP only) or forward:HOST:PORT (TCP only)"
        );
    }

    #[test]
    fn parses_exec_commands_with_their_own_equals_signs() {
        assert_eq!(parse("exec:cat"), spec(None, AppKind::Exec("cat".into())));
        assert_eq!(
            parse("80=exec:cat"),
            spec(Some(80), AppKind::Exec("cat".into()))
        );
        assert_eq!(
            parse("exec:env A=1 cat"),
            spec(None, AppKind::Exec("env A=1 cat".into()))
        );
        assert_eq!(
            parse("7=exec:env A=1 B=2 cat"),
            spec(Some(7), AppKind::Exec("env A=1 B=2 cat".into()))
        );
        assert_eq!(
            parse("exec:sh -c 'head -c 5'"),
            spec(None, AppKind::Exec("sh -c 'head -c 5'".into()))
        );
        let empty =
            "exec: needs a command, as in exec:cat (it runs with sh -c for each TCP connection)";
        assert_eq!(parse("exec:").unwrap_err(), empty);
        assert_eq!(parse("7=exec:  ").unwrap_err(), empty);
    }

    #[test]
    fn parses_forward_targets() {
        assert_eq!(
            parse("forward:127.0.0.1:8080"),
            spec(None, fwd("127.0.0.1", 8080))
        );
        assert_eq!(parse("forward:[::1]:8080"), spec(None, fwd("::1", 8080)));
        assert_eq!(
            parse("80=forward:[fe80::1]:80"),
            spec(Some(80), fwd("fe80::1", 80))
        );
        assert_eq!(
            parse("443=forward:example.internal:8443"),
            spec(Some(443), fwd("example.internal", 8443))
        );
    }

    #[test]
    fn rejects_bad_forward_targets_naming_the_value() {
        let cases = [
            ("forward:localhost", "localhost", "the port is missing"),
            ("forward:localhost:", "localhost:", "the port is missing"),
            (
                "forward:localhost:0",
                "localhost:0",
                "the port must be a number from 1 to 65535",
            ),
            (
                "forward:localhost:http",
                "localhost:http",
                "the port must be a number from 1 to 65535",
            ),
            (
                "forward:h:70000",
                "h:70000",
                "the port must be a number from 1 to 65535",
            ),
            (
                "forward:::1:80",
                "::1:80",
                "write an IPv6 address in brackets, as in [::1]:8080",
            ),
            ("forward:[::1]", "[::1]", "the port is missing"),
            (
                "forward:[::1:80",
                "[::1:80",
                "the '[' of an IPv6 address has no ']'",
            ),
            (
                "forward:[nope]:80",
                "[nope]:80",
                "brackets hold an IPv6 address",
            ),
            ("forward::80", ":80", "the host is missing"),
            (
                "forward:a b:80",
                "a b:80",
                "the host is not an IP address or a host name",
            ),
        ];
        for (input, value, why) in cases {
            assert_eq!(
                parse(input).unwrap_err(),
                format!(
                    "invalid forward target '{value}': {why}; use forward:HOST:PORT, as in forward:127.0.0.1:8080 or forward:[::1]:8080"
                ),
                "{input}"
            );
        }
    }

    #[test]
    fn prints_specs_as_they_parse() {
        for s in [
            "echo",
            "80=http",
            "7=exec:env A=1 cat",
            "forward:[::1]:8080",
            "9=forward:10.0.0.5:9",
        ] {
            assert_eq!(parse(s).unwrap().to_string(), s);
        }
    }
}
