//! Live mode: real traffic from a TAP device through the path, with real apps behind the stack. Threads as
//! docs/architecture.md ("Live") says: the tap-service thread (`service`) moves frames between the TAP
//! (`tap`) and the queues (`buffer`); the stack thread (`stack_thread`) runs the core on the real clock
//! (`clock`) over the live wire (`wire`) and takes commands (pause, step, resume, stop) between steps; `run`
//! starts both and stops them (the session layer decides when).

pub(crate) mod buffer;
pub(crate) mod clock;
pub(crate) mod run;
pub(crate) mod service;
pub(crate) mod stack_thread;
pub mod tap;
#[cfg(test)]
pub mod testkit;
pub mod wake;
pub(crate) mod wire;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::pipeline::apps::{PortRule, app_map};
use crate::pipeline::{AppKind, AppSpec};

/// smoltcp's delayed ACK in a live run (its own default): real peers are not replayed, so nothing needs an ACK
/// in the very window of the frame that earned it, and a bulk receiver sends half the frames.
pub const ACK_DELAY_MS: u64 = 10;

/// Everything a live run is asked to do.
#[derive(Debug, Clone)]
pub struct LiveSpec {
    pub tap: String,
    pub ip: (Ipv4Addr, u8),
    pub mac: [u8; 6],
    pub host_ip: Option<(Ipv4Addr, u8)>,
    pub ip6: Option<(Ipv6Addr, u8)>,
    pub host_ip6: Option<(Ipv6Addr, u8)>,
    pub apps: Vec<AppSpec>,
    pub frame_buffer: usize,
    pub duration: Option<Duration>,
}

impl LiveSpec {
    /// The app per TCP port: `--app PORT=SPEC`, a bare SPEC on its well-known port, or the defaults.
    pub fn app_map(&self) -> Result<BTreeMap<u16, AppKind>, String> {
        if let Some(a) = self.apps.iter().find(|a| a.kind == AppKind::Recorded) {
            return Err(format!(
                "--app {a}: the recorded app plays a capture's byte stream; use it with `pktpath replay FILE`"
            ));
        }
        app_map(&self.apps, &PortRule::WellKnown)
    }

    /// Checks that span several options; the message names the values and says what to do.
    pub fn validate(&self) -> Result<(), String> {
        self.app_map()?;
        if let Some((host, prefix)) = self.host_ip {
            let (ip, ip_prefix) = self.ip;
            if host == ip {
                return Err(format!(
                    "--host-ip {host}/{prefix} is the stack's own address (--ip {ip}/{ip_prefix}); give the kernel side another one, as in 10.77.0.1/24"
                ));
            }
            let mask = |p: u8| {
                if p == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(p))
                }
            };
            let m = mask(ip_prefix.min(prefix));
            if u32::from(host) & m != u32::from(ip) & m {
                return Err(format!(
                    "--host-ip {host}/{prefix} is not on the stack's subnet (--ip {ip}/{ip_prefix}); the kernel could not reach the stack"
                ));
            }
        }
        if let (Some((host, prefix)), Some((ip, ip_prefix))) = (self.host_ip6, self.ip6) {
            if host == ip {
                return Err(format!(
                    "--host-ip6 {host}/{prefix} is the stack's own address (--ip6 {ip}/{ip_prefix}); give the kernel side another one, as in fd77::1/64"
                ));
            }
            let m = u128::MAX << (128 - u32::from(ip_prefix.min(prefix)));
            if u128::from(host) & m != u128::from(ip) & m {
                return Err(format!(
                    "--host-ip6 {host}/{prefix} is not on the stack's subnet (--ip6 {ip}/{ip_prefix}); the kernel could not reach the stack"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::testkit;

    fn spec(apps: &[&str], host: Option<(Ipv4Addr, u8)>) -> LiveSpec {
        LiveSpec {
            host_ip: host,
            ..testkit::spec(apps)
        }
    }

    #[test]
    fn apps_default_and_bare_specs_take_their_well_known_port() {
        let m = spec(&[], None).app_map().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[&80], AppKind::Http);
        let m = spec(&["echo", "8080=http"], None).app_map().unwrap();
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), vec![7, 8080]);
        assert!(spec(&["stall"], None).app_map().is_err());
        assert!(spec(&["recorded"], None).validate().is_err());
    }

    #[test]
    fn host_ip6_must_be_another_address_on_the_subnet() {
        let with = |host: &str| {
            let mut s = spec(&[], None);
            s.ip6 = Some(("fd77::2".parse().unwrap(), 64));
            s.host_ip6 = Some((host.parse().unwrap(), 64));
            s.validate()
        };
        assert!(with("fd77::1").is_ok());
        let same = with("fd77::2").unwrap_err();
        assert!(
            same.contains("--host-ip6 fd77::2/64 is the stack's own address"),
            "{same}"
        );
        let other = with("fd78::1").unwrap_err();
        assert!(
            other.contains("not on the stack's subnet (--ip6 fd77::2/64)"),
            "{other}"
        );
    }

    #[test]
    fn host_ip_must_be_another_address_on_the_subnet() {
        assert!(
            spec(&[], Some((Ipv4Addr::new(10, 77, 0, 1), 24)))
                .validate()
                .is_ok()
        );
        assert!(
            spec(&[], Some((Ipv4Addr::new(10, 77, 0, 2), 24)))
                .validate()
                .is_err()
        );
        assert!(
            spec(&[], Some((Ipv4Addr::new(10, 78, 0, 1), 24)))
                .validate()
                .is_err()
        );
    }
}
