//! Applications behind the AF_UNIX boundary. Each connection hands its app one end of a real socket pair; the
//! app only ever sees that end, through `AppIo`, exactly as a process would. In deterministic runs the core
//! calls `service` in step order and the app does what it can without blocking.

mod bridge;
mod builtin;
pub mod exec;
pub mod forward;
mod io;
mod ports;
mod spec;
#[cfg(test)]
mod test_io;

use std::net::SocketAddr;

pub use builtin::{Client, Discard, Echo, HTTP_BODY, Http, Stall};
pub use io::{App, AppIo};
pub use ports::{LIVE_DEFAULT_APPS, PortRule, app_map, well_known_port};
pub use spec::{AppKind, AppSpec, AppSpecError, ForwardTarget};

// Making an app is the one thing about an app choice that needs every app's code, so it lives here, above them.
impl AppKind {
    /// A fresh instance; `None` for `Recorded`, whose instances come from an `AppSource` that knows the flow.
    pub fn instantiate(&self) -> Option<Box<dyn App>> {
        Some(match self {
            AppKind::Echo => Box::new(Echo::default()),
            AppKind::Discard => Box::new(Discard::default()),
            AppKind::Http => Box::new(Http::default()),
            AppKind::Stall => Box::new(Stall),
            AppKind::Exec(cmd) => Box::new(exec::Exec::new(cmd)),
            AppKind::Forward(target) => Box::new(forward::Forward::new(target.clone())),
            AppKind::Recorded => return None,
        })
    }
}

/// Makes the apps that need to know which connection they serve (replay's `recorded`).
pub trait AppSource {
    /// The app for a connection the stack accepted from `remote` on `local`, or `None` to refuse it.
    fn accepted(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<Box<dyn App>>;
    /// The app for a connection the stack opens from `local` to `remote` (a replayed client), if any.
    fn connecting(&mut self, _local: SocketAddr, _remote: SocketAddr) -> Option<Box<dyn App>> {
        None
    }
    /// The app answering the datagrams of a UDP flow from `remote` to `local`, if the source has one.
    fn datagrams(
        &mut self,
        _local: SocketAddr,
        _remote: SocketAddr,
    ) -> Option<Box<dyn DatagramApp>> {
        None
    }
}

/// A datagram application that needs to know its flow: told of each datagram it read, it hands back the
/// datagrams it would send now.
pub trait DatagramApp {
    fn received(&mut self, datagram: &[u8]);
    /// The next datagram to send, if one is due.
    fn next_reply(&mut self) -> Option<Vec<u8>>;
}
