//! `--filter EXPR` on a run's exports: an expression of the TUI's filter language (`crate::debug::filter`)
//! made into the packet test the export layer takes (`PacketFilter`), which knows no filter language.

use crate::debug::filter::Filter;
use crate::export::PacketFilter;

/// An expression that does not parse: one line naming it, where it fails (a 1-based column: everything
/// before the offending token is ASCII) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--filter '{}': at column {column}, {message}; fix the expression (the README lists the filter language)", .expr.escape_debug())]
pub struct BadFilter {
    pub expr: String,
    pub column: usize,
    pub message: String,
}

/// The exports' packet test for `expr`: a packet is written when it matches, exactly as the TUI's list
/// filter would show it.
pub fn export_filter(expr: &str) -> Result<PacketFilter, BadFilter> {
    let filter: Filter = expr
        .parse()
        .map_err(|e: crate::debug::filter::FilterError| BadFilter {
            expr: expr.to_string(),
            column: e.offset + 1,
            message: e.message,
        })?;
    Ok(PacketFilter::new(expr, move |p| filter.matches(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_expression_is_one_line_naming_it_and_where() {
        let e = export_filter("tcp and prot 80").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--filter 'tcp and prot 80': at column 9, unknown word 'prot', expected a predicate such as \
             tcp, udp, icmp, arp, host, port, syn, rx, tx, dropped, stage or flow; fix the expression (the \
             README lists the filter language)"
        );
        let e = export_filter("tcp and\nport").unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(
            e.to_string()
                .starts_with("--filter 'tcp and\\nport': at column 13"),
            "{e}"
        );
    }

    #[test]
    fn the_filter_is_named_by_its_expression() {
        assert_eq!(
            export_filter("tcp and port 80").unwrap().expr(),
            "tcp and port 80"
        );
    }
}
