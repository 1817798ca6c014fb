//! The engine: the path's stages, its trace model, and the machinery that moves frames along it.

pub mod apps;
pub mod capture;
pub mod clock;
pub mod config;
pub mod connection;
pub mod device;
pub mod dissect;
pub mod engine;
pub mod frame_buffer;
pub mod ids;
pub mod packet_table;
pub mod reason;
pub mod stack;
pub mod stage;
pub mod trace;
pub mod udp;
pub mod verdict;
pub mod wire;

pub use apps::{AppKind, AppSpec};
pub use clock::{Clock, Nanos, VirtualClock};
pub use config::PipelineConfig;
pub use engine::{Action, Pipeline, Step, StepReport};
pub use reason::Reason;
pub use stage::{Dir, OutcomeKind, Stage};
pub use trace::{ConnectionRecord, PacketRecord, Stats};
pub use wire::{Arrival, Fate, Wire};
