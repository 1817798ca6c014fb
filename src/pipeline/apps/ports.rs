//! Which app serves which port, from the `--app [PORT=]SPEC` options: one rule for every command, which
//! differ only in where a bare SPEC serves and what serves the ports no option names.

use std::collections::BTreeMap;

use super::spec::{AppKind, AppSpec};

/// Where a bare `--app SPEC` (no `PORT=`) serves, and what serves the ports no option names.
#[derive(Debug, Clone)]
pub enum PortRule {
    /// `pktpath sim`: a bare SPEC serves `--port`; with no option at all, echo does.
    Port(u16),
    /// `pktpath replay`: a bare SPEC serves each port the recorded host served; the ports it leaves are
    /// `recorded`.
    Served(Vec<u16>),
    /// `pktpath live`: a bare echo, discard or http serves its well-known port (7, 9, 80); any other app
    /// needs its `PORT=`. With no option at all, the live defaults serve.
    WellKnown,
}

/// The apps a live run serves when `--app` is not given.
pub const LIVE_DEFAULT_APPS: [(u16, AppKind); 3] = [
    (7, AppKind::Echo),
    (9, AppKind::Discard),
    (80, AppKind::Http),
];

/// The well-known port a bare `--app SPEC` serves live (echo 7, discard 9, http 80).
pub fn well_known_port(kind: &AppKind) -> Option<u16> {
    match kind {
        AppKind::Echo => Some(7),
        AppKind::Discard => Some(9),
        AppKind::Http => Some(80),
        _ => None,
    }
}

/// The app per port under `rule`: a `PORT=SPEC` on its port (over a bare SPEC there), a bare SPEC where the
/// rule says, then the rule's defaults. `Err` names an app that cannot say which port it serves.
pub fn app_map(apps: &[AppSpec], rule: &PortRule) -> Result<BTreeMap<u16, AppKind>, String> {
    let mut map = BTreeMap::new();
    for a in apps.iter().filter(|a| a.port.is_none()) {
        let ports = match rule {
            PortRule::Port(p) => vec![*p],
            PortRule::Served(ports) => ports.clone(),
            PortRule::WellKnown => vec![
                well_known_port(&a.kind)
                    .ok_or_else(|| format!("--app {a}: give the port it serves, as in 8080={a}"))?,
            ],
        };
        for p in ports {
            map.insert(p, a.kind.clone());
        }
    }
    for a in apps {
        if let Some(p) = a.port {
            map.insert(p, a.kind.clone());
        }
    }
    match rule {
        PortRule::Port(p) if map.is_empty() => {
            map.insert(*p, AppKind::Echo);
        }
        PortRule::Served(ports) => {
            for p in ports {
                map.entry(*p).or_insert(AppKind::Recorded);
            }
        }
        PortRule::WellKnown if apps.is_empty() => map.extend(LIVE_DEFAULT_APPS),
        _ => {}
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(s: &[&str]) -> Vec<AppSpec> {
        s.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn map(apps: &[&str], rule: PortRule) -> Vec<(u16, String)> {
        app_map(&specs(apps), &rule)
            .unwrap()
            .into_iter()
            .map(|(p, k)| (p, k.to_string()))
            .collect()
    }

    #[test]
    fn each_command_places_a_bare_spec_its_own_way_and_port_specs_win() {
        let pair = |p: u16, k: &str| (p, k.to_string());
        assert_eq!(map(&[], PortRule::Port(7)), [pair(7, "echo")]);
        assert_eq!(
            map(&["7=http", "discard"], PortRule::Port(7)),
            [pair(7, "http")],
            "the port's own option wins over a bare one, whatever the order"
        );
        assert_eq!(
            map(&["9=discard"], PortRule::Served(vec![80, 443])),
            [
                pair(9, "discard"),
                pair(80, "recorded"),
                pair(443, "recorded")
            ]
        );
        assert_eq!(
            map(&["echo", "443=http"], PortRule::Served(vec![80, 443])),
            [pair(80, "echo"), pair(443, "http")]
        );
        assert_eq!(
            map(&[], PortRule::WellKnown),
            [pair(7, "echo"), pair(9, "discard"), pair(80, "http")]
        );
        assert_eq!(
            map(&["http", "8080=exec:cat"], PortRule::WellKnown),
            [pair(80, "http"), pair(8080, "exec:cat")]
        );
        assert_eq!(
            app_map(&specs(&["stall"]), &PortRule::WellKnown).unwrap_err(),
            "--app stall: give the port it serves, as in 8080=stall"
        );
    }
}
