//! The terminal UI (issue 4). So far only its filter expression language, shared by the packet list and
//! by breakpoints.

pub mod filter;
