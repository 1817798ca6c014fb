//! The terminal UI: the pipeline diagram and packet list widgets, the app that ties a driver (`crate::debug`)
//! to keys and a screen, and the event loop on a real terminal. It draws what its driver gives it and builds
//! no run itself: the session layer (`crate::session`) hands it one.

pub mod app;
pub mod run;
pub(crate) mod term;
pub(crate) mod widgets;
