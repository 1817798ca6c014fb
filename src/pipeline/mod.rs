//! The engine: the path's stages, its trace model, and the machinery that moves frames along it.

pub mod apps;
pub mod capture;
pub mod clock;
pub(crate) mod config;
pub(crate) mod connection;
pub mod device;
pub mod dissect;
pub(crate) mod engine;
pub(crate) mod frame_buffer;
pub(crate) mod ids;
pub(crate) mod packet_table;
pub(crate) mod reason;
pub mod stack;
pub mod stage;
pub mod trace;
pub(crate) mod udp;
pub(crate) mod verdict;
pub(crate) mod wire;

pub use apps::{AppKind, AppSpec};
pub use clock::{Clock, Nanos, VirtualClock};
pub use config::{PipelineConfig, SYN_BACKLOG, SYN_RECEIVED_TIMEOUT_NS};
pub use engine::{Action, Pipeline, Step, StepReport};
pub use reason::Reason;
pub use stage::{Dir, OutcomeKind, Stage};
pub use trace::{ConnectionRecord, PacketRecord, Stats};
pub use wire::{Arrival, Fate, Wire};
